package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"stepflow/internal/devstack"
	"stepflow/internal/testenv"
)

// TestTokenLifecycle creates a reader token with the CLI in the token
// table, uses it, sees its role enforced, lists it, revokes it and sees it
// refused.
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
	t.Setenv("STEPFLOW_TOKEN_TABLE", "")
	tokens := st.TokenTable
	if tokens == "" || tokens == table {
		t.Fatalf("the local stack's token table is %q, want a table of its own", tokens)
	}

	code, out, errOut := cli(t, "token", "create", "--name", "dashboard viewer", "--role", "reader", "--token-table", tokens)
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

	// The list shows both tokens (the local stack's own and ours), and
	// never a credential or a secret's hash. STEPFLOW_TOKEN_TABLE works
	// like the flag.
	t.Setenv("STEPFLOW_TOKEN_TABLE", tokens)
	code, out, errOut = cli(t, "token", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^ID\s+NAME\s+ROLE\s+CREATED\s+EXPIRES\s+REVOKED$`).MatchString(out) {
		t.Fatalf("token list: exit %d\n%s%s", code, out, errOut)
	}
	row := regexp.MustCompile(`(?m)^` + tokenID + `\s+dashboard viewer\s+reader\s+\d{4}-\d\d-\d\dT\S+\s+never\s+-$`)
	if !row.MatchString(out) || !strings.Contains(out, "stepflow dev") || strings.Count(out, "\n") != 3 {
		t.Fatalf("token list does not show the two tokens:\n%s", out)
	}
	secret := cred[strings.LastIndex(cred, "_")+1:]
	if strings.Contains(out, secret) || regexp.MustCompile(`[0-9a-f]{64}`).MatchString(out) {
		t.Fatalf("token list shows a secret or its hash:\n%s", out)
	}

	if code, out, _ := cli(t, "token", "revoke", tokenID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke: exit %d %s", code, out)
	}
	if code, _, errOut := cli(t, "runs", "--api", st.URL, "--token", cred); code != exitError || !strings.Contains(errOut, "token revoked") {
		t.Fatalf("revoked token: exit %d %s", code, errOut)
	}
	if _, out, _ := cli(t, "token", "list"); !regexp.MustCompile(`(?m)^` + tokenID + `\s.*\s+never\s+\d{4}-\d\d-\d\dT\S+$`).MatchString(out) {
		t.Fatalf("token list does not show the revocation:\n%s", out)
	}
	for _, args := range [][]string{{"token"}, {"token", "create"}, {"token", "create", "--name", "x", "--role", "root"}, {"token", "revoke"}, {"token", "list", "extra"}, {"token", "rotate"}} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want usage error", args, code)
		}
	}
	if _, _, errOut := cli(t, "token", "create"); !strings.Contains(errOut, "--name is required") {
		t.Errorf("token create without a name does not say --name is missing:\n%s", errOut)
	}
	if code, _, errOut := cli(t, "token", "revoke", "tok_01KAAAAAAAAAAAAAAAAAAAAAAA"); code != exitError || !strings.Contains(errOut, "not found") {
		t.Errorf("revoke of an unknown token: exit %d %s", code, errOut)
	}
}
