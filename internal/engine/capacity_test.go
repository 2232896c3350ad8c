package engine_test

import (
	"fmt"
	"testing"
	"time"

	"stepflow/internal/meter"
	"stepflow/internal/status"
)

// TestCapacityBudget holds the step runner to the write and read units per
// run that DECISIONS.md's cost table gives (DynamoDB's billing rules,
// applied by internal/meter): a run that fits one invocation is one read,
// one claim, a fence read per wave of dependents, one commit and its exit
// from the active index. A change that adds a write per step fails here
// before it shows in the bench.
func TestCapacityBudget(t *testing.T) {
	var m *meter.Meter
	// The engine's clock moves only when it waits: on a slow endpoint (or
	// machine) the commit window would otherwise run out mid-run and the
	// run commit twice, a cost the budget is not about.
	b := setup(t, options{meter: &m, waitClock: true})
	diamond := shapeJSON(t, "diamond", []shapeStep{
		{ID: "A"}, {ID: "B", DependsOn: []string{"A"}}, {ID: "C", DependsOn: []string{"A"}}, {ID: "D", DependsOn: []string{"B", "C"}},
	})
	order := shapeJSON(t, "order", []shapeStep{
		{ID: "validate", Config: map[string]any{"action": "validate_order"}},
		{ID: "charge", DependsOn: []string{"validate"}, Config: map[string]any{"action": "charge_payment"}},
		{ID: "ship", DependsOn: []string{"charge"}, Config: map[string]any{"action": "ship_order"}},
		{ID: "notify", DependsOn: []string{"ship"}, Config: map[string]any{"action": "send_notification"}},
	})
	for _, tt := range []struct {
		name, def, amount string
		wu, ru            float64
	}{
		// claim 1, commit of the header 2, leaving by_active 1; read 1,
		// fences after A and after B and C 2.
		{"diamond", diamond, "", 4, 3},
		// the same plus the order's status 2 and four history entries,
		// each a step's commit record, 2 each; the order read 1, three
		// fences.
		{"order", order, "10", 14, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The first run fills the engine's workflow cache.
			for i := range 2 {
				before := m.Snapshot()
				runID, _ := b.startRun(tt.def, tt.amount)
				if d := b.wait(runID, 30*time.Second); d.Status != status.RunCompleted {
					t.Fatalf("run %s", d.Status)
				}
				time.Sleep(200 * time.Millisecond) // let the handler return
				if i == 0 {
					continue
				}
				after := m.Snapshot()
				wu, ru := after.WU-before.WU, after.RU-before.RU
				if wu > tt.wu || ru > tt.ru {
					t.Errorf("the %s run cost the step runner %.2f WU and %.2f RU, budget %.0f and %.0f; every run so far:", tt.name, wu, ru, tt.wu, tt.ru)
					for _, l := range after.Lines {
						t.Logf("%s %s: %.2f WU %.2f RU", l.Op, l.Kind, l.WU, l.RU)
					}
				}
			}
		})
	}
}

// TestLongChainReadsWhatItNeeds (issue 16, section 6): steps longer than
// the inline budget each run from their own message. Each used to read
// every item of the run, twice: a 100-step chain read about 14 read units
// per step. A runner reads only the items its decision needs (the step's,
// its parents' and its dependents'), so a 100-step chain reads per step at
// most 1.5 times what a 4-step chain of the same steps reads.
func TestLongChainReadsWhatItNeeds(t *testing.T) {
	var m *meter.Meter
	// The engine's clock moves only when it waits, as in
	// TestCapacityBudget: in real time, how many outcomes one commit
	// carries depends on the endpoint's latency, and a 4-step chain that
	// happened to batch well on a slow endpoint (DynamoDB Local in CI)
	// read 1.00 units per step beside the long chain's 1.65, the ratio
	// measuring the machine rather than the reads.
	b := setup(t, options{meter: &m, scale: 1, waitClock: true, inlineBudget: 10 * time.Millisecond})
	chain := func(n int) string {
		steps := make([]shapeStep, n)
		for i := range steps {
			steps[i] = shapeStep{ID: fmt.Sprintf("s%03d", i), Config: map[string]any{"duration_seconds": 0.02}}
			if i > 0 {
				steps[i].DependsOn = []string{steps[i-1].ID}
			}
		}
		return shapeJSON(t, fmt.Sprintf("chain-%d", n), steps)
	}
	perStep := map[int]float64{}
	for _, n := range []int{4, 4, 100} { // the first run fills the workflow cache
		before := m.Snapshot()
		runID, _ := b.startRun(chain(n), "")
		if d := b.wait(runID, 2*time.Minute); d.Status != status.RunCompleted {
			t.Fatalf("chain-%d: run %s", n, d.Status)
		}
		time.Sleep(200 * time.Millisecond) // let the last handler return
		perStep[n] = (m.Snapshot().RU - before.RU) / float64(n)
	}
	ratio := perStep[100] / perStep[4]
	t.Logf("read units per step: chain-100 %.2f, chain-4 %.2f, ratio %.2f", perStep[100], perStep[4], ratio)
	if ratio > 1.5 {
		t.Errorf("a 100-step chain reads %.2f units per step, %.2f times a 4-step chain's %.2f; the target is 1.5", perStep[100], ratio, perStep[4])
	}
}
