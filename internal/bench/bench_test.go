package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestBenchRunsAndAccounts runs a tiny benchmark end to end. Run itself
// fails unless every run of every main pass completed and every order was
// shipped with each effect once; the test then checks that the report
// accounts for what a step must cost by the engine's design and AWS's
// rules, not for what a run happened to print.
func TestBenchRunsAndAccounts(t *testing.T) {
	rep, err := Run(context.Background(), Config{
		Diamonds: 2, Orders: 2, Concurrency: 2, Latency: time.Millisecond, StepSeconds: 0.05,
		HandoffRuns: 2, LagRuns: 2, ShapeSteps: 6, ShapeTimeout: 30 * time.Second, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Steps != 16 {
		t.Fatalf("%d steps per pass, want 16", rep.Steps)
	}
	// An http step stores its output, an item of its own written in the
	// commit's transaction (2 WU at least), and reads its parent's; each
	// message of a wait's chain reads the run and writes nothing.
	tc, ok := rep.typeCosts()
	if !ok {
		t.Fatalf("step types not all measured: %+v", rep.Types)
	}
	t.Logf("step types: %+v", tc)
	for _, sh := range rep.Types {
		t.Logf("  %s: %.2f WU, %.2f RU per step", sh.Name, sh.WU, sh.RU)
	}
	if tc.HTTPWU < 2 || tc.HTTPRU <= 0 || tc.HopRU <= 0 || math.Abs(tc.HopWU) > 0.5 {
		t.Errorf("step type costs %+v", tc)
	}
	// Every step puts its commit record in a transaction (2 WU), every
	// run is created (its header and three index entries, 4 WU) and read
	// by the runner; so at least 3 WU and some reads per step of 4-step runs.
	for _, p := range []Pattern{rep.Flooded, rep.Trickle} {
		if p.WU < 3 || p.RU <= 0 || p.Total <= 0 {
			t.Errorf("%s: %.2f WU, %.2f RU, $%.2f per million steps", p.Name, p.WU, p.RU, p.Total)
		}
	}
	// One message per invocation in the trickle pattern, several in the
	// flooded one; either way a run's dependents run in the invocation of
	// its root, so an invocation handles more than one step.
	if rep.Trickle.MessagesPerInvocation != 1 || rep.Flooded.MessagesPerInvocation <= 1 || rep.Trickle.StepsPerInvocation <= 1 {
		t.Errorf("per invocation: trickle %.2f messages, %.2f steps; flooded %.2f messages", rep.Trickle.MessagesPerInvocation,
			rep.Trickle.StepsPerInvocation, rep.Flooded.MessagesPerInvocation)
	}
	// The accounting is the capacity, line by line, and covers the three
	// components: the API's run start, the step runner and the sweeper.
	var wu, ru float64
	components := map[string]bool{}
	for _, l := range rep.Accounting {
		wu += l.WU
		ru += l.RU
		components[l.Component] = true
	}
	if math.Abs(wu-rep.Flooded.WU) > 1e-9 || math.Abs(ru-rep.Flooded.RU) > 1e-9 || len(components) != 3 || rep.Sweeps.Sweeps == 0 {
		t.Errorf("accounting sums to %.3f WU, %.3f RU over %v; capacity %.3f, %.3f; %d sweeps", wu, ru, components, rep.Flooded.WU, rep.Flooded.RU, rep.Sweeps.Sweeps)
	}
	// Every write unit lands on a partition key, and a key shared by runs
	// is the hottest: a run's own keys never bound the run rate.
	h := rep.HotKeys
	hot := h.Hottest()
	if math.Abs(h.TotalWU/float64(rep.Steps)-rep.Flooded.WU) > 1e-6 || hot.Key == "" || hot.WUPerRun <= 0 || hot.Share <= 0 || hot.Share >= 1 ||
		math.Abs(hot.SaturationRunsPerSecond*hot.WUPerRun-PartitionWUPerSecond) > 1e-6 || h.PerRun.WUPerRun <= 0 {
		t.Errorf("hot keys %+v: %.3f WU per step, capacity %.3f", h, h.TotalWU/float64(rep.Steps), rep.Flooded.WU)
	}
	t.Logf("hot keys over %d runs: %+v; a run's own: %+v", h.Runs, h.Top, h.PerRun)
	// A second of step duration is billed (how much more than once per
	// step depends on the machine's load, so only its sign is checked).
	if k := rep.StepSecond.BilledPerSecond; k <= 0 {
		t.Errorf("%.2f billed seconds per step-second", k)
	}
	if rep.CPU.Ratio() <= 0 || rep.Bound.Ratio() <= 0 || rep.HandoffP50 <= 0 {
		t.Errorf("throughput %+v %+v, hand-off %v", rep.CPU, rep.Bound, rep.HandoffP50)
	}
	if len(rep.Shapes) != 6 {
		t.Fatalf("%d shapes", len(rep.Shapes))
	}
	for _, s := range rep.Shapes {
		if s.Err != "" || s.Committed != s.Steps || s.TaskRuns != s.Steps || s.WU <= 0 || s.RU <= 0 {
			t.Errorf("shape %+v", s)
		}
	}

	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"flooded", "trickle", "Per-step accounting", "engine/floor", "latency-bound", "hand-off", "chain-6", "Step Functions Standard", "Temporal", "Hot keys"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	var buf bytes.Buffer
	if err := rep.JSON(&buf); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cost_per_million_steps_usd", "cost_per_million_steps_trickle_usd", "cost_per_step_second_usd",
		"wcu_per_step", "rcu_per_step", "engine_floor_ratio", "engine_floor_ratio_latency", "handoff_p50_ms",
		"cost_per_million_long_steps_usd", "outcome_commit_lag_p99_ms", "long_chain_rcu_ratio",
		"hottest_key_share", "hottest_key_wu_per_run", "hottest_key_saturation_runs_per_second"} {
		if x, ok := v[k].(float64); !ok || x <= 0 {
			t.Errorf("JSON %s = %v", k, v[k])
		}
	}
	if k, _ := v["hottest_key"].(string); k != hot.Key {
		t.Errorf("JSON hottest_key = %v, want %q", v["hottest_key"], hot.Key)
	}
	if top, _ := v["hottest_keys"].([]any); len(top) != len(h.Top) {
		t.Errorf("JSON hottest_keys = %v", v["hottest_keys"])
	}
	shape, _ := v["shapes"].(map[string]any)["fan-in-4"].(map[string]any)
	for _, k := range []string{"wcu_per_step", "rcu_per_step", "steps_per_second"} {
		if x, ok := shape[k].(float64); !ok || x <= 0 {
			t.Errorf("JSON shapes.fan-in-4.%s = %v", k, shape[k])
		}
	}
	if x, ok := v["chain_rcu_ratio"].(float64); !ok || x <= 0 {
		t.Errorf("JSON chain_rcu_ratio = %v", v["chain_rcu_ratio"])
	}
	// A 0.2 s step's outcome commits without waiting for its 5 s sibling:
	// every commit lag is far under the sibling's duration (the window is
	// 100 ms; waiting for the sibling would take 4.8 s).
	if rep.CommitLagMax <= 0 || rep.CommitLagMax >= 4*time.Second {
		t.Errorf("commit lag max %v", rep.CommitLagMax)
	}
	// Steps just over the inline budget each pay a claim, a commit and a
	// message of their own: more than the mix's zero-duration steps.
	if rep.Long.WU <= rep.Flooded.WU || rep.Long.Total <= 0 {
		t.Errorf("long steps: %.2f WU, $%.2f; flooded %.2f WU", rep.Long.WU, rep.Long.Total, rep.Flooded.WU)
	}
}
