package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// These tests replay, one by one, the failures the first design had when
// a write was decided on a read taken before a cancel or retry. Each pauses
// a runner between its read and its writes (a gate on its DynamoDB client)
// while the test acts through the API.

// gate, once armed, pauses its client after the next request that match
// accepts (by operation name), until released.
type gate struct {
	mu      sync.Mutex
	armed   bool
	match   func(op string) bool
	paused  chan struct{}
	release chan struct{}
}

func newGate(match func(op string) bool) *gate {
	return &gate{match: match, paused: make(chan struct{}), release: make(chan struct{})}
}

func anyRequest(string) bool { return true }

func writeRequest(op string) bool {
	return op == "UpdateItem" || op == "TransactWriteItems" || op == "PutItem"
}

func (g *gate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

func (g *gate) middleware(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("gate", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		g.mu.Lock()
		fire := g.armed && g.match(awsmiddleware.GetOperationName(ctx))
		if fire {
			g.armed = false
		}
		g.mu.Unlock()
		if fire {
			close(g.paused)
			<-g.release
		}
		return out, md, err
	}), middleware.After)
}

// sentQueue records what is sent, for the test to deliver by hand.
type sentQueue struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (q *sentQueue) Send(_ context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

// take removes and returns the messages sent so far.
func (q *sentQueue) take() []queue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// scripted is a store, an API and two runners driven by hand: the gated
// runner pauses after its first request once its gate is armed, the API
// after its first write once its gate is armed.
type scripted struct {
	t       *testing.T
	store   *store.Store
	api     http.Handler
	q       *sentQueue
	runner  *engine.Engine // plain
	gated   *engine.Engine
	gate    *gate
	apiGate *gate
	task    *countingTask
}

func newScripted(t *testing.T, fail func(engine.TaskInput) error) *scripted {
	t.Helper()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	s := &scripted{t: t, store: store.New(db, table), q: &sentQueue{}, gate: newGate(anyRequest), apiGate: newGate(writeRequest),
		task: &countingTask{count: map[string]int{}, starts: map[string][]time.Time{}, scale: 0, fail: fail}}
	gatedStore := func(g *gate) *store.Store {
		cfg := testenv.Config(t)
		cfg.APIOptions = append(cfg.APIOptions, g.middleware)
		return store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table)
	}
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	newEngine := func(st engine.Store) *engine.Engine {
		e, err := engine.New(engine.Config{Store: st, Queue: s.q, Task: s.task, Retry: policy})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	s.runner, s.gated = newEngine(s.store), newEngine(gatedStore(s.gate))
	s.api = api.New(api.Config{Store: gatedStore(s.apiGate), Starter: engine.Starter{Queue: s.q}})
	return s
}

func (s *scripted) call(method, path, body string) (int, store.RunDetail) {
	s.t.Helper()
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var d store.RunDetail
	_ = json.Unmarshal(rec.Body.Bytes(), &d)
	if rec.Code/100 != 2 {
		s.t.Logf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, d
}

func (s *scripted) start(def string) string {
	s.t.Helper()
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/workflows", strings.NewReader(def)))
	var wf struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &wf)
	code, d := s.call(http.MethodPost, "/workflows/"+wf.ID+"/runs", "")
	if code != http.StatusAccepted {
		s.t.Fatalf("start run: %d", code)
	}
	return d.ID
}

// deliver hands every message sent so far, at once or after its delay,
// to the plain runner, until none is left.
func (s *scripted) drain() {
	s.t.Helper()
	for range 50 {
		msgs := s.q.take()
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			if err := s.runner.Handle(context.Background(), engine.Delivery{Message: m}); errors.Is(err, engine.ErrBusy) {
				time.Sleep(m.Delay)
				_ = s.q.Send(context.Background(), []queue.Message{m})
			}
		}
	}
	s.t.Fatal("messages kept coming")
}

func (s *scripted) get(runID string) store.RunDetail {
	s.t.Helper()
	d, err := s.store.GetRun(context.Background(), runID)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// TestStaleRetryMessageAroundARunRetry (first design, failure 1, case A):
// step x fails for good while its sibling y is running, so the run fails;
// then y's attempt fails too and waits for its retry. y's delayed message is
// read while the run is failed, the run is retried, and only then does the
// runner act on its read. The first design settled y as skipped in the
// retried run, which then never ended. Now a runner that read an ended run
// writes nothing, and the retried run completes.
func TestStaleRetryMessageAroundARunRetry(t *testing.T) {
	t.Parallel()
	var retried sync.Map
	yRuns, xFailed := make(chan struct{}), make(chan struct{})
	s := newScripted(t, func(in engine.TaskInput) error {
		_, again := retried.Load(in.RunID)
		switch {
		case again:
			return nil
		case in.StepID == "x":
			return errors.New("x fails for good")
		case in.Attempt == 0:
			close(yRuns)
			<-xFailed
			return errors.New("y's first attempt fails after x")
		}
		return nil
	})
	runID := s.start(`{"name":"a","steps":[{"id":"y","config":{"duration_seconds":0,"max_retries":2}},{"id":"x","config":{"duration_seconds":0,"max_retries":0}},{"id":"after","config":{"duration_seconds":0},"depends_on":["x","y"]}]}`)
	roots := s.q.take()
	yDone := make(chan error)
	go func() { yDone <- s.runner.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-yRuns
	if err := s.runner.Handle(context.Background(), engine.Delivery{Message: roots[1]}); err != nil {
		t.Fatal(err)
	}
	close(xFailed)
	if err := <-yDone; err != nil {
		t.Fatal(err)
	}
	delayed := s.q.take()
	if d := s.get(runID); d.Status != status.RunFailed || len(delayed) != 1 || d.Steps[0].RetryCount != 1 {
		t.Fatalf("run %s, y %+v, %d retry messages", d.Status, d.Steps[0], len(delayed))
	}
	// y's retry message is read before the run retry lands and acted on
	// after it.
	time.Sleep(delayed[0].Delay)
	s.gate.arm()
	done := make(chan error)
	go func() { done <- s.gated.Handle(context.Background(), engine.Delivery{Message: delayed[0]}) }()
	<-s.gate.paused
	retried.Store(runID, true)
	if code, _ := s.call(http.MethodPost, "/runs/"+runID+"/retry", ""); code != http.StatusAccepted {
		t.Fatalf("retry: %d", code)
	}
	close(s.gate.release)
	if err := <-done; err != nil && !errors.Is(err, engine.ErrBusy) {
		t.Fatal(err)
	}
	s.drain()
	if d := s.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("retried run: %s, steps %s %s %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	}
}

// TestNoStartAfterCancel (first design, failure 4): a runner reads a live
// run; the cancel then changes the run; only then does the runner try to
// take a step, and the cancel answers after that. The first design's lease
// write did not look at the run, so the step ran in a cancelled run (the
// cancel's per-step loop came too late to stop it). Now the claim fails.
func TestNoStartAfterCancel(t *testing.T) {
	t.Parallel()
	s := newScripted(t, nil)
	runID := s.start(`{"name":"c","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	roots := s.q.take()
	s.gate.arm()
	runnerDone := make(chan error)
	go func() { runnerDone <- s.gated.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-s.gate.paused
	s.apiGate.arm()
	type answer struct {
		code int
		d    store.RunDetail
	}
	cancelled := make(chan answer)
	go func() {
		code, d := s.call(http.MethodPost, "/runs/"+runID+"/cancel", "")
		cancelled <- answer{code, d}
	}()
	<-s.apiGate.paused // the cancel's first write landed
	close(s.gate.release)
	if err := <-runnerDone; err != nil {
		t.Fatal(err)
	}
	close(s.apiGate.release)
	if a := <-cancelled; a.code != http.StatusOK || a.d.Status != status.RunCancelled {
		t.Fatalf("cancel: %d %s", a.code, a.d.Status)
	}
	if n := s.task.executions(runID, "a"); n != 0 {
		t.Fatalf("step a ran %d times in a cancelled run", n)
	}
	d := s.get(runID)
	if d.Status != status.RunCancelled || d.Steps[0].Status != status.StepCancelled || d.Steps[1].Status != status.StepCancelled {
		t.Fatalf("after the late claim: run %s, steps %s %s", d.Status, d.Steps[0].Status, d.Steps[1].Status)
	}
}

// TestRetryOfAHundredStepRunFailedAtItsRoot (first design, failure 5):
// resetting a 100-step run that failed at its root took 101 transaction
// items, so the retry answered 422. Now any run of up to 100 steps resets
// in one write.
func TestRetryOfAHundredStepRunFailedAtItsRoot(t *testing.T) {
	t.Parallel()
	var broken sync.Map
	s := newScripted(t, func(in engine.TaskInput) error {
		if _, ok := broken.Load(in.RunID); ok && in.StepID == "root" {
			return errors.New("root fails")
		}
		return nil
	})
	steps := []string{`{"id":"root","config":{"duration_seconds":0,"max_retries":0}}`}
	for i := range 99 {
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","config":{"duration_seconds":0},"depends_on":["root"]}`, i))
	}
	def := `{"name":"wide","steps":[` + strings.Join(steps, ",") + `]}`
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/workflows", strings.NewReader(def)))
	var wf struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &wf)
	_, d := s.call(http.MethodPost, "/workflows/"+wf.ID+"/runs", "")
	broken.Store(d.ID, true)
	s.drain()
	if d = s.get(d.ID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	broken.Delete(d.ID)
	code, after := s.call(http.MethodPost, "/runs/"+d.ID+"/retry", "")
	if code != http.StatusAccepted || after.Status != status.RunRunning {
		t.Fatalf("retry of a 100-step run: %d %s", code, after.Status)
	}
	s.drain()
	if d = s.get(d.ID); d.Status != status.RunCompleted || d.StepsCompleted != 100 {
		t.Fatalf("retried run: %s with %d steps completed", d.Status, d.StepsCompleted)
	}
}
