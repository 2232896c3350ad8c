package engine_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/id"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
	"stepflow/internal/workflow"
)

var (
	schedules = flag.Int("schedules", 500, "random schedules TestRandomSchedules drives (or STEPFLOW_SCHEDULES)")
	seedFlag  = flag.Uint64("seed", 0, "replay only this schedule seed (0: all)")
	fromFlag  = flag.Uint64("from", 1, "the first seed of the schedules run")
	traceFlag = flag.Bool("trace", false, "log every DynamoDB request of a failing schedule")
)

// TestRandomSchedules drives many seeded random schedules of the real
// engine, API and sweeper against the real store: 2-4 competing runners,
// duplicated and reordered deliveries, crashes at every crash point, lost
// responses, sweeper passes, concurrent cancel and retry calls through the
// API, flaky and failing steps, order actions, and workflows of every shape
// up to 100 steps. After a chaos phase, faults stop and redelivery and the
// sweeper must finish every run; then the invariants are checked. A failing
// schedule prints its seed; -seed replays it (every DynamoDB request is a
// scheduling point chosen by the seed, on a fake clock, so a replay takes
// the same path).
func TestRandomSchedules(t *testing.T) {
	t.Parallel()
	n := *schedules
	if v := os.Getenv("STEPFLOW_SCHEDULES"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("STEPFLOW_SCHEDULES=%q: %v", v, err)
		}
	}
	if testing.Short() {
		n = min(n, 50)
	}
	first := *fromFlag
	if *seedFlag != 0 {
		first, n = *seedFlag, 1
	}
	// One HTTP client for every schedule: each schedule's clients only add
	// their own middleware.
	cfg := testenv.Config(t)
	cfg.HTTPClient = awshttp.NewBuildableClient()
	db := awsclient.DynamoDB(cfg, testenv.Endpoint(t))
	var crashy, clean int
	for seed := first; seed < first+uint64(n); seed++ {
		h := newHarness(t, cfg, db, seed)
		began := time.Now()
		done := make(chan error, 1)
		go func() { done <- h.run() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(scheduleDeadline):
			// A harness or engine hang fails the test instead of
			// silently stopping every later seed; the schedule's
			// goroutines are abandoned.
			h.s.abort()
			err = fmt.Errorf("schedule did not finish within %v (%d decisions)", scheduleDeadline, h.s.now())
		}
		if el := time.Since(began); el > 500*time.Millisecond && testing.Verbose() {
			t.Logf("schedule %d took %v (%d decisions, %d runs)", seed, el.Round(time.Millisecond), h.s.decisions, len(h.runs))
		}
		if err != nil {
			t.Fatalf("schedule %d failed (replay: go test ./internal/engine/ -run TestRandomSchedules -seed %d -v): %v\n%s", seed, seed, err, h.summary())
		}
		if h.faulty {
			crashy++
		} else {
			clean++
		}
	}
	t.Logf("%d schedules passed, seeds %d to %d (%d with crashes or lost responses, %d without)", n, first, first+uint64(n)-1, crashy, clean)
}

// scheduleDeadline bounds one schedule's wall time: most take well under
// a second; a hang fails the test.
const scheduleDeadline = 2 * time.Minute

// TestScheduleHarnessOwnFailuresFail: two runs of a schedule with
// identical definitions (the API reuses the workflow and answers 200) used
// to make the harness call t.Fatalf off the test's goroutine: the schedule
// hung and every later seed silently stopped running. Now the reused
// workflow is accepted, and a harness failure or a hang fails the test.
func TestScheduleHarnessOwnFailuresFail(t *testing.T) {
	t.Parallel()
	cfg := testenv.Config(t)
	db := awsclient.DynamoDB(cfg, testenv.Endpoint(t))
	for _, seed := range []uint64{3, 4, 5} {
		h := newHarness(t, cfg, db, seed)
		h.shapeOf = func(bool) string {
			return `{"name":"same","steps":[{"id":"a","config":{"duration_seconds":0}}]}`
		}
		done := make(chan error, 1)
		go func() { done <- h.run() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		case <-time.After(scheduleDeadline):
			h.s.abort()
			t.Fatalf("seed %d: a schedule with identical definitions hung", seed)
		}
		if len(h.runs) < 1 {
			t.Fatalf("seed %d started no run", seed)
		}
	}
}

// sched lets exactly one actor run at a time. Actors park at yield points
// (every DynamoDB request, and the top of their loops); step picks the next
// one with the seeded random source once every actor is parked, so a seed
// fixes the interleaving.
type sched struct {
	mu        sync.Mutex
	cond      *sync.Cond
	rng       *rand.Rand
	actors    map[string]*actor
	turn      string
	decisions int
	aborted   bool
}

type actor struct {
	waiting, done bool
}

// abort makes every actor that yields from now on exit.
func (s *sched) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	s.cond.Broadcast()
}

func newSched(seed uint64) *sched {
	s := &sched{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), actors: map[string]*actor{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *sched) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actors[name] = &actor{}
}

// yield parks the named actor until it is chosen.
func (s *sched) yield(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.actors[name]
	a.waiting = true
	if s.turn == name {
		s.turn = ""
	}
	s.cond.Broadcast()
	for s.turn != name {
		if s.aborted {
			runtime.Goexit() // the deferred Unlock releases the lock
		}
		s.cond.Wait()
	}
	a.waiting = false
}

func (s *sched) exit(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actors[name].done = true
	if s.turn == name {
		s.turn = ""
	}
	s.cond.Broadcast()
}

// step waits until every actor is parked or done, calls decide (with the
// lock held, while nothing runs) and lets one parked actor run. It returns
// false when every actor is done.
func (s *sched) step(decide func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		parked := s.turn == ""
		for _, a := range s.actors {
			parked = parked && (a.done || a.waiting)
		}
		if parked {
			break
		}
		s.cond.Wait()
	}
	var names []string
	for n, a := range s.actors {
		if a.waiting && !a.done {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return false
	}
	sort.Strings(names)
	decide()
	s.turn = names[s.rng.IntN(len(names))]
	s.decisions++
	s.cond.Broadcast()
	return true
}

// chance draws from the schedule's random source. Callers hold the turn, so
// draws happen in schedule order.
func (s *sched) chance(p float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

func (s *sched) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

func (s *sched) now() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.decisions
}

type actorKey struct{}

func actorCtx(name string) context.Context {
	return context.WithValue(context.Background(), actorKey{}, name)
}

// clock is the schedule's fake time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) to(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// fakeQueue is SQS as the engine sees it, with the faults a schedule
// injects: duplicates, random order, redelivery after the visibility
// timeout, and a dead-letter queue.
type fakeQueue struct {
	mu         sync.Mutex
	clock      *clock
	h          *harness
	msgs       []*fmsg
	dlq        int
	seq        int
	visibility time.Duration
}

type fmsg struct {
	id        string
	m         queue.Message
	visibleAt time.Time
	receives  int
	receipt   string
}

const maxReceives = 5

func (q *fakeQueue) Send(_ context.Context, msgs []queue.Message) error {
	for _, m := range msgs {
		copies := 1
		if q.h.chaos && q.h.s.chance(0.2) {
			copies = 2
		}
		q.mu.Lock()
		for range copies {
			q.seq++
			q.msgs = append(q.msgs, &fmsg{id: fmt.Sprint(q.seq), m: m, visibleAt: q.clock.Now().Add(m.Delay)})
		}
		q.mu.Unlock()
	}
	return nil
}

func (q *fakeQueue) Extend(_ context.Context, receipt string, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range q.msgs {
		if f.receipt == receipt {
			f.visibleAt = q.clock.Now().Add(d)
		}
	}
	return nil
}

// receive returns up to ten visible messages of one run, chosen at random.
func (q *fakeQueue) receive(pick func(int) int) []*fmsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	var runs []string
	seen := map[string]bool{}
	for _, f := range q.msgs {
		if !f.visibleAt.After(now) && !seen[f.m.RunID] {
			seen[f.m.RunID] = true
			runs = append(runs, f.m.RunID)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	run := runs[pick(len(runs))]
	var out, keep []*fmsg
	for _, f := range q.msgs {
		if f.m.RunID != run || f.visibleAt.After(now) || len(out) == 10 {
			keep = append(keep, f)
			continue
		}
		f.receives++
		if f.receives > maxReceives {
			q.dlq++ // dead-lettered; the sweeper sends a new message
			continue
		}
		q.seq++
		f.receipt = fmt.Sprint("r", q.seq)
		f.visibleAt = now.Add(q.visibility)
		out = append(out, f)
		keep = append(keep, f)
	}
	q.msgs = keep
	return out
}

func (q *fakeQueue) ack(receipt string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = slices.DeleteFunc(q.msgs, func(f *fmsg) bool { return f.receipt == receipt })
}

// nextVisible is when the next hidden message becomes visible (zero if one
// is visible now or there are none).
func (q *fakeQueue) nextVisible() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var next time.Time
	for _, f := range q.msgs {
		if !f.visibleAt.After(q.clock.Now()) {
			return time.Time{}, true
		}
		if next.IsZero() || f.visibleAt.Before(next) {
			next = f.visibleAt
		}
	}
	return next, false
}

// execution is one run of a step's task.
type execution struct {
	run, step    string
	gen, attempt int
	at           int // scheduler decisions so far
	ok           bool
}

// ack is an acknowledged cancel or retry.
type adminAck struct {
	run    string
	cancel bool
	gen    int // the generation the run is in after the call
	at     int
}

// Schedule parameters (fake time).
const (
	hVisibility  = 2 * time.Second
	hLeaseMargin = 4 * time.Second
	hGrace       = 3 * time.Second
	hSweepEvery  = time.Second
	hMaxSweeps   = 30 // sweeps after the chaos phase within which every run must end
)

type harness struct {
	t      *testing.T
	seed   uint64
	s      *sched
	clock  *clock
	q      *fakeQueue
	st     *store.Store // yields at every request
	plain  *store.Store // for checks, no yields
	db     *dynamodb.Client
	cfg    aws.Config
	table  string
	api    http.Handler
	chaos  bool
	faulty bool // a crash or lost response was injected

	mu         sync.Mutex
	runs       []string
	orders     map[string]string // run -> order
	defs       map[string]string
	execs      []execution
	commits    map[string]int // run/step -> commits
	commitAt   map[string]int // run/step -> decisions at its (last) commit
	acks       []adminAck
	busy       map[string]bool // runner -> handling a batch
	sweeps     int
	adminCalls map[string]int
	log        []string
	failure    error // the harness's own, see fail
	planned    map[string][]taskPlan
	// svc is the service the schedule's http steps call.
	svc *hservice
	// shapeOf, if set, replaces the random workflow definitions.
	shapeOf func(withOrder bool) string
}

func newHarness(t *testing.T, cfg aws.Config, db *dynamodb.Client, seed uint64) *harness {
	h := &harness{t: t, seed: seed, s: newSched(seed), clock: &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		orders: map[string]string{}, defs: map[string]string{}, commits: map[string]int{}, commitAt: map[string]int{}, busy: map[string]bool{},
		planned:    map[string][]taskPlan{},
		adminCalls: map[string]int{}, db: db, cfg: cfg}
	h.q = &fakeQueue{clock: h.clock, h: h, visibility: hVisibility}
	h.svc = &hservice{h: h, byKey: map[string]json.RawMessage{}, keyOf: map[string]string{}}
	return h
}

// yieldingDB returns a DynamoDB client whose every request is a scheduling
// point of the actor in its context, and which, during the chaos phase,
// loses the response of some writes that succeeded.
func (h *harness) yieldingDB() *dynamodb.Client {
	cfg := h.cfg.Copy()
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("schedule", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			name, _ := ctx.Value(actorKey{}).(string)
			if name != "" {
				h.s.yield(name)
			}
			out, md, err := next.HandleInitialize(ctx, in)
			if *traceFlag && name != "" {
				h.note("%s %T err=%v %s", name, in.Parameters, err, traceKey(in.Parameters))
			}
			if err == nil && name != "" && strings.HasPrefix(name, "runner") && h.chaos && isWrite(in.Parameters) && h.s.chance(0.01) {
				h.faulty = true
				h.note("lost the response of a %T by %s", in.Parameters, name)
				return out, md, errors.New("injected: connection reset after the write landed")
			}
			return out, md, err
		}), middleware.Before)
	})
	return awsclient.DynamoDB(cfg, testenv.Endpoint(h.t))
}

func traceKey(p any) string {
	switch p := p.(type) {
	case *dynamodb.UpdateItemInput:
		return fmt.Sprintf("%v %s IF %s", p.Key["sk"], aws.ToString(p.UpdateExpression), aws.ToString(p.ConditionExpression))
	case *dynamodb.GetItemInput:
		return fmt.Sprint(p.Key["sk"])
	case *dynamodb.TransactWriteItemsInput:
		return fmt.Sprintf("%d items", len(p.TransactItems))
	}
	return ""
}

func isWrite(p any) bool {
	switch p.(type) {
	case *dynamodb.UpdateItemInput, *dynamodb.TransactWriteItemsInput, *dynamodb.PutItemInput:
		return true
	}
	return false
}

// fail records a failure of the harness itself (an API call that should
// not fail); the schedule stops at the next decision and reports it. Actors
// never call t.Fatal, which must run on the test's goroutine.
func (h *harness) fail(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure == nil {
		h.failure = fmt.Errorf(format, args...)
	}
}

func (h *harness) failed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failure
}

func (h *harness) note(format string, args ...any) {
	at := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.log) < 400 || *traceFlag {
		h.log = append(h.log, fmt.Sprintf("[%d] ", at)+fmt.Sprintf(format, args...))
	}
}

func (h *harness) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.runs {
		fmt.Fprintf(&b, "run %s: %s\n", r, h.defs[r])
	}
	for _, l := range h.log {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// task is the schedule's step task: it records each execution and fails
// with the step's fail_probability, drawn from the schedule's source.
type task struct{ h *harness }

func (tk task) Run(ctx context.Context, in engine.TaskInput) error {
	h := tk.h
	h.mu.Lock()
	key := attemptOf(in)
	plan := h.planned[key][0]
	h.planned[key] = h.planned[key][1:]
	h.mu.Unlock()
	// A task that takes time: its runner yields a few scheduling
	// decisions, so that commits, cancels, retries and other runners
	// interleave with it (attempts run on the runner's goroutine, see
	// engine.Config.Go, so a seed replays exactly).
	for range plan.yields {
		h.s.yield(ctx.Value(actorKey{}).(string))
	}
	if !plan.ok {
		return fmt.Errorf("flaky %s attempt %d", in.StepID, in.Attempt)
	}
	return nil
}

// taskPlan is what a task launch will do, drawn when it starts (on the
// runner's turn, so that a seed fixes it).
type taskPlan struct {
	ok     bool
	yields int
}

func attemptOf(in engine.TaskInput) string {
	return fmt.Sprintf("%s/%d/%d/%d", in.RunID, in.Index, in.Generation, in.Attempt)
}

// onStart records an execution as its runner starts it and draws what the
// task will do.
func (h *harness) onStart(in engine.TaskInput) {
	// (Only a task's success is drawn here: an http step's is the
	// service's answer, a wait or an approval only begins.)
	ok := in.Config.URL == "" && in.Config.Seconds == 0 && !(in.Config.FailProbability > 0 && h.s.chance(in.Config.FailProbability))
	yields := 0
	if in.Config.DurationSeconds > 0 {
		yields = h.s.intn(4)
	}
	at := h.s.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.planned[attemptOf(in)] = append(h.planned[attemptOf(in)], taskPlan{ok: ok, yields: yields})
	h.execs = append(h.execs, execution{run: in.RunID, step: in.StepID, gen: in.Generation, attempt: in.Attempt, at: at, ok: ok})
}

func (h *harness) run() error {
	ctx := context.Background()
	h.table = testenv.Table(h.t, h.db)
	defer h.db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(h.table)}) //nolint:errcheck
	h.st = store.New(h.yieldingDB(), h.table)
	h.plain = store.New(h.db, h.table)
	policy := retry.Policy{Base: 200 * time.Millisecond, Cap: time.Second, Rand: func() float64 { return float64(h.s.intn(1000)) / 1000 }}
	ids := func(salt uint64) *id.Generator {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], h.seed)
		binary.LittleEndian.PutUint64(seed[8:], salt)
		return id.NewGenerator(h.clock.Now, rand.NewChaCha8(seed))
	}
	h.api = api.New(api.Config{Store: h.st, Starter: engine.Starter{Queue: h.q, Now: h.clock.Now}, Now: h.clock.Now, IDs: ids(1)})

	runners := 2 + h.s.intn(3)
	crashP := []float64{0, 0, 0.05, 0.15}[h.s.intn(4)]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	start := func(name string, loop func(context.Context)) {
		h.s.add(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer h.s.exit(name)
			ctx := actorCtx(name)
			for {
				h.s.yield(name)
				if stopped() {
					return
				}
				loop(ctx)
			}
		}()
	}
	pending := map[string][]func(){} // attempts started, by runner; see Go
	for i := range runners {
		name := fmt.Sprintf("runner%d", i)
		eng, err := engine.New(engine.Config{
			Store: h.st, Queue: h.q, Task: task{h}, HTTP: h.svc, Hop: time.Second, Retry: policy, LeaseMargin: hLeaseMargin,
			Parallelism: []int{1, 4, 16}[h.s.intn(3)],
			OnStart:     func(in engine.TaskInput, _ queue.Message, _ time.Time) { h.onStart(in) },
			// Attempts run on the runner's goroutine, so that a seed
			// replays exactly: those started together are run when the
			// runner first waits (all of them started, as goroutines
			// would be); waiting, the runner lets the others run.
			Go: func(f func()) { pending[name] = append(pending[name], f) },
			Yield: func(ctx context.Context) {
				if fs := pending[name]; len(fs) > 0 {
					pending[name] = nil
					for _, f := range fs {
						f()
					}
					return
				}
				h.s.yield(name)
			},
			Now: h.clock.Now, IDs: ids(uint64(10 + i)), Visibility: h.q, QueueVisibility: hVisibility,
			// A runner waiting for its commit window lets the fake
			// clock run to the window's end.
			After: func(t time.Time) <-chan time.Time {
				h.clock.to(t)
				ch := make(chan time.Time, 1)
				ch <- t
				return ch
			},
			Crash: func(p engine.CrashPoint, m queue.Message) bool {
				if !h.chaos || crashP == 0 || !h.s.chance(crashP) {
					return false
				}
				h.faulty = true
				h.note("%s crashed at %s handling %s/%d", name, p, m.RunID, m.StepIndex)
				return true
			},
			OnCommit: func(runID string, index int, _, _ time.Time) {
				at := h.s.now()
				h.mu.Lock()
				h.commits[fmt.Sprintf("%s/%d", runID, index)]++
				h.commitAt[fmt.Sprintf("%s/%d", runID, index)] = at
				h.mu.Unlock()
			},
		})
		if err != nil {
			return err
		}
		start(name, func(ctx context.Context) {
			h.runnerTurn(ctx, name, eng)
			pending[name] = nil // a crashed runner's attempts die with it
		})
	}
	sw := &sweeper.Sweeper{Store: h.st, Queue: h.q, Grace: hGrace, Now: h.clock.Now}
	nextSweep := h.clock.Now().Add(hSweepEvery)
	start("sweeper", func(ctx context.Context) {
		if h.clock.Now().Before(nextSweep) {
			return
		}
		nextSweep = h.clock.Now().Add(hSweepEvery)
		_, _ = sw.Sweep(ctx)
		h.mu.Lock()
		h.sweeps++
		h.mu.Unlock()
	})
	nRuns := 1 + h.s.intn(4)
	created := 0
	start("client", func(ctx context.Context) {
		h.setBusy("client", true)
		defer h.setBusy("client", false)
		if created < nRuns {
			h.createRun(ctx)
			created++ // only now is the run in h.runs
			return
		}
		if h.chaos && h.s.chance(0.05) {
			h.adminCall(ctx)
		}
		// While faults are injected, approvals are decided now and then;
		// once they stop, at every turn, since an approval without a
		// timeout waits for a decision for ever (seed 107724 left one
		// undecided through the 30 sweeps of the drain).
		if h.s.chance(0.1) || !h.chaos {
			h.decide(ctx)
		}
	})

	// Chaos, then drain: faults stop, and redelivery and the sweeper must
	// end every run within hMaxSweeps sweeps. The checks run inside the
	// scheduler's decisions, while every actor is parked.
	h.chaos = true
	chaosSteps := 100 + h.s.intn(1500)
	sweepsAtDrain := -1
	var failure error
	finished := false
	for h.s.step(func() {
		if finished {
			return
		}
		if h.s.decisions == chaosSteps {
			h.chaos = false
			sweepsAtDrain = h.sweeps
		}
		h.advanceClock()
		if err := h.failed(); err != nil {
			failure, finished = err, true
			close(stop)
			return
		}
		switch {
		case sweepsAtDrain < 0 || created < nRuns:
		case h.sweeps-sweepsAtDrain > hMaxSweeps:
			failure = fmt.Errorf("runs still not ended %d sweeps after the faults stopped", hMaxSweeps)
		case h.s.decisions%25 == 0 && h.idle() && h.allEnded():
		default:
			return
		}
		if sweepsAtDrain >= 0 && created == nRuns && (failure != nil || h.s.decisions%25 == 0) {
			finished = true
			close(stop)
		}
	}) {
	}
	wg.Wait()
	if failure != nil {
		return errors.Join(failure, h.describeRuns())
	}
	return h.check()
}

// advanceClock moves fake time on by up to 20 ms per decision; when no
// runner is busy and no message is visible, it jumps to the next message or
// sweep, since nothing can happen before then. Called with the scheduler's
// lock held.
func (h *harness) advanceClock() {
	h.clock.advance(time.Duration(h.s.rng.IntN(20)) * time.Millisecond)
	if !h.idle() {
		return
	}
	next, visible := h.q.nextVisible()
	if visible {
		return
	}
	sweep := h.clock.Now().Add(hSweepEvery)
	if next.IsZero() || sweep.Before(next) {
		next = sweep
	}
	h.clock.to(next)
}

func (h *harness) setBusy(name string, b bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.busy[name] = b
}

// idle reports whether no actor is in the middle of something.
func (h *harness) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.busy {
		if b {
			return false
		}
	}
	return true
}

func (h *harness) runnerTurn(ctx context.Context, name string, eng *engine.Engine) {
	batch := h.q.receive(h.s.intn)
	if len(batch) == 0 {
		return
	}
	h.setBusy(name, true)
	defer h.setBusy(name, false)
	ev := events.SQSEvent{}
	for _, f := range batch {
		body, _ := json.Marshal(f.m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: f.id, ReceiptHandle: f.receipt, Body: string(body)})
	}
	resp, err := eng.HandleSQS(ctx, ev)
	if err != nil {
		return // a dead Lambda: nothing is deleted; the messages come back
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, f := range batch {
		if !failed[f.id] {
			h.q.ack(f.receipt)
		}
	}
}

// shape returns a random workflow definition: mostly small random DAGs,
// sometimes one of the 100-step shapes.
func (h *harness) shape(withOrder bool) string {
	type step struct {
		ID        string         `json:"id"`
		Type      string         `json:"type,omitempty"`
		Config    map[string]any `json:"config"`
		DependsOn []string       `json:"depends_on"`
	}
	cfg := func() map[string]any {
		c := map[string]any{"duration_seconds": []float64{0, 0, 0.01, 0.3}[h.s.intn(4)], "max_retries": h.s.intn(3)}
		if h.s.chance(0.3) {
			c["fail_probability"] = []float64{0.3, 0.6, 1}[h.s.intn(3)]
		}
		return c
	}
	var steps []step
	add := func(deps ...string) string {
		s := step{ID: fmt.Sprintf("s%d", len(steps)), Config: cfg(), DependsOn: deps}
		if s.DependsOn == nil {
			s.DependsOn = []string{}
		}
		steps = append(steps, s)
		return s.ID
	}
	switch k := h.s.intn(20); {
	case k == 0: // 100-step chain
		prev := add()
		for range 99 {
			prev = add(prev)
		}
	case k == 1: // 100 parallel steps
		for range 100 {
			add()
		}
	case k == 2: // root -> 98 -> join
		root := add()
		var mid []string
		for range 98 {
			mid = append(mid, add(root))
		}
		add(mid...)
	case k == 3 && withOrder: // an order action root that is parent of 98 joins
		root := add()
		other := add(root)
		for range 98 {
			add(root, other)
		}
		steps[0].Config["action"] = "validate_order"
	default:
		n := 1 + h.s.intn(12)
		for i := range n {
			var deps []string
			for j := range i {
				if h.s.chance(0.3) {
					deps = append(deps, steps[j].ID)
				}
			}
			add(deps...)
		}
	}
	if withOrder && len(steps) < 20 {
		// An order workflow's actions, in a dependency chain where the
		// shape allows it, else wherever they fall.
		actions := []string{"validate_order", "charge_payment", "ship_order", "send_notification"}
		for i := range min(len(steps), len(actions)) {
			steps[i].Config["action"] = actions[i]
			if i > 0 && h.s.chance(0.8) && !slices.Contains(steps[i].DependsOn, steps[i-1].ID) {
				steps[i].DependsOn = append(steps[i].DependsOn, steps[i-1].ID)
			}
		}
	}
	if len(steps) < 20 {
		// Steps that do real work: http steps (passing a parent's output
		// along), waits longer and shorter than a message's hop, and
		// approvals with and without a timeout.
		for i := range steps {
			st := &steps[i]
			if !h.s.chance(0.35) {
				continue
			}
			c := map[string]any{}
			switch k := h.s.intn(4); {
			case k <= 1:
				st.Type = "http"
				c["url"] = "http://svc.test/{{run.id}}/" + st.ID
				c["timeout_seconds"], c["max_retries"] = 0.3, st.Config["max_retries"]
				if a, ok := st.Config["action"]; ok {
					c["action"] = a
				}
				for _, d := range st.DependsOn {
					if steps[slices.IndexFunc(steps, func(x step) bool { return x.ID == d })].Type == "http" {
						c["body"] = map[string]any{"from": "{{steps." + d + ".output.n}}"}
					}
				}
			case k == 2:
				st.Type = "wait"
				c["seconds"] = []float64{0.5, 1.5, 3}[h.s.intn(3)]
			default:
				st.Type = "approval"
				if h.s.chance(0.5) {
					c["timeout_seconds"] = 2
				}
			}
			st.Config = c
		}
	}
	def, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("shape-%d", h.seed), "steps": steps})
	return string(def)
}

// hservice is the service the schedule's http steps call, in process: it
// answers a repeated Idempotency-Key with its first success, as a service
// that deduplicates does, and otherwise succeeds or fails (retryably, or
// for good) as the schedule draws. Its successes are the steps' effects.
type hservice struct {
	h     *harness
	mu    sync.Mutex
	byKey map[string]json.RawMessage // the first success of each key
	keyOf map[string]string          // "<run>/<step>" -> the key it sent
	n     int
}

func (s *hservice) Do(ctx context.Context, r httpstep.Request) (json.RawMessage, error) {
	name, _ := ctx.Value(actorKey{}).(string)
	fail, permanent := s.h.s.chance(0.15), s.h.s.chance(0.03)
	for range s.h.s.intn(3) {
		s.h.s.yield(name) // the call takes time
	}
	path := strings.TrimPrefix(r.URL, "http://svc.test/")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyOf[path] = r.IdempotencyKey
	if out, ok := s.byKey[r.IdempotencyKey]; ok {
		return out, nil
	}
	switch {
	case permanent:
		return nil, fmt.Errorf("HTTP 400: %w", httpstep.ErrPermanent)
	case fail:
		return nil, &httpstep.RetryableError{Status: 500, Err: errors.New("HTTP 500")}
	}
	s.n++
	out := json.RawMessage(fmt.Sprintf(`{"n":%d,"path":%q}`, s.n, path))
	s.byKey[r.IdempotencyKey] = out
	return out, nil
}

// decide takes a decision on a random waiting approval, through the
// operator routes or the callback token.
func (h *harness) decide(ctx context.Context) {
	type wait struct {
		run, step string
	}
	var waits []wait
	h.mu.Lock()
	runs := slices.Clone(h.runs)
	h.mu.Unlock()
	for _, r := range runs {
		run, _, err := h.plain.ReadRun(context.Background(), r, true)
		if err != nil || !run.Live() {
			continue
		}
		_, plan, err := h.plain.Plan(context.Background(), run.WorkflowID)
		if err != nil {
			continue
		}
		for i, sl := range run.Steps {
			if sl.Status == status.StepWaiting && plan[i].Type == workflow.TypeApproval {
				waits = append(waits, wait{r, plan[i].ID})
			}
		}
	}
	if len(waits) == 0 {
		return
	}
	w := waits[h.s.intn(len(waits))]
	approve := h.s.chance(0.8)
	path, body := "/runs/"+w.run+"/steps/"+w.step+"/complete", `{"output":{"by":"harness"}}`
	if !approve {
		path, body = "/runs/"+w.run+"/steps/"+w.step+"/fail", `{"error":"refused by the harness"}`
	}
	if h.s.chance(0.5) {
		code, d := h.call(ctx, http.MethodGet, "/runs/"+w.run, "")
		if code != http.StatusOK {
			h.fail("GET /runs/%s: %d %v", w.run, code, d)
			return
		}
		steps, _ := d["steps"].([]any)
		for _, st := range steps {
			st, _ := st.(map[string]any)
			if tok, ok := st["callback_token"].(string); ok && st["step_id"] == w.step {
				path = "/callbacks/" + tok
				if !approve {
					body = `{"error":"refused by the harness"}`
				}
			}
		}
	}
	code, d := h.call(ctx, http.MethodPost, path, body)
	switch {
	case code == http.StatusOK:
		h.note("%s %s decided (approve %v)", w.run, w.step, approve)
		if approve {
			run, _, err := h.plain.ReadRun(context.Background(), w.run, true)
			if err == nil {
				_, plan, _ := h.plain.Plan(context.Background(), run.WorkflowID)
				at := h.s.now()
				for i := range plan {
					if plan[i].ID == w.step {
						h.mu.Lock()
						h.commits[fmt.Sprintf("%s/%d", w.run, i)]++
						h.commitAt[fmt.Sprintf("%s/%d", w.run, i)] = at
						h.mu.Unlock()
					}
				}
			}
		}
	case code == http.StatusConflict, code == http.StatusNotFound:
		// The wait ended meanwhile (timed out, cancelled, decided).
	default:
		h.fail("POST %s: %d %v", path, code, d)
	}
}

func (h *harness) call(ctx context.Context, method, path, body string) (int, map[string]any) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body)).WithContext(ctx)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	h.api.ServeHTTP(rec, req)
	var v map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	return rec.Code, v
}

func (h *harness) createRun(ctx context.Context) {
	withOrder := h.s.chance(0.5)
	def := h.shape(withOrder)
	if h.shapeOf != nil {
		def = h.shapeOf(withOrder)
	}
	code, wf := h.call(ctx, http.MethodPost, "/workflows", def)
	if code != http.StatusCreated && code != http.StatusOK { // 200: an identical workflow, reused
		h.fail("create workflow: %d %v", code, wf)
		return
	}
	body, orderID := "", ""
	if withOrder {
		code, o := h.call(ctx, http.MethodPost, "/orders", `{"amount": 10}`)
		if code != http.StatusCreated {
			h.fail("create order: %d %v", code, o)
			return
		}
		orderID = o["id"].(string)
		body = `{"order_id":"` + orderID + `"}`
	}
	code, r := h.call(ctx, http.MethodPost, "/workflows/"+wf["id"].(string)+"/runs", body)
	if code != http.StatusAccepted {
		h.fail("start run: %d %v", code, r)
		return
	}
	runID := r["id"].(string)
	h.mu.Lock()
	h.runs = append(h.runs, runID)
	h.defs[runID] = def
	if orderID != "" {
		h.orders[runID] = orderID
	}
	h.mu.Unlock()
}

// adminCall cancels or retries a random run, at most three times per run.
func (h *harness) adminCall(ctx context.Context) {
	h.mu.Lock()
	if len(h.runs) == 0 {
		h.mu.Unlock()
		return
	}
	run := h.runs[h.s.intn(len(h.runs))]
	h.mu.Unlock()
	if h.adminCalls[run] >= 3 {
		return
	}
	h.adminCalls[run]++
	cancel := h.s.chance(0.5)
	path := "/runs/" + run + "/retry"
	if cancel {
		path = "/runs/" + run + "/cancel"
	}
	code, d := h.call(ctx, http.MethodPost, path, "")
	if code/100 != 2 {
		if code != http.StatusConflict {
			h.fail("POST %s: %d %v", path, code, d)
		}
		return
	}
	gen := int(d["generation"].(float64))
	at := h.s.now()
	h.mu.Lock()
	h.acks = append(h.acks, adminAck{run: run, cancel: cancel, gen: gen, at: at})
	h.mu.Unlock()
	h.note("%s acknowledged for %s (generation %d)", path, run, gen)
}

func (h *harness) allEnded() bool {
	for _, r := range h.runs {
		run, _, err := h.plain.ReadRun(context.Background(), r, true)
		if err != nil || run.Live() {
			return false
		}
	}
	return true
}

func (h *harness) describeRuns() error {
	var errs []error
	for _, r := range h.runs {
		run, _, err := h.plain.ReadRun(context.Background(), r, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var slots []string
		for _, s := range run.Steps {
			slots = append(slots, s.Encode())
		}
		errs = append(errs, fmt.Errorf("run %s %s gen %d: %v", r, run.Status, run.Gen, slots))
	}
	return errors.Join(errs...)
}

// check verifies the invariants once every run ended.
func (h *harness) check() error {
	ctx := context.Background()
	// Once every lease a crashed runner may have left has expired (the
	// longest step takes 0.3 s), the ended runs are settled.
	now := h.clock.Now().Add(hLeaseMargin + time.Second)
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, runID := range h.runs {
		run, _, err := h.plain.ReadRun(ctx, runID, true)
		if err != nil {
			return err
		}
		_, plan, err := h.plain.Plan(ctx, run.WorkflowID)
		if err != nil {
			return err
		}
		// Every run ended; a completed run has only completed steps; a
		// failed or cancelled one has no pending or running step.
		if run.Live() {
			fail("run %s is still %s", runID, run.Status)
		}
		for i := range run.Steps {
			rep := run.StepReported(plan, i, now)
			switch {
			case run.Status == status.RunCompleted && rep != status.StepCompleted:
				fail("completed run %s has step %s %s", runID, plan[i].ID, rep)
			case run.Status != status.RunCompleted && (rep == status.StepPending || rep == status.StepRunning):
				fail("%s run %s has step %s %s", run.Status, runID, plan[i].ID, rep)
			}
			// No step was committed twice, and every completed step was.
			key := fmt.Sprintf("%s/%d", runID, i)
			want := 0
			if run.Steps[i].Status == status.StepCompleted {
				want = 1
			}
			if got := h.commits[key]; got != want {
				fail("step %s of %s committed %d times, want %d", plan[i].ID, runID, got, want)
			}
			// A wait ends no sooner than its time; an approval fails no
			// sooner than its timeout, unless refused.
			sl := run.Steps[i]
			if d := time.Duration(plan[i].Config.Seconds * float64(time.Second)); plan[i].Type == workflow.TypeWait && sl.Status == status.StepCompleted && sl.End.Sub(sl.Start) < d {
				fail("wait step %s of %s ended after %v, want %v", plan[i].ID, runID, sl.End.Sub(sl.Start), d)
			}
		}
		if orderID := h.orders[runID]; orderID != "" {
			errs = append(errs, h.checkOrder(runID, orderID, run, plan))
		}
	}
	errs = append(errs, h.checkStarts(), h.checkExecutions())
	return errors.Join(errs...)
}

// checkOrder: each order action's history entry appears once, for a
// completed step of the run; status changes chain from pending, each from the
// status the previous one left; and the order's status is the last one's.
func (h *harness) checkOrder(runID, orderID string, run runstate.State, plan workflow.Plan) error {
	ctx := context.Background()
	o, err := h.plain.GetOrder(ctx, orderID)
	if err != nil {
		return err
	}
	entries := o.History
	for next := o.HistoryNext; next != nil; {
		page, cursor, err := h.plain.OrderHistory(ctx, orderID, store.Page{Limit: 100, Cursor: *next})
		if err != nil {
			return err
		}
		entries = append(entries, page...)
		next = nil
		if cursor != "" {
			next = &cursor
		}
	}
	var errs []error
	seen := map[string]bool{}
	cur := status.OrderPending
	for _, e := range entries[1:] {
		if e.RunID != runID {
			errs = append(errs, fmt.Errorf("order %s has an entry of run %s", orderID, e.RunID))
		}
		if seen[e.StepID] {
			errs = append(errs, fmt.Errorf("order %s: step %s has two history entries", orderID, e.StepID))
		}
		seen[e.StepID] = true
		if e.To != "" {
			if e.From != cur {
				errs = append(errs, fmt.Errorf("order %s: %s from %s while the order was %s", orderID, e.Event, e.From, cur))
			}
			cur = e.To
		}
	}
	if o.Status != cur {
		errs = append(errs, fmt.Errorf("order %s is %s, its history ends at %s", orderID, o.Status, cur))
	}
	for i, ps := range plan {
		_, action := status.Actions[ps.Config.Action]
		if action && (run.Steps[i].Status == status.StepCompleted) != seen[ps.ID] {
			errs = append(errs, fmt.Errorf("order %s: step %s is %s but has history entry %v", orderID, ps.ID, run.Steps[i].Status, seen[ps.ID]))
		}
	}
	return errors.Join(errs...)
}

// checkStarts: no task started in a generation after a cancel of that
// generation or a retry out of it was acknowledged.
func (h *harness) checkStarts() error {
	var errs []error
	for _, e := range h.execs {
		for _, a := range h.acks {
			if a.run != e.run || a.at >= e.at {
				continue
			}
			if (a.cancel && e.gen == a.gen) || (!a.cancel && e.gen < a.gen) {
				errs = append(errs, fmt.Errorf("step %s of %s started at %d in generation %d after %s was acknowledged at %d (generation %d)",
					e.step, e.run, e.at, e.gen, map[bool]string{true: "a cancel", false: "a retry"}[a.cancel], a.at, a.gen))
			}
		}
	}
	return errors.Join(errs...)
}

// checkEffect: an http step that completed had its effect at the
// service, under its key, and stored the service's answer as its output;
// one that did not complete had none, unless a crash or a lost response
// came between the call and its commit.
func (h *harness) checkEffect(runID string, run runstate.State, i int, ps workflow.PlannedStep) error {
	key := engine.IdempotencyKey(runID, ps.ID, run.OrderID, ps.Config.Action, 0)
	h.svc.mu.Lock()
	out, effect := h.svc.byKey[key]
	sent, called := h.svc.keyOf[runID+"/"+ps.ID]
	h.svc.mu.Unlock()
	if called && sent != key {
		return fmt.Errorf("http step %s of %s sent key %q, want %q", ps.ID, runID, sent, key)
	}
	completed := run.Steps[i].Status == status.StepCompleted
	switch {
	case completed && !effect:
		return fmt.Errorf("http step %s of %s completed with no effect at the service", ps.ID, runID)
	case !completed && effect && !h.faulty:
		return fmt.Errorf("no crash, yet http step %s of %s had an effect and is %s", ps.ID, runID, run.Steps[i].Status)
	case completed:
		_, _, data, err := h.plain.ReadRunData(context.Background(), runID, true)
		if err != nil {
			return err
		}
		if string(data.Outputs[i]) != string(out) {
			return fmt.Errorf("http step %s of %s stored output %s; the service answered %s", ps.ID, runID, data.Outputs[i], out)
		}
	}
	return nil
}

// checkExecutions: no step ran after its commit; and in a schedule with no
// crash and no lost response, no attempt ran twice and every completed
// step's task succeeded exactly once (and no other step's did).
func (h *harness) checkExecutions() error {
	var errs []error
	type attemptKey struct {
		run, step    string
		gen, attempt int
	}
	runs := map[attemptKey]int{}
	okRuns := map[string]int{}
	for _, e := range h.execs {
		runs[attemptKey{e.run, e.step, e.gen, e.attempt}]++
		if e.ok {
			okRuns[e.run+"/"+e.step]++
		}
	}
	ctx := context.Background()
	for _, runID := range h.runs {
		run, _, err := h.plain.ReadRun(ctx, runID, true)
		if err != nil {
			return err
		}
		_, plan, err := h.plain.Plan(ctx, run.WorkflowID)
		if err != nil {
			return err
		}
		for i, ps := range plan {
			key := fmt.Sprintf("%s/%d", runID, i)
			if at, ok := h.commitAt[key]; ok {
				for _, e := range h.execs {
					if e.run == runID && e.step == ps.ID && e.at > at {
						errs = append(errs, fmt.Errorf("step %s of %s ran at %d after its commit at %d", ps.ID, runID, e.at, at))
					}
				}
			}
			if ps.Type == workflow.TypeHTTP {
				errs = append(errs, h.checkEffect(runID, run, i, ps))
			}
			if h.faulty || ps.Type != workflow.TypeTask {
				continue
			}
			want := 0
			if run.Steps[i].Status == status.StepCompleted {
				want = 1
			}
			if got := okRuns[runID+"/"+ps.ID]; got != want {
				errs = append(errs, fmt.Errorf("no crash, yet step %s of %s succeeded %d times (want %d)", ps.ID, runID, got, want))
			}
		}
	}
	if !h.faulty {
		for k, n := range runs {
			if n > 1 {
				errs = append(errs, fmt.Errorf("no crash, yet attempt %d of step %s of %s (generation %d) ran %d times", k.attempt, k.step, k.run, k.gen, n))
			}
		}
	}
	return errors.Join(errs...)
}
