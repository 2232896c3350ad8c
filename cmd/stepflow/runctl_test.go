package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"stepflow/internal/client"
	"stepflow/internal/status"
	"stepflow/internal/wire"
)

// approvalWorkflow is a run that waits for a decision on step a, then
// runs b.
const approvalWorkflow = `{"name":"ap","steps":[{"id":"a","type":"approval"},{"id":"b","depends_on":["a"],"config":{"duration_seconds":0.01}}]}`

// TestRunControl drives runs through the CLI against the local stack: a
// run's input, cancel and retry with a new input, and approve and reject
// of an approval step, each checked through run-status and the client.
func TestRunControl(t *testing.T) {
	api, tok := localStack(t)
	c := client.New(api)
	c.Token = tok
	sf := func(args ...string) (int, string, string) {
		t.Helper()
		return cli(t, append(args, "--api", api, "--token", tok)...)
	}
	dir := t.TempDir()
	ap := filepath.Join(dir, "ap.json")
	if err := os.WriteFile(ap, []byte(approvalWorkflow), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errOut := sf(args...)
		m := regexp.MustCompile(`run (run_\S+) of`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return m[1]
	}
	// awaitWaiting polls the run until step a is waiting, and checks what
	// run-status shows then.
	awaitWaiting := func(t *testing.T, id string) {
		t.Helper()
		d := await(t, c, id, func(d wire.RunDetail) bool { return d.Steps[0].Status == status.StepWaiting })
		if d.Steps[0].CallbackToken == nil {
			t.Errorf("the waiting approval has no callback token for an operator")
		}
		code, out, errOut := sf("run-status", id)
		if code != exitRunning || !strings.Contains(out, "a: waiting for approval (stepflow approve|reject "+id+" a)\n") {
			t.Fatalf("run-status of a waiting approval: exit %d\n%s%s", code, out, errOut)
		}
		if strings.Contains(out, *d.Steps[0].CallbackToken) {
			t.Errorf("run-status shows the callback token, a credential:\n%s", out)
		}
	}

	t.Run("input", func(t *testing.T) {
		t.Parallel()
		id := start(t, "run", "../../examples/diamond-workflow.json", "--input", `{ "customer": "ada", "items": [1, 2] }`)
		code, out, errOut := sf("run-status", id)
		if (code != exitCompleted && code != exitRunning) || !strings.Contains(out, "diamond-workflow: ") ||
			!strings.Contains(out, "\ninput {\"customer\":\"ada\",\"items\":[1,2]}\n#") {
			t.Fatalf("run-status of a run with input: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("cancel, retry with a new input, reject", func(t *testing.T) {
		t.Parallel()
		id := start(t, "run", ap, "--input", `{"n":1}`)
		awaitWaiting(t, id)
		code, out, errOut := sf("cancel", id)
		if code != 0 || !strings.Contains(out, "of ap: cancelled") || !regexp.MustCompile(`(?m)^0\s+a\s+cancelled\s`).MatchString(out) {
			t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
		}
		if code, _, errOut := sf("cancel", id); code != exitError || !strings.Contains(errOut, "stepflow cancel: run is cancelled; only pending or running runs can be cancelled (HTTP 409)") {
			t.Fatalf("cancel of a cancelled run: exit %d %s", code, errOut)
		}

		in := filepath.Join(dir, "input.json")
		if err := os.WriteFile(in, []byte("{\n  \"n\": 2\n}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = sf("retry", id, "--input", "@"+in)
		if code != 0 || !strings.Contains(out, "\ninput {\"n\":2} (from retry 1)\n") {
			t.Fatalf("retry --input: exit %d\n%s%s", code, out, errOut)
		}
		d, err := c.Run(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Inputs) != 2 || d.Inputs[0].Generation != 0 || string(d.Inputs[0].Input) != `{"n":1}` ||
			d.Inputs[1].Generation != 1 || string(d.Inputs[1].Input) != `{"n":2}` || string(d.Input) != `{"n":2}` {
			t.Fatalf("after retry --input: input %s, inputs %+v", d.Input, d.Inputs)
		}
		if code, _, errOut := sf("retry", id); code != exitError || !strings.Contains(errOut, "only failed or cancelled runs can be retried (HTTP 409)") {
			t.Fatalf("retry of a live run: exit %d %s", code, errOut)
		}

		awaitWaiting(t, id)
		code, out, errOut = sf("reject", id, "a", "--error", "out of stock")
		if code != 0 || !strings.Contains(out, "of ap: failed") || !regexp.MustCompile(`(?m)^0\s+a\s+failed\s.*\sapproval refused: out of stock`).MatchString(out) {
			t.Fatalf("reject: exit %d\n%s%s", code, out, errOut)
		}
		code, out, _ = sf("run-status", id)
		if code != exitFailed || !strings.Contains(out, "out of stock") || !regexp.MustCompile(`(?m)^1\s+b\s+skipped\s`).MatchString(out) {
			t.Fatalf("run-status after reject: exit %d\n%s", code, out)
		}
		if code, _, errOut := sf("approve", id, "a"); code != exitError || !strings.Contains(errOut, "a decision needs a running run (HTTP 409)") {
			t.Fatalf("approve in a failed run: exit %d %s", code, errOut)
		}
	})

	t.Run("approve", func(t *testing.T) {
		t.Parallel()
		id := start(t, "run", ap)
		awaitWaiting(t, id)
		if code, _, errOut := sf("approve", id, "b"); code != exitError || !strings.Contains(errOut, "stepflow approve: step b is a task step; only approval steps take a decision (HTTP 409)") {
			t.Fatalf("approve of a task step: exit %d %s", code, errOut)
		}
		if code, _, errOut := sf("reject", id, "z", "--error", "no"); code != exitError || !strings.Contains(errOut, `has no step "z" (HTTP 404)`) {
			t.Fatalf("reject of an unknown step: exit %d %s", code, errOut)
		}
		if code, _, errOut := sf("approve", "run_01KAAAAAAAAAAAAAAAAAAAAAAA", "a"); code != exitError || !strings.Contains(errOut, "no run run_01KAAAAAAAAAAAAAAAAAAAAAAA") {
			t.Fatalf("approve in an unknown run: exit %d %s", code, errOut)
		}
		code, out, errOut := sf("approve", "--output", `{"approved_by": "ada"}`, id, "a")
		if code != 0 || !strings.Contains(out, "\na: output {\"approved_by\":\"ada\"}\n") {
			t.Fatalf("approve --output: exit %d\n%s%s", code, out, errOut)
		}
		d := await(t, c, id, func(d wire.RunDetail) bool { return d.Status.Terminal() })
		if d.Status != status.RunCompleted || string(d.Steps[0].Output) != `{"approved_by":"ada"}` {
			t.Fatalf("after approve: run %s, a's output %s", d.Status, d.Steps[0].Output)
		}
		code, out, _ = sf("run-status", id)
		if code != exitCompleted || !regexp.MustCompile(`(?m)^0\s+a\s+completed\s`).MatchString(out) || !strings.HasSuffix(out, "\na: output {\"approved_by\":\"ada\"}\n") {
			t.Fatalf("run-status after approve: exit %d\n%s", code, out)
		}
		if code, _, errOut := sf("approve", id, "a"); code != exitError || !strings.Contains(errOut, "run is completed; a decision needs a running run (HTTP 409)") {
			t.Fatalf("approve in a completed run: exit %d %s", code, errOut)
		}
	})

	t.Run("approve a step that is not waiting", func(t *testing.T) {
		t.Parallel()
		twice := filepath.Join(dir, "twice.json")
		if err := os.WriteFile(twice, []byte(`{"name":"twice","steps":[{"id":"a","type":"approval"},{"id":"c","type":"approval","depends_on":["a"]}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		id := start(t, "run", twice)
		awaitWaiting(t, id)
		if code, _, errOut := sf("approve", id, "c"); code != exitError || !strings.Contains(errOut, "stepflow approve: step c is pending, not waiting for a decision (HTTP 409)") {
			t.Fatalf("approve of a pending approval: exit %d %s", code, errOut)
		}
		if code, _, errOut := sf("reject", id, "c", "--error", "no"); code != exitError || !strings.Contains(errOut, "stepflow reject: step c is pending, not waiting for a decision (HTTP 409)") {
			t.Fatalf("reject of a pending approval: exit %d %s", code, errOut)
		}
		if code, out, errOut := sf("cancel", id); code != 0 || !strings.Contains(out, "of twice: cancelled") {
			t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
		}
	})
}

// await polls run id until done holds, for at most 30 seconds.
func await(t *testing.T, c *client.Client, id string, done func(wire.RunDetail) bool) wire.RunDetail {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.Run(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(d) {
			return d
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(d, "", "  ")
			t.Fatalf("run %s did not get there in 30s:\n%s", id, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunControlUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		says string // what stderr must name
	}{
		{[]string{"run", "x.json", "--input", "nope"}, "stepflow run: --input is not JSON: invalid character 'o' in literal null"},
		{[]string{"run", "x.json", "--input", ""}, "--input is empty"},
		{[]string{"run", "x.json", "--input", "@does-not-exist.json"}, "--input @does-not-exist.json: open does-not-exist.json"},
		{[]string{"cancel"}, "stepflow cancel: want RUN, got 0 argument(s)"},
		{[]string{"cancel", "run_a", "run_b"}, "want RUN, got 2"},
		{[]string{"retry", "run_a", "--input", `{"a":`}, "stepflow retry: --input is not JSON: unexpected EOF"},
		{[]string{"retry", "--bogus", "run_a"}, "flag provided but not defined: -bogus"},
		{[]string{"approve", "run_a"}, "stepflow approve: want RUN STEP, got 1"},
		{[]string{"approve", "run_a", "a", "--output", `{"a":1,"a":2}`}, `--output is not JSON: duplicate object member name "a"`},
		{[]string{"approve", "run_a", "a", "--output", `"ok" x`}, "--output is not JSON: invalid character 'x' after top-level value"},
		{[]string{"reject", "run_a", "a"}, "stepflow reject: --error is required"},
		{[]string{"reject", "run_a", "a", "--error", " "}, "--error is required"},
		{[]string{"reject", "run_a", "--error", "no"}, "want RUN STEP, got 1"},
	}
	for _, tt := range tests {
		// The API is unreachable: usage errors must be caught before any call.
		code, out, errOut := cli(t, append(tt.args, "--api", "http://127.0.0.1:1")...)
		if code != exitUsage || !strings.Contains(errOut, tt.says) || out != "" {
			t.Errorf("%q: exit %d, want %d, saying %q; stderr:\n%s", tt.args, code, exitUsage, tt.says, errOut)
		}
	}
	if code, _, errOut := cli(t, "cancel", "run_a", "--api", "http://127.0.0.1:1"); code != exitError || !strings.Contains(errOut, "stepflow cancel: cannot reach") {
		t.Errorf("unreachable API: exit %d %s", code, errOut)
	}
}

// TestJSONFlag: what --input and --output take: inline JSON, @FILE, @-.
func TestJSONFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pretty := file("pretty.json", "{\n  \"a\": [1, 2],\n  \"b\": \"<x>\"\n}\n")
	empty := file("empty.json", "\n")
	big := file("big.json", `"`+strings.Repeat("x", 64<<10)+`"`)
	tests := []struct {
		name, text, stdin string
		want              string // the JSON, or what the error says
		fails             bool
	}{
		{"inline", ` {"a": 1} `, "", `{"a":1}`, false},
		{"a string", `"text"`, "", `"text"`, false},
		{"null", `null`, "", `null`, false},
		{"a file", "@" + pretty, "", `{"a":[1,2],"b":"<x>"}`, false},
		{"standard input", "@-", " [true] ", `[true]`, false},
		{"an empty file", "@" + empty, "", "--input @" + empty + " is empty", true},
		{"a missing file", "@" + dir + "/none.json", "", "no such file", true},
		{"a file named without @", pretty, "", "(to read the file " + pretty + ", write --input @" + pretty + ")", true},
		{"too large", "@" + big, "", "--input @" + big + " is 65538 bytes (without spaces); the API takes at most 65536 (64 KiB)", true},
		{"invalid UTF-8", "\"\xff\"", "", "--input is not JSON: invalid UTF-8", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := jsonFlag{}
			_ = f.Set(tt.text)
			got, err := f.value("--input", strings.NewReader(tt.stdin))
			switch {
			case tt.fails && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("%q: got %s, %v; want an error saying %q", tt.text, got, err, tt.want)
			case !tt.fails && (err != nil || string(got) != tt.want):
				t.Errorf("%q: got %s, %v; want %s", tt.text, got, err, tt.want)
			}
		})
	}
	if got, err := (&jsonFlag{}).value("--input", nil); got != nil || err != nil {
		t.Errorf("a flag not given: %s, %v", got, err)
	}
}
