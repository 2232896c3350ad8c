package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/id"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// These tests are the storage conformance suite: they run against the
// embedded emulator by default and against any endpoint named by
// STEPFLOW_TEST_ENDPOINT (make conformance uses DynamoDB Local).

var ids = id.NewGenerator(nil, nil)

var now = time.Date(2026, 11, 25, 12, 0, 0, 123_000_000, time.UTC)

var policy = retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}

// newWorkflow returns a workflow whose steps are given as "id" or
// "id:parent,parent" or "id@action", in dependency order.
func newWorkflow(name string, steps ...string) wire.Workflow {
	def := workflow.Definition{Name: name}
	for _, s := range steps {
		st := workflow.Step{ID: s, Type: "task", DependsOn: []string{}, Config: workflow.Config{DurationSeconds: 1, MaxRetries: 3}}
		if rest, action, ok := strings.Cut(st.ID, "@"); ok {
			st.ID, st.Config.Action = rest, action
		}
		if rest, parents, ok := strings.Cut(st.ID, ":"); ok {
			st.ID, st.DependsOn = rest, strings.Split(parents, ",")
		}
		def.Steps = append(def.Steps, st)
	}
	return wire.Workflow{ID: ids.New("wf"), Name: name, Definition: def, CreatedAt: now}
}

func mustPlan(t *testing.T, w wire.Workflow) workflow.Plan {
	t.Helper()
	p, err := workflow.NewPlan(w.Definition)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// createRun stores a workflow (if new) and a run of it.
func createRun(t *testing.T, s *store.Store, w wire.Workflow, orderID string) runstate.State {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetWorkflow(ctx, w.ID); errors.Is(err, store.ErrNotFound) {
		if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	r := runstate.New(ids.New("run"), w.ID, w.Name, orderID, mustPlan(t, w), now)
	if err := s.CreateRunIfAbsent(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

func newOrder(t *testing.T, s *store.Store) wire.Order {
	t.Helper()
	o := wire.Order{ID: ids.New("ord"), Amount: "10.50", Status: status.OrderPending, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateOrderIfAbsent(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

// claim claims steps of r as read and returns the run as it then is.
func claim(t *testing.T, s *store.Store, r runstate.State, p workflow.Plan, steps ...int) (runstate.State, []runstate.Lease) {
	t.Helper()
	c, leases := runstate.NewClaim(r, p, steps, runstate.LeaseTerms{Token: "tok" + fmt.Sprint(len(steps)), Margin: time.Minute}, now)
	if err := s.ClaimIfLive(context.Background(), c); err != nil {
		t.Fatalf("claim %v: %v", steps, err)
	}
	return r.Apply(c.Swaps), leases
}

func outcomes(leases []runstate.Lease, err error) []runstate.Outcome {
	var out []runstate.Outcome
	for _, l := range leases {
		out = append(out, runstate.Outcome{Step: l.Step, Held: l.Held, Start: now, End: now.Add(time.Second), Err: err})
	}
	return out
}

func TestWorkflowRoundTrip(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("etl", "fetch", "load:fetch")
	w.Definition.Steps[1].Config = workflow.Config{Action: "ship_order", DurationSeconds: 0.25, FailProbability: 0.5, MaxRetries: 10}
	if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetWorkflow(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != w.Name || !got.CreatedAt.Equal(now) || got.StepCount != 2 || fmt.Sprint(got.Definition) != fmt.Sprint(w.Definition) {
		t.Fatalf("round trip changed the workflow:\n got %+v\nwant %+v", got, w)
	}
	_, p, err := s.Plan(ctx, w.ID)
	if err != nil || len(p) != 2 || fmt.Sprint(p[1].Parents) != "[0]" {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	if err := s.CreateWorkflowIfAbsent(ctx, w); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create with the same id: err = %v, want ErrConflict", err)
	}
	if _, err := s.GetWorkflow(ctx, ids.New("wf")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing workflow: err = %v, want ErrNotFound", err)
	}
}

// collect pages through a list and fails on duplicates.
func collect[T any](t *testing.T, limit int, list func(store.Page) ([]T, string, error), idOf func(T) string) ([]string, []int) {
	t.Helper()
	var all []string
	var sizes []int
	seen := map[string]bool{}
	cursor := ""
	for range 300 {
		items, next, err := list(store.Page{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(items))
		for _, it := range items {
			id := idOf(it)
			if seen[id] {
				t.Fatalf("%s listed twice", id)
			}
			seen[id] = true
			all = append(all, id)
		}
		if next == "" {
			return all, sizes
		}
		cursor = next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func TestListWorkflowsPagesNewestFirst(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var want []string
	for i := range 7 {
		w := newWorkflow(fmt.Sprintf("w%d", i), "a")
		if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
			t.Fatal(err)
		}
		want = append([]string{w.ID}, want...)
	}
	tests := []struct {
		limit int
		sizes string
	}{
		{3, "[3 3 1]"},
		{7, "[7]"}, // an exact fit has no empty trailing page
		{1, "[1 1 1 1 1 1 1]"},
		{50, "[7]"},
	}
	for _, tt := range tests {
		got, sizes := collect(t, tt.limit, func(p store.Page) ([]wire.WorkflowSummary, string, error) { return s.ListWorkflows(ctx, p) },
			func(w wire.WorkflowSummary) string { return w.ID })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: got %v, want %v", tt.limit, got, want)
		}
		if fmt.Sprint(sizes) != tt.sizes {
			t.Errorf("limit %d: page sizes %v, want %s", tt.limit, sizes, tt.sizes)
		}
	}
}

func TestRunRoundTripAndFilters(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w1, w2 := newWorkflow("one", "a", "b:a", "c:a"), newWorkflow("two", "x")
	order := newOrder(t, s)
	var runs []runstate.State
	for i := range 5 {
		w, oid := w1, ""
		if i%2 == 1 {
			w = w2
		}
		if i == 0 {
			oid = order.ID
		}
		runs = append(runs, createRun(t, s, w, oid))
	}
	d, err := s.GetRun(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.WorkflowName != "one" || d.OrderID == nil || *d.OrderID != order.ID || d.Status != status.RunPending || len(d.Steps) != 3 {
		t.Fatalf("run detail = %+v", d)
	}
	for i, st := range d.Steps {
		if st.StepIndex != i || st.StepID != w1.Definition.Steps[i].ID || st.Status != status.StepPending || st.MaxRetries != 3 ||
			st.Config.DurationSeconds != 1 || fmt.Sprint(st.DependsOn) != fmt.Sprint(w1.Definition.Steps[i].DependsOn) {
			t.Fatalf("step %d = %+v", i, st)
		}
	}
	// Start runs[2]: it is running from then on.
	_, p, _ := s.Plan(ctx, w1.ID)
	claim(t, s, runs[2], p, 0)
	// Cancel runs[3].
	end, _ := runstate.Cancel(runs[3], now)
	if err := s.EndRunIfRunning(ctx, end); err != nil {
		t.Fatal(err)
	}
	idsOf := func(f store.RunFilter) string {
		got, _ := collect(t, 2, func(p store.Page) ([]wire.RunSummary, string, error) {
			pg, err := s.ListRuns(ctx, f, p)
			return pg.Runs, pg.Next, err
		},
			func(r wire.RunSummary) string { return r.ID })
		return fmt.Sprint(got)
	}
	r := runs
	tests := []struct {
		filter store.RunFilter
		want   []runstate.State
	}{
		{store.RunFilter{}, []runstate.State{r[4], r[3], r[2], r[1], r[0]}},
		{store.RunFilter{WorkflowID: w2.ID}, []runstate.State{r[3], r[1]}},
		{store.RunFilter{Status: status.RunPending}, []runstate.State{r[4], r[1], r[0]}},
		{store.RunFilter{Status: status.RunRunning}, []runstate.State{r[2]}},
		{store.RunFilter{Status: status.RunCancelled}, []runstate.State{r[3]}},
		{store.RunFilter{Status: status.RunPending, WorkflowID: w1.ID}, []runstate.State{r[4], r[0]}},
		{store.RunFilter{Status: status.RunFailed, WorkflowID: w1.ID}, nil},
	}
	for _, tt := range tests {
		var want []string
		for _, x := range tt.want {
			want = append(want, x.ID)
		}
		if got := idsOf(tt.filter); got != fmt.Sprint(want) {
			t.Errorf("filter %+v: got %s, want %v", tt.filter, got, want)
		}
	}
	// The list carries progress and the order's status.
	pg, err := s.ListRuns(ctx, store.RunFilter{}, store.Page{Limit: 10})
	list := pg.Runs
	if err != nil {
		t.Fatal(err)
	}
	last := list[len(list)-1]
	if last.ID != r[0].ID || last.OrderStatus == nil || *last.OrderStatus != status.OrderPending || len(last.StepStatuses) != 3 {
		t.Fatalf("listed run = %+v", last)
	}
	if list[2].ID != r[2].ID || fmt.Sprint(list[2].StepStatuses) != "[running pending pending]" {
		t.Fatalf("listed running run = %+v", list[2])
	}
}

func TestCreateRunWithUnknownOrderWritesNothing(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	s, ctx := store.New(db, table), context.Background()
	w := newWorkflow("w", "a", "b")
	if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
		t.Fatal(err)
	}
	r := runstate.New(ids.New("run"), w.ID, w.Name, ids.New("ord"), mustPlan(t, w), now)
	if err := s.CreateRunIfAbsent(ctx, r, nil); !errors.Is(err, store.ErrOrderNotFound) {
		t.Fatalf("err = %v, want ErrOrderNotFound", err)
	}
	if _, err := s.GetRun(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun after rejected create: err = %v, want ErrNotFound", err)
	}
	out := runPartition(t, db, table, r.ID)
	if len(out) != 0 {
		t.Fatalf("%d items left behind by a rejected run", len(out))
	}
}

// runPartition reads every item of a run's partition directly.
func runPartition(t *testing.T, db *dynamodb.Client, table, runID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := db.Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "RUN#" + runID}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// itemSize approximates DynamoDB's item size (names plus values) for the
// string and number attributes run items hold.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += (len(v.Value)+1)/2 + 1
		}
	}
	return n
}

// TestLargeRunStaysInSmallItems: a 100-step run is a header and six
// chunks, each under 1 KB (one write unit) with every step running and with
// every step committed (slots and commit records); claims and commits in any
// chunk round-trip.
func TestLargeRunStaysInSmallItems(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	s, ctx := store.New(db, table), context.Background()
	var names []string
	for i := range workflow.MaxSteps {
		names = append(names, fmt.Sprintf("s%03d", i))
	}
	w := newWorkflow(strings.Repeat("n", 40), names...)
	r := createRun(t, s, w, "")
	p := mustPlan(t, w)
	all := make([]int, len(p))
	for i := range all {
		all[i] = i
	}
	running, leases := claim(t, s, r, p, all...)
	sizes := func(when string) {
		t.Helper()
		out := runPartition(t, db, table, r.ID)
		n := 0
		for _, it := range out {
			if sk := it["sk"].(*types.AttributeValueMemberS).Value; !strings.HasPrefix(sk, "RUN#A") {
				n++
				if size := itemSize(it); size > 1000 {
					t.Errorf("%s: item %s is %d bytes", when, sk, size)
				}
			}
		}
		if n != 7 {
			t.Fatalf("%s: a 100-step run is %d items, want 7", when, n)
		}
	}
	sizes("every step running")
	// Commit step 87 (a chunk) and fail step 3 (the header) with retries
	// left.
	c := runstate.BuildCommit(running, p, "", append(outcomes(leases[87:88], nil), outcomes(leases[3:4], errors.New("boom"))...), policy, now)
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != 100 || d.Steps[99].StepID != "s099" || d.Steps[87].Status != status.StepCompleted || d.StepsCompleted != 1 {
		t.Fatalf("after commit: %d steps, step 87 %+v", len(d.Steps), d.Steps[87])
	}
	if st := d.Steps[3]; st.Status != status.StepPending || st.RetryCount != 1 || len(st.Attempts) != 1 || st.ErrorMessage == nil || *st.ErrorMessage != "boom" || st.NextAttemptAt == nil {
		t.Fatalf("failed attempt: %+v", st)
	}
	// Commit every other step, 40 at a time as the engine does.
	fresh, _, err := s.ReadRun(ctx, r.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	var rest []runstate.Outcome
	for _, l := range leases {
		if l.Step != 3 && l.Step != 87 {
			rest = append(rest, outcomes([]runstate.Lease{l}, nil)...)
		}
	}
	for len(rest) > 0 {
		n := min(len(rest), 40)
		c := runstate.BuildCommit(fresh, p, "", rest[:n], policy, now)
		if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
			t.Fatal(err)
		}
		fresh = fresh.Apply(c.Swaps)
		rest = rest[n:]
	}
	sizes("98 steps committed")
	if _, err := s.GetRun(ctx, ids.New("run")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing run: err = %v", err)
	}
}

// TestClaimsAreCompareAndSwap: of two runners that read the same state,
// one claim wins, all or nothing, even across items; nothing is claimed
// once the run is cancelled or retried since the read.
func TestClaimsAreCompareAndSwap(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("s%02d", i))
	}
	w := newWorkflow("w", names...)
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	c1, _ := runstate.NewClaim(r, p, []int{15}, runstate.LeaseTerms{Token: "one", Margin: time.Minute}, now)
	c2, _ := runstate.NewClaim(r, p, []int{0, 15}, runstate.LeaseTerms{Token: "two", Margin: time.Minute}, now) // header and chunk
	if err := s.ClaimIfLive(ctx, c1); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := s.ClaimIfLive(ctx, c2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second claim of the same state: %v, want ErrConflict", err)
	}
	got, _, err := s.ReadRun(ctx, r.ID, true)
	if err != nil || got.Steps[0] != runstate.Pending0 || got.Steps[15].Token != "one" {
		t.Fatalf("a refused claim across items changed something: %+v, %v", got.Steps, err)
	}
	// Cancelled after a read: the claim made on that read fails.
	r2 := createRun(t, s, w, "")
	end, _ := runstate.Cancel(r2, now)
	if err := s.EndRunIfRunning(ctx, end); err != nil {
		t.Fatal(err)
	}
	for _, steps := range [][]int{{0}, {0, 15}} {
		stale, _ := runstate.NewClaim(r2, p, steps, runstate.LeaseTerms{Token: "late", Margin: time.Minute}, now)
		if err := s.ClaimIfLive(ctx, stale); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("claim of %v after cancel: %v", steps, err)
		}
	}
	// Retried since the read (the slots are P0 again): the stale
	// generation's claim fails.
	fresh, _, err := s.ReadRun(ctx, r2.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := runstate.Retry(fresh, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RetryRunIfEnded(ctx, rs); err != nil {
		t.Fatal(err)
	}
	stale, _ := runstate.NewClaim(r2, p, []int{0, 15}, runstate.LeaseTerms{Token: "late", Margin: time.Minute}, now)
	if err := s.ClaimIfLive(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("claim from before the retry: %v", err)
	}
}

// TestCommitGroup: a group commit of an order chain lands once; the same
// commit again (a retry of one whose answer was lost) is recognised as
// landed and changes nothing; a commit of the same steps built by someone
// else conflicts.
func TestCommitGroup(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("order", "v@validate_order", "c:v@charge_payment", "n:c@send_notification")
	p := mustPlan(t, w)
	o := newOrder(t, s)
	r := createRun(t, s, w, o.ID)
	running, leases := claim(t, s, r, p, 0)
	outs := outcomes(leases, nil)
	for _, i := range []int{1, 2} {
		outs = append(outs, runstate.Outcome{Step: i, Held: runstate.Pending0, Start: now, End: now})
	}
	c := runstate.BuildCommit(running, p, status.OrderPending, outs, policy, now)
	token := ids.New("cmt")
	if err := s.CommitIfHeld(ctx, c, token); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitIfHeld(ctx, c, token); err != nil {
		t.Fatalf("the same commit again: %v, want it recognised as landed", err)
	}
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the same commit under another token: %v, want ErrConflict", err)
	}
	late := outcomes(leases, nil)
	late[0].End = now.Add(time.Minute)
	other := runstate.BuildCommit(running, p, status.OrderPending, late, policy, now)
	if err := s.CommitIfHeld(ctx, other, ids.New("cmt")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("another commit of the same steps: %v, want ErrConflict", err)
	}
	d, err := s.GetRun(ctx, r.ID)
	if err != nil || d.Status != status.RunCompleted || d.StepsCompleted != 3 || d.CompletedAt == nil {
		t.Fatalf("run after commit: %+v, %v", d, err)
	}
	got, err := s.GetOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, h := range got.History {
		events = append(events, h.Event)
	}
	if got.Status != status.OrderCharged || strings.Join(events, ",") != "created,validate_order,charge_payment,send_notification" {
		t.Fatalf("order %s, history %v", got.Status, events)
	}
	if ids := activeIDs(t, s); len(ids) != 0 {
		t.Fatalf("a completed run is still in the active index: %v", ids)
	}
}

// TestRunLevelWritesAreFencedByGeneration: an end decided on a read from
// before a retry cannot end the retried run, and a failed 100-step run is
// reset by one write (failures #1 and #5 of the first design).
func TestRunLevelWritesAreFencedByGeneration(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var names []string
	for i := range workflow.MaxSteps {
		if i == 0 {
			names = append(names, "root")
		} else {
			names = append(names, fmt.Sprintf("s%02d:root", i))
		}
	}
	w := newWorkflow("wide", names...)
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	running, leases := claim(t, s, r, p, 0)
	stale := running
	// The root fails for good: the step and the run fail in one commit.
	w.Definition.Steps[0].Config.MaxRetries = 0
	p0 := mustPlan(t, w)
	c := runstate.BuildCommit(running, p0, "", outcomes(leases, errors.New("boom")), policy, now)
	if c.End != status.RunFailed {
		t.Fatalf("commit = %+v", c)
	}
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	failed, _, err := s.ReadRun(ctx, r.ID, true)
	if err != nil || failed.Status != status.RunFailed {
		t.Fatalf("after the failure: %+v, %v", failed.Status, err)
	}
	rs, err := runstate.Retry(failed, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RetryRunIfEnded(ctx, rs); err != nil {
		t.Fatalf("retry of a 100-step run failed at its root: %v", err)
	}
	end, err := runstate.Fail(stale, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EndRunIfRunning(ctx, end); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("an end decided before the retry: %v, want ErrConflict", err)
	}
	fresh, _, _ := s.ReadRun(ctx, r.ID, true)
	if fresh.Status != status.RunRunning || fresh.Gen != 1 || fresh.Retries != 1 || fresh.Steps[0] != runstate.Pending0 {
		t.Fatalf("retried run = %+v", fresh)
	}
	// Every chunk is live again: a step in the last chunk can be claimed.
	claim(t, s, fresh, p, 0)
	if err := s.RetryRunIfEnded(ctx, rs); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("retrying the same generation twice: %v", err)
	}
}

func TestOrderRoundTripKeepsExactAmount(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var want []string
	for _, amount := range []string{"19.99", "0.01", "1000000", "0.1"} {
		o := wire.Order{ID: ids.New("ord"), Amount: wire.Amount(amount), Status: status.OrderPending, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateOrderIfAbsent(ctx, o); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetOrder(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Amount != o.Amount || got.Status != status.OrderPending || len(got.History) != 1 || got.History[0].Event != "created" || got.HistoryNext != nil {
			t.Fatalf("order round trip: got %+v, want %+v", got, o)
		}
		want = append([]string{o.ID}, want...)
	}
	got, _ := collect(t, 3, func(p store.Page) ([]wire.OrderSummary, string, error) { return s.ListOrders(ctx, p) },
		func(o wire.OrderSummary) string { return o.ID })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("orders listed %v, want %v", got, want)
	}
	if _, err := s.GetOrder(ctx, ids.New("ord")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing order: err = %v", err)
	}
}

// TestOrderHistoryPages: history entries are items of their own, read a
// page at a time, so an order with many entries keeps its size.
func TestOrderHistoryPages(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("notify", "n@send_notification")
	p := mustPlan(t, w)
	o := newOrder(t, s)
	for range 120 {
		r := createRun(t, s, w, o.ID)
		running, leases := claim(t, s, r, p, 0)
		c := runstate.BuildCommit(running, p, status.OrderPending, outcomes(leases, nil), policy, now)
		if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 100 || got.HistoryNext == nil || got.History[0].Event != "created" {
		t.Fatalf("first page: %d entries, next %v", len(got.History), got.HistoryNext)
	}
	entries, sizes := collect(t, 50, func(pg store.Page) ([]wire.HistoryEntry, string, error) { return s.OrderHistory(ctx, o.ID, pg) },
		func(h wire.HistoryEntry) string { return h.RunID + "/" + h.Event })
	if len(entries) != 121 || fmt.Sprint(sizes) != "[50 50 21]" {
		t.Fatalf("paged %d entries in pages %v", len(entries), sizes)
	}
}

// A read that sees a run's items in different generations (a retry's
// transaction half visible) is never decoded into a run: deciding on the
// new header beside an old chunk's failed step would fail a retried run.
func TestReadsRefuseMixedGenerations(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	s, ctx := store.New(db, table), context.Background()
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("s%02d", i))
	}
	w := newWorkflow("mixed", names...)
	r := createRun(t, s, w, "")
	if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "RUN#" + r.ID}, "sk": &types.AttributeValueMemberS{Value: "RUN#C01"},
		},
		UpdateExpression:          aws.String("SET gen = :g"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberN{Value: "1"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReadRun(ctx, r.ID, true); err == nil || !strings.Contains(err.Error(), "generation") {
		t.Errorf("ReadRun of mixed generations: %v", err)
	}
	if _, _, err := s.LoadRun(ctx, store.RunRef{ID: r.ID, WorkflowID: w.ID, Steps: len(names)}); err == nil || !strings.Contains(err.Error(), "generation") {
		t.Errorf("LoadRun of mixed generations: %v", err)
	}
}

// A retry resets a slot only from the state it read: a step that a late
// runner committed between the retry's read and its write stays completed,
// and the retry is refused (the API then reads again).
func TestResetKeepsALateCommit(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("late", "a", "b:a")
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	running, leases := claim(t, s, r, p, 0)
	cancel, err := runstate.Cancel(running, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EndRunIfRunning(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	cancelled, _, err := s.ReadRun(ctx, r.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	// The retry decides after a's lease (a minute) has expired...
	rs, err := runstate.Retry(cancelled, now.Add(2*time.Minute))
	if err != nil || len(rs.Swaps) != 2 || rs.Swaps[0].New != runstate.Pending0 {
		t.Fatalf("retry = %+v, %v", rs, err)
	}
	// ...and a's runner commits first.
	c := runstate.BuildCommit(cancelled, p, "", outcomes(leases, nil), policy, now)
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryRunIfEnded(ctx, rs); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reset over a late commit: %v, want ErrConflict", err)
	}
	got, _, _ := s.ReadRun(ctx, r.ID, true)
	if got.Steps[0].Status != status.StepCompleted || got.Gen != 0 {
		t.Fatalf("after the refused reset: gen %d, a %s", got.Gen, got.Steps[0].Status)
	}
}

// A commit built on a read of an ended run holds only in that generation:
// if a retry lands first, the commit is refused and rebuilt on the live run.
func TestCommitOnAnEndedRunIsFencedByGeneration(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("s%02d", i))
	}
	w := newWorkflow("fenced", names...)
	w.Definition.Steps[11].Config.MaxRetries = 0
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	// Step 11 lives in a chunk, so the commit does not touch the header.
	running, leases := claim(t, s, r, p, 11)
	cancel, _ := runstate.Cancel(running, now)
	if err := s.EndRunIfRunning(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	cancelled, _, _ := s.ReadRun(ctx, r.ID, true)
	c := runstate.BuildCommit(cancelled, p, "", outcomes(leases, errors.New("boom")), policy, now)
	if !c.SameGen || c.End != "" {
		t.Fatalf("commit on an ended run = %+v", c)
	}
	rs, _ := runstate.Retry(cancelled, now) // the lease is live: step 11 is kept
	if err := s.RetryRunIfEnded(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit decided before the retry: %v, want ErrConflict", err)
	}
	live, _, _ := s.ReadRun(ctx, r.ID, true)
	if live.Steps[11] != leases[0].Held {
		t.Fatalf("step 11 = %+v, want still held", live.Steps[11])
	}
	// Rebuilt on the live run, the same failure fails the run with it.
	c = runstate.BuildCommit(live, p, "", outcomes(leases, errors.New("boom")), policy, now)
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil || c.End != status.RunFailed {
		t.Fatalf("rebuilt commit %+v: %v", c, err)
	}
}

// TestALostAnswerIsNotACollision: every conditional write the code may meet
// again after a lost answer (the write landed, the answer was lost, the
// SDK sent it again and its condition failed on the write's own effect)
// tells its own landed write from someone else's, and succeeds. Before,
// a run of more than 10 steps whose header answer was lost came back as an
// ID collision, its chunks were deleted, and the run existed but could not
// be read.
func TestALostAnswerIsNotACollision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	chain := func(n int) wire.Workflow {
		names := []string{"s00"}
		for i := 1; i < n; i++ {
			names = append(names, fmt.Sprintf("s%02d:s%02d", i, i-1))
		}
		return newWorkflow(fmt.Sprintf("chain-%d", n), names...)
	}
	for _, tt := range []struct {
		name  string
		op    string
		match []string
		act   func(t *testing.T, s *store.Store) error
	}{
		{"create a run of 4 steps", "PutItem", []string{`"sk":{"S":"RUN"}`}, func(t *testing.T, s *store.Store) error {
			w := chain(4)
			if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
				t.Fatal(err)
			}
			r := runstate.New(ids.New("run"), w.ID, w.Name, "", mustPlan(t, w), now)
			if err := s.CreateRunIfAbsent(ctx, r, nil); err != nil {
				return err
			}
			_, err := s.GetRun(ctx, r.ID)
			return err
		}},
		{"create a run of 30 steps", "PutItem", []string{`"sk":{"S":"RUN"}`}, func(t *testing.T, s *store.Store) error {
			w := chain(30)
			if err := s.CreateWorkflowIfAbsent(ctx, w); err != nil {
				t.Fatal(err)
			}
			r := runstate.New(ids.New("run"), w.ID, w.Name, "", mustPlan(t, w), now)
			if err := s.CreateRunIfAbsent(ctx, r, nil); err != nil {
				return err
			}
			if _, err := s.GetRun(ctx, r.ID); err != nil {
				return err
			}
			pg, err := s.ListRuns(ctx, store.RunFilter{}, store.Page{Limit: 10})
			if err == nil && len(pg.Unreadable) > 0 {
				return pg.Unreadable[0].Err
			}
			return err
		}},
		{"create a workflow", "PutItem", []string{`"sk":{"S":"WF"}`}, func(t *testing.T, s *store.Store) error {
			return s.CreateWorkflowIfAbsent(ctx, chain(3))
		}},
		{"create a workflow by definition", "PutItem", []string{`"sk":{"S":"WF"}`}, func(t *testing.T, s *store.Store) error {
			w := chain(5)
			got, reused, err := s.FindOrCreateWorkflow(ctx, w)
			if err == nil && (reused || got.ID != w.ID) {
				t.Errorf("FindOrCreateWorkflow = %s, reused %v; want the new workflow", got.ID, reused)
			}
			return err
		}},
		{"create an order", "TransactWriteItems", []string{`"sk":{"S":"ORDER"}`}, func(t *testing.T, s *store.Store) error {
			o := wire.Order{ID: ids.New("ord"), Amount: "3", Status: status.OrderPending, CreatedAt: now, UpdatedAt: now}
			if err := s.CreateOrderIfAbsent(ctx, o); err != nil {
				return err
			}
			got, err := s.GetOrder(ctx, o.ID)
			if err == nil && len(got.History) != 1 {
				t.Errorf("order history %v", got.History)
			}
			return err
		}},
		{"claim", "UpdateItem", []string{"SET s0 = "}, func(t *testing.T, s *store.Store) error {
			w := chain(2)
			r := createRun(t, s, w, "")
			c, _ := runstate.NewClaim(r, mustPlan(t, w), []int{0}, runstate.LeaseTerms{Token: "mine", Margin: time.Minute}, now)
			return s.ClaimIfLive(ctx, c)
		}},
		{"commit", "TransactWriteItems", []string{"s0 = "}, func(t *testing.T, s *store.Store) error {
			w := chain(2)
			p := mustPlan(t, w)
			r := createRun(t, s, w, "")
			c, leases := runstate.NewClaim(r, p, []int{0}, runstate.LeaseTerms{Token: "mine", Margin: time.Minute}, now)
			if err := s.ClaimIfLive(ctx, c); err != nil {
				t.Fatal(err)
			}
			cm := runstate.BuildCommit(r.Apply(c.Swaps), p, "", outcomes(leases, nil), policy, now)
			return s.CommitIfHeld(ctx, cm, ids.New("cmt"))
		}},
		{"cancel", "UpdateItem", []string{":end"}, func(t *testing.T, s *store.Store) error {
			r := createRun(t, s, chain(2), "")
			end, _ := runstate.Cancel(r, now)
			return s.EndRunIfRunning(ctx, end)
		}},
		{"retry", "UpdateItem", []string{":g1"}, func(t *testing.T, s *store.Store) error {
			r := createRun(t, s, chain(2), "")
			end, _ := runstate.Cancel(r, now)
			if err := s.EndRunIfRunning(ctx, end); err != nil {
				t.Fatal(err)
			}
			cancelled, _, err := s.ReadRun(ctx, r.ID, true)
			if err != nil {
				t.Fatal(err)
			}
			rs, _ := runstate.Retry(cancelled, now)
			return s.RetryRunIfEnded(ctx, rs)
		}},
		{"count a run start", "UpdateItem", []string{"RATE#"}, func(t *testing.T, s *store.Store) error {
			for i := range 2 {
				if err := s.CountRunStartIfUnderLimit(ctx, "caller", 2, now); err != nil {
					return fmt.Errorf("start %d of 2: %w", i+1, err)
				}
			}
			if err := s.CountRunStartIfUnderLimit(ctx, "caller", 2, now); !errors.Is(err, store.ErrRateLimited) {
				t.Errorf("third start: %v, want ErrRateLimited", err)
			}
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, lose := testenv.LosingDynamoDB(t)
			s := store.New(db, testenv.Table(t, db))
			lose.Lose(tt.op, 1, testenv.Containing(tt.match...))
			if err := tt.act(t, s); err != nil {
				t.Errorf("after a lost answer: %v", err)
			}
			if lose.Pending() != 0 {
				t.Errorf("no %s answer was lost: the test did not test anything", tt.op)
			}
		})
	}
}
