package engine_test

// The harness of the interleaving tests: a store, runners and an API
// driven by hand, whose DynamoDB clients can pause between a read and
// a write (a gate) while the test acts elsewhere.

import (
	"context"
	"encoding/json"
	"errors"
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
	"stepflow/internal/store"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

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

// rig is a store, a plain runner, a runner whose DynamoDB client pauses at
// its gate, a plain API and an API whose client pauses at its own gate, all
// sending to one sentQueue.
type rig struct {
	t        *testing.T
	store    *store.Store
	q        *sentQueue
	task     *countingTask
	plain    *engine.Engine
	gated    *engine.Engine
	gate     *gate
	api      http.Handler
	gatedAPI http.Handler
	apiGate  *gate
	// lose and apiLose lose answers of the gated runner's and the gated
	// API's DynamoDB requests after they landed.
	lose, apiLose *testenv.LostAnswers
}

func newRig(t *testing.T, runnerGate, apiGate func(string) bool, scale float64, fail func(engine.TaskInput) error, tweak func(*engine.Config)) *rig {
	t.Helper()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	r := &rig{t: t, store: store.New(db, table), q: &sentQueue{}, gate: newGate(runnerGate), apiGate: newGate(apiGate),
		task: &countingTask{count: map[string]int{}, starts: map[string][]time.Time{}, scale: scale, fail: fail}}
	gatedStore := func(g *gate, lose **testenv.LostAnswers) *store.Store {
		cfg, l := testenv.LosingConfig(t)
		*lose = l
		cfg.APIOptions = append(cfg.APIOptions, g.middleware)
		return store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table)
	}
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	newEngine := func(st engine.Store) *engine.Engine {
		cfg := engine.Config{Store: st, Queue: r.q, Task: r.task, Retry: policy}
		if tweak != nil {
			tweak(&cfg)
		}
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	r.plain, r.gated = newEngine(r.store), newEngine(gatedStore(r.gate, &r.lose))
	r.api = api.New(api.Config{Store: r.store, Starter: engine.Starter{Queue: r.q}})
	r.gatedAPI = api.New(api.Config{Store: gatedStore(r.apiGate, &r.apiLose), Starter: engine.Starter{Queue: r.q}})
	return r
}

func (r *rig) call(h http.Handler, method, path string) (int, wire.RunDetail) {
	r.t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("")))
	var d wire.RunDetail
	_ = json.Unmarshal(rec.Body.Bytes(), &d)
	if rec.Code/100 != 2 {
		r.t.Logf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec.Code, d
}

// cancel cancels run runID through the API and fails the test unless the
// cancel is acknowledged.
func (r *rig) cancel(runID string) {
	r.t.Helper()
	if code, _ := r.call(r.api, http.MethodPost, "/runs/"+runID+"/cancel"); code != http.StatusOK {
		r.t.Fatalf("cancel: %d", code)
	}
}

// retry retries run runID through the API and fails the test unless the
// retry is accepted.
func (r *rig) retry(runID string) {
	r.t.Helper()
	if code, _ := r.call(r.api, http.MethodPost, "/runs/"+runID+"/retry"); code != http.StatusAccepted {
		r.t.Fatalf("retry: %d", code)
	}
}

func (r *rig) start(def string) string {
	r.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/workflows", strings.NewReader(def))
	req.Header.Set("Content-Type", "application/json")
	r.api.ServeHTTP(rec, req)
	var wf struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &wf)
	code, d := r.call(r.api, http.MethodPost, "/workflows/"+wf.ID+"/runs")
	if code != http.StatusAccepted {
		r.t.Fatalf("start run: %d", code)
	}
	return d.ID
}

// drain hands every message sent so far to the plain runner until none is
// left (busy ones are retried after their step's lease).
func (r *rig) drain() {
	r.t.Helper()
	for range 50 {
		msgs := r.q.take()
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			err := r.plain.Handle(context.Background(), engine.Delivery{Message: m})
			if errors.Is(err, engine.ErrBusy) {
				time.Sleep(m.Delay + 50*time.Millisecond)
				_ = r.q.Send(context.Background(), []queue.Message{m})
			} else if err != nil {
				r.t.Logf("handle %s step %d attempt %d: %v", m.RunID, m.StepIndex, m.Attempt, err)
			}
		}
	}
	r.t.Fatal("messages kept coming")
}

func (r *rig) get(runID string) wire.RunDetail {
	r.t.Helper()
	d, err := r.store.GetRun(context.Background(), runID)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func isOp(name string) func(string) bool { return func(op string) bool { return op == name } }
