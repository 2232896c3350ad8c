package auth_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/id"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

func event(t *testing.T, header, method string) events.APIGatewayV2CustomAuthorizerV2Request {
	t.Helper()
	data, err := os.ReadFile("testdata/authorizer-request.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2CustomAuthorizerV2Request
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	if header == "" {
		delete(ev.Headers, "authorization")
	} else {
		ev.Headers["authorization"] = header
	}
	ev.RequestContext.HTTP.Method = method
	return ev
}

// TestLambdaAuthorizer feeds a recorded API Gateway authorizer event
// through the authorizer over tokens stored in the emulated table.
func TestLambdaAuthorizer(t *testing.T) {
	t.Parallel()
	st := testenv.Tokens(t)
	ctx, now := context.Background(), time.Now()
	ids := id.NewGenerator(nil, nil)
	put := func(role auth.Role, revoke bool) (auth.Token, string) {
		tok, cred, _ := auth.New(ids, "t", role, now, 0)
		if err := st.PutTokenIfAbsent(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if revoke {
			if err := st.RevokeToken(ctx, tok.ID, now); err != nil {
				t.Fatal(err)
			}
		}
		return tok, cred
	}
	op, opCred := put(auth.Operator, false)
	_, readerCred := put(auth.Reader, false)
	_, revokedCred := put(auth.Operator, true)
	h := auth.LambdaAuthorizer(auth.Authenticator{Tokens: st}, slog.New(slog.DiscardHandler))
	tests := []struct {
		name, header, method string
		want                 bool
	}{
		{"operator writes", "Bearer " + opCred, "POST", true},
		{"reader reads", "Bearer " + readerCred, "GET", true},
		// The edge authenticates only: API Gateway caches its answer by
		// the Authorization header alone, so a decision that depended on
		// the method would be reused for other methods. Roles are the
		// API's to enforce (TestEdgeDecisionIgnoresTheMethod).
		{"reader writes", "Bearer " + readerCred, "POST", true},
		{"revoked", "Bearer " + revokedCred, "GET", false},
		{"missing", "", "GET", false},
		{"malformed", "Bearer " + strings.Repeat("x", 80), "GET", false},
	}
	for _, tt := range tests {
		res, err := h(ctx, event(t, tt.header, tt.method))
		if err != nil || res.IsAuthorized != tt.want {
			t.Errorf("%s: authorized %v, err %v; want %v", tt.name, res.IsAuthorized, err, tt.want)
		}
	}
	res, _ := h(ctx, event(t, "Bearer "+opCred, "POST"))
	if res.Context["token_id"] != op.ID || res.Context["role"] != "operator" {
		t.Errorf("context %v", res.Context)
	}

	// When the token table cannot be read the authorizer fails rather than
	// letting the request through.
	dead := httptest.NewServer(nil)
	dead.Close()
	cfg, err := awsclient.Load(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	broken := auth.LambdaAuthorizer(auth.Authenticator{Tokens: store.NewTokens(awsclient.DynamoDB(cfg, dead.URL), "t")}, slog.New(slog.DiscardHandler))
	if res, err := broken(ctx, event(t, "Bearer "+opCred, "GET")); err == nil || res.IsAuthorized {
		t.Fatalf("storage failure: authorized %v, err %v", res.IsAuthorized, err)
	}
}

// TestEdgeDecisionIgnoresTheMethod checks that the authorizer's answer for a
// token is the same whatever the method (so API Gateway's cache, keyed on
// the Authorization header, cannot replay a GET's answer for a POST), while
// the API behind it still refuses a reader's POST.
func TestEdgeDecisionIgnoresTheMethod(t *testing.T) {
	t.Parallel()
	tokens, st := testenv.Tokens(t), testenv.Store(t)
	ctx := context.Background()
	tok, cred, err := auth.New(id.NewGenerator(nil, nil), "viewer", auth.Reader, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.PutTokenIfAbsent(ctx, tok); err != nil {
		t.Fatal(err)
	}
	authn := auth.Authenticator{Tokens: tokens}
	edge := auth.LambdaAuthorizer(authn, slog.New(slog.DiscardHandler))
	decisions := map[string]events.APIGatewayV2CustomAuthorizerSimpleResponse{}
	for _, method := range []string{"GET", "POST"} {
		res, err := edge(ctx, event(t, "Bearer "+cred, method))
		if err != nil {
			t.Fatal(err)
		}
		decisions[method] = res
	}
	if !decisions["GET"].IsAuthorized || !reflect.DeepEqual(decisions["GET"], decisions["POST"]) {
		t.Fatalf("edge decisions differ by method: GET %+v, POST %+v", decisions["GET"], decisions["POST"])
	}

	srv := httptest.NewServer(api.New(api.Config{Store: st, Auth: authn}))
	defer srv.Close()
	for method, want := range map[string]int{"GET": 200, "POST": 403} {
		req, _ := http.NewRequest(method, srv.URL+"/workflows", strings.NewReader(`{"name":"w","steps":[{"id":"a"}]}`))
		req.Header.Set("Authorization", "Bearer "+cred)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("the API answered a reader's %s with %d, want %d", method, res.StatusCode, want)
		}
	}
}
