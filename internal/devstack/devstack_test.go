package devstack_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"stepflow/internal/devstack"
	"stepflow/internal/testenv"
)

func status(t *testing.T, url string) int {
	t.Helper()
	code, _ := testenv.GetJSON(t, url)
	return code
}

func TestEmbeddedStackServesTheAPI(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "")
	st, err := devstack.Start(context.Background(), devstack.Config{Addr: "127.0.0.1:0", Table: testenv.Name(t, "dev")})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Embedded || !strings.HasPrefix(st.DynamoDB, "http://127.0.0.1:") || st.SQS != st.DynamoDB {
		t.Fatalf("want the embedded emulator for both services, got %q and %q (embedded=%v)", st.DynamoDB, st.SQS, st.Embedded)
	}
	wf := testenv.PostJSON(t, st.URL+"/workflows", `{"name":"w","steps":[{"id":"a"}]}`)
	if got := status(t, st.URL+"/workflows/"+wf["id"].(string)); got != 200 {
		t.Fatalf("GET workflow: %d", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(st.URL + "/healthz"); err == nil {
		t.Fatal("API still answers after Close")
	}
	done := make(chan error, 1)
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second Close hangs")
	}
}

func TestRestartAgainstExternalEndpointKeepsData(t *testing.T) {
	cfg := devstack.Config{Addr: "127.0.0.1:0", Table: testenv.Name(t, "dev"), Endpoint: testenv.SQSEndpoint(t)}
	st, err := devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Embedded {
		t.Fatal("started an embedded emulator although an endpoint was given")
	}
	wf := testenv.PostJSON(t, st.URL+"/workflows", `{"name":"keep me","steps":[{"id":"a"}]}`)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart on an existing table: %v", err)
	}
	defer st.Close()
	if got := status(t, st.URL+"/workflows/"+wf["id"].(string)); got != 200 {
		t.Fatalf("workflow lost across restart: GET status %d", got)
	}
}
