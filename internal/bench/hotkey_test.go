package bench

import (
	"math"
	"testing"
	"time"

	"stepflow/internal/meter"
)

func TestGeneralise(t *testing.T) {
	t.Parallel()
	ids := labels([]runStart{{workflow: "wf_1", name: "bench-order", order: "ord_1"}, {workflow: "wf_2", name: "bench-diamond"}}, []string{"run_1", "run_2"}, "tok_1")
	for _, tt := range []struct {
		key, want string
		perRun    bool
	}{
		{"RUN#run_1", "RUN#<run id>", true},
		{"ORDER#ord_1", "ORDER#<order id>", true},
		{"index:by_workflow/wf_1#3", "index:by_workflow/<bench-order id>#3", false},
		{"index:by_kind/RUN", "index:by_kind/RUN", false},
		{"RATE#tok_1", "RATE#<caller id>", false},
		{"index:by_active/1#run_2", "index:by_active/1#<run id>", true},
		{"RUN#run_10", "RUN#run_10", false}, // whole fields only
	} {
		got, perRun := generalise(tt.key, ids)
		if got != tt.want || perRun != tt.perRun {
			t.Errorf("generalise(%q) = %q, %v; want %q, %v", tt.key, got, perRun, tt.want, tt.perRun)
		}
	}
}

// The hottest key is the one shared by runs that takes the most write
// units; a run's own keys are reported apart, however many units they take.
func TestHotKeys(t *testing.T) {
	t.Parallel()
	keys := func(kv ...any) meter.Snapshot {
		s := meter.Snapshot{Keys: map[string]meter.KeyLoad{}}
		for i := 0; i < len(kv); i += 2 {
			s.Keys[kv[i].(string)] = meter.KeyLoad{WU: kv[i+1].(float64)}
		}
		return s
	}
	c := result{
		Runs: 2, Elapsed: 10 * time.Second, Sweeps: 1,
		IDs: labels([]runStart{{workflow: "wf_1", name: "w"}}, []string{"run_1", "run_2"}, "tok_1"),
		API: keys("RATE#tok_1", 2.0, "RUN#run_1", 4.0, "RUN#run_2", 4.0, "index:by_kind/RUN", 2.0),
		Engine: keys("RUN#run_1", 20.0, "RUN#run_2", 16.0, "index:by_active/1", 4.0,
			"index:by_workflow/wf_1", 2.0),
		Sweep: keys("index:by_active/1", 8.0), // one sweep, scaled to a fifth (10 s at every 50 s)
	}
	h := hotKeys(c, 50*time.Second)
	total := 2 + 8 + 2 + 36 + 4 + 2 + 8.0/5
	if math.Abs(h.TotalWU-total) > 1e-9 || h.Runs != 2 {
		t.Fatalf("total %v WU over %d runs, want %v over 2", h.TotalWU, h.Runs, total)
	}
	want := []HotKey{
		{Key: "index:by_active/1", WUPerRun: 2.8, Share: 5.6 / total, SaturationRunsPerSecond: 1000 / 2.8},
		{Key: "RATE#<caller id>", WUPerRun: 1, Share: 2 / total, SaturationRunsPerSecond: 1000},
		{Key: "index:by_kind/RUN", WUPerRun: 1, Share: 2 / total, SaturationRunsPerSecond: 1000},
		{Key: "index:by_workflow/<w id>", WUPerRun: 1, Share: 2 / total, SaturationRunsPerSecond: 1000},
	}
	if len(h.Top) != len(want) {
		t.Fatalf("top %+v", h.Top)
	}
	for i, k := range h.Top {
		w := want[i]
		if k.Key != w.Key || math.Abs(k.WUPerRun-w.WUPerRun) > 1e-9 || math.Abs(k.Share-w.Share) > 1e-9 ||
			math.Abs(k.SaturationRunsPerSecond-w.SaturationRunsPerSecond) > 1e-6 {
			t.Errorf("top %d = %+v, want %+v", i, k, w)
		}
	}
	if h.Hottest().Key != "index:by_active/1" {
		t.Errorf("hottest %+v", h.Hottest())
	}
	// RUN#run_1 took 24 WU, all of one run's.
	if h.PerRun.Key != "RUN#<run id>" || h.PerRun.WUPerRun != 24 {
		t.Errorf("per-run key %+v", h.PerRun)
	}
}
