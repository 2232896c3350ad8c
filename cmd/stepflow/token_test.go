package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"stepflow/internal/devstack"
	"stepflow/internal/testenv"
)

// TestTokenLifecycle creates a reader token with the CLI, uses it, sees
// its role enforced, revokes it and sees it refused.
func TestTokenLifecycle(t *testing.T) {
	endpoint := testenv.SQSEndpoint(t)
	table := testenv.Name(t, "tok")
	st, err := devstack.Start(context.Background(), devstack.Config{Addr: "127.0.0.1:0", Table: table, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
	t.Setenv("STEPFLOW_TOKEN", "")

	code, out, errOut := cli(t, "token", "create", "--name", "dashboard viewer", "--role", "reader", "--table", table)
	m := regexp.MustCompile(`token (tok_\S+) \(reader, dashboard viewer\).*\n(sft_\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("token create: exit %d\n%s%s", code, out, errOut)
	}
	tokenID, cred := m[1], m[2]
	if code, out, errOut := cli(t, "runs", "--api", st.URL, "--token", cred); code != 0 || !strings.HasPrefix(out, "RUN") {
		t.Fatalf("reader lists runs: exit %d %s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "run", "../../examples/diamond-workflow.json", "--api", st.URL, "--token", cred); code != exitError || !strings.Contains(errOut, "403") {
		t.Fatalf("reader starts a run: exit %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "token", "revoke", tokenID, "--table", table); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke: exit %d %s", code, out)
	}
	if code, _, errOut := cli(t, "runs", "--api", st.URL, "--token", cred); code != exitError || !strings.Contains(errOut, "token revoked") {
		t.Fatalf("revoked token: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{{"token"}, {"token", "create"}, {"token", "create", "--name", "x", "--role", "root", "--table", table}, {"token", "revoke"}} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage error", args, code)
		}
	}
	if code, _, errOut := cli(t, "token", "revoke", "tok_01KAAAAAAAAAAAAAAAAAAAAAAA", "--table", table); code != exitError || !strings.Contains(errOut, "not found") {
		t.Errorf("revoke of an unknown token: exit %d %s", code, errOut)
	}
}
