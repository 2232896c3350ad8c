package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// TestSweepCursorIsLeased: one sweeper at a time holds the cursor; it
// saves as it goes, and the next takes it where it was released, or where
// it was last saved once the lease of a sweeper that died has ended.
func TestSweepCursorIsLeased(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	c, l, err := s.TakeSweepIfFree(ctx, now, now.Add(time.Minute))
	if err != nil || len(c.After) != 0 || c.Cycles != 0 {
		t.Fatalf("first take: %+v, %v", c, err)
	}
	if _, _, err := s.TakeSweepIfFree(ctx, now.Add(59*time.Second), now.Add(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("take while held: %v, want ErrConflict", err)
	}
	saved := store.SweepCursor{After: []string{"run_b", "", "run_c"}, Done: []bool{false, true, false}, Cycles: 2,
		Began: now.Add(-time.Hour), Runs: 7, Passes: 3}
	if err := s.SaveSweepIfHeld(ctx, l, saved); err != nil {
		t.Fatal(err)
	}
	// The holder dies; its lease ends; the next takes what it saved.
	c2, l2, err := s.TakeSweepIfFree(ctx, now.Add(time.Minute), now.Add(2*time.Minute))
	if err != nil {
		t.Fatalf("take after the lease ended: %v", err)
	}
	if fmt.Sprint(c2) != fmt.Sprint(saved) {
		t.Fatalf("took %+v, want %+v", c2, saved)
	}
	if err := s.SaveSweepIfHeld(ctx, l, store.SweepCursor{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("save by the sweeper whose lease ended: %v, want ErrConflict", err)
	}
	// Released, with every shard at its start: the next takes it at once.
	fresh := store.SweepCursor{After: make([]string, 3), Done: make([]bool, 3), Cycles: 3, Began: now.Add(70 * time.Second)}
	if err := s.ReleaseSweepIfHeld(ctx, l2, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSweepIfHeld(ctx, l, fresh); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("release by a sweeper that does not hold it: %v, want ErrConflict", err)
	}
	c3, _, err := s.TakeSweepIfFree(ctx, now.Add(71*time.Second), now.Add(2*time.Minute))
	if err != nil || fmt.Sprint(c3) != fmt.Sprint(fresh) {
		t.Fatalf("take after a release: %+v, %v; want %+v", c3, err, fresh)
	}
}

// TestSweepWritesRecogniseTheirLostAnswers: a take, save or release of the
// cursor, or a replace of a run's marks, whose answer was lost (the SDK's
// retry then fails its condition) is the caller's own, not a conflict.
func TestSweepWritesRecogniseTheirLostAnswers(t *testing.T) {
	t.Parallel()
	cursor := store.SweepCursor{After: []string{"run_a"}, Done: []bool{false}}
	for _, tt := range []struct {
		name  string
		match []string
		act   func(*testing.T, *store.Store) error
	}{
		{"take", []string{":until"}, func(t *testing.T, s *store.Store) error {
			_, l, err := s.TakeSweepIfFree(context.Background(), now, now.Add(time.Minute))
			if err != nil {
				return err
			}
			return s.SaveSweepIfHeld(context.Background(), l, cursor) // the lease is ours
		}},
		{"release", []string{"REMOVE"}, func(t *testing.T, s *store.Store) error {
			_, l, err := s.TakeSweepIfFree(context.Background(), now, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			return s.ReleaseSweepIfHeld(context.Background(), l, cursor)
		}},
		{"replace marks", []string{"SWEEP#MARK"}, func(t *testing.T, s *store.Store) error {
			ctx := context.Background()
			read, err := s.ReadResendMarks(ctx, []string{"run_x"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.ReplaceResendMarksIfUnchanged(ctx, "run_x", read["run_x"],
				map[int]store.ResendMark{0: {State: "0/P0", Sends: 1, Last: now}}, now.Add(time.Hour))
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, lose := testenv.LosingDynamoDB(t)
			s := store.New(db, testenv.Table(t, db))
			lose.Lose("UpdateItem", 1, testenv.Containing(tt.match...))
			if err := tt.act(t, s); err != nil {
				t.Errorf("after a lost answer: %v", err)
			}
			if lose.Pending() != 0 {
				t.Errorf("no UpdateItem answer was lost: the test did not test anything")
			}
		})
	}
}

// TestSweepResendMarks: marks are read for many runs at once (absent ones
// empty), replaced only if unchanged since the read, and carry the TTL
// attribute.
func TestSweepResendMarks(t *testing.T) {
	t.Parallel()
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	clock := now
	s := store.New(db, table, store.WithClock(func() time.Time { return clock }))
	ctx := context.Background()
	read, err := s.ReadResendMarks(ctx, []string{"run_a", "run_b"})
	if err != nil || len(read) != 2 || len(read["run_a"].Steps) != 0 {
		t.Fatalf("read absent marks: %+v, %v", read, err)
	}
	marks := map[int]store.ResendMark{2: {State: "1/P0", Sends: 1, Last: now}, 11: {State: "1/R0:tok:a:b", Sends: 3, Last: now.Add(-time.Minute)}}
	expires := now.Add(time.Hour)
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, "run_a", read["run_a"], marks, expires); err != nil {
		t.Fatal(err)
	}
	// Another sweeper that read before that write is refused.
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, "run_a", read["run_a"], nil, expires); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replace on a stale read of absent marks: %v, want ErrConflict", err)
	}
	again, err := s.ReadResendMarks(ctx, []string{"run_a"})
	if err != nil || fmt.Sprint(again["run_a"].Steps) != fmt.Sprint(marks) {
		t.Fatalf("read %+v, %v; want %+v", again["run_a"].Steps, err, marks)
	}
	next := map[int]store.ResendMark{2: {State: "1/P0", Sends: 2, Last: now.Add(time.Minute)}}
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, "run_a", again["run_a"], next, expires); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, "run_a", again["run_a"], next, expires); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replace on a stale read: %v, want ErrConflict", err)
	}
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "RUN#run_a"}, "sk": &types.AttributeValueMemberS{Value: "SWEEP#MARK"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := out.Item["ttl"].(*types.AttributeValueMemberN); ttl == nil || ttl.Value != strconv.FormatInt(expires.Unix(), 10) {
		t.Fatalf("ttl %v, want %d", out.Item["ttl"], expires.Unix())
	}
	// Past its TTL, a mark is as good as gone (DynamoDB deletes it some
	// time later), and it can still be replaced.
	clock = expires
	gone, err := s.ReadResendMarks(ctx, []string{"run_a"})
	if err != nil || len(gone["run_a"].Steps) != 0 {
		t.Fatalf("read marks past their ttl: %+v, %v", gone, err)
	}
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, "run_a", gone["run_a"], next, expires.Add(time.Hour)); err != nil {
		t.Fatalf("replace marks past their ttl: %v", err)
	}
}

// TestSweepReadRunsReadsWhatReadRunReads: a batch read of runs with and
// without chunks, one with steps moved, and one that does not exist,
// agrees with ReadRun run by run; a run's mark is not one of its items.
func TestSweepReadRunsReadsWhatReadRunReads(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	small := createRun(t, s, newWorkflow("small", "a", "b:a"), "")
	steps := []string{"s0"}
	for i := 1; i < 40; i++ {
		steps = append(steps, fmt.Sprintf("s%d:s%d", i, i-1))
	}
	big := createRun(t, s, newWorkflow("big", steps...), "")
	bp := mustPlan(t, newWorkflow("big", steps...))
	c, _ := runstate.NewClaim(big, bp, []int{0}, runstate.LeaseTerms{Token: "tok", Margin: time.Minute}, now)
	if err := s.ClaimIfLive(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceResendMarksIfUnchanged(ctx, small.ID, store.ResendMarks{}, map[int]store.ResendMark{0: {State: "x", Sends: 1, Last: now}}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ids := []string{big.ID, "run_missing", small.ID}
	got, err := s.ReadRuns(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !slices.Equal([]string{got[0].ID, got[1].ID, got[2].ID}, ids) {
		t.Fatalf("read %+v", got)
	}
	if !errors.Is(got[1].Err, store.ErrNotFound) {
		t.Fatalf("missing run: %v, want ErrNotFound", got[1].Err)
	}
	for _, i := range []int{0, 2} {
		want, _, err := s.ReadRun(ctx, ids[i], true)
		if err != nil || got[i].Err != nil {
			t.Fatalf("run %s: %v, %v", ids[i], err, got[i].Err)
		}
		if fmt.Sprint(got[i].Run) != fmt.Sprint(want) {
			t.Errorf("run %s:\n got %+v\nwant %+v", ids[i], got[i].Run, want)
		}
	}
	if got[0].Run.Steps[0].Status != status.StepRunning || got[0].Run.Steps[39].Status != status.StepPending {
		t.Fatalf("big run's steps: %s, %s", got[0].Run.Steps[0].Status, got[0].Run.Steps[39].Status)
	}
}
