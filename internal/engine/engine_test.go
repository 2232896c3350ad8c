package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/meter"
	"stepflow/internal/poller"
	"stepflow/internal/queue"
	"stepflow/internal/redrive"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// countingTask counts executions per run and step (and when each
// started), sleeps a scaled duration, and fails as the test's fail
// function says.
type countingTask struct {
	mu     sync.Mutex
	count  map[string]int
	starts map[string][]time.Time
	gens   map[string][]int // the generation of each execution
	scale  float64
	fail   func(in engine.TaskInput) error
}

func (c *countingTask) Run(ctx context.Context, in engine.TaskInput) error {
	c.mu.Lock()
	c.count[in.RunID+"/"+in.StepID]++
	c.starts[in.RunID+"/"+in.StepID] = append(c.starts[in.RunID+"/"+in.StepID], time.Now())
	if c.gens == nil {
		c.gens = map[string][]int{}
	}
	c.gens[in.RunID+"/"+in.StepID] = append(c.gens[in.RunID+"/"+in.StepID], in.Generation)
	c.mu.Unlock()
	sim := engine.Simulated{Rand: func() float64 { return 0.999 }}
	in.Config.DurationSeconds *= c.scale
	if err := sim.Run(ctx, in); err != nil {
		return err
	}
	if c.fail != nil {
		return c.fail(in)
	}
	return nil
}

// generations returns the generation of each execution of a step.
func (c *countingTask) generations(runID, stepID string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.gens[runID+"/"+stepID]...)
}

func (c *countingTask) executions(runID, stepID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[runID+"/"+stepID]
}

// recordingQueue records what the engine sends and sends each message
// copies times to the real queue.
type recordingQueue struct {
	inner  engine.Queue
	copies int
	mu     sync.Mutex
	sent   []queue.Message
}

func (q *recordingQueue) Send(ctx context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	q.sent = append(q.sent, msgs...)
	q.mu.Unlock()
	for range q.copies {
		if err := q.inner.Send(ctx, msgs); err != nil {
			return err
		}
	}
	return nil
}

type options struct {
	copies  int // deliveries of every message (default 1)
	runners int // independent pollers on the queue (default 1)
	scale   float64
	fail    func(in engine.TaskInput) error
	retry   *retry.Policy
	// visibility is the queue's visibility timeout, leaseMargin the
	// engine's (both default 5s).
	visibility, leaseMargin time.Duration
	crash                   func(engine.CrashPoint, queue.Message) bool
	// sweepEvery runs a sweeper that often (none if 0) with sweepGrace.
	sweepEvery, sweepGrace time.Duration
	maxReceive             int // dead-letter after this many receives (none if 0)
	// meter, if set, meters the engine's DynamoDB requests (not the API's).
	meter **meter.Meter
	// inlineBudget is the engine's (default: its own default).
	inlineBudget time.Duration
	// waitClock gives the engine a clock that moves only when the engine
	// waits for it (its commit window), so that what an invocation
	// commits together does not depend on how fast the machine is.
	waitClock bool
}

// waitClock is a clock that stands still until an engine waits for a time
// (engine.Config.After): then it jumps there.
type waitClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *waitClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *waitClock) After(t time.Time) <-chan time.Time {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- t
	return ch
}

type bundle struct {
	t       *testing.T
	url     string
	store   *store.Store
	task    *countingTask
	queue   *recordingQueue
	queues  queue.Queues
	mu      sync.Mutex
	commits map[string]time.Time
}

// committedAt returns when the engine reported the step's commit. The hook
// runs just after the commit is visible, so give it a moment.
func (b *bundle) committedAt(runID string, index int) (time.Time, bool) {
	for range 100 {
		b.mu.Lock()
		t, ok := b.commits[fmt.Sprintf("%s/%d", runID, index)]
		b.mu.Unlock()
		if ok {
			return t, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	if o.copies == 0 {
		o.copies = 1
	}
	if o.runners == 0 {
		o.runners = 1
	}
	if o.scale == 0 {
		o.scale = 0.1
	}
	if o.visibility == 0 {
		o.visibility = 5 * time.Second
	}
	if o.leaseMargin == 0 {
		o.leaseMargin = 5 * time.Second
	}
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	if o.retry != nil {
		policy = *o.retry
	}
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	st := store.New(db, table)
	engineStore := st
	if o.meter != nil {
		schema, err := meter.Describe(context.Background(), db, table)
		if err != nil {
			t.Fatal(err)
		}
		*o.meter = meter.New(schema, db)
		cfg := testenv.Config(t)
		(*o.meter).Attach(&cfg)
		engineStore = store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table)
	}
	sq := testenv.SQS(t)
	qs := testenv.Queue(t, sq, queue.Settings{VisibilityTimeout: o.visibility, MaxReceiveCount: o.maxReceive})
	work := &queue.SQS{Client: sq, URL: qs.URL}
	b := &bundle{t: t, store: st, queues: qs, commits: map[string]time.Time{},
		task:  &countingTask{count: map[string]int{}, starts: map[string][]time.Time{}, scale: o.scale, fail: o.fail},
		queue: &recordingQueue{inner: work, copies: o.copies},
	}
	var now func() time.Time
	var after func(time.Time) <-chan time.Time
	if o.waitClock {
		c := &waitClock{t: time.Now()}
		now, after = c.Now, c.After
	}
	eng, err := engine.New(engine.Config{
		Store: engineStore, Queue: b.queue, Task: b.task, Retry: policy, LeaseMargin: o.leaseMargin,
		InlineBudget: o.inlineBudget, Now: now, After: after, Visibility: work, QueueVisibility: o.visibility, Crash: o.crash,
		OnCommit: func(runID string, index int, _, _ time.Time) {
			b.mu.Lock()
			b.commits[fmt.Sprintf("%s/%d", runID, index)] = time.Now()
			b.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st, Starter: eng,
		Redriver: redrive.Queues{Client: sq, DLQURL: qs.DLQURL, QueueURL: qs.URL}}))
	b.url = srv.URL
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range o.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			poller.Run(ctx, poller.Config{Client: sq, QueueURL: qs.URL, Handler: eng.HandleSQS, Concurrency: 2})
		}()
	}
	if o.sweepEvery > 0 {
		sw := &sweeper.Sweeper{Store: st, Queue: work, Grace: o.sweepGrace}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(o.sweepEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					_, _ = sw.Sweep(ctx)
				}
			}
		}()
	}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
	})
	return b
}

func (b *bundle) post(path, body string, v any) {
	b.t.Helper()
	res, err := http.Post(b.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b.t.Fatalf("POST %s: status %d", path, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		b.t.Fatal(err)
	}
}

// startRun creates the workflow and starts a run, with a new order of the
// given amount unless amount is "".
func (b *bundle) startRun(def, amount string) (runID, orderID string) {
	b.t.Helper()
	var wf, run, order struct {
		ID string `json:"id"`
	}
	b.post("/workflows", def, &wf)
	body := ""
	if amount != "" {
		b.post("/orders", `{"amount":`+amount+`}`, &order)
		body = `{"order_id":"` + order.ID + `"}`
	}
	b.post("/workflows/"+wf.ID+"/runs", body, &run)
	return run.ID, order.ID
}

// wait polls until the run is terminal.
func (b *bundle) wait(runID string, timeout time.Duration) wire.RunDetail {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := b.store.GetRun(context.Background(), runID)
		if err != nil {
			b.t.Fatal(err)
		}
		if d.Status.Terminal() {
			return d
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("run %s still %s after %v: %+v", runID, d.Status, timeout, d.Steps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func example(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func step(d wire.RunDetail, id string) wire.StepDetail {
	for _, s := range d.Steps {
		if s.StepID == id {
			return s
		}
	}
	panic("no step " + id)
}

// checkHistory asserts the order went pending -> shipped with exactly one
// history entry per transition, each naming the run and step.
func checkHistory(t *testing.T, o wire.Order, runID string) {
	t.Helper()
	if o.Status != status.OrderShipped {
		t.Fatalf("order %s is %s, want shipped", o.ID, o.Status)
	}
	var events []string
	for _, h := range o.History {
		events = append(events, h.Event)
		if h.Event != "created" && (h.RunID != runID || h.StepID == "") {
			t.Errorf("history entry %+v does not name run %s and a step", h, runID)
		}
	}
	want := "created validate_order charge_payment ship_order send_notification"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
}

func TestExamplesRunToCompletion(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})

	t.Run("order-processing", func(t *testing.T) {
		t.Parallel()
		runID, orderID := b.startRun(example(t, "order-processing.json"), "25.00")
		d := b.wait(runID, 30*time.Second)
		if d.Status != status.RunCompleted || d.StartedAt == nil || d.CompletedAt == nil {
			t.Fatalf("run = %+v", d.RunSummary)
		}
		o, err := b.store.GetOrder(context.Background(), orderID)
		if err != nil {
			t.Fatal(err)
		}
		checkHistory(t, o, runID)
	})

	t.Run("diamond", func(t *testing.T) {
		t.Parallel()
		runID, _ := b.startRun(example(t, "diamond-workflow.json"), "")
		d := b.wait(runID, 30*time.Second)
		if d.Status != status.RunCompleted {
			t.Fatalf("run %s", d.Status)
		}
		a, bb, c, dd := step(d, "A"), step(d, "B"), step(d, "C"), step(d, "D")
		for _, s := range []wire.StepDetail{a, bb, c, dd} {
			if s.Status != status.StepCompleted || len(s.Attempts) != 1 {
				t.Fatalf("step %s: %s with %d attempts", s.StepID, s.Status, len(s.Attempts))
			}
		}
		span := func(s wire.StepDetail) (time.Time, time.Time) { return s.Attempts[0].StartedAt, s.Attempts[0].EndedAt }
		aS, aE := span(a)
		bS, bE := span(bb)
		cS, cE := span(c)
		dS, _ := span(dd)
		if bS.Before(aE) || cS.Before(aE) {
			t.Errorf("B or C started before A ended: A ends %v, B starts %v, C starts %v", aE, bS, cS)
		}
		// B and C run in parallel: their attempts overlap in time.
		if !bS.Before(cE) || !cS.Before(bE) {
			t.Errorf("B [%v, %v] and C [%v, %v] do not overlap", bS, bE, cS, cE)
		}
		// D is the join: it starts only after both.
		if dS.Before(bE) || dS.Before(cE) {
			t.Errorf("D started at %v before B (%v) and C (%v) ended", dS, bE, cE)
		}
		_ = aS
	})

	t.Run("simple-pipeline", func(t *testing.T) {
		t.Parallel()
		runID, _ := b.startRun(example(t, "simple-pipeline.json"), "")
		d := b.wait(runID, 30*time.Second)
		if d.Status != status.RunCompleted {
			t.Fatalf("run %s", d.Status)
		}
		prev := time.Time{}
		for _, id := range []string{"fetch", "transform", "load"} {
			s := step(d, id)
			if s.Status != status.StepCompleted || s.Attempts[0].StartedAt.Before(prev) {
				t.Fatalf("%s: %s, started %v before the previous step ended %v", id, s.Status, s.Attempts[0].StartedAt, prev)
			}
			prev = *s.CompletedAt
		}
	})
}

const threeSteps = `{"name":"chain","steps":[
 {"id":"a","config":{"duration_seconds":0,"max_retries":%d}},
 {"id":"b","config":{"duration_seconds":0},"depends_on":["a"]},
 {"id":"c","config":{"duration_seconds":0},"depends_on":["b"]},
 {"id":"side","config":{"duration_seconds":0}}]}`

func TestRetriesThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, options{fail: func(in engine.TaskInput) error {
		if in.StepID == "a" && in.Attempt < 2 {
			return fmt.Errorf("flaky attempt %d", in.Attempt)
		}
		return nil
	}})
	runID, _ := b.startRun(fmt.Sprintf(threeSteps, 3), "")
	d := b.wait(runID, 30*time.Second)
	a := step(d, "a")
	if d.Status != status.RunCompleted || a.Status != status.StepCompleted || a.RetryCount != 2 || a.ErrorMessage != nil {
		t.Fatalf("run %s, step a = %+v", d.Status, a)
	}
	if n := b.task.executions(runID, "a"); n != 3 {
		t.Fatalf("a executed %d times, want 3", n)
	}
	if len(a.Attempts) != 3 || a.Attempts[0].Error != "flaky attempt 0" || a.Attempts[1].Error != "flaky attempt 1" || a.Attempts[2].Error != "" {
		t.Fatalf("attempts = %+v", a.Attempts)
	}
}

func TestPermanentFailureFailsTheRunAndSkipsDownstream(t *testing.T) {
	t.Parallel()
	b := setup(t, options{fail: func(in engine.TaskInput) error {
		if in.StepID == "a" {
			return fmt.Errorf("disk on fire")
		}
		return nil
	}})
	runID, _ := b.startRun(fmt.Sprintf(threeSteps, 1), "")
	d := b.wait(runID, 30*time.Second)
	a := step(d, "a")
	if d.Status != status.RunFailed || d.CompletedAt == nil {
		t.Fatalf("run = %+v", d.RunSummary)
	}
	if a.Status != status.StepFailed || a.RetryCount != 1 || a.ErrorMessage == nil || *a.ErrorMessage != "disk on fire" || len(a.Attempts) != 2 {
		t.Fatalf("step a = %+v", a)
	}
	for _, id := range []string{"b", "c"} {
		if s := step(d, id); s.Status != status.StepSkipped || b.task.executions(runID, id) != 0 {
			t.Errorf("%s: %s after %d executions, want skipped and never run", id, s.Status, b.task.executions(runID, id))
		}
	}
	if n := b.task.executions(runID, "a"); n != 2 {
		t.Fatalf("a executed %d times, want 1 + 1 retry", n)
	}
}

func TestOrderPreconditionFailureLeavesTheOrderUntouched(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	def := `{"name":"ship first","steps":[{"id":"ship","config":{"action":"ship_order","duration_seconds":0,"max_retries":2}}]}`
	runID, orderID := b.startRun(def, "10")
	d := b.wait(runID, 30*time.Second)
	s := step(d, "ship")
	if d.Status != status.RunFailed || s.Status != status.StepFailed || s.RetryCount != 2 {
		t.Fatalf("run %s, step %+v", d.Status, s)
	}
	if s.ErrorMessage == nil || !strings.Contains(*s.ErrorMessage, "ship_order needs an order in status charged, found pending") {
		t.Fatalf("error_message = %v", s.ErrorMessage)
	}
	o, err := b.store.GetOrder(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != status.OrderPending || len(o.History) != 1 {
		t.Fatalf("order changed: %+v", o)
	}
}

func TestRunWithoutOrderSkipsActions(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	runID, _ := b.startRun(example(t, "order-processing.json"), "")
	if d := b.wait(runID, 30*time.Second); d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
}

func TestRetryWaitsForTheBackoff(t *testing.T) {
	t.Parallel()
	policy := retry.Policy{Base: 4 * time.Second, Cap: time.Minute, Rand: func() float64 { return 0.5 }}
	b := setup(t, options{retry: &policy, fail: func(in engine.TaskInput) error {
		if in.Attempt == 0 {
			return fmt.Errorf("first try fails")
		}
		return nil
	}})
	runID, _ := b.startRun(`{"name":"r","steps":[{"id":"a","config":{"duration_seconds":0}}]}`, "")
	d := b.wait(runID, 30*time.Second)
	a := step(d, "a")
	if d.Status != status.RunCompleted || len(a.Attempts) != 2 {
		t.Fatalf("run %s, attempts %+v", d.Status, a.Attempts)
	}
	var retryMsg *queue.Message
	for _, m := range b.queue.sent {
		if m.RunID == runID && m.Attempt == 1 {
			retryMsg = &m
		}
	}
	if retryMsg == nil || retryMsg.Delay != 2*time.Second {
		t.Fatalf("retry message %+v, want a 2s delay (half of the 4s ceiling)", retryMsg)
	}
	if gap := a.Attempts[1].StartedAt.Sub(a.Attempts[0].EndedAt); gap < 2*time.Second {
		t.Fatalf("retry started %v after the failure, before its 2s backoff", gap)
	}
}

// TestDuplicatesAndCompetingRunners delivers every message three times to a
// queue that two independent runners consume. Every step must execute once
// and every order effect must happen once.
func TestDuplicatesAndCompetingRunners(t *testing.T) {
	t.Parallel()
	b := setup(t, options{copies: 3, runners: 2, scale: 0.001})
	type started struct{ run, order, kind string }
	var runs []started
	for i := range 8 {
		r, o := b.startRun(example(t, "order-processing.json"), fmt.Sprintf("%d.50", i+1))
		runs = append(runs, started{r, o, "order"})
		r, _ = b.startRun(example(t, "diamond-workflow.json"), "")
		runs = append(runs, started{r, "", "diamond"})
	}
	for _, r := range runs {
		d := b.wait(r.run, 60*time.Second)
		if d.Status != status.RunCompleted {
			t.Fatalf("%s run %s: %s", r.kind, r.run, d.Status)
		}
		for _, s := range d.Steps {
			if n := b.task.executions(r.run, s.StepID); n != 1 || len(s.Attempts) != 1 {
				t.Errorf("%s run %s step %s executed %d times (%d attempts recorded)", r.kind, r.run, s.StepID, n, len(s.Attempts))
			}
		}
		if r.order != "" {
			o, err := b.store.GetOrder(context.Background(), r.order)
			if err != nil {
				t.Fatal(err)
			}
			checkHistory(t, o, r.run)
		}
	}
}
