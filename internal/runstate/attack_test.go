package runstate

import (
	"errors"
	"testing"
	"time"

	"stepflow/internal/status"
)

// TestAttackFailingCommitLeavesRunningInlineStepReady: a -> (x, z), x
// with no retries. a is claimed and ends; x and z start inline (held by
// P0). x fails before a's window ends, so the commit completes a, fails x
// and the run, and (BuildCommits: "if !ended && !failed") does not claim
// z, which still runs. After the commit, storage holds z as P0 with its
// only parent completed: Retry keeps that P0 (it is Pending0) and Roots
// reports z ready, so the retried run enqueues a second execution of a
// step whose first one is still running.
func TestAttackFailingCommitLeavesRunningInlineStepReady(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "x:a", "z:a")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(time.Millisecond, 0, nil)
	g.start(time.Millisecond, 1, 2)
	g.end(2*time.Millisecond, 1, errors.New("x fails for good"))
	cs := g.commit(2 * time.Millisecond)
	if len(cs) != 1 || cs[0].End != status.RunFailed {
		t.Fatalf("commits %+v", cs)
	}
	// z is still running here, and the commit that failed the run claimed
	// it: it is running in storage, not ready.
	if h := g.s.Held(2); h.Status != status.StepRunning || !h.Inline || g.storage.Steps[2] != h {
		t.Fatalf("z held by %+v, stored %+v", h, g.storage.Steps[2])
	}
	rs, err := Retry(g.storage, t0.Add(3*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	after := rs.Applied(g.storage)
	roots := Roots(after, p, t0.Add(3*time.Millisecond))
	t.Logf("storage after the failing commit: a %s, x %s, z %s; retry enqueues %v", g.storage.Steps[0].Encode(), g.storage.Steps[1].Encode(), g.storage.Steps[2].Encode(), roots)
	for _, i := range roots {
		if i == 2 {
			t.Fatalf("z, still running in the failing runner (held by its P0 slot), is ready in storage after the commit and the retry enqueues it")
		}
	}
}

// TestAttackEndedCommitLeavesRunningInlineStepReady: the same with a
// cancel learnt from a fence: a -> (y, z), y -> w. a ends, y and z start
// inline; the run is cancelled; y ends, w needs a fence, which shows the
// run not live. The commit of a and y is built on an ended run (SameGen)
// and claims nothing: z, still running, is left P0 with its parent
// completed.
func TestAttackEndedCommitLeavesRunningInlineStepReady(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "y:a", "z:a", "w:y")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(time.Millisecond, 0, nil)
	g.start(time.Millisecond, 1, 2)
	g.end(2*time.Millisecond, 1, nil)
	g.next(2*time.Millisecond, ActFence)
	g.storage.Status = status.RunCancelled
	g.s.Fenced(g.storage.Gen, false)
	cs := g.commit(2 * time.Millisecond)
	if len(cs) != 1 || !cs[0].SameGen {
		t.Fatalf("commits %+v", cs)
	}
	for _, sw := range cs[0].Swaps {
		if sw.Step == 2 {
			return // z was claimed: not the hole
		}
	}
	if g.storage.Steps[2] == Pending0 && g.storage.Steps[0].Status == status.StepCompleted && g.s.Running() > 0 {
		t.Fatalf("z runs (held by P0) but storage shows it P0 with its parent a completed: a retry of the cancelled run will enqueue it (swaps %v)", steps(cs))
	}
}
