package engine_test

import (
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
	b := setup(t, options{meter: &m})
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
