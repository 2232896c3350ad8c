package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// TestAttackClaimConflictsPastMaxTriesLoopForever: root -> c1..c30. The
// root is committed; runner A gets the root's message, so it claims the
// ready children (16 at once, the rest sent). Another runner B keeps
// taking one of A's children right after A reads (a real claim of its
// own), so each claim of A is refused: A reads again, drops what it sees
// taken and claims the rest. After maxTries (8) conflicts, runner.claim
// returns nil on a conflict WITHOUT reading again or telling the
// scheduler (ClaimRefused): the scheduler still sees the step B took as
// claimable, proposes the same claim, which fails its condition again,
// and so on without end: a hot loop of refused UpdateItems and read-backs
// until the invocation's context ends (on the local poller, never).
func TestAttackClaimConflictsPastMaxTriesLoopForever(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	st := store.New(db, table)
	q := &sentQueue{}
	task := &countingTask{count: map[string]int{}, starts: map[string][]time.Time{}}
	a := api.New(api.Config{Store: st, Starter: engine.Starter{Queue: q}})
	rg := &rig{t: t, store: st, q: q, api: a}
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := 1; i <= 30; i++ {
		steps = append(steps, fmt.Sprintf(`{"id":"c%02d","config":{"duration_seconds":0},"depends_on":["root"]}`, i))
	}
	runID := rg.start(`{"name":"fan","steps":[` + strings.Join(steps, ",") + `]}`)
	root := q.take()[0]
	ctx := context.Background()
	_, plan, err := st.Plan(ctx, root.WorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	ref := store.RunRef{ID: runID, WorkflowID: root.WorkflowID, Steps: len(plan)}
	// Another runner ran the root and committed it.
	r, _, err := st.LoadRun(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c, leases := runstate.NewClaim(r, plan, []int{0}, runstate.LeaseTerms{Token: "other", Margin: 30 * time.Second}, now)
	if err := st.ClaimIfLive(ctx, c); err != nil {
		t.Fatal(err)
	}
	r = r.Apply(c.Swaps)
	cm := runstate.BuildCommit(r, plan, "", []runstate.Outcome{{Step: 0, Held: leases[0].Held, Start: now, End: now}}, retry.Policy{Base: time.Second, Cap: time.Second}, now)
	if err := st.CommitIfHeld(ctx, cm, "cmt_setup0000"); err != nil {
		t.Fatal(err)
	}

	// B takes child k (k = 1, 2, ...) after every second read of A.
	var reads, updates atomic.Int32
	var mu sync.Mutex
	next := 1
	steal := func() {
		mu.Lock()
		defer mu.Unlock()
		if next > 16 {
			return
		}
		r, _, err := st.LoadRun(ctx, ref)
		if err != nil {
			t.Error(err)
			return
		}
		c, _ := runstate.NewClaim(r, plan, []int{next}, runstate.LeaseTerms{Token: fmt.Sprintf("thief%02d", next), Margin: 30 * time.Second}, time.Now())
		if err := st.ClaimIfLive(ctx, c); err != nil {
			t.Errorf("B's claim of c%02d: %v", next, err)
		}
		next++
	}
	cfg := testenv.Config(t)
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("thief", func(ctx context.Context, in middleware.InitializeInput, nx middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := nx.HandleInitialize(ctx, in)
			switch awsmiddleware.GetOperationName(ctx) {
			case "BatchGetItem":
				if reads.Add(1)%2 == 1 {
					steal()
				}
			case "UpdateItem", "TransactWriteItems":
				updates.Add(1)
			}
			return out, md, err
		}), middleware.After)
	})
	eng, err := engine.New(engine.Config{Store: store.New(awsclient.DynamoDB(cfg, testenv.Endpoint(t)), table), Queue: q, Task: task,
		Retry: retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}})
	if err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	began := time.Now()
	herr := eng.Handle(hctx, engine.Delivery{Message: root})
	took := time.Since(began)
	mu.Lock()
	stolen := next - 1
	mu.Unlock()
	t.Logf("Handle returned %v after %v; B took %d children; A issued %d claim writes and %d BatchGetItems", herr, took.Round(time.Millisecond), stolen, updates.Load(), reads.Load())
	if updates.Load() > 40 {
		t.Fatalf("runner A kept claiming the same taken step: %d refused claim writes in %v, ended only by the context deadline", updates.Load(), took.Round(time.Millisecond))
	}
	_ = http.MethodPost
}
