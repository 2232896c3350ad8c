package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"stepflow/internal/meter"
	"stepflow/internal/testenv"
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
	h := hotKeys(c, 50*time.Second, 10)
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

// The keys every run shares are index keys, written across the store's
// shards: the hottest of each index takes a shard's part of the writes,
// so the hottest key's WU per run drops as the shard count rises, and the
// run rate that saturates it rises. The same metered flooded pass runs
// at 1 and at 8 shards.
func TestHotKeysScaleWithShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	measure := func(shards int) HotKeys {
		e := env{cfg: testenv.Config(t), dynEP: testenv.Endpoint(t), sqsEP: testenv.SQSEndpoint(t), sweepEvery: time.Minute, shards: shards}
		p := pass{name: "hot-keys", loads: mix(8, 8, 0), batchSize: 10, pollers: 2, metered: true, timeout: time.Minute}
		r, err := e.run(ctx, p)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			t.Fatalf("%d shards: %v", shards, err)
		}
		h := hotKeys(r, e.sweepEvery, math.MaxInt)
		t.Logf("%d shards: hottest of %d keys %+v", shards, len(h.Top), h.Top[:min(len(h.Top), 4)])
		return h
	}
	// hottest returns the hottest key of index ix ("" for the table's).
	hottest := func(h HotKeys, ix string) HotKey {
		for _, k := range h.Top {
			if ix == "" && !strings.HasPrefix(k.Key, "index:") || ix != "" && strings.HasPrefix(k.Key, "index:"+ix+"/") {
				return k
			}
		}
		t.Fatalf("no key of index %q in %+v", ix, h.Top)
		return HotKey{}
	}
	one, eight := measure(1), measure(8)
	if !strings.HasPrefix(one.Hottest().Key, "index:") {
		t.Errorf("hottest key at 1 shard %+v, want an index key", one.Hottest())
	}
	for _, ix := range []string{"by_active", "by_kind", "by_workflow"} {
		a, b := hottest(one, ix), hottest(eight, ix)
		if b.WUPerRun >= a.WUPerRun {
			t.Errorf("%s: hottest key %s takes %.3f WU per run at 8 shards, %s %.3f at 1", ix, b.Key, b.WUPerRun, a.Key, a.WUPerRun)
		}
	}
	// The table's shared key is the caller's rate counter, taken in
	// blocks (internal/ratelimit): at most a write per run whatever the
	// shard count. How far under depends on how the starts interleave:
	// starts that find no allowance at the same moment each take their
	// own block, so this pass's 16 concurrent starts may cost 16 writes.
	for _, h := range []HotKeys{one, eight} {
		if k := hottest(h, ""); k.Key != "RATE#<caller id>" || k.WUPerRun > 1 {
			t.Errorf("hottest table key %+v, want the rate counter at most 1 WU per run", k)
		}
	}
	a, b := one.Hottest(), eight.Hottest()
	if b.WUPerRun >= a.WUPerRun || b.SaturationRunsPerSecond <= a.SaturationRunsPerSecond {
		t.Errorf("hottest key %+v at 8 shards, %+v at 1", b, a)
	}
	t.Logf("hottest key: 1 shard %s, %.3f WU per run, saturates at %.0f runs/s; 8 shards %s, %.3f, %.0f runs/s",
		a.Key, a.WUPerRun, a.SaturationRunsPerSecond, b.Key, b.WUPerRun, b.SaturationRunsPerSecond)
}
