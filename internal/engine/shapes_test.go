package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"stepflow/internal/status"
)

type shapeStep struct {
	ID        string         `json:"id"`
	Config    map[string]any `json:"config"`
	DependsOn []string       `json:"depends_on"`
}

func shapeJSON(t *testing.T, name string, steps []shapeStep) string {
	t.Helper()
	for i := range steps {
		if steps[i].Config == nil {
			steps[i].Config = map[string]any{}
		}
		steps[i].Config["duration_seconds"] = 0
		if steps[i].DependsOn == nil {
			steps[i].DependsOn = []string{}
		}
	}
	b, err := json.Marshal(map[string]any{"name": name, "steps": steps})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func chainShape(n int) []shapeStep {
	steps := []shapeStep{{ID: "s0"}}
	for i := 1; i < n; i++ {
		steps = append(steps, shapeStep{ID: fmt.Sprintf("s%d", i), DependsOn: []string{fmt.Sprintf("s%d", i-1)}})
	}
	return steps
}

func parallelShape(n int) []shapeStep {
	var steps []shapeStep
	for i := range n {
		steps = append(steps, shapeStep{ID: fmt.Sprintf("p%d", i)})
	}
	return steps
}

// fanInShape is root -> width steps -> join.
func fanInShape(width int) []shapeStep {
	steps := []shapeStep{{ID: "root"}}
	var mid []string
	for i := range width {
		id := fmt.Sprintf("m%d", i)
		mid = append(mid, id)
		steps = append(steps, shapeStep{ID: id, DependsOn: []string{"root"}})
	}
	return append(steps, shapeStep{ID: "join", DependsOn: mid})
}

// orderJoinsShape is an order-action root that is parent of 98 joins (each
// joining the root and a second step): the first design's commit of the
// root needed 101 transaction items and could never succeed.
func orderJoinsShape() []shapeStep {
	steps := []shapeStep{{ID: "validate", Config: map[string]any{"action": "validate_order"}}, {ID: "other", DependsOn: []string{"validate"}}}
	for i := range 98 {
		steps = append(steps, shapeStep{ID: fmt.Sprintf("j%d", i), DependsOn: []string{"validate", "other"}})
	}
	return steps
}

// TestShapes runs each shape to completion with every task executed once
// and each order effect once (first design: 100 parallel sinks or a
// 98-parent join ran 39 of 100 tasks more than once; the order-action root
// parent of 98 joins never completed).
func TestShapes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{runners: 2, scale: 1})
	tests := []struct {
		name  string
		def   string
		order bool
	}{
		{"100-step chain", shapeJSON(t, "chain", chainShape(100)), false},
		{"100 parallel steps", shapeJSON(t, "parallel", parallelShape(100)), false},
		{"root -> 98 -> join", shapeJSON(t, "fan-in", fanInShape(98)), false},
		{"order-action root parent of 98 joins", shapeJSON(t, "order joins", orderJoinsShape()), true},
		{"diamond", example(t, "diamond-workflow.json"), false},
		{"order-processing", example(t, "order-processing.json"), true},
		{"simple-pipeline", example(t, "simple-pipeline.json"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			amount := ""
			if tt.order {
				amount = "12.30"
			}
			runID, orderID := b.startRun(tt.def, amount)
			d := b.wait(runID, 90*time.Second)
			if d.Status != status.RunCompleted {
				t.Fatalf("run %s", d.Status)
			}
			for _, s := range d.Steps {
				if n := b.task.executions(runID, s.StepID); n != 1 || s.Status != status.StepCompleted {
					t.Errorf("step %s: %s, executed %d times", s.StepID, s.Status, n)
				}
			}
			if orderID == "" {
				return
			}
			o, err := b.store.GetOrder(context.Background(), orderID)
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for _, h := range o.History {
				events = append(events, h.Event)
			}
			want := "created validate_order"
			if strings.Contains(tt.def, "ship_order") {
				checkHistory(t, o, runID)
				return
			}
			if got := strings.Join(events, " "); got != want || o.Status != status.OrderValidated {
				t.Fatalf("order %s with history %q, want validated with %q", o.Status, got, want)
			}
		})
	}
}
