package engine_test

// Tests of the steps that do real work (http, wait, approval) and of the
// data that flows between steps: a real store on the emulator, the real
// API, a real engine and real local HTTP services; messages are delivered
// by the test (flow), honouring their delays.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/id"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/secrets"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// service is a real local HTTP service whose answers a test scripts.
type service struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	got []received
	// answer says how to answer the n-th request (from 0).
	answer func(n int, r received) answer
}

type received struct {
	path, key, auth string
	body            map[string]any
}

type answer struct {
	status int
	body   string
	header map[string]string
	delay  time.Duration
}

func newService(t *testing.T, a func(n int, r received) answer) *service {
	s := &service{t: t, answer: a}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := received{path: r.URL.Path, key: r.Header.Get("Idempotency-Key"), auth: r.Header.Get("Authorization")}
		_ = json.Unmarshal(raw, &rec.body)
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, rec)
		s.mu.Unlock()
		ans := answer{status: 200, body: `{"ok":true}`}
		if s.answer != nil {
			ans = s.answer(n, rec)
		}
		if ans.delay > 0 {
			select {
			case <-time.After(ans.delay):
			case <-r.Context().Done():
				return
			}
		}
		for k, v := range ans.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(ans.status)
		_, _ = io.WriteString(w, ans.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// flow is a store, an engine and the API, with the test delivering the
// messages the engine and the API send.
type flow struct {
	t     *testing.T
	store *store.Store
	q     *sentQueue
	eng   *engine.Engine
	api   http.Handler
	logs  *syncBuffer
	// held are messages sent with a delay, with when they are due.
	held []heldMsg
}

type heldMsg struct {
	m   queue.Message
	due time.Time
}

func newFlow(t *testing.T, tweak func(*engine.Config)) *flow {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &flow{t: t, store: testenv.Store(t), q: &sentQueue{}, logs: logs}
	cfg := engine.Config{
		Store: f.store, Queue: f.q, Task: engine.Simulated{Rand: func() float64 { return 0.99 }},
		HTTP: httpstep.New(httpstep.LocalPolicy()), Secrets: secrets.Env{Lookup: func(string) (string, bool) { return "", false }},
		Retry:  retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }},
		Logger: log, LeaseMargin: 2 * time.Second, InlineBudget: time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.eng = e
	f.api = api.New(api.Config{Store: f.store, Starter: engine.Starter{Queue: f.q}, Logger: log})
	return f
}

// post sends a JSON request to the API and returns its status and body.
func (f *flow) post(path, body string) (int, []byte) {
	f.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	f.api.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// start creates workflow def and starts a run of it with body.
func (f *flow) start(def, body string) string {
	f.t.Helper()
	code, out := f.post("/workflows", def)
	if code/100 != 2 {
		f.t.Fatalf("create workflow: %d %s", code, out)
	}
	var wf wire.Workflow
	_ = json.Unmarshal(out, &wf)
	code, out = f.post("/workflows/"+wf.ID+"/runs", body)
	if code != http.StatusAccepted {
		f.t.Fatalf("start run: %d %s", code, out)
	}
	var d wire.RunDetail
	_ = json.Unmarshal(out, &d)
	return d.ID
}

// view is the run as GET /runs/{id} shows it, and its JSON text.
func (f *flow) view(runID string) (wire.RunDetail, string) {
	f.t.Helper()
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runs/"+runID, nil))
	var d wire.RunDetail
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		f.t.Fatalf("GET /runs/%s: %d %s", runID, rec.Code, rec.Body)
	}
	return d, rec.Body.String()
}

// settle delivers messages, each when it is due, until done reports true
// (checked after each delivery) or within seconds nothing is left to
// deliver. It fails the test if done never holds.
func (f *flow) settle(seconds float64, done func(wire.RunDetail) bool, runID string) wire.RunDetail {
	f.t.Helper()
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for {
		now := time.Now()
		for _, m := range f.q.take() {
			f.held = append(f.held, heldMsg{m: m, due: now.Add(m.Delay)})
		}
		d, _ := f.view(runID)
		if done(d) {
			return d
		}
		if now.After(deadline) {
			f.t.Fatalf("run %s did not settle: %s, steps %v", runID, d.Status, d.StepStatuses)
		}
		slices.SortFunc(f.held, func(a, b heldMsg) int { return a.due.Compare(b.due) })
		if len(f.held) == 0 || f.held[0].due.After(now) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		next := f.held[0]
		f.held = f.held[1:]
		err := f.eng.Handle(context.Background(), engine.Delivery{Message: next.m})
		switch {
		case errors.Is(err, engine.ErrBusy), errors.Is(err, engine.ErrCrashed):
			// It comes back, as SQS would bring it back.
			f.held = append(f.held, heldMsg{m: next.m, due: time.Now().Add(200 * time.Millisecond)})
		case err != nil:
			f.t.Logf("handle %s step %d: %v", next.m.RunID, next.m.StepIndex, err)
			f.held = append(f.held, heldMsg{m: next.m, due: time.Now().Add(200 * time.Millisecond)})
		}
	}
}

func ended(d wire.RunDetail) bool { return d.Status.Terminal() }

func stepNamed(d wire.RunDetail, id string) wire.StepDetail {
	for _, s := range d.Steps {
		if s.StepID == id {
			return s
		}
	}
	return wire.StepDetail{}
}

func waiting(step string) func(wire.RunDetail) bool {
	return func(d wire.RunDetail) bool {
		return stepNamed(d, step).Status == status.StepWaiting || d.Status.Terminal()
	}
}

func httpStep(id, url string, extra string) string {
	return fmt.Sprintf(`{"id":%q,"type":"http","config":{"url":%q%s}}`, id, url, extra)
}

func TestHTTPResponses(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("x", 70<<10) + `"`
	tests := []struct {
		name      string
		answers   []answer
		extra     string
		want      status.RunStatus
		requests  int
		output    string
		errorHas  []string
		minDelays time.Duration
	}{
		{name: "500 then 200 is one success under one key", answers: []answer{{status: 500, body: "down"}, {status: 200, body: `{"charge":"ch_1"}`}},
			want: status.RunCompleted, requests: 2, output: `{"charge":"ch_1"}`},
		{name: "400 fails at once, with no retry", answers: []answer{{status: 400, body: "card declined: insufficient funds"}},
			want: status.RunFailed, requests: 1, errorHas: []string{"400", "card declined"}},
		// A 1 s timeout: the instant second answer must beat it even on a
		// loaded machine under -race, or a third request is made.
		{name: "a timeout is retried", extra: `,"timeout_seconds":1`, answers: []answer{{status: 200, delay: 3 * time.Second}, {status: 200, body: `[1,2]`}},
			want: status.RunCompleted, requests: 2, output: `[1,2]`},
		{name: "Retry-After sets the least delay", answers: []answer{{status: 503, header: map[string]string{"Retry-After": "2"}}, {status: 200, body: `{}`}},
			want: status.RunCompleted, requests: 2, output: `{}`, minDelays: 2 * time.Second},
		{name: "a body that is not JSON is wrapped", answers: []answer{{status: 201, body: "created"}},
			want: status.RunCompleted, requests: 1, output: `{"status":201,"body":"created"}`},
		{name: "a response over 64 KiB fails the step", answers: []answer{{status: 200, body: big}},
			want: status.RunFailed, requests: 1, errorHas: []string{"64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := newService(t, func(n int, _ received) answer { return tt.answers[min(n, len(tt.answers)-1)] })
			f := newFlow(t, nil)
			runID := f.start(`{"name":"h","steps":[`+httpStep("pay", svc.srv.URL+"/pay", tt.extra+`,"max_retries":3`)+`]}`, "")
			began := time.Now()
			d := f.settle(20, ended, runID)
			if d.Status != tt.want {
				t.Fatalf("run %s, want %s: %+v", d.Status, tt.want, stepNamed(d, "pay"))
			}
			got := svc.requests()
			if len(got) != tt.requests {
				t.Fatalf("%d requests, want %d", len(got), tt.requests)
			}
			want := engine.IdempotencyKey(runID, "pay", "", "", 0)
			for _, r := range got {
				if r.key != want {
					t.Fatalf("Idempotency-Key %q, want %q on every request", r.key, want)
				}
			}
			step := stepNamed(d, "pay")
			if tt.output != "" && string(step.Output) != tt.output {
				t.Errorf("output %s, want %s", step.Output, tt.output)
			}
			for _, s := range tt.errorHas {
				if step.ErrorMessage == nil || !strings.Contains(*step.ErrorMessage, s) {
					t.Errorf("error %v does not mention %q", step.ErrorMessage, s)
				}
			}
			if tt.want == status.RunFailed && step.RetryCount != 0 {
				t.Errorf("a permanent failure was retried %d times", step.RetryCount)
			}
			if took := time.Since(began); took < tt.minDelays {
				t.Errorf("the run took %v; Retry-After asked for at least %v between attempts", took, tt.minDelays)
			}
		})
	}
}

// TestIdempotencyKeyAcrossEverything: retries, a crash after the call and
// before its commit, and a retry of the run all send the one key.
func TestIdempotencyKeyAcrossEverything(t *testing.T) {
	t.Parallel()
	// 400 (the run fails), then after the run's retry 500, then 200
	// twice: the first 200's commit is lost to a crash.
	svc := newService(t, func(n int, _ received) answer {
		switch n {
		case 0:
			return answer{status: 400, body: "not yet"}
		case 1:
			return answer{status: 500}
		}
		return answer{status: 200, body: `{"n":` + fmt.Sprint(n) + `}`}
	})
	var mu sync.Mutex
	crashes := 0
	f := newFlow(t, func(c *engine.Config) {
		c.Crash = func(p engine.CrashPoint, m queue.Message) bool {
			mu.Lock()
			defer mu.Unlock()
			if p == engine.AfterTask && len(svc.requests()) == 3 && crashes == 0 {
				crashes++
				return true
			}
			return false
		}
	})
	runID := f.start(`{"name":"k","steps":[`+httpStep("pay", svc.srv.URL+"/pay", `,"max_retries":3,"timeout_seconds":0.5`)+`]}`, "")
	if d := f.settle(10, ended, runID); d.Status != status.RunFailed {
		t.Fatalf("run %s, want failed by the 400", d.Status)
	}
	if code, out := f.post("/runs/"+runID+"/retry", ""); code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", code, out)
	}
	d := f.settle(20, ended, runID)
	if d.Status != status.RunCompleted || crashes != 1 {
		t.Fatalf("run %s after %d crashes", d.Status, crashes)
	}
	got := svc.requests()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4 (400, 500, 200 lost to a crash, 200)", len(got))
	}
	for _, r := range got {
		if r.key != got[0].key || r.key != engine.IdempotencyKey(runID, "pay", "", "", 0) {
			t.Fatalf("keys differ: %+v", got)
		}
	}
	if string(stepNamed(d, "pay").Output) != `{"n":3}` {
		t.Errorf("output %s, want the answer of the attempt that committed", stepNamed(d, "pay").Output)
	}
	// Another run of the same workflow, and another step, use other keys.
	if engine.IdempotencyKey("run_other", "pay", "", "", 0) == got[0].key || engine.IdempotencyKey(runID, "ship", "", "", 0) == got[0].key {
		t.Error("keys are not distinct between runs and steps")
	}
}

// TestTemplatesCarryData: outputs, the input and the run's id flow into
// later steps' requests, a string that is one template keeping its type.
func TestTemplatesCarryData(t *testing.T) {
	t.Parallel()
	svc := newService(t, func(_ int, r received) answer {
		if r.path == "/a" {
			return answer{status: 200, body: `{"id":42,"name":"x","nested":{"k":[1,2]}}`}
		}
		return answer{status: 200, body: `{}`}
	})
	f := newFlow(t, nil)
	def := `{"name":"t","steps":[` + httpStep("a", svc.srv.URL+"/a", "") + `,` +
		httpStep("b", svc.srv.URL+"/b/{{input.customer}}", `,"body":{"n":"{{steps.a.output.id}}","s":"id={{steps.a.output.id}}","k":"{{steps.a.output.nested.k}}","in":"{{input.customer}}","run":"{{run.id}}"}`)[:0] +
		`{"id":"b","type":"http","depends_on":["a"],"config":{"url":"` + svc.srv.URL + `/b/{{input.customer}}","body":{"n":"{{steps.a.output.id}}","s":"id={{steps.a.output.id}}","k":"{{steps.a.output.nested.k}}","in":"{{input.customer}}","run":"{{run.id}}"}}},` +
		`{"id":"c","type":"http","depends_on":["b"],"config":{"url":"` + svc.srv.URL + `/c","body":{"name":"{{steps.a.output.name}}"}}}]}`
	runID := f.start(def, `{"input":{"customer":"cu_7"}}`)
	d := f.settle(10, ended, runID)
	if d.Status != status.RunCompleted {
		t.Fatalf("run %s: %+v", d.Status, d.Steps)
	}
	var b, c received
	for _, r := range svc.requests() {
		switch {
		case strings.HasPrefix(r.path, "/b/"):
			b = r
		case r.path == "/c":
			c = r
		}
	}
	if b.path != "/b/cu_7" {
		t.Errorf("b called %q, want /b/cu_7", b.path)
	}
	want := map[string]any{"n": float64(42), "s": "id=42", "k": []any{float64(1), float64(2)}, "in": "cu_7", "run": runID}
	if fmt.Sprint(b.body) != fmt.Sprint(want) {
		t.Errorf("b's body %v, want %v", b.body, want)
	}
	if c.body["name"] != "x" {
		t.Errorf("c (through b) read a's output %v", c.body)
	}
	if string(d.Input) != `{"customer":"cu_7"}` || string(stepNamed(d, "a").Output) != `{"id":42,"name":"x","nested":{"k":[1,2]}}` {
		t.Errorf("detail input %s, a's output %s", d.Input, stepNamed(d, "a").Output)
	}

	// A path missing at run time fails the step at once, saying which.
	runID = f.start(`{"name":"m","steps":[`+httpStep("a", svc.srv.URL+"/a", "")+`,{"id":"m","type":"http","depends_on":["a"],"config":{"url":"`+svc.srv.URL+`/m","body":{"v":"{{steps.a.output.nope}}"},"max_retries":3}}]}`, "")
	d = f.settle(10, ended, runID)
	m := stepNamed(d, "m")
	if d.Status != status.RunFailed || m.ErrorMessage == nil || !strings.Contains(*m.ErrorMessage, "{{steps.a.output.nope}}") || m.RetryCount != 0 {
		t.Fatalf("run %s, step %+v", d.Status, m)
	}
	// (A path missing from the input is refused when the run starts:
	// see the API's TestStepInputsAreChecked.)
}

// TestSecretsAreRedacted: a secret reaches the service, and nowhere a run
// is shown or logged.
func TestSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-T0KEN-value"
	svc := newService(t, func(n int, r received) answer {
		if n == 0 {
			return answer{status: 500, body: "rejected " + r.auth}
		}
		return answer{status: 200, body: `{"echo":"` + r.auth + `"}`}
	})
	f := newFlow(t, func(c *engine.Config) {
		c.Secrets = secrets.Env{Lookup: func(name string) (string, bool) { return secret, name == "STEPFLOW_SECRET_PAY_TOKEN" }}
	})
	runID := f.start(`{"name":"s","steps":[{"id":"pay","type":"http","config":{"url":"`+svc.srv.URL+`/pay?t={{secrets.PAY_TOKEN}}","headers":{"Authorization":"Bearer {{secrets.PAY_TOKEN}}"},"body":{"token":"{{secrets.PAY_TOKEN}}"},"max_retries":2}}]}`, "")
	d := f.settle(10, ended, runID)
	if d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
	if got := svc.requests(); got[0].auth != "Bearer "+secret || got[0].body["token"] != secret {
		t.Fatalf("the service did not get the secret: %+v", got[0])
	}
	_, shown := f.view(runID)
	for where, text := range map[string]string{"the run detail": shown, "the logs": f.logs.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("%s hold the secret", where)
		}
	}
	step := stepNamed(d, "pay")
	if !strings.Contains(string(step.Output), "[redacted]") || len(step.Attempts) != 2 || !strings.Contains(step.Attempts[0].Error, "[redacted]") {
		t.Errorf("output %s, attempts %+v: want the secret replaced", step.Output, step.Attempts)
	}
}

// TestServerSideRequestForgeryIsRefused: a deployed stack's policy refuses
// loopback and the instance metadata address, with no request made.
func TestServerSideRequestForgeryIsRefused(t *testing.T) {
	t.Parallel()
	svc := newService(t, nil)
	f := newFlow(t, func(c *engine.Config) { c.HTTP = httpstep.New(httpstep.Policy{Allow: []string{"*"}}) })
	for _, url := range []string{svc.srv.URL + "/internal", "http://169.254.169.254/latest/meta-data/", "http://localhost:1/"} {
		runID := f.start(`{"name":"ssrf","steps":[`+httpStep("x", url, `,"max_retries":3`)+`]}`, "")
		d := f.settle(10, ended, runID)
		x := stepNamed(d, "x")
		if d.Status != status.RunFailed || x.RetryCount != 0 || x.ErrorMessage == nil || !strings.Contains(*x.ErrorMessage, "refused") {
			t.Errorf("%s: run %s, step %+v", url, d.Status, x)
		}
	}
	if n := len(svc.requests()); n != 0 {
		t.Errorf("the loopback service got %d requests", n)
	}
}

// TestWaitLongerThanAHop: a wait longer than one message's delay is a
// chain of messages, and its dependents run after it.
func TestWaitLongerThanAHop(t *testing.T) {
	t.Parallel()
	f := newFlow(t, func(c *engine.Config) { c.Hop = time.Second })
	runID := f.start(`{"name":"w","steps":[{"id":"w","type":"wait","config":{"seconds":2.5}},{"id":"after","depends_on":["w"],"config":{"duration_seconds":0.01}}]}`, "")
	d := f.settle(5, waiting("w"), runID)
	w := stepNamed(d, "w")
	if w.Status != status.StepWaiting || w.WaitUntil == nil || w.WaitUntil.Sub(*w.StartedAt) != 2500*time.Millisecond {
		t.Fatalf("wait step %+v", w)
	}
	sent := 0
	f.q.mu.Lock()
	for _, m := range f.q.msgs {
		if m.StepIndex == 0 && m.Delay > 0 {
			sent++
		}
	}
	f.q.mu.Unlock()
	d = f.settle(10, ended, runID)
	if d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
	after := stepNamed(d, "after")
	if after.StartedAt.Before(*w.WaitUntil) {
		t.Errorf("the dependent started at %v, before the wait ended at %v", after.StartedAt, w.WaitUntil)
	}
	// Three hops of at most a second each, their delays rounded up to
	// whole seconds (about 3 s), and a second of slack for handling on a
	// loaded machine; a wait that fell to the sweeper or to whole extra
	// hops would take longer.
	if took := stepNamed(d, "w").CompletedAt.Sub(*w.StartedAt); took < 2500*time.Millisecond || took > 4500*time.Millisecond {
		t.Errorf("the wait took %v", took)
	}
}

func TestApprovals(t *testing.T) {
	t.Parallel()
	def := func(timeout string) string {
		return `{"name":"ap","steps":[{"id":"a","type":"approval"` + timeout + `},{"id":"b","depends_on":["a"],"config":{"duration_seconds":0.01}}]}`
	}
	t.Run("completed by an operator with an output", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, nil)
		runID := f.start(def(""), "")
		d := f.settle(5, waiting("a"), runID)
		if a := stepNamed(d, "a"); a.Status != status.StepWaiting || a.WaitUntil != nil || a.CallbackToken == nil {
			t.Fatalf("approval %+v", a)
		}
		if code, out := f.post("/runs/"+runID+"/steps/b/complete", ""); code != http.StatusConflict {
			t.Fatalf("completing a step that is not an approval: %d %s", code, out)
		}
		if code, out := f.post("/runs/"+runID+"/steps/a/complete", `{"output":{"approved_by":"kim","limit":5}}`); code != http.StatusOK {
			t.Fatalf("complete: %d %s", code, out)
		}
		d = f.settle(5, ended, runID)
		if d.Status != status.RunCompleted || string(stepNamed(d, "a").Output) != `{"approved_by":"kim","limit":5}` {
			t.Fatalf("run %s, a %+v", d.Status, stepNamed(d, "a"))
		}
		if code, _ := f.post("/runs/"+runID+"/steps/a/complete", `{}`); code != http.StatusConflict {
			t.Errorf("a second decision: %d, want 409", code)
		}
	})
	t.Run("failed through its callback token, which then is used up", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, nil)
		runID := f.start(def(""), "")
		token := *stepNamed(f.settle(5, waiting("a"), runID), "a").CallbackToken
		code, unknown := f.post("/callbacks/"+strings.Repeat("A", len(token)), `{"output":1}`)
		if code != http.StatusNotFound {
			t.Fatalf("unknown token: %d", code)
		}
		if code, out := f.post("/callbacks/"+token, `{"error":"over budget"}`); code != http.StatusOK || !strings.Contains(string(out), `"failed"`) {
			t.Fatalf("callback: %d %s", code, out)
		}
		d := f.settle(5, ended, runID)
		a := stepNamed(d, "a")
		if d.Status != status.RunFailed || a.ErrorMessage == nil || *a.ErrorMessage != "approval refused: over budget" {
			t.Fatalf("run %s, a %+v", d.Status, a)
		}
		code, used := f.post("/callbacks/"+token, `{"output":1}`)
		if code != http.StatusNotFound || string(used) != string(unknown) {
			t.Errorf("a used token: %d %s; want the unknown token's 404 %s", code, used, unknown)
		}
	})
	t.Run("timed out", func(t *testing.T) {
		t.Parallel()
		f := newFlow(t, nil)
		runID := f.start(def(`,"config":{"timeout_seconds":1}`), "")
		d := f.settle(5, waiting("a"), runID)
		token := *stepNamed(d, "a").CallbackToken
		if a := stepNamed(d, "a"); a.WaitUntil == nil || a.WaitUntil.Sub(*a.StartedAt) != time.Second {
			t.Fatalf("approval %+v", a)
		}
		d = f.settle(10, ended, runID)
		a := stepNamed(d, "a")
		if d.Status != status.RunFailed || a.ErrorMessage == nil || !strings.Contains(*a.ErrorMessage, "timed out") {
			t.Fatalf("run %s, a %+v", d.Status, a)
		}
		if code, _ := f.post("/callbacks/"+token, `{}`); code != http.StatusNotFound {
			t.Errorf("an expired token: %d, want 404", code)
		}
	})
}

// TestRetryWithNewInput: a retry with an input runs the failed step with
// it; the detail shows which input each generation used.
func TestRetryWithNewInput(t *testing.T) {
	t.Parallel()
	svc := newService(t, func(_ int, r received) answer {
		if r.body["v"] == "bad" {
			return answer{status: 422, body: "v is bad"}
		}
		return answer{status: 200, body: `{"took":"` + fmt.Sprint(r.body["v"]) + `"}`}
	})
	f := newFlow(t, nil)
	runID := f.start(`{"name":"r","steps":[{"id":"first","config":{"duration_seconds":0.01}},{"id":"call","type":"http","depends_on":["first"],"config":{"url":"`+svc.srv.URL+`/x","body":{"v":"{{input.v}}"}}}]}`, `{"input":{"v":"bad"}}`)
	if d := f.settle(10, ended, runID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	if code, out := f.post("/runs/"+runID+"/retry", `{"input":{"v":"good"}}`); code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", code, out)
	}
	d := f.settle(10, ended, runID)
	if d.Status != status.RunCompleted || string(stepNamed(d, "call").Output) != `{"took":"good"}` {
		t.Fatalf("run %s, call %+v", d.Status, stepNamed(d, "call"))
	}
	if string(d.Input) != `{"v":"good"}` || len(d.Inputs) != 2 || d.Inputs[0].Generation != 0 || d.Inputs[1].Generation != 1 || string(d.Inputs[0].Input) != `{"v":"bad"}` {
		t.Errorf("input %s, inputs %+v", d.Input, d.Inputs)
	}
	if n := len(svc.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (one per generation)", n)
	}
}

// TestTwoRunsOnOneOrderChargeOnce: two runs charge one order at the same
// time; the payment service is called once, under the order's key, and
// the other run's charge fails naming the run that charged.
func TestTwoRunsOnOneOrderChargeOnce(t *testing.T) {
	t.Parallel()
	pay := newService(t, func(int, received) answer {
		return answer{status: 200, body: `{"payment_id":"pay_1"}`, delay: 300 * time.Millisecond}
	})
	f := newFlow(t, nil)
	code, out := f.post("/orders", `{"amount":10}`)
	if code != http.StatusCreated {
		t.Fatalf("create order: %d %s", code, out)
	}
	var o wire.Order
	_ = json.Unmarshal(out, &o)
	// Validate it first, with a run of its own.
	v := f.start(`{"name":"v","steps":[{"id":"v","config":{"action":"validate_order","duration_seconds":0.01}}]}`, `{"order_id":"`+o.ID+`"}`)
	if d := f.settle(5, ended, v); d.Status != status.RunCompleted {
		t.Fatalf("validate: %s", d.Status)
	}
	def := `{"name":"charge","steps":[{"id":"charge","type":"http","config":{"action":"charge_payment","url":"` + pay.srv.URL + `/payments","max_retries":1}}]}`
	r1 := f.start(def, `{"order_id":"`+o.ID+`"}`)
	r2 := f.start(def, `{"order_id":"`+o.ID+`"}`)
	// Both charge messages are handled at once.
	var wg sync.WaitGroup
	for _, m := range f.q.take() {
		wg.Go(func() { _ = f.eng.Handle(context.Background(), engine.Delivery{Message: m}) })
	}
	wg.Wait()
	d1, d2 := f.settle(10, ended, r1), f.settle(10, ended, r2)
	if n := len(pay.requests()); n != 1 {
		t.Fatalf("the payment service was called %d times", n)
	}
	if k := pay.requests()[0].key; k != engine.IdempotencyKey("", "", o.ID, "charge_payment", 0) {
		t.Errorf("key %q is not the order's", k)
	}
	won, lost := d1, d2
	if d1.Status != status.RunCompleted {
		won, lost = d2, d1
	}
	if won.Status != status.RunCompleted || lost.Status != status.RunFailed {
		t.Fatalf("runs %s and %s, want one completed and one failed", d1.Status, d2.Status)
	}
	c := stepNamed(lost, "charge")
	if c.ErrorMessage == nil || !strings.Contains(*c.ErrorMessage, won.ID) {
		t.Errorf("the losing run's error %v does not name %s", c.ErrorMessage, won.ID)
	}
	ord, err := f.store.GetOrder(context.Background(), o.ID)
	if err != nil || ord.Status != status.OrderCharged {
		t.Fatalf("order %s, %v", ord.Status, err)
	}
	charges := 0
	for _, h := range ord.History {
		if h.Event == "charge_payment" {
			charges++
		}
	}
	if charges != 1 {
		t.Errorf("%d charge entries in the order's history", charges)
	}
}

// TestCallbackTokensAreForOperators: the run detail shows an approval's
// callback token to operators only; the callback route takes no bearer
// token, and counts requests per address.
func TestCallbackTokensAreForOperators(t *testing.T) {
	t.Parallel()
	f := newFlow(t, nil)
	tokens := testenv.Tokens(t)
	ids := id.NewGenerator(nil, nil)
	cred := func(role auth.Role) string {
		tok, c, err := auth.New(ids, string(role), role, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := tokens.PutTokenIfAbsent(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		return c
	}
	operator, reader := cred(auth.Operator), cred(auth.Reader)
	guarded := api.New(api.Config{Store: f.store, Starter: engine.Starter{Queue: f.q}, Auth: auth.Authenticator{Tokens: tokens},
		Limiter: f.store, CallbacksPerMinute: 2, Logger: slog.New(slog.NewJSONHandler(f.logs, nil))})
	call := func(method, path, credential, body string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if credential != "" {
			req.Header.Set("Authorization", "Bearer "+credential)
		}
		guarded.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	runID := f.start(`{"name":"ap","steps":[{"id":"a","type":"approval"}]}`, "")
	f.settle(5, waiting("a"), runID)
	_, asReader := call(http.MethodGet, "/runs/"+runID, reader, "")
	_, asOperator := call(http.MethodGet, "/runs/"+runID, operator, "")
	if strings.Contains(asReader, "callback_token") || !strings.Contains(asOperator, "callback_token") {
		t.Fatalf("callback token shown to a reader: %v, to an operator: %v", strings.Contains(asReader, "callback_token"), strings.Contains(asOperator, "callback_token"))
	}
	var d wire.RunDetail
	_ = json.Unmarshal([]byte(asOperator), &d)
	token := *stepNamed(d, "a").CallbackToken
	if code, out := call(http.MethodPost, "/callbacks/"+strings.Repeat("x", len(token)), "", `{}`); code != http.StatusNotFound {
		t.Fatalf("a guess without a bearer token: %d %s", code, out)
	}
	if code, out := call(http.MethodPost, "/callbacks/"+token, "", `{"output":"ok"}`); code != http.StatusOK {
		t.Fatalf("the callback without a bearer token: %d %s", code, out)
	}
	if code, _ := call(http.MethodPost, "/callbacks/"+token, "", `{}`); code != http.StatusTooManyRequests {
		t.Fatalf("a third callback request in a minute from one address: %d, want 429", code)
	}
	if d := f.settle(5, ended, runID); d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
	if strings.Contains(f.logs.String(), token) {
		t.Error("a callback token was logged")
	}
}

// TestInlineStepReadsUncommittedOutput: a step started in the same
// invocation as its parent, before the parent's commit, reads the
// parent's output from the runner, not from storage (which has it only
// once committed).
func TestInlineStepReadsUncommittedOutput(t *testing.T) {
	t.Parallel()
	svc := newService(t, func(_ int, r received) answer {
		if r.path == "/a" {
			return answer{status: 200, body: `{"id":"a-1"}`}
		}
		return answer{status: 200, body: `{}`}
	})
	f := newFlow(t, nil)
	for range 5 {
		runID := f.start(`{"name":"inline","steps":[`+httpStep("a", svc.srv.URL+"/a", `,"timeout_seconds":0.2`)+`,`+
			`{"id":"b","type":"http","depends_on":["a"],"config":{"url":"`+svc.srv.URL+`/b","timeout_seconds":0.2,"body":{"from_a":"{{steps.a.output.id}}"}}}]}`, "")
		if d := f.settle(10, ended, runID); d.Status != status.RunCompleted {
			t.Fatalf("run %s: b %+v", d.Status, stepNamed(d, "b"))
		}
	}
	for _, r := range svc.requests() {
		if r.path == "/b" && r.body["from_a"] != "a-1" {
			t.Fatalf("b sent %v", r.body)
		}
	}
}
