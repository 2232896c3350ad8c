package store_test

// Issue 18's adversarial review of retention (h-review18): what "reads
// treat an item past its ttl as gone" promises inside a run that is not
// itself expired.

import (
	"context"
	"errors"
	"testing"
	"time"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// TestAttack18AnExpiredAttemptRecordIsReadAsGone: a failed attempt's record
// carries ttl = its write + retention, whatever becomes of its run. A run
// that stays live past that (a retry with a long wait, a step waiting for
// an approval, or a run retried just before it would have expired) keeps
// showing the record in its detail until DynamoDB's deletion takes it, days
// later and at a time nobody chooses: the record is not treated as gone at
// its ttl, unlike headers, list entries and order history entries
// (retention.go: "reads treat an item past it as already gone").
//
// Here: step a fails once (retried later), the run stays live; at the
// record's ttl the run's detail still lists the attempt.
func TestAttack18AnExpiredAttemptRecordIsReadAsGone(t *testing.T) {
	t.Parallel()
	clock := now
	s := testenv.Store(t, store.WithRetention(48*time.Hour), store.WithClock(func() time.Time { return clock }))
	ctx := context.Background()
	w := newWorkflow("attempts", "a")
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	r, leases := claim(t, s, r, p, 0)
	c := runstate.BuildCommit(r, p, "", outcomes(leases, errors.New("boom")), policy, now)
	if c.End != "" || len(c.Failures) != 1 {
		t.Fatalf("want a retried failure that leaves the run live: %+v", c)
	}
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetRun(ctx, r.ID)
	if err != nil || len(d.Steps[0].Attempts) != 1 {
		t.Fatalf("before expiry: %d attempts, %v", len(d.Steps[0].Attempts), err)
	}
	clock = now.Add(49 * time.Hour) // the record's ttl has passed; the run is live
	d, err = s.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == status.RunFailed || d.Status == status.RunCompleted || d.Status == status.RunCancelled {
		t.Fatalf("the run ended: %s", d.Status)
	}
	if n := len(d.Steps[0].Attempts); n != 0 {
		t.Errorf("the run's detail shows %d attempt(s) past their ttl: an expired record is not read as gone, and it vanishes whenever DynamoDB deletes it", n)
	}
}
