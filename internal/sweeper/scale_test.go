package sweeper_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/awsclient"
	"stepflow/internal/meter"
	"stepflow/internal/queue"
	"stepflow/internal/runstate"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

var scaleRuns = flag.Int("sweep.runs", 0, "time passes of the sweeper over this many active runs (TestSweepScale)")

// TestSweepScale times passes of the sweeper, as deployed (8 workers,
// pages of 100, 8 index shards), over -sweep.runs active runs of a
// four-step workflow, and counts their requests with the meter:
//
//   - healthy: no step is stalled, the pass reads and decides;
//   - backlog: every run has a ready step past the grace period, so the
//     pass re-sends one message per run (and writes its mark);
//   - backlog again, 30 s later: the messages may still be queued, so
//     every re-send is held back.
//
// It runs only when asked: go test -run TestSweepScale -sweep.runs=20000
// ./internal/sweeper/ (add -v for the figures).
func TestSweepScale(t *testing.T) {
	if *scaleRuns == 0 {
		t.Skip("set -sweep.runs to time the sweeper over that many runs")
	}
	n := *scaleRuns
	ctx := context.Background()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	plain := store.New(db, table)
	def := workflow.Definition{Name: "scale", Steps: []workflow.Step{
		{ID: "a", Type: "task", DependsOn: []string{}}, {ID: "b", Type: "task", DependsOn: []string{"a"}},
		{ID: "c", Type: "task", DependsOn: []string{"a"}}, {ID: "d", Type: "task", DependsOn: []string{"b", "c"}}}}
	w := wire.Workflow{ID: ids.New("wf"), Name: "scale", Definition: def, CreatedAt: t0}
	if err := plain.CreateWorkflowIfAbsent(ctx, w); err != nil {
		t.Fatal(err)
	}
	plan, _ := workflow.NewPlan(def)
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for i := g; i < n; i += 32 {
				r := runstate.New(ids.New("run"), w.ID, w.Name, "", plan, t0)
				if err := plain.CreateRunIfAbsent(ctx, r, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d runs in %v", n, time.Since(began).Round(time.Millisecond))

	schema, err := meter.Describe(ctx, db, table)
	if err != nil {
		t.Fatal(err)
	}
	sq := testenv.SQS(t)
	url := testenv.Queue(t, sq, queue.Settings{VisibilityTimeout: 30 * time.Second}).URL
	for _, tt := range []struct {
		name   string
		at     time.Duration
		resent int
		held   int
	}{
		{"healthy", 30 * time.Second, 0, 0},
		{"backlog", 2 * time.Minute, n, 0},
		{"backlog again", 150 * time.Second, 0, n},
	} {
		m := meter.New(schema, db)
		cfg := testenv.Config(t)
		m.Attach(&cfg)
		mq := awsclient.SQS(cfg, testenv.SQSEndpoint(t))
		clock := t0.Add(tt.at)
		sw := &sweeper.Sweeper{
			Store: store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table, store.WithClock(func() time.Time { return clock })),
			Queue: &queue.SQS{Client: mq, URL: url}, Grace: time.Minute, Budget: time.Hour,
			Now: func() time.Time { return clock },
		}
		start := time.Now()
		rep, err := sw.Sweep(ctx)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Runs != n || !rep.Cycle || rep.Requeued != tt.resent || rep.Deferred != tt.held {
			t.Fatalf("%s: %+v", tt.name, rep)
		}
		snap := m.Snapshot()
		total := 0
		for _, c := range snap.Requests {
			total += c
		}
		var ops []string
		for _, op := range slices.Sorted(maps.Keys(snap.Requests)) {
			ops = append(ops, fmt.Sprintf("%s %d", op, snap.Requests[op]))
		}
		t.Logf("%s: %d runs in %v (%.0f runs/s); %d requests (%.4f a run): %s; %.1f RU, %.1f WU",
			tt.name, rep.Runs, took.Round(time.Millisecond), float64(rep.Runs)/took.Seconds(),
			total, float64(total)/float64(rep.Runs), strings.Join(ops, ", "), snap.RU, snap.WU)
	}
}
