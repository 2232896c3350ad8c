package auth_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

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
		if err := st.PutToken(ctx, tok); err != nil {
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
		{"reader writes", "Bearer " + readerCred, "POST", false},
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
