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

// TestAttack18AnExpiredAttemptRecordIsReadAsGone: a failed attempt's
// record belongs to its run. It once carried ttl = its write + retention,
// so a run that stayed live past that (a long wait, an approval, a late
// retry) lost it from its detail, at a time DynamoDB's deletion chose; and
// a record past its ttl was still read. Now a record lives as long as the
// run's data (retention + 400 days from its write), and one past its ttl
// is read as gone.
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
	attempts := func() int {
		t.Helper()
		d, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == status.RunFailed || d.Status == status.RunCompleted || d.Status == status.RunCancelled {
			t.Fatalf("the run ended: %s", d.Status)
		}
		return len(d.Steps[0].Attempts)
	}
	if n := attempts(); n != 1 {
		t.Fatalf("before expiry: %d attempts", n)
	}
	clock = now.Add(49 * time.Hour) // past the retention; the run is live
	if n := attempts(); n != 1 {
		t.Errorf("a live run lost its attempt record to the retention: %d attempts", n)
	}
	clock = now.Add(48*time.Hour + 400*24*time.Hour + time.Second) // past the record's ttl
	if n := attempts(); n != 0 {
		t.Errorf("the run's detail shows %d attempt(s) past their ttl", n)
	}
}
