package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"stepflow/internal/deploy"
	"stepflow/internal/meter"
)

// Report is what a benchmark measured. Costs are in US dollars per million
// steps unless named otherwise; capacity in units per step.
type Report struct {
	Endpoint string
	Config   Config
	// Steps is the number of steps of each pass of the main workload.
	Steps int
	// Flooded and Trickle are the zero-duration cost of a step under the
	// two arrival patterns; Long the cost of a step just over the inline
	// budget (each from a message of its own, one per invocation), its
	// duration's own cost left out (see StepSecond).
	Flooded, Trickle, Long Pattern
	// CommitLag*: from an attempt's end to its commit landing, over runs of
	// a 0.2 s and a 5 s step started together.
	CommitLagP50, CommitLagP99, CommitLagMax time.Duration
	StepSecond                               StepSecond
	// Accounting breaks the flooded pattern's capacity down by component,
	// operation and item kind.
	Accounting      []AccountLine
	Sweeps          SweepSummary
	RequestsPerStep []Count
	CPU, Bound      Throughput
	// HandoffP50 and HandoffP99: from a parent's commit to its child's
	// start, runs started one at a time.
	HandoffP50, HandoffP99 time.Duration
	Shapes                 []ShapeResult
	// Types are the step-type shapes (see typeShapes).
	Types        []ShapeResult
	Alternatives []Alternative
	// HotKeys is how the metered flooded pass's writes spread over
	// partition keys.
	HotKeys HotKeys
}

// Pattern is what a step costs under one arrival pattern.
type Pattern struct {
	Name string
	// StepsPerInvocation is how many steps one step-runner invocation
	// handled on average, MessagesPerInvocation how many messages it was
	// handed (a step's dependents may run in its parent's invocation).
	StepsPerInvocation, MessagesPerInvocation float64
	WU, RU                                    float64
	Costs                                     []Cost
	Total                                     float64
}

// Cost is one line of a cost breakdown, per million steps: the quantity
// measured per step that it prices, and how.
type Cost struct {
	Item     string  `json:"item"`
	USD      float64 `json:"usd"`
	Quantity string  `json:"quantity"`
	Note     string  `json:"note,omitempty"`
}

// StepSecond is what each added second of step duration costs: the step
// runner's billed time grows with it.
type StepSecond struct {
	// Seconds is the step duration of the pass that measured it;
	// BilledPerSecond the billed step-runner seconds each second of
	// duration added per step.
	Seconds, BilledPerSecond float64
	USDPerMillion            float64
}

// AccountLine is one operation on one kind of item, per step.
type AccountLine struct {
	Component string  `json:"component"`
	Op        string  `json:"operation"`
	Kind      string  `json:"item"`
	Items     float64 `json:"items_per_step"`
	WU        float64 `json:"wu_per_step"`
	RU        float64 `json:"ru_per_step"`
	FailedWU  float64 `json:"failed_wu_per_step"`
}

// SweepSummary says how the sweeper's share was counted.
type SweepSummary struct {
	// Sweeps were made while the metered flooded pass ran for Elapsed;
	// the schedule would have made Elapsed/Interval of them.
	Sweeps                 int
	Elapsed, Interval      time.Duration
	WUPerSweep, RUPerSweep float64
}

// Count is a number of requests per step.
type Count struct {
	Name    string
	PerStep float64
}

// Throughput compares the engine with the floor at one per-call latency.
type Throughput struct {
	Latency       time.Duration
	Engine, Floor float64 // steps per second
}

// Ratio is the engine's throughput over the floor's.
func (t Throughput) Ratio() float64 { return t.Engine / t.Floor }

// ShapeResult is one scale shape: a timed pass and a metered one.
type ShapeResult struct {
	Name                string
	Steps               int
	Committed, TaskRuns int
	Elapsed             time.Duration
	StepsPerSecond      float64
	// The metered pass: what it committed, and its capacity per committed
	// step (FailedWU the part spent on failed conditions).
	MeteredCommitted, MeteredTaskRuns int
	WU, RU, FailedWU                  float64
	Err                               string
}

func gb(mb float64) float64 { return mb / 1024 }

// lambdaUSD is the cost per million steps of sec billed seconds per step at
// mb MB.
func lambdaUSD(sec, mb float64) float64 { return sec * gb(mb) * PricePerLambdaGBSecondARM * 1e6 }

// pattern prices a step from a metered pass (capacity, sweeps, logs) and a
// timed latency-bound pass (requests, invocations, billed time). The step
// runner's billed time leaves out stepSeconds per step, the steps' own
// duration, which StepSecond prices.
func pattern(name string, c, t result, every time.Duration, stepSeconds float64) Pattern {
	wu, ru := c.capacity(every)
	share := c.sweepShare(every)
	sqsReq := t.per(float64(t.API.SQSRequests(false)+t.Engine.SQSRequests(false))) + c.per(share*float64(c.Sweep.SQSRequests(false)))
	inv := t.per(float64(t.Invocations))
	runner := max(0, t.per(t.Billed.Seconds())-stepSeconds)
	starts := t.per(float64(t.Starts))
	startMs := 0.0
	if t.Starts > 0 {
		startMs = t.StartBilled.Seconds() * 1000 / float64(t.Starts)
	}
	sweepInv, sweepSec := c.per(share*float64(c.Sweeps)), c.per(share*c.SweepBilled.Seconds())
	logBytes := c.per(float64(c.LogBytes))
	msgs := 0.0
	if t.Invocations > 0 {
		msgs = float64(t.Messages) / float64(t.Invocations)
	}
	p := Pattern{Name: name, StepsPerInvocation: 1 / inv, MessagesPerInvocation: msgs, WU: wu, RU: ru, Costs: []Cost{
		{"DynamoDB writes", wu * PricePerMillionWriteUnits, fmt.Sprintf("%.2f WU", wu), ""},
		{"DynamoDB reads", ru * PricePerMillionReadUnits, fmt.Sprintf("%.2f RU", ru), ""},
		{"SQS requests", sqsReq * PricePerMillionSQSRequests, fmt.Sprintf("%.2f requests", sqsReq), "billed requests; receives that returned nothing left out"},
		{"Lambda requests", inv * PricePerMillionLambdaRequests, fmt.Sprintf("%.2f invocations", inv), "of the step runner"},
		{"Lambda duration", lambdaUSD(runner, deploy.StepRunnerMemoryMB), fmt.Sprintf("%.1f ms", runner*1000),
			fmt.Sprintf("step runner's billed time at %d MB, from the latency-bound pass, less the steps' own duration", deploy.StepRunnerMemoryMB)},
		{"Run start", starts*(PricePerMillionHTTPAPICalls+PricePerMillionLambdaRequests) + lambdaUSD(t.per(t.StartBilled.Seconds()), deploy.APIMemoryMB),
			fmt.Sprintf("%.2f calls, %.1f ms each", starts, startMs),
			fmt.Sprintf("POST /workflows/{id}/runs: API Gateway, an API Lambda request and its time at %d MB; authorizer results cached", deploy.APIMemoryMB)},
		{"Sweeper Lambda", sweepInv*PricePerMillionLambdaRequests + lambdaUSD(sweepSec, deploy.SweeperMemoryMB), fmt.Sprintf("%.1g invocations", sweepInv),
			fmt.Sprintf("one every %v, shared by the steps run meanwhile", every)},
		{"CloudWatch Logs", logBytes / (1 << 30) * PricePerGBLogsIngested * 1e6, fmt.Sprintf("%.0f bytes", logBytes),
			"JSON logs of the API and the step runner; Lambda's platform lines not included"},
	}}
	for _, c := range p.Costs {
		p.Total += c.USD
	}
	return p
}

// stepSecond measures what each second of step duration adds: base and
// long are the same trickle pass with zero and seconds step durations.
func stepSecond(base, long result, seconds float64) StepSecond {
	k := (long.per(long.Billed.Seconds()) - base.per(base.Billed.Seconds())) / seconds
	return StepSecond{Seconds: seconds, BilledPerSecond: k, USDPerMillion: lambdaUSD(k, deploy.StepRunnerMemoryMB)}
}

// accounting lists a metered pass's capacity per step, the sweeper's at its
// scheduled share.
func accounting(c result, every time.Duration) []AccountLine {
	var out []AccountLine
	add := func(component string, s meter.Snapshot, k float64) {
		for _, l := range s.Lines {
			out = append(out, AccountLine{Component: component, Op: l.Op, Kind: l.Kind,
				Items: c.per(k * float64(l.Items)), WU: c.per(k * l.WU), RU: c.per(k * l.RU), FailedWU: c.per(k * l.FailedWU)})
		}
	}
	add("run start", c.API, 1)
	add("step runner", c.Engine, 1)
	add("sweeper", c.Sweep, c.sweepShare(every))
	return out
}

func sweepSummary(c result, every time.Duration) SweepSummary {
	s := SweepSummary{Sweeps: c.Sweeps, Elapsed: c.Elapsed, Interval: every}
	if c.Sweeps > 0 {
		s.WUPerSweep, s.RUPerSweep = c.Sweep.WU/float64(c.Sweeps), c.Sweep.RU/float64(c.Sweeps)
	}
	return s
}

func requestsPerStep(r result) []Count {
	all := r.API.Plus(r.Engine).Requests
	var out []Count
	for _, name := range slices.Sorted(maps.Keys(all)) {
		out = append(out, Count{name, r.per(float64(all[name]))})
	}
	return out
}

// Print writes the report for people.
func (r Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "Stepflow bench on %s\n", r.Endpoint)
	fmt.Fprintf(w, "Workload per pass: %d diamonds + %d order workflows, %d zero-duration steps. Step runner %d MB arm64; sweeper every %v; index keys in %d shards.\n\n",
		c.Diamonds, c.Orders, r.Steps, deploy.StepRunnerMemoryMB, c.SweepInterval, c.Shards)

	fmt.Fprintln(w, "Cost per million steps (us-east-1 on-demand list prices)")
	fmt.Fprintf(w, "  %-16s %9s %9s  %-30s %s\n", "", "flooded", "trickle", "per step: flooded / trickle", "")
	for i, fl := range r.Flooded.Costs {
		tr := r.Trickle.Costs[i]
		q := fl.Quantity
		if tr.Quantity != fl.Quantity {
			q += " / " + tr.Quantity
		}
		fmt.Fprintf(w, "  %-16s %9s %9s  %-30s %s\n", fl.Item, usd(fl.USD), usd(tr.USD), q, fl.Note)
	}
	fmt.Fprintf(w, "  %-16s %9s %9s\n", "total", usd(r.Flooded.Total), usd(r.Trickle.Total))
	fmt.Fprintf(w, "  flooded: batches of up to 10 from a backlog (%.1f steps per invocation measured); trickle: one message per invocation (%.1f).\n",
		r.Flooded.StepsPerInvocation, r.Trickle.StepsPerInvocation)
	fmt.Fprintf(w, "  Each added second of step duration: %s per million steps (%.2f billed step-runner seconds per step-second, measured with %g s steps, one per invocation;\n"+
		"  steps sharing a flooded batch share its billed time, down to a tenth of that).\n\n",
		usd(r.StepSecond.USDPerMillion), r.StepSecond.BilledPerSecond, r.StepSecond.Seconds)

	fmt.Fprintln(w, "Per-step accounting, flooded (DynamoDB on-demand rules applied to every request; see internal/meter)")
	fmt.Fprintf(w, "  %-12s %-19s %-17s %7s %7s %7s %9s\n", "component", "operation", "item", "items", "WU", "RU", "failed WU")
	var wu, ru float64
	for _, l := range r.Accounting {
		fmt.Fprintf(w, "  %-12s %-19s %-17s %7.3f %7.3f %7.3f %9.3f\n", l.Component, l.Op, l.Kind, l.Items, l.WU, l.RU, l.FailedWU)
		wu += l.WU
		ru += l.RU
	}
	fmt.Fprintf(w, "  %-50s %7s %7.3f %7.3f\n", "total", "", wu, ru)
	s := r.Sweeps
	fmt.Fprintf(w, "  The sweeper ran %d time(s) in the %.1f s pass (%.1f WU, %.1f RU a sweep); its lines are scaled to one sweep per %v.\n\n",
		s.Sweeps, s.Elapsed.Seconds(), s.WUPerSweep, s.RUPerSweep, s.Interval)

	r.printHotKeys(w)

	fmt.Fprintln(w, "AWS requests per step, flooded (API and step runner)")
	for _, n := range r.RequestsPerStep {
		fmt.Fprintf(w, "  %-32s %6.2f\n", n.Name, n.PerStep)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Throughput, flooded: engine/floor ratio (the floor is bare SQS plus one 3-item transaction per step)")
	fmt.Fprintf(w, "  CPU-bound          engine %7.1f steps/s, floor %7.1f, ratio %.2f\n", r.CPU.Engine, r.CPU.Floor, r.CPU.Ratio())
	fmt.Fprintf(w, "  latency-bound (%v) engine %7.1f steps/s, floor %7.1f, ratio %.2f\n", r.Bound.Latency, r.Bound.Engine, r.Bound.Floor, r.Bound.Ratio())
	fmt.Fprintf(w, "  hand-off latency, parent commit to child start, runs one at a time: p50 %v, p99 %v\n",
		r.HandoffP50.Round(100*time.Microsecond), r.HandoffP99.Round(100*time.Microsecond))
	fmt.Fprintf(w, "  commit lag, an attempt's end to its commit, a 0.2 s and a 5 s step started together: p50 %v, p99 %v, max %v\n\n",
		r.CommitLagP50.Round(100*time.Microsecond), r.CommitLagP99.Round(100*time.Microsecond), r.CommitLagMax.Round(100*time.Microsecond))

	fmt.Fprintf(w, "Steps just over the inline budget (each from a message of its own, one per invocation; their duration left out): %s per million steps\n",
		usd(r.Long.Total))
	for _, c := range r.Long.Costs {
		fmt.Fprintf(w, "  %-16s %9s  %s\n", c.Item, usd(c.USD), c.Quantity)
	}
	fmt.Fprintln(w)

	if len(r.Shapes) > 0 {
		fmt.Fprintln(w, "Scale: one run of each shape, zero-duration steps (a timed pass, then a metered one)")
		fmt.Fprintf(w, "  %-14s %9s %9s %9s %8s %8s %8s %10s\n", "shape", "committed", "task runs", "steps/s", "ms/step", "WU/step", "RU/step", "failed WU")
		for _, sh := range r.Shapes {
			ms := 0.0
			if sh.Committed > 0 {
				ms = sh.Elapsed.Seconds() * 1000 / float64(sh.Committed)
			}
			fmt.Fprintf(w, "  %-14s %4d/%-4d %9d %9.1f %8.1f %8.2f %8.2f %10.2f\n", sh.Name, sh.Committed, sh.Steps, sh.TaskRuns, sh.StepsPerSecond, ms, sh.WU, sh.RU, sh.FailedWU)
			if sh.Err != "" {
				fmt.Fprintf(w, "    error: %s\n", sh.Err)
			}
		}
		if base, long, ok := r.chainReads(""); ok {
			fmt.Fprintf(w, "  reads per step of the longest chain over the 4-step chain's: %.2f\n", long/base)
		}
		if base, long, ok := r.chainReads("long-"); ok {
			fmt.Fprintf(w, "  the same, steps just over the inline budget (each from its own message): %.2f\n", long/base)
		}
		fmt.Fprintln(w)
	}

	if tc, ok := r.typeCosts(); ok {
		fmt.Fprintf(w, "Step types (one run each, metered; units per committed step)\n")
		for _, sh := range r.Types {
			fmt.Fprintf(w, "  %-22s %4d/%-4d WU %6.2f  RU %6.2f  %s\n", sh.Name, sh.MeteredCommitted, sh.Steps, sh.WU, sh.RU, sh.Err)
		}
		fmt.Fprintf(w, "  an http step (output stored, the previous output read) beside a task: %+.2f WU, %+.2f RU\n", tc.HTTPWU, tc.HTTPRU)
		fmt.Fprintf(w, "  a wait beside a task: %+.2f WU, %+.2f RU, and per message of its chain %+.2f WU, %+.2f RU\n", tc.WaitWU, tc.WaitRU, tc.HopWU, tc.HopRU)
		fmt.Fprintf(w, "  (a message every %v here, every 15 minutes deployed: a day's wait is 96 messages)\n\n", typeHop)
	}

	fmt.Fprintln(w, "Comparison, per million steps")
	fmt.Fprintf(w, "  %-36s %9s %14s\n", "", "0 s steps", "per step-second")
	fmt.Fprintf(w, "  %-36s %9s %14s  measured above, flooded\n", "Stepflow (this run)", usd(r.Flooded.Total), usd(r.StepSecond.USDPerMillion))
	fmt.Fprintf(w, "  %-36s %9s %14s  measured above, one message per invocation\n", "Stepflow, trickle", usd(r.Trickle.Total), usd(r.StepSecond.USDPerMillion))
	for _, a := range r.Alternatives {
		sec := usd(a.PerStepSecond)
		if a.PerStepSecond == 0 {
			sec = "your workers"
		}
		fmt.Fprintf(w, "  %-36s %9s %14s  %s\n", a.Name, usd(a.PerMillionSteps), sec, a.Assumptions)
	}
}

func (r Report) printHotKeys(w io.Writer) {
	h := r.HotKeys
	fmt.Fprintf(w, "Hot keys, flooded: write units per partition key over %d runs (a partition takes about %d WU/s on AWS)\n", h.Runs, PartitionWUPerSecond)
	fmt.Fprintf(w, "  %-44s %8s %7s %14s %9s\n", "key (ids generalised)", "WU/run", "share", "saturates at", "peak WU/s")
	for _, k := range h.Top {
		fmt.Fprintf(w, "  %-44s %8.3f %6.1f%% %9.0f runs/s %9.0f\n", k.Key, k.WUPerRun, 100*k.Share, k.SaturationRunsPerSecond, k.PeakWU)
	}
	if k := h.PerRun; k.Key != "" {
		fmt.Fprintf(w, "  A run's own keys take its writes alone, whatever the run rate; the busiest, %s, took %.0f WU (peak %.0f WU/s).\n", k.Key, k.WUPerRun, k.PeakWU)
	}
	fmt.Fprintf(w, "  Peaks are of the metered pass on this endpoint, not AWS rates; the run rate a key saturates at is %d WU/s over its WU per run.\n\n", PartitionWUPerSecond)
}

func usd(v float64) string { return fmt.Sprintf("$%.2f", v) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// chainReads returns the read units per step of the 4-step chain and of
// the longest chain measured, of the shapes named prefix+"chain-", when
// both were.
func (r Report) chainReads(prefix string) (base, long float64, ok bool) {
	steps := 0
	for _, s := range r.Shapes {
		if !strings.HasPrefix(s.Name, prefix+"chain-") || s.Err != "" || s.RU <= 0 {
			continue
		}
		if s.Steps == 4 {
			base = s.RU
		} else if s.Steps > steps {
			steps, long = s.Steps, s.RU
		}
	}
	return base, long, base > 0 && long > 0
}

// TypeCosts are the step types' own costs, in capacity units per step:
// an http step's beyond a task's, a wait's beyond a task's (without its
// chain's messages), and each message of a wait's chain.
type TypeCosts struct {
	HTTPWU, HTTPRU float64
	WaitWU, WaitRU float64
	HopWU, HopRU   float64
}

// typeCosts derives TypeCosts from the step-type shapes, when all were
// measured.
func (r Report) typeCosts() (TypeCosts, bool) {
	by := map[string]ShapeResult{}
	for _, s := range r.Types {
		if s.Err == "" && s.MeteredCommitted == s.Steps {
			by[s.Name] = s
		}
	}
	task1, ok1 := by["types-task-1"]
	task4, ok4 := by["types-task-chain-4"]
	http4, okh := by["types-http-chain-4"]
	short, oks := by[fmt.Sprintf("types-wait-%gs", waitShort)]
	long, okl := by[fmt.Sprintf("types-wait-%gs", waitLong)]
	if !ok1 || !ok4 || !okh || !oks || !okl {
		return TypeCosts{}, false
	}
	hops := func(secs float64) float64 { return math.Ceil(secs / typeHop.Seconds()) }
	perHopWU := (long.WU - short.WU) / (hops(waitLong) - hops(waitShort))
	perHopRU := (long.RU - short.RU) / (hops(waitLong) - hops(waitShort))
	return TypeCosts{
		HTTPWU: http4.WU - task4.WU, HTTPRU: http4.RU - task4.RU,
		WaitWU: short.WU - task1.WU - hops(waitShort)*perHopWU, WaitRU: short.RU - task1.RU - hops(waitShort)*perHopRU,
		HopWU: perHopWU, HopRU: perHopRU,
	}, true
}

// JSON writes the report as one JSON object.
func (r Report) JSON(w io.Writer) error {
	var chainRatio, longChainRatio any
	if base, long, ok := r.chainReads(""); ok {
		chainRatio = long / base
	}
	if base, long, ok := r.chainReads("long-"); ok {
		longChainRatio = long / base
	}
	shapes := map[string]any{}
	for _, s := range r.Shapes {
		shapes[s.Name] = map[string]any{
			"steps": s.Steps, "committed": s.Committed, "task_runs": s.TaskRuns,
			"steps_per_second": s.StepsPerSecond, "seconds": s.Elapsed.Seconds(),
			"wcu_per_step": s.WU, "rcu_per_step": s.RU, "failed_wcu_per_step": s.FailedWU,
			"metered_committed": s.MeteredCommitted, "error": s.Err,
		}
	}
	types := map[string]any{}
	for _, s := range r.Types {
		types[s.Name] = map[string]any{"steps": s.Steps, "metered_committed": s.MeteredCommitted, "wcu_per_step": s.WU, "rcu_per_step": s.RU, "error": s.Err}
	}
	var typeCosts any
	if tc, ok := r.typeCosts(); ok {
		typeCosts = map[string]any{
			"http_step_extra_wcu": tc.HTTPWU, "http_step_extra_rcu": tc.HTTPRU,
			"wait_step_extra_wcu": tc.WaitWU, "wait_step_extra_rcu": tc.WaitRU,
			"wait_message_wcu": tc.HopWU, "wait_message_rcu": tc.HopRU,
		}
	}
	var hot []map[string]any
	for _, k := range r.HotKeys.Top {
		hot = append(hot, map[string]any{"key": k.Key, "wu_per_run": k.WUPerRun, "share": k.Share,
			"saturation_runs_per_second": k.SaturationRunsPerSecond, "peak_wu_per_second": k.PeakWU})
	}
	var reqs []map[string]any
	for _, c := range r.RequestsPerStep {
		reqs = append(reqs, map[string]any{"request": c.Name, "per_step": c.PerStep})
	}
	v := map[string]any{
		"endpoint":                           r.Endpoint,
		"steps_per_pass":                     r.Steps,
		"cost_per_million_steps_usd":         r.Flooded.Total,
		"cost_per_million_steps_trickle_usd": r.Trickle.Total,
		"cost_per_step_second_usd":           r.StepSecond.USDPerMillion / 1e6,
		"cost_per_million_step_seconds_usd":  r.StepSecond.USDPerMillion,
		"wcu_per_step":                       r.Flooded.WU,
		"rcu_per_step":                       r.Flooded.RU,
		"wcu_per_step_trickle":               r.Trickle.WU,
		"rcu_per_step_trickle":               r.Trickle.RU,
		"steps_per_invocation":               r.Flooded.StepsPerInvocation,
		"steps_per_invocation_trickle":       r.Trickle.StepsPerInvocation,
		"costs_flooded":                      r.Flooded.Costs,
		"costs_trickle":                      r.Trickle.Costs,
		"accounting":                         r.Accounting,
		"requests_per_step":                  reqs,
		"engine_steps_per_second":            r.CPU.Engine,
		"floor_steps_per_second":             r.CPU.Floor,
		"engine_floor_ratio":                 r.CPU.Ratio(),
		"latency_ms":                         ms(r.Bound.Latency),
		"engine_steps_per_second_latency":    r.Bound.Engine,
		"floor_steps_per_second_latency":     r.Bound.Floor,
		"engine_floor_ratio_latency":         r.Bound.Ratio(),
		"handoff_p50_ms":                     ms(r.HandoffP50),
		"handoff_p99_ms":                     ms(r.HandoffP99),
		"shapes":                             shapes,
		"chain_rcu_ratio":                    chainRatio,
		"long_chain_rcu_ratio":               longChainRatio,
		"cost_per_million_long_steps_usd":    r.Long.Total,
		"costs_long_steps":                   r.Long.Costs,
		"wcu_per_long_step":                  r.Long.WU,
		"rcu_per_long_step":                  r.Long.RU,
		"outcome_commit_lag_p50_ms":          ms(r.CommitLagP50),
		"outcome_commit_lag_p99_ms":          ms(r.CommitLagP99),
		"outcome_commit_lag_max_ms":          ms(r.CommitLagMax),
		"alternatives":                       alternativesJSON(r.Alternatives),
		"step_types":                         types,
		"step_type_costs":                    typeCosts,
	}
	hottest := r.HotKeys.Hottest()
	v["hottest_key"], v["hottest_key_share"], v["hottest_key_wu_per_run"] = hottest.Key, hottest.Share, hottest.WUPerRun
	v["hottest_key_saturation_runs_per_second"] = hottest.SaturationRunsPerSecond
	v["hottest_keys"] = hot
	v["shards"] = r.Config.Shards
	v["hottest_run_key"] = map[string]any{"key": r.HotKeys.PerRun.Key, "wu": r.HotKeys.PerRun.WUPerRun, "peak_wu_per_second": r.HotKeys.PerRun.PeakWU}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func alternativesJSON(as []Alternative) []map[string]any {
	var out []map[string]any
	for _, a := range as {
		var perSecond any = a.PerStepSecond
		if a.PerStepSecond == 0 {
			perSecond = nil // not billed by the service
		}
		out = append(out, map[string]any{
			"name": strings.ToLower(a.Name), "per_million_steps_usd": a.PerMillionSteps,
			"per_million_step_seconds_usd": perSecond, "assumptions": a.Assumptions,
		})
	}
	return out
}
