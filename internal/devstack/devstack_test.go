package devstack_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/devstack"
	"stepflow/internal/id"
	"stepflow/internal/testenv"
)

func status(t *testing.T, url, token string) int {
	t.Helper()
	code, _ := testenv.GetJSON(t, url, token)
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
	wf := testenv.PostJSON(t, st.URL+"/workflows", st.Token, `{"name":"w","steps":[{"id":"a"}]}`)
	if got := status(t, st.URL+"/workflows/"+wf["id"].(string), st.Token); got != 200 {
		t.Fatalf("GET workflow: %d", got)
	}
	// The same authentication as on AWS: no token, no access.
	if got := status(t, st.URL+"/workflows", ""); got != 401 {
		t.Fatalf("GET /workflows without a token: %d, want 401", got)
	}
	if !st.AutoSignIn {
		t.Fatal("a loopback stack should sign the dashboard in")
	}
	if code, cfg := testenv.GetJSON(t, st.URL+"/config.json", ""); code != 200 || cfg["token"] != st.Token {
		t.Fatalf("config.json: %d %v", code, cfg)
	}
	// A page served under another host name (DNS rebinding) gets no token.
	req, _ := http.NewRequest("GET", st.URL+"/config.json", nil)
	req.Host = "evil.example:80"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	_ = json.NewDecoder(res.Body).Decode(&cfg)
	res.Body.Close()
	if _, leaked := cfg["token"]; leaked {
		t.Fatalf("config.json gave the token to host %s: %v", req.Host, cfg)
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
	wf := testenv.PostJSON(t, st.URL+"/workflows", st.Token, `{"name":"keep me","steps":[{"id":"a"}]}`)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("restart on an existing table: %v", err)
	}
	defer st.Close()
	if got := status(t, st.URL+"/workflows/"+wf["id"].(string), st.Token); got != 200 {
		t.Fatalf("workflow lost across restart: GET status %d", got)
	}
}

// TestServerTimesOutSlowAndIdleClients checks that a client cannot hold a
// connection open: a request whose body never arrives is cut off within
// the read timeout, and an idle keep-alive connection is closed.
func TestServerTimesOutSlowAndIdleClients(t *testing.T) {
	const timeout = 300 * time.Millisecond
	st, err := devstack.Start(context.Background(), devstack.Config{
		Addr: "127.0.0.1:0", Table: testenv.Name(t, "dev"), Endpoint: testenv.SQSEndpoint(t),
		ReadTimeout: timeout, IdleTimeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := strings.TrimPrefix(st.URL, "http://")
	tests := []struct {
		name, request string
	}{
		{"slow body", "POST /orders HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + st.Token +
			"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"},
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, tt.request); err != nil {
				t.Fatal(err)
			}
			// Whatever the server answers, it must then close the
			// connection; a server without timeouts leaves us waiting
			// until this deadline.
			_ = conn.SetReadDeadline(time.Now().Add(10 * timeout))
			_, err = io.Copy(io.Discard, conn)
			if elapsed := time.Since(start); err != nil || elapsed > 5*timeout {
				t.Fatalf("connection still open after %v (read error %v); want it closed within about %v", elapsed.Round(time.Millisecond), err, timeout)
			}
		})
	}
}

// TestNoAutoSignInKeepsTheTokenOutOfConfig checks the opt-out of local
// sign-in: config.json then carries no credential for any local process.
func TestNoAutoSignInKeepsTheTokenOutOfConfig(t *testing.T) {
	st, err := devstack.Start(context.Background(), devstack.Config{
		Addr: "127.0.0.1:0", Table: testenv.Name(t, "dev"), Endpoint: testenv.SQSEndpoint(t), NoAutoSignIn: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.AutoSignIn {
		t.Error("AutoSignIn is set although NoAutoSignIn was asked for")
	}
	code, cfg := testenv.GetJSON(t, st.URL+"/config.json", "")
	if _, leaked := cfg["token"]; code != 200 || leaked {
		t.Fatalf("config.json: %d %v; want 200 without a token", code, cfg)
	}
	// The token itself still works for whoever was handed it.
	if got := status(t, st.URL+"/workflows", st.Token); got != 200 {
		t.Fatalf("GET /workflows with the printed token: %d", got)
	}
}

// TestEmbeddedEmulatorIsOpenToLocalProcesses pins down the local threat
// model (README, Authentication): the embedded emulator listens on
// loopback only but checks no credentials, so any local process can mint
// itself an operator token with one unsigned request. Local sign-in and
// --no-auto-signin protect nothing beyond that.
func TestEmbeddedEmulatorIsOpenToLocalProcesses(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "")
	t.Setenv("AWS_ENDPOINT_URL_SQS", "")
	st, err := devstack.Start(context.Background(), devstack.Config{Addr: "127.0.0.1:0", Table: testenv.Name(t, "dev"), NoAutoSignIn: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !strings.HasPrefix(st.DynamoDB, "http://127.0.0.1:") {
		t.Fatalf("the embedded emulator listens on %s, want loopback only", st.DynamoDB)
	}
	tok, cred, err := auth.New(id.NewGenerator(nil, nil), "intruder", auth.Operator, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	item, _ := json.Marshal(map[string]any{"TableName": st.TokenTable, "Item": map[string]any{
		"id": map[string]string{"S": tok.ID}, "name": map[string]string{"S": tok.Name}, "role": map[string]string{"S": string(tok.Role)},
		"secret_hash": map[string]string{"S": tok.SecretHash}, "created_at": map[string]string{"S": tok.CreatedAt.Format(time.RFC3339Nano)},
	}})
	req, _ := http.NewRequest("POST", st.DynamoDB, strings.NewReader(string(item)))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.PutItem")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	res, err := http.DefaultClient.Do(req) // no signature, no credentials
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("unsigned PutItem: %d; if the emulator now checks credentials, update the threat model in README", res.StatusCode)
	}
	if got := status(t, st.URL+"/workflows", cred); got != 200 {
		t.Fatalf("the minted token got %d", got)
	}
}
