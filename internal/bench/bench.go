// Package bench measures what the step engine costs and how fast it runs,
// on a local endpoint (the embedded kumo, or DynamoDB and SQS endpoints
// from the standard variables).
//
// Everything a run costs is metered with package meter, which applies
// AWS's published billing rules to every request: starting the run through
// the API (authenticated and rate-counted, as deployed), every step and the
// run's completion in the step runner, and the sweeper at the deployed
// interval. The cost per million steps is reported for two arrival
// patterns, flooded (batches of up to ten from a backlog) and trickle (one
// message per invocation), at zero step duration; the cost of each added
// second of step duration is measured apart, at the step runner's deployed
// memory. Throughput is compared with a floor (bare SQS plus one 3-item
// transaction per step) both CPU-bound and with a per-call latency, and a
// scale section runs a 100-step chain, 100 parallel steps and a 98-wide
// fan-in, beside 4- and 100-step chains of steps just over the inline
// budget (each step from a message of its own). Two more passes measure the
// mix with every step just over the inline budget, and how long an
// outcome waits for its commit when a 0.2 s and a 5 s step start together.
// The metered flooded pass also ranks the partition keys runs share by the
// write units they take (see HotKeys), for stores whose index keys are
// written across Config.Shards shards.
//
// Metering reads item images through extra calls, so capacity is measured
// in passes of its own: times, invocations and requests come from passes
// without the capacity meter.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sivchari/kumo"

	"stepflow/internal/awsclient"
	"stepflow/internal/deploy"
	"stepflow/internal/meter"
	"stepflow/internal/store"
)

// Config configures a benchmark.
type Config struct {
	// Diamonds and Orders are the runs of each pass of the main workload.
	Diamonds, Orders int
	// Concurrency is the number of batches in flight in flooded passes;
	// trickle passes run twice as many pollers of one message each.
	Concurrency int
	// Latency is the delay added to every AWS call in the latency-bound
	// passes (default 5 ms).
	Latency time.Duration
	// StepSeconds is the step duration of the pass that measures what a
	// second of step duration costs (default 0.5).
	StepSeconds float64
	// HandoffRuns are started one at a time to measure hand-off latency
	// (default 20).
	HandoffRuns int
	// LagRuns are runs of a 0.2 s and a 5 s step started together, to
	// measure how long an outcome waits for its commit (default 20).
	LagRuns int
	// ShapeSteps is the size of the scale section's workflows (default
	// 100; negative: no scale section). ShapeTimeout bounds each of its
	// passes (default 60 s).
	ShapeSteps   int
	ShapeTimeout time.Duration
	// Shards is the index shard count of every store the bench builds
	// (store.WithShards; default store.DefaultShards, the deployed one).
	Shards int
	// SweepInterval is the sweeper's schedule (default the deployed one).
	SweepInterval time.Duration
	// Timeout bounds each pass of the main workload (default 10 minutes).
	Timeout time.Duration
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Latency == 0 {
		c.Latency = 5 * time.Millisecond
	}
	if c.StepSeconds <= 0 {
		c.StepSeconds = 0.5
	}
	if c.HandoffRuns <= 0 {
		c.HandoffRuns = 20
	}
	if c.LagRuns <= 0 {
		c.LagRuns = 20
	}
	if c.ShapeSteps == 0 {
		c.ShapeSteps = 100
	}
	if c.ShapeTimeout <= 0 {
		c.ShapeTimeout = time.Minute
	}
	if c.Shards <= 0 {
		c.Shards = store.DefaultShards
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = deploy.SweepInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run runs the benchmark. It fails if a pass of the main workload fails;
// a failing scale shape is reported in its ShapeResult.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	rep := Report{Config: cfg}
	dynEP, sqsEP := awsclient.EnvEndpoint("DYNAMODB"), awsclient.EnvEndpoint("SQS")
	rep.Endpoint = "DynamoDB " + dynEP + ", SQS " + sqsEP
	if dynEP == "" || sqsEP == "" {
		emu := kumo.NewServer()
		defer emu.Close()
		dynEP, sqsEP = cmpOr(dynEP, emu.URL), cmpOr(sqsEP, emu.URL)
		rep.Endpoint = "DynamoDB " + dynEP + ", SQS " + sqsEP + " (embedded kumo for unset endpoints)"
	}
	awsCfg, err := awsclient.Load(ctx, true)
	if err != nil {
		return rep, err
	}
	e := env{cfg: awsCfg, dynEP: dynEP, sqsEP: sqsEP, sweepEvery: cfg.SweepInterval, shards: cfg.Shards}
	log := cfg.Logger

	work := mix(cfg.Diamonds, cfg.Orders, 0)
	flooded := pass{name: "flooded", loads: work, batchSize: 10, pollers: cfg.Concurrency, timeout: cfg.Timeout}
	trickle := pass{name: "trickle", loads: work, batchSize: 1, pollers: 2 * cfg.Concurrency, timeout: cfg.Timeout}
	metered := func(p pass) pass {
		p.name, p.metered, p.sweep = "metered-"+p.name, true, true
		return p
	}
	bound := func(p pass) pass {
		p.name, p.latency = "latency-"+p.name, cfg.Latency
		return p
	}
	main := func(p pass) (result, error) {
		log.Info("bench pass", "pass", p.name)
		r, err := e.run(ctx, p)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			return r, fmt.Errorf("%s pass: %w", p.name, err)
		}
		return r, nil
	}

	capFlooded, err := main(metered(flooded))
	if err != nil {
		return rep, err
	}
	capTrickle, err := main(metered(trickle))
	if err != nil {
		return rep, err
	}
	// Throughput is compared engine then floor, twice each way, keeping
	// the best of each: the machine is shared, and the best pass is the
	// one least slowed by others.
	cpu, floorCPU, err := e.compare(ctx, main, flooded, cfg)
	if err != nil {
		return rep, err
	}
	boundFlooded, floorBound, err := e.compare(ctx, main, bound(flooded), cfg)
	if err != nil {
		return rep, err
	}
	boundTrickle, err := main(bound(trickle))
	if err != nil {
		return rep, err
	}
	long := bound(trickle)
	long.name = "step-duration"
	long.loads = mix(min(cfg.Diamonds, 10), min(cfg.Orders, 10), cfg.StepSeconds)
	withDuration, err := main(long)
	if err != nil {
		return rep, err
	}
	// The mix again with every step just over the inline budget: each
	// step runs from a message of its own.
	longLoads := mix(cfg.Diamonds, cfg.Orders, longSeconds)
	longMetered := metered(trickle)
	longMetered.name, longMetered.loads, longMetered.inlineBudget = "metered-long-steps", longLoads, longBudget
	capLong, err := main(longMetered)
	if err != nil {
		return rep, err
	}
	longTimed := bound(trickle)
	longTimed.name, longTimed.loads, longTimed.inlineBudget = "latency-long-steps", longLoads, longBudget
	boundLong, err := main(longTimed)
	if err != nil {
		return rep, err
	}
	lags, err := main(pass{name: "commit-lag", loads: []load{{def: siblings(), runs: cfg.LagRuns}}, batchSize: 10, pollers: cfg.Concurrency, timeout: cfg.Timeout})
	if err != nil {
		return rep, err
	}
	half := cfg.HandoffRuns / 2
	handoff, err := main(pass{name: "handoff", loads: mix(half, cfg.HandoffRuns-half, 0), batchSize: 10, pollers: cfg.Concurrency, oneAtATime: true, timeout: cfg.Timeout})
	if err != nil {
		return rep, err
	}
	rep.Steps = cpu.Steps
	rep.Flooded = pattern("flooded", capFlooded, boundFlooded, e.sweepEvery, 0)
	rep.Trickle = pattern("trickle", capTrickle, boundTrickle, e.sweepEvery, 0)
	rep.Long = pattern("long steps", capLong, boundLong, e.sweepEvery, longSeconds)
	rep.CommitLagP50, rep.CommitLagP99 = percentile(lags.Lags, 0.50), percentile(lags.Lags, 0.99)
	rep.CommitLagMax = lags.Lags[len(lags.Lags)-1]
	rep.StepSecond = stepSecond(boundTrickle, withDuration, cfg.StepSeconds)
	rep.Accounting = accounting(capFlooded, e.sweepEvery)
	rep.Sweeps = sweepSummary(capFlooded, e.sweepEvery)
	rep.HotKeys = hotKeys(capFlooded, e.sweepEvery, topKeys)
	rep.RequestsPerStep = requestsPerStep(cpu)
	rep.CPU = Throughput{Engine: rate(cpu), Floor: floorCPU}
	rep.Bound = Throughput{Latency: cfg.Latency, Engine: rate(boundFlooded), Floor: floorBound}
	rep.HandoffP50, rep.HandoffP99 = percentile(handoff.Handoffs, 0.50), percentile(handoff.Handoffs, 0.99)
	rep.Alternatives = comparison()

	if cfg.ShapeSteps > 0 {
		for _, s := range append(shapes(cfg.ShapeSteps), longChains(cfg.ShapeSteps)...) {
			rep.Shapes = append(rep.Shapes, e.shape(ctx, log, cfg, s))
		}
	}
	// Step types, against a local service that answers at once.
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"n":1,"id":"ch_0123456789"}`)
	}))
	defer svc.Close()
	for _, s := range typeShapes(svc.URL + "/charges") {
		rep.Types = append(rep.Types, e.shape(ctx, log, cfg, s))
	}
	return rep, nil
}

// compare runs a timed engine pass and the floor at the same latency,
// twice, and returns the faster engine pass and the faster floor.
func (e env) compare(ctx context.Context, main func(pass) (result, error), p pass, cfg Config) (result, float64, error) {
	var best result
	var floor float64
	for range 2 {
		r, err := main(p)
		if err != nil {
			return best, 0, err
		}
		if best.Elapsed == 0 || rate(r) > rate(best) {
			best = r
		}
		cfg.Logger.Info("bench pass", "pass", "floor", "latency", p.latency)
		f, err := e.floor(ctx, r.Steps, p.pollers, p.latency, cfg.Timeout)
		if err != nil {
			return best, 0, err
		}
		floor = max(floor, f)
	}
	return best, floor, nil
}

// shape runs one scale shape twice, timed and metered, each within the
// shape time-out, and reports what happened, failures included.
func (e env) shape(ctx context.Context, log *slog.Logger, cfg Config, s shape) ShapeResult {
	p := pass{name: s.Name, loads: []load{{def: s.def, runs: 1}}, batchSize: 10, pollers: cfg.Concurrency, timeout: cfg.ShapeTimeout,
		inlineBudget: s.inlineBudget, hop: s.hop}
	out := ShapeResult{Name: s.Name, Steps: len(s.def.Steps)}
	log.Info("bench pass", "pass", p.name)
	timed, err := e.run(ctx, p)
	if err == nil {
		err = timed.Err
	}
	out.Committed, out.TaskRuns, out.Elapsed = timed.Committed, timed.TaskRuns, timed.Elapsed
	if timed.Committed > 0 {
		out.StepsPerSecond = float64(timed.Committed) / timed.Elapsed.Seconds()
	}
	if err != nil {
		out.Err = fmt.Sprintf("timed pass: %v (%d of %d steps committed)", err, timed.Committed, out.Steps)
	}
	p.name, p.metered, p.sweep = "metered-"+s.Name, true, true
	log.Info("bench pass", "pass", p.name)
	m, err := e.run(ctx, p)
	if err == nil {
		err = m.Err
	}
	out.MeteredCommitted, out.MeteredTaskRuns = m.Committed, m.TaskRuns
	out.WU, out.RU = m.capacity(e.sweepEvery)
	out.FailedWU = m.per(failedWU(m.API.Plus(m.Engine)))
	if err != nil {
		out.Err = joinNonEmpty(out.Err, fmt.Sprintf("metered pass: %v (%d of %d steps committed)", err, m.Committed, out.Steps))
	}
	return out
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func rate(r result) float64 { return float64(r.Committed) / r.Elapsed.Seconds() }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// failedWU sums what writes whose condition failed cost.
func failedWU(s meter.Snapshot) float64 {
	n := 0.0
	for _, l := range s.Lines {
		n += l.FailedWU
	}
	return n
}
