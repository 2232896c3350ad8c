package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"stepflow/internal/devstack"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/testenv"
)

// localStack starts the local stack with steps that never fail unless
// their fail_probability is above 0.5, running at a tenth of their
// duration.
func localStack(t *testing.T) (url, token string) {
	t.Helper()
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	st, err := devstack.Start(context.Background(), devstack.Config{
		Addr: "127.0.0.1:0", Table: testenv.Name(t, "cli"), Endpoint: testenv.SQSEndpoint(t), Retry: &policy,
		Task: engine.Simulated{Rand: func() float64 { return 0.5 }, Sleep: func(ctx context.Context, d time.Duration) error {
			time.Sleep(d / 10)
			return nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.URL, st.Token
}

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTerminalView(t *testing.T) {
	api, tok := localStack(t)
	t.Setenv("STEPFLOW_TOKEN", tok)

	code, out, errOut := cli(t, "run", "../../examples/diamond-workflow.json", "--api", api, "--watch", "--interval", "50ms")
	if code != exitCompleted || !strings.Contains(out, "[##############################] 4/4 steps  completed") || !strings.Contains(out, "✓ D") {
		t.Fatalf("diamond: exit %d\n%s%s", code, out, errOut)
	}
	runID := regexp.MustCompile(`run (run_\S+)`).FindStringSubmatch(out)[1]
	// Piped, --watch prints a step's line only when it changes: each of the
	// four steps is pending, running and completed at most once, and the
	// bar comes once, at the end.
	for _, step := range []string{"A", "B", "C", "D"} {
		for _, mark := range []string{"·", "▶", "✓"} {
			if n := strings.Count(out, "  "+mark+" "+step+" "); n > 1 {
				t.Errorf("piped --watch printed %q %d times:\n%s", mark+" "+step, n, out)
			}
		}
	}
	if n := strings.Count(out, "steps  "); n != 1 || strings.Count(out, "\n") > 1+4*3+1 {
		t.Errorf("piped --watch printed the bar %d times, %d lines:\n%s", n, strings.Count(out, "\n"), out)
	}

	code, out, errOut = cli(t, "run", "../../examples/order-processing.json", "--amount", "12.50", "--api", api, "--watch", "--interval", "50ms")
	if code != exitCompleted || !strings.Contains(out, "order ord_") || !strings.Contains(out, "4/4 steps  completed") {
		t.Fatalf("order run: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = cli(t, "run", "testdata/flaky.json", "--api", api, "--watch", "--interval", "50ms")
	if code != exitFailed || !strings.Contains(out, "✗ flaky") || !strings.Contains(out, "retries 1/1  error: simulated failure") || !strings.Contains(out, "- never  skipped") {
		t.Fatalf("flaky run: exit %d\n%s", code, out)
	}

	code, out, _ = cli(t, "runs", "--api", api)
	if code != 0 || !strings.HasPrefix(out, "RUN") || !strings.Contains(out, runID) || strings.Count(out, "\n") != 4 ||
		!regexp.MustCompile(runID+`\s+diamond-workflow\s+completed\s+4/4\s`).MatchString(out) || !strings.Contains(out, "(shipped)") {
		t.Fatalf("runs: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "run-status", runID, "--api", api)
	if code != exitCompleted || !strings.Contains(out, "diamond-workflow: completed") || !strings.Contains(out, "B,C") {
		t.Fatalf("run-status: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "run-status", "run_01KAAAAAAAAAAAAAAAAAAAAAAA", "--api", api); code != exitError || !strings.Contains(errOut, "no run") {
		t.Fatalf("run-status of an unknown run: exit %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "run", "testdata/invalid.json", "--api", api); code != exitError || !strings.Contains(errOut, "steps[0].config.max_retries") {
		t.Fatalf("invalid definition: exit %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "redrive", "--api", api); code != 0 || !strings.Contains(out, "moved 0") {
		t.Fatalf("redrive: exit %d %s", code, out)
	}
	// Without a token the API refuses; a wrong --token overrides the
	// environment and is refused too.
	t.Setenv("STEPFLOW_TOKEN", "")
	if code, _, errOut := cli(t, "runs", "--api", api); code != exitError || !strings.Contains(errOut, "401") {
		t.Fatalf("runs without a token: exit %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "runs", "--api", api, "--token", tok[:len(tok)-2]+"zz"); code != exitError || !strings.Contains(errOut, "authentication required") {
		t.Fatalf("runs with a wrong token: exit %d %s", code, errOut)
	}
}

func TestTerminalViewUsage(t *testing.T) {
	tests := []struct {
		args []string
		says string // what stderr must name
	}{
		{[]string{"run"}, "missing the workflow FILE"},
		{[]string{"run", "a.json", "b.json"}, "one workflow FILE"},
		{[]string{"run", "x.json", "--order", "ord_x", "--amount", "1"}, "exclude each other"},
		{[]string{"run", "does-not-exist.json"}, "does-not-exist.json"},
		{[]string{"run-status"}, "Usage"},
		{[]string{"runs", "--status", "bogus"}, `--status "bogus" is not a run status; use one of pending, running, completed, failed, cancelled`},
		{[]string{"runs", "--limit", "0"}, "--limit must be from 1 to 200"},
	}
	for _, tt := range tests {
		// The API is unreachable: usage errors must be caught before any call.
		code, _, errOut := cli(t, append(tt.args, "--api", "http://127.0.0.1:1")...)
		if code != exitUsage || !strings.Contains(errOut, tt.says) {
			t.Errorf("%v: exit %d, want %d, saying %q; stderr:\n%s", tt.args, code, exitUsage, tt.says, errOut)
		}
	}
	if code, _, errOut := cli(t, "runs", "--api", "http://127.0.0.1:1"); code != exitError || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("unreachable API: exit %d %s", code, errOut)
	}
}
