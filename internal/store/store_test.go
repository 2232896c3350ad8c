package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/id"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
	"stepflow/internal/workflow"
)

// These tests are the storage conformance suite: they run against the
// embedded emulator by default and against any endpoint named by
// STEPFLOW_TEST_ENDPOINT (make conformance uses DynamoDB Local).

var ids = id.NewGenerator(nil, nil)

var now = time.Date(2026, 11, 25, 12, 0, 0, 123_000_000, time.UTC)

func newWorkflow(name string, steps ...string) store.Workflow {
	def := workflow.Definition{Name: name}
	for _, s := range steps {
		def.Steps = append(def.Steps, workflow.Step{ID: s, Type: "task", DependsOn: []string{}, Config: workflow.Config{DurationSeconds: 1, MaxRetries: 3}})
	}
	return store.Workflow{ID: ids.New("wf"), Name: name, Definition: def, CreatedAt: now}
}

func newRun(w store.Workflow, orderID *string) (store.Run, []store.Step) {
	r := store.Run{ID: ids.New("run"), WorkflowID: w.ID, WorkflowName: w.Name, OrderID: orderID, Status: status.RunPending, StepCount: len(w.Definition.Steps), CreatedAt: now}
	var steps []store.Step
	for i, s := range w.Definition.Steps {
		steps = append(steps, store.Step{ID: fmt.Sprintf("%s/%d", r.ID, i), StepID: s.ID, StepIndex: i, Type: s.Type, Status: status.StepPending, MaxRetries: s.Config.MaxRetries, DependsOn: s.DependsOn, Config: s.Config, Dependents: []int{}})
	}
	return r, steps
}

func TestWorkflowRoundTrip(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("etl", "fetch", "load")
	w.Definition.Steps[1].DependsOn = []string{"fetch"}
	w.Definition.Steps[1].Config = workflow.Config{Action: "ship_order", DurationSeconds: 0.25, FailProbability: 0.5, MaxRetries: 10}
	if err := s.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetWorkflow(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != w.Name || !got.CreatedAt.Equal(now) || fmt.Sprint(got.Definition) != fmt.Sprint(w.Definition) {
		t.Fatalf("round trip changed the workflow:\n got %+v\nwant %+v", got, w)
	}
	if err := s.CreateWorkflow(ctx, w); !errors.Is(err, store.ErrConflict) {
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
	for range 100 {
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
		if err := s.CreateWorkflow(ctx, w); err != nil {
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
		got, sizes := collect(t, tt.limit, func(p store.Page) ([]store.WorkflowSummary, string, error) { return s.ListWorkflows(ctx, p) },
			func(w store.WorkflowSummary) string { return w.ID })
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
	w1, w2 := newWorkflow("one", "a", "b", "c"), newWorkflow("two", "x")
	for _, w := range []store.Workflow{w1, w2} {
		if err := s.CreateWorkflow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	order := store.Order{ID: ids.New("ord"), Amount: "10.50", Status: status.OrderPending, CreatedAt: now, UpdatedAt: now, History: []store.HistoryEntry{}}
	if err := s.CreateOrder(ctx, order); err != nil {
		t.Fatal(err)
	}
	var runs []store.Run
	for i := range 5 {
		w := w1
		if i%2 == 1 {
			w = w2
		}
		var oid *string
		if i == 0 {
			oid = &order.ID
		}
		r, steps := newRun(w, oid)
		if err := s.CreateRun(ctx, r, steps); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	d, err := s.GetRun(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.WorkflowName != "one" || d.OrderID == nil || *d.OrderID != order.ID || d.Status != status.RunPending || len(d.Steps) != 3 {
		t.Fatalf("run detail = %+v", d)
	}
	for i, st := range d.Steps {
		if st.StepIndex != i || st.StepID != w1.Definition.Steps[i].ID || st.Status != status.StepPending || st.MaxRetries != 3 {
			t.Fatalf("step %d = %+v", i, st)
		}
	}
	idsOf := func(f store.RunFilter) string {
		got, _ := collect(t, 2, func(p store.Page) ([]store.Run, string, error) { return s.ListRuns(ctx, f, p) },
			func(r store.Run) string { return r.ID })
		return fmt.Sprint(got)
	}
	r := runs
	tests := []struct {
		filter store.RunFilter
		want   []store.Run
	}{
		{store.RunFilter{}, []store.Run{r[4], r[3], r[2], r[1], r[0]}},
		{store.RunFilter{WorkflowID: w2.ID}, []store.Run{r[3], r[1]}},
		{store.RunFilter{Status: status.RunPending}, []store.Run{r[4], r[3], r[2], r[1], r[0]}},
		{store.RunFilter{Status: status.RunRunning}, nil},
		{store.RunFilter{Status: status.RunPending, WorkflowID: w1.ID}, []store.Run{r[4], r[2], r[0]}},
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
}

func TestCreateRunWithUnknownOrderWritesNothing(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	s, ctx := store.New(db, table), context.Background()
	w := newWorkflow("w", "a", "b")
	missing := ids.New("ord")
	r, steps := newRun(w, &missing)
	if err := s.CreateRun(ctx, r, steps); !errors.Is(err, store.ErrOrderNotFound) {
		t.Fatalf("err = %v, want ErrOrderNotFound", err)
	}
	if _, err := s.GetRun(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun after rejected create: err = %v, want ErrNotFound", err)
	}
	out, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "RUN#" + r.ID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 0 {
		t.Fatalf("%d items left behind by a rejected run", len(out.Items))
	}
}

func TestLargeRunRoundTrip(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var names []string
	for i := range workflow.MaxSteps {
		names = append(names, fmt.Sprintf("s%03d", i))
	}
	w := newWorkflow("big", names...)
	r, steps := newRun(w, nil)
	if err := s.CreateRun(ctx, r, steps); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != workflow.MaxSteps || d.Steps[99].StepID != "s099" {
		t.Fatalf("got %d steps", len(d.Steps))
	}
	if _, err := s.GetRun(ctx, ids.New("run")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing run: err = %v", err)
	}
}

func TestOrderRoundTripKeepsExactAmount(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var want []string
	for _, amount := range []string{"19.99", "0.01", "1000000", "0.1"} {
		o := store.Order{ID: ids.New("ord"), Amount: store.Amount(amount), Status: status.OrderPending, CreatedAt: now, UpdatedAt: now,
			History: []store.HistoryEntry{{At: now, Event: "created", To: status.OrderPending}}}
		if err := s.CreateOrder(ctx, o); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetOrder(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Amount != o.Amount || got.Status != status.OrderPending || len(got.History) != 1 || got.History[0].Event != "created" {
			t.Fatalf("order round trip: got %+v, want %+v", got, o)
		}
		want = append([]string{o.ID}, want...)
	}
	got, _ := collect(t, 3, func(p store.Page) ([]store.OrderSummary, string, error) { return s.ListOrders(ctx, p) },
		func(o store.OrderSummary) string { return o.ID })
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("orders listed %v, want %v", got, want)
	}
	if _, err := s.GetOrder(ctx, ids.New("ord")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing order: err = %v", err)
	}
}

// TestEndRunAsReadRefusesARetriedRun: a sweeper that decided to end a run
// on a read from before a retry must not end the retried run.
func TestEndRunAsReadRefusesARetriedRun(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	w := newWorkflow("w", "a")
	r, steps := newRun(w, nil)
	r.SinksRemaining = 1
	steps[0].Attempts = []store.Attempt{}
	if err := s.CreateRun(ctx, r, steps); err != nil {
		t.Fatal(err)
	}
	if err := s.StartRun(ctx, r.ID, now); err != nil {
		t.Fatal(err)
	}
	stale, err := s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EndRun(ctx, r.ID, status.RunFailed, now); err != nil {
		t.Fatal(err)
	}
	failed, _ := s.GetRun(ctx, r.ID)
	if err := s.RetryRun(ctx, failed, now); err != nil {
		t.Fatal(err)
	}
	if err := s.EndRunAsRead(ctx, stale, status.RunFailed, now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("EndRunAsRead on a retried run: %v, want ErrConflict", err)
	}
	fresh, _ := s.GetRun(ctx, r.ID)
	if fresh.Status != status.RunRunning || fresh.Retries != 1 {
		t.Fatalf("retried run = %s, retries %d", fresh.Status, fresh.Retries)
	}
	if err := s.EndRunAsRead(ctx, fresh, status.RunCompleted, now); err != nil {
		t.Fatalf("EndRunAsRead on the current read: %v", err)
	}
}
