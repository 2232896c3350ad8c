package engine_test

// Attacks of issue 17 that the code withstood (see attack17_test.go),
// kept as regression tests: lost answers of every new conditional write,
// duplicate and racing decisions, old callback tokens, SSRF through a
// templated host, and commits of large outputs.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// keyedService is a local payment service that deduplicates by
// Idempotency-Key, as the issue asks services to: it counts effects (one
// per key) and requests.
type keyedService struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests int
	effects  map[string]int
	delay    time.Duration
	body     func(key string) string
}

func newKeyedService(t *testing.T) *keyedService {
	s := &keyedService{effects: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		s.requests++
		s.effects[key]++
		d, body := s.delay, s.body
		s.mu.Unlock()
		if d > 0 {
			time.Sleep(d)
		}
		if body != nil {
			_, _ = w.Write([]byte(body(key)))
			return
		}
		_, _ = w.Write([]byte(`{"key":"` + key + `"}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *keyedService) counts() (requests, keys int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, len(s.effects)
}

// TestAttack17HoldsLostAnswers: the answer of each new conditional write
// is lost after it landed (the SDK then retries by itself; on kumo the
// retried transaction runs again and fails its conditions, on DynamoDB
// Local its token makes it a no-op), and the write is recognised as the
// writer's own.
func TestAttack17HoldsLostAnswers(t *testing.T) {
	t.Parallel()
	t.Run("the commit that begins a wait (no record: slots read back)", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
		runID := r.start(`{"name":"lose-w","steps":[{"id":"w","type":"wait","config":{"seconds":60}},{"id":"x","config":{"duration_seconds":0},"depends_on":["w"]}]}`)
		r.lose.Lose("TransactWriteItems", 1, testenv.Containing(`W0:`))
		if err := r.handle(r.gated, r.q.take()[0]); err != nil {
			t.Fatalf("handle: %v", err)
		}
		if d := r.get(runID); d.Steps[0].Status != status.StepWaiting {
			t.Fatalf("w %s", d.Steps[0].Status)
		}
		if hop := r.takeStep(0); len(hop) != 1 {
			t.Fatalf("the wait's messages: %d, want 1 (lost %v)", len(hop), r.lose.Lost())
		}
	})
	t.Run("the commit that begins an approval, and the callback key's creation", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
		runID := r.start(`{"name":"lose-a","steps":[{"id":"a","type":"approval"}]}`)
		r.lose.Lose("PutItem", 1, testenv.Containing("KEY#callback"))
		r.lose.Lose("TransactWriteItems", 1, testenv.Containing(`W0:`))
		if err := r.handle(r.gated, r.q.take()[0]); err != nil {
			t.Fatalf("handle: %v", err)
		}
		if n := len(r.lose.Lost()); n != 2 {
			t.Fatalf("lost %v", r.lose.Lost())
		}
		a := stepOf(r.operatorView(runID), "a")
		if a.Status != status.StepWaiting || a.CallbackToken == nil {
			t.Fatalf("a %+v", a)
		}
		if code, out := r.post(r.api, "/callbacks/"+*a.CallbackToken, `{"output":1}`); code != http.StatusOK {
			t.Fatalf("callback: %d %s", code, out)
		}
	})
	for _, tc := range []struct{ name, path, body string }{
		{"a decision with an output (the output item is the record)", "complete", `{"output":{"ok":1}}`},
		{"a decision with no output (d<i> is the record)", "complete", `{}`},
		{"a refusal (the failed attempt's record)", "fail", `{"error":"no"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
			runID := r.start(`{"name":"lose-decision","steps":[{"id":"a","type":"approval"}]}`)
			r.drain()
			r.apiLose.Lose("TransactWriteItems", 1, nil)
			code, out := r.post(r.gatedAPI, "/runs/"+runID+"/steps/a/"+tc.path, tc.body)
			if code != http.StatusOK || len(r.apiLose.Lost()) != 1 {
				t.Fatalf("decision whose answer was lost: %d %s (lost %v)", code, out, r.apiLose.Lost())
			}
			if code, _ := r.post(r.api, "/runs/"+runID+"/steps/a/"+tc.path, tc.body); code != http.StatusConflict {
				t.Fatalf("a second decision: %d", code)
			}
		})
	}
	t.Run("the order's reservation", func(t *testing.T) {
		t.Parallel()
		svc := newKeyedService(t)
		r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
		orderID := r.validatedOrder()
		runID := r.startWith(`{"name":"lose-res","steps":[{"id":"c","type":"http","config":{"action":"charge_payment","url":"`+svc.srv.URL+`/p","max_retries":0}}]}`, `{"order_id":"`+orderID+`"}`)
		// Every try of the SDK is lost: the read-back decides.
		r.lose.Lose("UpdateItem", 3, testenv.Containing("res_run"))
		for _, m := range r.q.take() {
			_ = r.handle(r.gated, m)
		}
		r.drain()
		if d := r.get(runID); d.Status != status.RunCompleted {
			t.Fatalf("run %s: %q (lost %v)", d.Status, errText(d.Steps[0]), r.lose.Lost())
		}
		if req, keys := svc.counts(); req != 1 || keys != 1 {
			t.Fatalf("%d requests under %d keys", req, keys)
		}
	})
	t.Run("the output item as the commit record", func(t *testing.T) {
		t.Parallel()
		svc := newKeyedService(t)
		r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
		runID := r.start(`{"name":"lose-out","steps":[{"id":"c","type":"http","config":{"url":"` + svc.srv.URL + `/p"}},{"id":"d","config":{"duration_seconds":0},"depends_on":["c"]}]}`)
		r.lose.Lose("TransactWriteItems", 1, testenv.Containing("RUN#O"))
		for _, m := range r.q.take() {
			_ = r.handle(r.gated, m)
		}
		r.drain()
		d := r.get(runID)
		if d.Status != status.RunCompleted || len(r.lose.Lost()) != 1 || !strings.Contains(string(d.Steps[0].Output), "sf-") {
			t.Fatalf("run %s, output %s, lost %v", d.Status, d.Steps[0].Output, r.lose.Lost())
		}
		if req, _ := svc.counts(); req != 1 {
			t.Fatalf("%d requests", req)
		}
	})
	t.Run("the input put at creation, and the retry that puts a new one", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
			if in.StepID == "b" && in.Generation == 0 {
				return errors.New("b fails")
			}
			return nil
		}, nil)
		code, out := r.post(r.api, "/workflows", `{"name":"lose-input","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","config":{"duration_seconds":0,"max_retries":0},"depends_on":["a"]}]}`)
		if code/100 != 2 {
			t.Fatalf("%d %s", code, out)
		}
		var wf wire.Workflow
		_ = json.Unmarshal([]byte(out), &wf)
		r.apiLose.Lose("PutItem", 1, testenv.Containing("RUN#I"))
		code, out = r.post(r.gatedAPI, "/workflows/"+wf.ID+"/runs", `{"input":{"v":1}}`)
		if code != http.StatusAccepted {
			t.Fatalf("start with a lost input put: %d %s", code, out)
		}
		var d wire.RunDetail
		_ = json.Unmarshal([]byte(out), &d)
		r.drain()
		if got := r.get(d.ID); got.Status != status.RunFailed || string(got.Input) != `{"v":1}` {
			t.Fatalf("run %s, input %s", got.Status, got.Input)
		}
		r.apiLose.Lose("TransactWriteItems", 1, testenv.Containing("RUN#I"))
		if code, out := r.post(r.gatedAPI, "/runs/"+d.ID+"/retry", `{"input":{"v":2}}`); code != http.StatusAccepted {
			t.Fatalf("retry with a lost answer: %d %s", code, out)
		}
		r.drain()
		got := r.get(d.ID)
		if got.Status != status.RunCompleted || string(got.Input) != `{"v":2}` || len(got.Inputs) != 2 || len(r.apiLose.Lost()) != 2 {
			t.Fatalf("run %s, input %s, inputs %d, lost %v", got.Status, got.Input, len(got.Inputs), r.apiLose.Lost())
		}
	})
}

// TestAttack17HoldsTwoDecisionsAtOnce: a completion and a refusal of one
// approval race; exactly one lands, the run ends one way, and the token
// is used up.
func TestAttack17HoldsTwoDecisionsAtOnce(t *testing.T) {
	t.Parallel()
	for range 5 {
		r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
		runID := r.start(`{"name":"two-decisions","steps":[{"id":"a","type":"approval"}]}`)
		r.drain()
		token := *stepOf(r.operatorView(runID), "a").CallbackToken
		var wg sync.WaitGroup
		codes := make([]int, 4)
		for i, req := range []struct {
			h          http.Handler
			path, body string
		}{
			{r.api, "/runs/" + runID + "/steps/a/complete", `{"output":1}`},
			{r.gatedAPI, "/runs/" + runID + "/steps/a/fail", `{"error":"no"}`},
			{r.api, "/callbacks/" + token, `{"output":2}`},
			{r.gatedAPI, "/callbacks/" + token, `{"error":"no"}`},
		} {
			wg.Go(func() { codes[i], _ = r.post(req.h, req.path, req.body) })
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			if c == http.StatusOK {
				ok++
			}
		}
		d := r.get(runID)
		if ok != 1 || !d.Status.Terminal() {
			t.Fatalf("codes %v: %d decisions succeeded; run %s", codes, ok, d.Status)
		}
		if code, _ := r.post(r.api, "/callbacks/"+token, `{}`); code != http.StatusNotFound {
			t.Fatalf("a used token: %d", code)
		}
	}
}

// TestAttack17HoldsDecisionRacingTimeout: an API whose clock lags takes
// a decision on an approval whose timeout a runner has just found passed:
// exactly one of the two lands, and the token is used up.
func TestAttack17HoldsDecisionRacingTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("BatchGetItem"), anyRequest, 0, nil, nil)
	lagging := api.New(api.Config{Store: r.store, Starter: engine.Starter{Queue: r.q}, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	runID := r.start(`{"name":"decide-timeout","steps":[{"id":"a","type":"approval","config":{"timeout_seconds":0.2}},{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	for _, m := range r.q.take() {
		_ = r.handle(r.plain, m)
	}
	token := *stepOf(r.operatorView(runID), "a").CallbackToken
	hop := r.takeStep(0)
	time.Sleep(300 * time.Millisecond)
	// The runner reads a (timed out) and pauses; the decision lands.
	r.gate.arm()
	done := handleAsync(r.gated, hop[0])
	<-r.gate.paused
	code, out := r.post(lagging, "/callbacks/"+token, `{"output":"late"}`)
	close(r.gate.release)
	<-done
	r.drain()
	d := r.get(runID)
	t.Logf("decision %d %s; run %s, a %s, b %s", code, out, d.Status, d.Steps[0].Status, d.Steps[1].Status)
	want := status.RunFailed
	if code == http.StatusOK {
		want = status.RunCompleted
	}
	if d.Status != want {
		t.Fatalf("decision %d, run %s", code, d.Status)
	}
	if code, _ := r.post(lagging, "/callbacks/"+token, `{}`); code != http.StatusNotFound {
		t.Fatalf("the token after the decision: %d", code)
	}
}

// TestAttack17HoldsOldTokenAfterRetry: an approval waits, a sibling fails
// the run, the run is retried: the approval waits again with a new token,
// and the old one gets 404 (the wait it names belongs to generation 0).
func TestAttack17HoldsOldTokenAfterRetry(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "f" && in.Generation == 0 {
			return errors.New("f fails")
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"old-token","steps":[{"id":"a","type":"approval"},{"id":"f","config":{"duration_seconds":0.05,"max_retries":0}}]}`)
	// a begins its wait first; the token is read while the run is live.
	for _, m := range r.takeStep(0) {
		_ = r.handle(r.plain, m)
	}
	a0 := stepOf(r.operatorView(runID), "a")
	if a0.Status != status.StepWaiting || a0.CallbackToken == nil {
		t.Fatalf("a %+v", a0)
	}
	old := *a0.CallbackToken
	r.drain()
	if d := r.get(runID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	r.retry(runID)
	r.drain()
	a := stepOf(r.operatorView(runID), "a")
	if a.Status != status.StepWaiting || a.CallbackToken == nil || *a.CallbackToken == old {
		t.Fatalf("a after the retry: %+v", a)
	}
	if code, _ := r.post(r.api, "/callbacks/"+old, `{}`); code != http.StatusNotFound {
		t.Fatalf("generation 0's token: %d", code)
	}
	if code, out := r.post(r.api, "/callbacks/"+*a.CallbackToken, `{}`); code != http.StatusOK {
		t.Fatalf("generation 1's token: %d %s", code, out)
	}
}

// TestAttack17HoldsTemplatedHostUnderDeployedPolicy: a URL whose host is a
// template filled from the run's input cannot reach loopback under a
// deployed policy (allow "*"), whatever spelling of the address the input
// uses: the dialled address is checked.
func TestAttack17HoldsTemplatedHostUnderDeployedPolicy(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer svc.Close()
	port := svc.URL[strings.LastIndexByte(svc.URL, ':')+1:]
	r := newRig(t, anyRequest, anyRequest, 0, nil, func(c *engine.Config) { c.HTTP = httpstep.New(httpstep.Policy{Allow: []string{"*"}}) })
	code, out := r.post(r.api, "/workflows", `{"name":"ssrf-template","steps":[{"id":"x","type":"http","config":{"url":"http://{{input.host}}/x","max_retries":0,"timeout_seconds":2}}]}`)
	if code/100 != 2 {
		t.Fatalf("%d %s", code, out)
	}
	var wf wire.Workflow
	_ = json.Unmarshal([]byte(out), &wf)
	for _, host := range []string{
		"127.0.0.1:" + port, "127.1:" + port, "0177.0.0.1:" + port, "2130706433:" + port, "0x7f000001:" + port,
		"[::ffff:127.0.0.1]:" + port, "[::ffff:7f00:1]:" + port, "localhost:" + port, "localhost.:" + port,
		"LOCALHOST:" + port, "169.254.169.254", "[fd00:ec2::254]", "[::1]:" + port, "0.0.0.0:" + port,
		"user@127.0.0.1:" + port, "127.0.0.1:" + port + "#@example.com", "example.com@127.0.0.1:" + port,
	} {
		code, out := r.post(r.api, "/workflows/"+wf.ID+"/runs", `{"input":{"host":`+strings.TrimSpace(encodeJSON(t, host))+`}}`)
		if code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", host, code, out)
		}
		var d wire.RunDetail
		_ = json.Unmarshal([]byte(out), &d)
		r.drain()
		got := r.get(d.ID)
		if got.Status != status.RunFailed {
			t.Errorf("%s: run %s", host, got.Status)
		}
		t.Logf("%-40s %s", host, errText(got.Steps[0]))
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback service got %d requests", n)
	}
}

// TestAttack17HoldsLargeOutputsSplitByBytes: a root, then 40 http steps
// run inline after it (short timeouts: each is expected to end within the
// commit window, so their outcomes are committed together), each answering
// just under 64 KiB: 2.5 MiB of outputs, split into transactions by size
// and count; one dependent reads the first and the last.
func TestAttack17HoldsLargeOutputsSplitByBytes(t *testing.T) {
	t.Parallel()
	svc := newKeyedService(t)
	big := `{"pad":"` + strings.Repeat("x", 64<<10-64) + `","key":"`
	svc.body = func(key string) string { return big + key + `"}` }
	r := newRig(t, anyRequest, anyRequest, 0, nil, func(c *engine.Config) {
		httpTweak(c)
		c.Parallelism = 40
		c.InlineBudget = 5 * time.Second
		c.LeaseMargin = 20 * time.Second
	})
	var steps []string
	var deps []string
	for i := range 40 {
		id := "h" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		steps = append(steps, `{"id":"`+id+`","type":"http","config":{"url":"`+svc.srv.URL+`/`+id+`"}}`)
		deps = append(deps, `"`+id+`"`)
	}
	steps = append(steps, `{"id":"sink","type":"http","depends_on":[`+strings.Join(deps, ",")+`],"config":{"url":"`+svc.srv.URL+`/sink","body":{"first":"{{steps.haa.output.key}}","last":"{{steps.hbn.output.key}}"}}}`)
	// One root fans out to the 40 so that one runner claims them together.
	def := `{"name":"big-outputs","steps":[{"id":"root","config":{"duration_seconds":0}},` + strings.Replace(strings.Join(steps, ","), `"config":{"url"`, `"depends_on":["root"],"config":{"timeout_seconds":0.09,"url"`, 40) + `]}`
	runID := r.start(def)
	r.drain()
	d := r.get(runID)
	if d.Status != status.RunCompleted {
		t.Fatalf("run %s: %v", d.Status, d.StepStatuses)
	}
	for i, s := range d.Steps {
		if s.Type != "http" || s.StepID == "sink" {
			continue
		}
		// A detail carries at most 1 MiB of outputs; the rest are read
		// on their own.
		data, err := r.store.LoadData(context.Background(), runID, 0, false, []int{i})
		if err != nil || len(data.Outputs[i]) < 64<<10-64 || (s.Output == nil) != s.OutputOmitted {
			t.Fatalf("%s's output is %d bytes (%v), omitted %v", s.StepID, len(data.Outputs[i]), err, s.OutputOmitted)
		}
	}
	// Short timeouts on a loaded machine may time out and retry: one key
	// per step, whatever the requests.
	if req, keys := svc.counts(); keys != 41 {
		t.Fatalf("%d requests under %d keys, want 41 keys", req, keys)
	}
}

// TestAttack17HoldsCancelBetweenWaitCommitAndItsMessage: the runner commits
// the beginning of a wait and pauses before it sends the wait's message;
// the run is cancelled (200). The message it then sends finds the run
// ended and is dropped; a retry starts the wait again, which ends and runs
// its dependent once.
func TestAttack17HoldsCancelBetweenWaitCommitAndItsMessage(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("TransactWriteItems"), anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"cancel-wait","steps":[{"id":"w","type":"wait","config":{"seconds":0.2}},{"id":"x","config":{"duration_seconds":0},"depends_on":["w"]}]}`)
	r.gate.arm()
	done := handleAsync(r.gated, r.q.take()[0])
	<-r.gate.paused // the wait's commit landed
	r.cancel(runID)
	close(r.gate.release)
	if err := <-done; err != nil {
		t.Log(err)
	}
	time.Sleep(300 * time.Millisecond)
	r.drain()
	if d := r.get(runID); d.Status != status.RunCancelled || r.task.executions(runID, "x") != 0 {
		t.Fatalf("run %s, x ran %d times", d.Status, r.task.executions(runID, "x"))
	}
	r.retry(runID)
	r.settle(10)
	if d := r.get(runID); d.Status != status.RunCompleted || r.task.executions(runID, "x") != 1 {
		t.Fatalf("after the retry: run %s, x ran %d times", d.Status, r.task.executions(runID, "x"))
	}
}

// TestAttack17HoldsReservationLapseMovesOrderOnce: run A reserves the order
// for its charge and then stalls (here: after reading the run's input)
// until its reservation has lapsed; run B reserves, charges and moves the
// order. A's request, made afterwards with the order's key, is a replay
// for a deduplicating service, and A's commit is refused by the order's
// status: one effect, one move, one history entry.
func TestAttack17HoldsReservationLapseMovesOrderOnce(t *testing.T) {
	t.Parallel()
	svc := newKeyedService(t)
	r := newRig(t, isOp("Query"), anyRequest, 0, nil, func(c *engine.Config) {
		httpTweak(c)
		c.LeaseMargin, c.InlineBudget = 2*time.Second, time.Second
	})
	orderID := r.validatedOrder()
	def := `{"name":"charge","steps":[{"id":"charge","type":"http","config":{"action":"charge_payment","url":"` + svc.srv.URL + `/p","body":{"amount":"{{input.amount}}"},"timeout_seconds":0.5,"max_retries":0}}]}`
	a := r.startWith(def, `{"order_id":"`+orderID+`","input":{"amount":10}}`)
	r.gate.arm()
	done := handleAsync(r.gated, r.q.take()[0])
	<-r.gate.paused // A reserved the order and read its input
	time.Sleep(2700 * time.Millisecond)
	b := r.startWith(def, `{"order_id":"`+orderID+`","input":{"amount":10}}`)
	r.drain()
	if d := r.get(b); d.Status != status.RunCompleted {
		t.Fatalf("run B %s: %q", d.Status, errText(d.Steps[0]))
	}
	close(r.gate.release)
	<-done
	r.drain()
	da := r.get(a)
	ord, err := r.store.GetOrder(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	charges := 0
	for _, h := range ord.History {
		if h.Event == "charge_payment" {
			charges++
		}
	}
	req, keys := svc.counts()
	t.Logf("run A %s (%q); order %s; %d requests under %d keys", da.Status, errText(da.Steps[0]), ord.Status, req, keys)
	if ord.Status != status.OrderCharged || charges != 1 || keys != 1 {
		t.Fatalf("order %s with %d charges, %d keys", ord.Status, charges, keys)
	}
}

// TestAttack17HoldsTaskParentHasNoOutput: a task step stores no output
// item (its commit record is d<i>), so a dependent's template reading the
// task's whole output gets null, and one reading a field of it fails the
// step at once with a message naming the template (not a retry, not a
// crash of the runner).
func TestAttack17HoldsTaskParentHasNoOutput(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b := new(strings.Builder)
		_, _ = io.Copy(b, req.Body)
		mu.Lock()
		bodies = append(bodies, b.String())
		mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	}))
	defer svc.Close()
	r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
	whole := r.start(`{"name":"task-out","steps":[{"id":"t","config":{"duration_seconds":0}},{"id":"h","type":"http","depends_on":["t"],"config":{"url":"` + svc.URL + `/h","body":{"all":"{{steps.t.output}}"}}}]}`)
	field := r.start(`{"name":"task-field","steps":[{"id":"t","config":{"duration_seconds":0}},{"id":"h","type":"http","depends_on":["t"],"config":{"url":"` + svc.URL + `/h","body":{"x":"{{steps.t.output.x}}"},"max_retries":3}}]}`)
	r.drain()
	mu.Lock()
	got := strings.Join(bodies, " ")
	mu.Unlock()
	if d := r.get(whole); d.Status != status.RunCompleted || got != `{"all":null}` {
		t.Fatalf("whole output: run %s, the service got %s", d.Status, got)
	}
	d := r.get(field)
	if d.Status != status.RunFailed || d.Steps[1].RetryCount != 0 || !strings.Contains(errText(d.Steps[1]), "{{steps.t.output.x}}") {
		t.Fatalf("a field of no output: run %s, h %+v", d.Status, d.Steps[1])
	}
	t.Logf("%s", errText(d.Steps[1]))
}
