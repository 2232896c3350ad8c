package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"stepflow/internal/devstack"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
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

// TestStepViews: what --watch's step line and run-status add for a step
// that waits, has an output or an error, and for the run's input.
func TestStepViews(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 8, 10, 0, 5, 0, time.UTC)
	text := func(s string) *string { return &s }
	long := json.RawMessage(`{"items":[` + strings.Repeat(`"widget",`, 20) + `"last"]}`)
	tests := []struct {
		name       string
		step       wire.StepDetail
		line, note string // the --watch line after "retries n/m", and run-status's line for the step
	}{
		{"approval", wire.StepDetail{StepID: "a", Type: "approval", Status: status.StepWaiting},
			"  for approval", "a: waiting for approval (stepflow approve|reject run_1 a)"},
		{"approval with a timeout", wire.StepDetail{StepID: "a", Type: "approval", Status: status.StepWaiting, WaitUntil: &at},
			"  for approval until " + deadline(&at), "a: waiting for approval until " + deadline(&at) + " (stepflow approve|reject run_1 a)"},
		{"wait", wire.StepDetail{StepID: "w", Type: "wait", Status: status.StepWaiting, WaitUntil: &at},
			"  until " + deadline(&at), "w: waiting until " + deadline(&at)},
		{"output", wire.StepDetail{StepID: "h", Type: "http", Status: status.StepCompleted, Output: json.RawMessage(`{ "ok": true }`)},
			`  output: {"ok":true}`, `h: output {"ok":true}`},
		{"long output", wire.StepDetail{StepID: "h", Type: "http", Status: status.StepCompleted, Output: long},
			`  output: {"items":["widget… (198 bytes)`, `h: output {"items":["widget","widget","widget","widget","… (198 bytes)`},
		{"null output", wire.StepDetail{StepID: "t", Type: "task", Status: status.StepCompleted, Output: json.RawMessage(`null`)}, "", ""},
		{"error", wire.StepDetail{StepID: "a", Type: "approval", Status: status.StepFailed, ErrorMessage: text("approval refused: no stock")},
			"  error: approval refused: no stock", ""},
		{"error that a terminal would act on", wire.StepDetail{StepID: "a", Status: status.StepFailed, ErrorMessage: text("a\x1b]52;c;aGk=\x07\nb\u202e")},
			`  error: a\u001b]52;c;aGk=\u0007\nb\u202e`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := stepLine(tt.step, 1)
			_, rest, _ := strings.Cut(line, "retries 0/0")
			if rest != tt.line || strings.Contains(line, "\x1b") {
				t.Errorf("--watch line %q, want it to end %q", line, tt.line)
			}
			if n := utf8.RuneCountInString(line); n > 80-11 && tt.step.ErrorMessage == nil {
				t.Errorf("--watch line of %d characters: %q", n, line)
			}
			var b strings.Builder
			printRun(&b, wire.RunDetail{RunSummary: wire.RunSummary{ID: "run_1"}, Steps: []wire.StepDetail{tt.step}})
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			note := ""
			if len(lines) == 4 {
				note = lines[3]
			}
			if len(lines) < 3 || len(lines) > 4 || note != tt.note || strings.Contains(b.String(), "\x1b") {
				t.Errorf("run-status printed\n%s\nwant the step's note %q", b.String(), tt.note)
			}
		})
	}

	input := func(d wire.RunDetail) string {
		var b strings.Builder
		printRun(&b, d)
		return strings.Split(b.String(), "\n")[1]
	}
	d := wire.RunDetail{Input: json.RawMessage(`{"customer":"ada"}`), Inputs: []wire.RunInput{{Generation: 0, Input: json.RawMessage(`{"customer":"ada"}`)}}}
	if got := input(d); got != `input {"customer":"ada"}` {
		t.Errorf("input line %q", got)
	}
	d.Generation, d.Input = 2, json.RawMessage(`{"customer":"bo"}`)
	d.Inputs = append(d.Inputs, wire.RunInput{Generation: 1, Input: d.Input})
	if got := input(d); got != `input {"customer":"bo"} (from retry 1)` {
		t.Errorf("input line after retries %q", got)
	}
	if got := input(wire.RunDetail{Input: json.RawMessage(`null`)}); !strings.HasPrefix(got, "#") {
		t.Errorf("a run without input has the line %q", got)
	}
}

func TestDeadlineShowsTheDateUnlessToday(t *testing.T) {
	t.Parallel()
	now := time.Now()
	later := now.Add(48 * time.Hour)
	if got := deadline(&now); got != now.Local().Format("15:04:05") {
		t.Errorf("today: %q", got)
	}
	if got := deadline(&later); got != later.Local().Format("2006-01-02 15:04:05") {
		t.Errorf("in two days: %q", got)
	}
}
