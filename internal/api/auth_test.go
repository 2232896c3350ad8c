package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/id"
	"stepflow/internal/testenv"
)

type creds struct {
	operator, reader, expired, revoked, wrongSecret string
}

// authSetup serves the API with authentication, tokens stored in the real
// table, and a cap of 3 run starts per minute per caller.
func authSetup(t *testing.T) (*bundle, creds, string) {
	t.Helper()
	st, tokens := testenv.Store(t), testenv.Tokens(t)
	ctx, now := context.Background(), time.Now()
	ids := id.NewGenerator(nil, nil)
	mk := func(role auth.Role, ttl time.Duration, revoke bool) string {
		tok, cred, err := auth.New(ids, string(role), role, now.Add(-time.Hour), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if err := tokens.PutTokenIfAbsent(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if revoke {
			if err := tokens.RevokeToken(ctx, tok.ID, now); err != nil {
				t.Fatal(err)
			}
		}
		return cred
	}
	c := creds{
		operator: mk(auth.Operator, 0, false),
		reader:   mk(auth.Reader, 0, false),
		expired:  mk(auth.Operator, time.Minute, false), // made an hour ago
		revoked:  mk(auth.Operator, 0, true),
	}
	c.wrongSecret = c.operator[:len(c.operator)-3] + "xyz"
	// A fixed API clock keeps every run start in one rate window.
	h := api.New(api.Config{Store: st, Auth: auth.Authenticator{Tokens: tokens}, Limiter: st, RunsPerMinute: 3,
		Redriver: noRedrive{}, Now: func() time.Time { return now }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := &bundle{t: t, url: srv.URL}
	wf := b.doAs(c.operator, "POST", "/workflows", `{"name":"w","steps":[{"id":"a"}]}`)
	if wf.status != 201 {
		t.Fatalf("operator could not create a workflow: %d %s", wf.status, wf.body)
	}
	var w struct {
		ID string `json:"id"`
	}
	wf.json(t, &w)
	return b, c, w.ID
}

type noRedrive struct{}

func (noRedrive) Redrive(context.Context) (int, error) { return 0, nil }
func (noRedrive) Depth(context.Context) (int, error)   { return 0, nil }

func (b *bundle) doAs(cred, method, path, body string) response {
	b.t.Helper()
	if cred == "" {
		return b.do(method, path, body)
	}
	return b.do(method, path, body, "Authorization", "Bearer "+cred)
}

func TestEveryRouteRequiresCredentials(t *testing.T) {
	t.Parallel()
	b, c, wfID := authSetup(t)
	runID := "run_01KAAAAAAAAAAAAAAAAAAAAAAA"
	routes := []struct{ method, path, body string }{
		{"GET", "/workflows", ""}, {"POST", "/workflows", `{"name":"x","steps":[{"id":"a"}]}`},
		{"GET", "/workflows/" + wfID, ""}, {"POST", "/workflows/" + wfID + "/runs", ""},
		{"GET", "/runs", ""}, {"GET", "/runs/" + runID, ""},
		{"POST", "/runs/" + runID + "/cancel", ""}, {"POST", "/runs/" + runID + "/retry", ""},
		{"POST", "/orders", `{"amount": 5}`}, {"GET", "/orders", ""}, {"GET", "/orders/ord_01KAAAAAAAAAAAAAAAAAAAAAAA", ""},
		{"POST", "/redrive", ""}, {"GET", "/no-such-route", ""},
	}
	bad := map[string]string{
		"missing": "", "malformed": "not-a-token", "wrong secret": c.wrongSecret,
		"expired": c.expired, "revoked": c.revoked,
	}
	for _, rt := range routes {
		for name, cred := range bad {
			r := b.doAs(cred, rt.method, rt.path, rt.body)
			if cred == "not-a-token" {
				r = b.do(rt.method, rt.path, rt.body, "Authorization", "Basic dXNlcjpwYXNz")
			}
			if r.status != 401 || r.header.Get("WWW-Authenticate") == "" || !strings.Contains(string(r.body), "authentication required") {
				t.Errorf("%s %s with %s credentials: %d %s", rt.method, rt.path, name, r.status, r.body)
			}
		}
		reader := b.doAs(c.reader, rt.method, rt.path, rt.body)
		if rt.method == "POST" && reader.status != 403 {
			t.Errorf("reader %s %s: %d, want 403", rt.method, rt.path, reader.status)
		}
		if rt.method == "GET" && (reader.status == 401 || reader.status == 403) {
			t.Errorf("reader %s %s: %d, want access", rt.method, rt.path, reader.status)
		}
		if op := b.doAs(c.operator, rt.method, rt.path, rt.body); op.status == 401 || op.status == 403 {
			t.Errorf("operator %s %s: %d, want access", rt.method, rt.path, op.status)
		}
	}
	if r := b.do("GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz without credentials: %d", r.status)
	}
}

func TestRunStartsAreCappedPerCaller(t *testing.T) {
	t.Parallel()
	b, c, wfID := authSetup(t)
	// The operator's first three starts pass; the fourth in the same
	// minute is 429, and so is a retry.
	var codes []int
	for range 4 {
		codes = append(codes, b.doAs(c.operator, "POST", "/workflows/"+wfID+"/runs", "").status)
	}
	last := b.doAs(c.operator, "POST", "/workflows/"+wfID+"/runs", "")
	if codes[0] != 202 || codes[1] != 202 || codes[2] != 202 || codes[3] != 429 || last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Fatalf("statuses %v then %d (Retry-After %q), want 202 202 202 429 429", codes, last.status, last.header.Get("Retry-After"))
	}
	// The reader cannot start runs at all, whatever the cap.
	if r := b.doAs(c.reader, "POST", "/workflows/"+wfID+"/runs", ""); r.status != 403 {
		t.Fatalf("reader start: %d", r.status)
	}
}
