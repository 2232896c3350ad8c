package engine_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// TestAttackOutcomeWaitsBehindOneFencePerDrainedResult: root -> m01..m16,
// each m_i -> d_i; every request of the runner to storage takes 20 ms (an
// AWS-like round trip; kumo answers in about 1 ms). After the root, the
// runner starts m01..m16 inline; they all end at about the same moment.
// runner.wait takes ONE result per loop iteration, and each result makes a
// dependent startable here, so the runner does a fence read (and a start)
// per result before it even looks at the next one; once the window of the
// oldest passes, each remaining result is committed on its own (plus the
// claim of its dependent) before the next is drained. The last m_i's
// outcome is committed hundreds of ms after it ended, far beyond
// "~100 ms + one storage round trip".
func TestAttackOutcomeWaitsBehindOneFencePerDrainedResult(t *testing.T) {
	t.Parallel()
	const rt = 20 * time.Millisecond
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	st := store.New(db, table)
	q := &sentQueue{}
	task := &countingTask{count: map[string]int{}, starts: map[string][]time.Time{}}
	var opsMu sync.Mutex
	var ops []string
	var slowest time.Duration // the slowest request's round trip, as measured
	began := time.Now()
	cfg := testenv.Config(t)
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("latency", func(ctx context.Context, in middleware.InitializeInput, nx middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			start := time.Now()
			time.Sleep(rt)
			out, md, err := nx.HandleInitialize(ctx, in)
			opsMu.Lock()
			ops = append(ops, fmt.Sprintf("%s@%v", awsmiddleware.GetOperationName(ctx), time.Since(began).Round(time.Millisecond)))
			slowest = max(slowest, time.Since(start))
			opsMu.Unlock()
			return out, md, err
		}), middleware.Before)
	})
	type lat struct {
		step int
		d    time.Duration
	}
	var mu sync.Mutex
	var lats []lat
	eng, err := engine.New(engine.Config{Store: store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table), Queue: q, Task: task,
		Retry: retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }},
		OnCommit: func(_ string, i int, ended, landed time.Time) {
			mu.Lock()
			lats = append(lats, lat{i, landed.Sub(ended)})
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	rg := &rig{t: t, store: st, q: q, api: api.New(api.Config{Store: st, Starter: engine.Starter{Queue: q}})}
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := 1; i <= 16; i++ {
		steps = append(steps, fmt.Sprintf(`{"id":"m%02d","config":{"duration_seconds":0},"depends_on":["root"]}`, i))
	}
	for i := 1; i <= 16; i++ {
		steps = append(steps, fmt.Sprintf(`{"id":"d%02d","config":{"duration_seconds":0},"depends_on":["m%02d"]}`, i, i))
	}
	runID := rg.start(`{"name":"wide-pairs","steps":[` + strings.Join(steps, ",") + `]}`)
	root := q.take()[0]
	if err := eng.Handle(context.Background(), engine.Delivery{Message: root}); err != nil {
		t.Fatal(err)
	}
	rg.drain()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lats, func(a, b int) bool { return lats[a].d > lats[b].d })
	if d := rg.get(runID); d.Status != "completed" {
		t.Fatalf("run %s", d.Status)
	}
	// The window, then at most the request in flight when it closed and
	// the commit itself: two round trips, as measured on this endpoint (a
	// slower one, such as DynamoDB Local, takes longer than rt), and 30 ms
	// of slack for the scheduler on a loaded machine under -race (the
	// defect this catches was hundreds of milliseconds late).
	opsMu.Lock()
	bound := 100*time.Millisecond + 2*slowest + 30*time.Millisecond
	opsMu.Unlock()
	var over []string
	for _, l := range lats {
		if l.d > bound {
			over = append(over, fmt.Sprintf("step %d: %v", l.step, l.d.Round(time.Millisecond)))
		}
	}
	opsMu.Lock()
	t.Logf("runner requests: %v", ops)
	opsMu.Unlock()
	t.Logf("%d commits; worst: %v", len(lats), lats[:min(5, len(lats))])
	if len(over) > 0 {
		t.Fatalf("%d outcomes committed later than %v after they ended (round trip %v): %v", len(over), bound, rt, over)
	}
}
