package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/id"
	"stepflow/internal/meter"
	"stepflow/internal/poller"
	"stepflow/internal/queue"
	"stepflow/internal/ratelimit"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
)

// env is what every pass shares: the endpoints and the SDK configuration.
type env struct {
	cfg          aws.Config
	dynEP, sqsEP string
	// sweepEvery is the sweeper's interval (the deployed schedule).
	sweepEvery time.Duration
	// shards is the index shard count of every store (store.WithShards).
	shards int
}

// pass is one measured run of a workload on a fresh table and queue.
type pass struct {
	name  string
	loads []load
	// batchSize and pollers configure the local event source: batches of
	// up to batchSize messages, pollers batches in flight.
	batchSize, pollers int
	// latency is added to every AWS call of the API, the engine and the
	// sweeper (see addLatency).
	latency time.Duration
	// metered turns on the capacity meter (and its extra reads); without it
	// requests are only counted.
	metered bool
	// sweep runs the sweeper: once when half the steps have committed, then
	// at the deployed interval until the pass ends.
	sweep bool
	// oneAtATime starts each run when the previous one has completed, to
	// measure hand-offs on an engine that is not saturated. Otherwise every
	// run is started before the step runner starts, and the pass times how
	// long the runner takes to drain them.
	oneAtATime bool
	timeout    time.Duration
	// inlineBudget and hop are the engine's (0: its defaults).
	inlineBudget, hop time.Duration
}

// result is what a pass measured. Costs are counted for every component a
// run goes through: the API starting it, the step runner, the sweeper.
type result struct {
	Runs, Steps int
	// Committed counts step commits; TaskRuns counts task executions (more
	// than Committed when a step ran again).
	Committed, TaskRuns int
	Elapsed             time.Duration
	API, Engine, Sweep  meter.Snapshot
	// Invocations and Billed are the step runner's Lambda invocations and
	// their duration, each rounded up to 1 ms as Lambda bills it; Messages
	// counts the messages they were handed.
	Invocations, Messages int
	Billed                time.Duration
	// Starts and StartBilled are the API's run-start requests and their
	// handler time, rounded likewise.
	Starts      int
	StartBilled time.Duration
	// Sweeps and SweepBilled are the sweeps made and their time.
	Sweeps      int
	SweepBilled time.Duration
	// LogBytes is what the API and the engine logged as JSON at the info
	// level, as their Lambdas do.
	LogBytes int64
	Handoffs []time.Duration // sorted
	// Lags are the commit lags, sorted: from each committed attempt's end
	// to its commit landing.
	Lags []time.Duration
	// IDs labels the identifiers the pass made, for hot-key reports (see
	// generalise): each run's and order's, and each workflow's.
	IDs map[string]idLabel
	// Err says why the pass did not finish (time-out, a run that did not
	// complete, an order effect not applied exactly once); the other
	// fields hold what was measured until then.
	Err error
}

// per divides by the committed steps.
func (r result) per(x float64) float64 {
	if r.Committed == 0 {
		return 0
	}
	return x / float64(r.Committed)
}

// sweepShare scales the sweeper's cost from the sweeps made to the sweeps
// the deployed schedule would make while the pass ran.
func (r result) sweepShare(every time.Duration) float64 {
	if r.Sweeps == 0 {
		return 0
	}
	return r.Elapsed.Seconds() / every.Seconds() / float64(r.Sweeps)
}

// capacity returns write and read units per committed step: run creation,
// the steps, and the sweeper's share.
func (r result) capacity(every time.Duration) (wu, ru float64) {
	k := r.sweepShare(every)
	return r.per(r.API.WU + r.Engine.WU + k*r.Sweep.WU), r.per(r.API.RU + r.Engine.RU + k*r.Sweep.RU)
}

type byteCounter struct{ n atomic.Int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

type countingTask struct {
	engine.Task
	n *atomic.Int64
}

func (c countingTask) Run(ctx context.Context, in engine.TaskInput) error {
	c.n.Add(1)
	return c.Task.Run(ctx, in)
}

// progress counts commits and wakes whoever waits for a count.
type progress struct {
	mu      sync.Mutex
	n       int
	waiters map[int][]chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	for _, ch := range p.waiters[p.n] {
		close(ch)
	}
	delete(p.waiters, p.n)
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// reached returns a channel closed once n commits were counted.
func (p *progress) reached(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if p.n >= n {
		close(ch)
		return ch
	}
	if p.waiters == nil {
		p.waiters = map[int][]chan struct{}{}
	}
	p.waiters[n] = append(p.waiters[n], ch)
	return ch
}

// billed rounds a duration up to the millisecond, as Lambda bills it.
func billed(d time.Duration) time.Duration {
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// runStart is one run to start: its workflow (id and name), and the
// request body.
type runStart struct {
	workflow, name, body string
	steps                int
	order                string
}

// scratch creates a table and a queue of their own for a pass, and
// returns a function that deletes them.
func (e env) scratch(ctx context.Context, pass string) (name, url string, cleanup func(), err error) {
	name = fmt.Sprintf("stepflow-bench-%s-%d", pass, time.Now().UnixNano())
	db, sq := awsclient.DynamoDB(e.cfg, e.dynEP), awsclient.SQS(e.cfg, e.sqsEP)
	if err := store.EnsureTable(ctx, db, name); err != nil {
		return "", "", nil, err
	}
	if err := store.EnsureTokenTable(ctx, db, name+"-tokens"); err != nil {
		return "", "", nil, err
	}
	dropTable := func() {
		for _, t := range []string{name, name + "-tokens"} {
			_, _ = db.DeleteTable(context.WithoutCancel(ctx), &dynamodb.DeleteTableInput{TableName: aws.String(t)})
		}
	}
	if url, err = queue.EnsureQueue(ctx, sq, name, queue.Settings{VisibilityTimeout: 30 * time.Second}); err != nil {
		dropTable()
		return "", "", nil, err
	}
	return name, url, func() {
		dropTable()
		_, _ = sq.DeleteQueue(context.WithoutCancel(ctx), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	}, nil
}

// rig is a pass's stack: the API, the engine and the sweeper, each with
// its own meter and clients so that run creation, steps and sweeps are
// counted apart, and the counters the pass reads at the end.
type rig struct {
	api, eng, sweep part
	plain           *store.Store
	url             string
	handler         http.Handler
	cred            string
	caller          string // the id of the token cred is a secret of
	engine          *engine.Engine
	policy          retry.Policy
	logs            byteCounter
	logger          *slog.Logger

	prog                                        progress
	tasks, invocations, messages, billed, start atomic.Int64

	mu       sync.Mutex
	handoffs []time.Duration
	lags     []time.Duration // see result.Lags
	runIDs   []string
}

// part is one component's meter and clients.
type part struct {
	meter *meter.Meter
	db    *dynamodb.Client
	store *store.Store
	sqs   *sqs.Client
	queue *queue.SQS
}

// build assembles the stack of a pass on the table name and queue url.
func (e env) build(ctx context.Context, p pass, name, url string) (*rig, error) {
	db := awsclient.DynamoDB(e.cfg, e.dynEP)
	schema, err := meter.Describe(ctx, db, name)
	if err != nil {
		return nil, err
	}
	var reader meter.Reader
	if p.metered {
		reader = db
	}
	component := func() part {
		m := meter.New(schema, reader)
		cfg := e.cfg.Copy()
		m.Attach(&cfg)
		addLatency(&cfg, p.latency)
		c, d := awsclient.SQS(cfg, e.sqsEP), awsclient.DynamoDB(cfg, e.dynEP)
		return part{m, d, store.New(d, name, store.WithShards(e.shards)), c, &queue.SQS{Client: c, URL: url}}
	}
	r := &rig{api: component(), eng: component(), sweep: component(), plain: store.New(db, name, store.WithShards(e.shards)), url: url,
		policy: retry.Default(func() float64 { return 0.5 })}
	r.logger = slog.New(slog.NewJSONHandler(&r.logs, nil))

	tok, cred, err := auth.New(id.NewGenerator(nil, nil), "bench", auth.Operator, time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := store.NewTokens(db, name+"-tokens").PutTokenIfAbsent(ctx, tok); err != nil {
		return nil, err
	}
	r.cred, r.caller = cred, tok.ID
	// The API as deployed: it authenticates every request and counts run
	// starts per caller (a cap that is never reached here).
	r.handler = api.New(api.Config{
		Store: r.api.store, Starter: engine.Starter{Queue: r.api.queue}, Logger: r.logger,
		Auth: auth.Authenticator{Tokens: store.NewTokens(r.api.db, name+"-tokens")}, Limiter: &ratelimit.Blocks{Counter: r.api.store}, RunsPerMinute: math.MaxInt32,
	})
	r.engine, err = engine.New(engine.Config{
		Store: r.eng.store, Queue: r.eng.queue, Task: countingTask{engine.Simulated{Rand: func() float64 { return 0.5 }}, &r.tasks},
		Retry: r.policy, Logger: r.logger, InlineBudget: p.inlineBudget, Hop: p.hop,
		HTTP: httpstep.New(httpstep.LocalPolicy()),
		OnStart: func(_ engine.TaskInput, m queue.Message, at time.Time) {
			if m.StepIndex > 0 && m.Attempt == 0 {
				r.mu.Lock()
				r.handoffs = append(r.handoffs, at.Sub(m.SentAt))
				r.mu.Unlock()
			}
		},
		OnCommit: func(_ string, _ int, ended, landed time.Time) {
			r.mu.Lock()
			r.lags = append(r.lags, landed.Sub(ended))
			r.mu.Unlock()
			r.prog.add()
		},
	})
	return r, err
}

// handle is the step runner's Lambda handler, timed as Lambda bills it.
func (r *rig) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	t := time.Now()
	defer func() {
		r.invocations.Add(1)
		r.messages.Add(int64(len(ev.Records)))
		r.billed.Add(int64(billed(time.Since(t))))
	}()
	return r.engine.HandleSQS(ctx, ev)
}

// startRun starts a run through the API, timed likewise.
func (r *rig) startRun(s runStart) error {
	req := httptest.NewRequest(http.MethodPost, "/workflows/"+s.workflow+"/runs", strings.NewReader(s.body))
	req.Header.Set("Authorization", "Bearer "+r.cred)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	t := time.Now()
	r.handler.ServeHTTP(rec, req)
	r.start.Add(int64(billed(time.Since(t))))
	if rec.Code != http.StatusAccepted {
		return fmt.Errorf("start a run: %d %s", rec.Code, rec.Body)
	}
	var run struct{ ID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil {
		return fmt.Errorf("decode a started run: %w", err)
	}
	r.mu.Lock()
	r.runIDs = append(r.runIDs, run.ID)
	r.mu.Unlock()
	return nil
}

// sweepUntil runs the sweeper once half of steps have committed, then at
// the deployed interval until stop is closed, and returns the sweeps made
// and their billed time.
func (r *rig) sweepUntil(ctx context.Context, steps int, every time.Duration, stop <-chan struct{}) (n int, took time.Duration) {
	sw := &sweeper.Sweeper{Store: r.sweep.store, Queue: r.sweep.queue, Grace: time.Minute}
	half := r.prog.reached((steps + 1) / 2)
	select {
	case <-half:
	case <-stop:
		// A pass that ended before this goroutine looked has both
		// ready, and select picks either: it still gets its sweep.
		select {
		case <-half:
		default:
			return 0, 0
		}
	}
	for {
		t := time.Now()
		if _, err := sw.Sweep(ctx); err != nil {
			r.logger.Warn("sweep failed", "error", err)
		}
		n++
		took += billed(time.Since(t))
		select {
		case <-time.After(every):
		case <-stop:
			return n, took
		}
	}
}

// run performs the pass. It returns an error only when the pass could not
// be set up; what happened during it is in the result.
func (e env) run(ctx context.Context, p pass) (result, error) {
	var res result
	name, url, cleanup, err := e.scratch(ctx, p.name)
	if err != nil {
		return res, err
	}
	defer cleanup()
	r, err := e.build(ctx, p, name, url)
	if err != nil {
		return res, err
	}
	starts, err := prepare(ctx, r.plain, p.loads)
	if err != nil {
		return res, err
	}
	for _, s := range starts {
		res.Runs++
		res.Steps += s.steps
	}

	pctx, stopPoller := context.WithCancel(ctx)
	defer stopPoller()
	var wg sync.WaitGroup
	runner := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			poller.Run(pctx, poller.Config{Client: r.eng.sqs, QueueURL: url, Handler: r.handle, BatchSize: p.batchSize, Concurrency: p.pollers})
		}()
	}
	deadline := time.After(p.timeout)
	var began time.Time
	if p.oneAtATime {
		runner()
		began = time.Now()
		res.Err = startOneAtATime(starts, r.startRun, &r.prog, deadline, p.timeout)
	} else {
		if err := startAll(starts, r.startRun); err != nil {
			return res, err
		}
		began = time.Now()
		runner()
	}
	stopSweeps := make(chan struct{})
	if p.sweep {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Sweeps, res.SweepBilled = r.sweepUntil(ctx, res.Steps, e.sweepEvery, stopSweeps)
		}()
	}
	if res.Err == nil && !p.oneAtATime {
		select {
		case <-r.prog.reached(res.Steps):
		case <-deadline:
			res.Err = fmt.Errorf("timed out after %v", p.timeout)
		}
	}
	res.Elapsed = time.Since(began)
	close(stopSweeps)
	stopPoller()
	wg.Wait()

	res.Committed, res.TaskRuns = r.prog.count(), int(r.tasks.Load())
	res.API, res.Engine, res.Sweep = r.api.meter.Snapshot(), r.eng.meter.Snapshot(), r.sweep.meter.Snapshot()
	res.Invocations, res.Messages, res.Billed = int(r.invocations.Load()), int(r.messages.Load()), time.Duration(r.billed.Load())
	res.Starts, res.StartBilled = len(r.runIDs), time.Duration(r.start.Load())
	res.LogBytes = r.logs.n.Load()
	res.IDs = labels(starts, r.runIDs, r.caller)
	slices.Sort(r.handoffs)
	res.Handoffs = r.handoffs
	slices.Sort(r.lags)
	res.Lags = r.lags
	if n := res.API.Errors + res.Engine.Errors + res.Sweep.Errors; n > 0 && res.Err == nil {
		res.Err = fmt.Errorf("the meter could not read %d item images: capacity incomplete", n)
	}
	if res.Err == nil {
		res.Err = check(ctx, r.plain, r.runIDs, starts)
	}
	return res, nil
}

// prepare stores the workflows and orders (through an API without
// metering: they are not part of what a run costs) and lists the runs to
// start, the loads interleaved.
func prepare(ctx context.Context, plain *store.Store, loads []load) ([]runStart, error) {
	setup := api.New(api.Config{Store: plain})
	post := func(path, body string) (string, error) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		setup.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			return "", fmt.Errorf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
		var v struct{ ID string }
		err := json.Unmarshal(rec.Body.Bytes(), &v)
		return v.ID, err
	}
	var perLoad [][]runStart
	for _, l := range loads {
		wf, err := post("/workflows", l.def.json())
		if err != nil {
			return nil, err
		}
		var rs []runStart
		for range l.runs {
			s := runStart{workflow: wf, name: l.def.Name, steps: len(l.def.Steps)}
			if l.orders {
				if s.order, err = post("/orders", `{"amount": 10}`); err != nil {
					return nil, err
				}
				s.body = `{"order_id":"` + s.order + `"}`
			}
			rs = append(rs, s)
		}
		perLoad = append(perLoad, rs)
	}
	var starts []runStart
	for i := 0; ; i++ {
		added := false
		for _, rs := range perLoad {
			if i < len(rs) {
				starts = append(starts, rs[i])
				added = true
			}
		}
		if !added {
			return starts, nil
		}
	}
}

// startOneAtATime starts each run once the previous one's steps have all
// committed.
func startOneAtATime(starts []runStart, start func(runStart) error, prog *progress, deadline <-chan time.Time, timeout time.Duration) error {
	target := 0
	for _, s := range starts {
		if err := start(s); err != nil {
			return err
		}
		target += s.steps
		select {
		case <-prog.reached(target):
		case <-deadline:
			return fmt.Errorf("timed out after %v", timeout)
		}
	}
	return nil
}

// startAll starts every run through the API, eight at a time.
func startAll(starts []runStart, start func(runStart) error) error {
	work := make(chan runStart)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := start(s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for _, s := range starts {
		select {
		case work <- s:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return errors.Join(err, <-errs)
}

// check requires every run to have completed and every order to have
// reached shipped with exactly one history entry per transition.
func check(ctx context.Context, plain *store.Store, runIDs []string, starts []runStart) error {
	for _, id := range runIDs {
		d, err := plain.GetRun(ctx, id)
		if err != nil {
			return err
		}
		if d.Status != status.RunCompleted {
			return fmt.Errorf("run %s ended %s", id, d.Status)
		}
	}
	for _, s := range starts {
		if s.order == "" {
			continue
		}
		o, err := plain.GetOrder(ctx, s.order)
		if err != nil {
			return err
		}
		if o.Status != status.OrderShipped || len(o.History) != 5 {
			return fmt.Errorf("order %s: %s with %d history entries", s.order, o.Status, len(o.History))
		}
	}
	return nil
}
