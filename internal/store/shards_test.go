package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// activeIDs lists the running runs of every shard.
func activeIDs(t *testing.T, s *store.Store) []string {
	t.Helper()
	var all []string
	for k := range s.Shards() {
		cursor := ""
		for {
			ids, next, err := s.ListActiveRuns(context.Background(), k, store.Page{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, ids...)
			if next == "" {
				break
			}
			cursor = next
		}
	}
	slices.Sort(all)
	return all
}

// TestPagingAcrossShardsListsEveryRunOnceInOrder: whatever the shard
// count, every list returns each run once, newest first, across pages of
// any size; a store with more shards than the writer's lists it all too
// (the count may be raised); the active index lists each live run once.
func TestPagingAcrossShardsListsEveryRunOnceInOrder(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			t.Parallel()
			db := testenv.DynamoDB(t)
			table := testenv.Table(t, db)
			s := store.New(db, table, store.WithShards(shards))
			ctx := context.Background()
			w1, w2 := newWorkflow("one", "a", "b:a"), newWorkflow("two", "x")
			var all, ofW1, live []string
			for i := range 23 {
				w := w1
				if i%3 == 2 {
					w = w2
				}
				r := createRun(t, s, w, "")
				all = append(all, r.ID)
				if w.ID == w1.ID {
					ofW1 = append(ofW1, r.ID)
				}
				if i%4 == 0 {
					end, _ := runstate.Cancel(r, now)
					if err := s.EndRunIfRunning(ctx, end); err != nil {
						t.Fatal(err)
					}
				} else {
					live = append(live, r.ID)
				}
			}
			slices.Reverse(all)
			slices.Reverse(ofW1)
			slices.Reverse(live)
			for _, reader := range []*store.Store{s, store.New(db, table, store.WithShards(shards+5))} {
				for _, tt := range []struct {
					f    store.RunFilter
					want []string
				}{
					{store.RunFilter{}, all},
					{store.RunFilter{WorkflowID: w1.ID}, ofW1},
					{store.RunFilter{Status: status.RunPending}, live},
				} {
					for _, limit := range []int{1, 4, 50} {
						got, _ := collect(t, limit, func(p store.Page) ([]wire.RunSummary, string, error) {
							pg, err := reader.ListRuns(ctx, tt.f, p)
							return pg.Runs, pg.Next, err
						}, func(r wire.RunSummary) string { return r.ID })
						if !slices.Equal(got, tt.want) {
							t.Errorf("%d shards read by %d, filter %+v, pages of %d:\n got %v\nwant %v", shards, reader.Shards(), tt.f, limit, got, tt.want)
						}
					}
				}
			}
			got, _ := collect(t, 1, func(p store.Page) ([]wire.WorkflowSummary, string, error) { return s.ListWorkflows(ctx, p) },
				func(w wire.WorkflowSummary) string { return w.ID })
			if want := []string{w2.ID, w1.ID}; !slices.Equal(got, want) {
				t.Errorf("workflows %v, want %v", got, want)
			}
			slices.Sort(live)
			if got := activeIDs(t, s); !slices.Equal(got, live) {
				t.Errorf("active index %v, want %v", got, live)
			}
		})
	}
}

// TestAnExpiredRunLeavesEveryListAndRead: a run ended longer ago than the
// retention is gone from reads, lists and its order's history at once (TTL
// deletion may lag by days); live runs, the order and its creation entry
// stay; a retry before the run expires keeps it.
func TestAnExpiredRunLeavesEveryListAndRead(t *testing.T) {
	t.Parallel()
	clock := now
	s := testenv.Store(t, store.WithRetention(48*time.Hour), store.WithClock(func() time.Time { return clock }))
	ctx := context.Background()
	w := newWorkflow("order", "v@validate_order")
	p := mustPlan(t, w)
	order := newOrder(t, s)
	old, kept, live := createRun(t, s, w, order.ID), createRun(t, s, w, ""), createRun(t, s, w, "")
	// old completes its step, which moves its order and writes the
	// order's history; kept is cancelled, then retried.
	r, leases := claim(t, s, old, p, 0)
	c := runstate.BuildCommit(r, p, status.OrderPending, outcomes(leases, nil), policy, now)
	if c.End != status.RunCompleted {
		t.Fatalf("the commit does not end the run: %+v", c)
	}
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	end, _ := runstate.Cancel(kept, now)
	if err := s.EndRunIfRunning(ctx, end); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetRun(ctx, old.ID)
	if err != nil || d.Status != status.RunCompleted || d.ExpiresAt == nil || !d.ExpiresAt.Equal(now.Add(48*time.Hour).Truncate(time.Second)) {
		t.Fatalf("ended run: %+v, expires %v, %v", d.Status, d.ExpiresAt, err)
	}
	clock = now.Add(47 * time.Hour)
	kr, _, err := s.ReadRun(ctx, kept.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	reset, err := runstate.Retry(kr, clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RetryRunIfEnded(ctx, reset); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(48 * time.Hour)
	if _, err := s.GetRun(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired run read: %v, want ErrNotFound", err)
	}
	pg, err := s.ListRuns(ctx, store.RunFilter{}, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range pg.Runs {
		ids = append(ids, r.ID)
		if r.ExpiresAt != nil {
			t.Errorf("live run %s expires at %v", r.ID, r.ExpiresAt)
		}
	}
	if want := []string{live.ID, kept.ID}; !slices.Equal(ids, want) {
		t.Fatalf("runs listed after expiry %v, want %v", ids, want)
	}
	o, err := s.GetOrder(ctx, order.ID)
	if err != nil || o.Status != status.OrderValidated || len(o.History) != 1 || o.History[0].Event != "created" {
		t.Fatalf("order after its run expired: %+v, %v", o, err)
	}
}

// TestATableOfAnOlderLayoutIsRefusedByName: a table whose by_workflow index
// is keyed on workflow_id (before sharding) would list nothing by
// workflow; EnsureTable says so instead of running on it.
func TestATableOfAnOlderLayoutIsRefusedByName(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	name := testenv.Name(t, "old")
	in := store.CreateTableInput(name)
	for i, ix := range in.GlobalSecondaryIndexes {
		if *ix.IndexName == "by_workflow" {
			in.GlobalSecondaryIndexes[i].KeySchema[0].AttributeName = aws.String("workflow_id")
		}
	}
	for i, a := range in.AttributeDefinitions {
		if *a.AttributeName == "wfk" {
			in.AttributeDefinitions[i].AttributeName = aws.String("workflow_id")
		}
	}
	ctx := context.Background()
	if _, err := db.CreateTable(ctx, in); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	err := store.EnsureTable(ctx, db, name)
	if err == nil || !strings.Contains(err.Error(), "index by_workflow is keyed on workflow_id HASH") {
		t.Fatalf("EnsureTable on an older layout: %v", err)
	}
}
