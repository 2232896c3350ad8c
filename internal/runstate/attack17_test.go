package runstate

// Issue 17's adversarial review, at the level of the pure decisions (see
// internal/engine/attack17_test.go for the same defects end to end).

import (
	"slices"
	"testing"
	"time"

	"stepflow/internal/status"
)

// TestAttack17FailsResolvedWaitStartsDependentInline: w (a wait) -> x. Two
// runners read w waiting with its deadline passed (two messages of w, or a
// message of w and a walk from a completed ancestor). Deliver gives both
// Expire [w]; each Sched resolves it, and x is inline-ready for each
// (inlineReady: w "succeeded here and is not committed"), so each fences
// and starts x before any commit. For a claimed attempt this is safe
// because the claim (R<a>:<token>) holds the parent for one runner; a
// waiting slot is held by nobody, and both runners' x run while only one
// commit of w can land. TestSchedResolve asserts the inline start itself.
//
// Fix: Resolve should not make dependents inline-ready; commit the wait's
// end, then claim the dependents (followUp) as after any commit.
func TestAttack17FixedResolvedWaitStartsDependentInline(t *testing.T) {
	t.Parallel()
	p := typed(t, "w=wait", "x=task:w", "hold=approval")
	w := Slot{Status: status.StepWaiting, Start: t0, End: t0}
	hold := Slot{Status: status.StepWaiting, Start: t0}
	r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{w, Pending0, hold}}
	d1 := Deliver(r, p, []Message{{Step: 0}}, t0.Add(time.Second))
	d2 := Deliver(r, p, []Message{{Step: 0}}, t0.Add(time.Second))
	if !slices.Equal(d1.Expire, []int{0}) || !slices.Equal(d2.Expire, []int{0}) {
		t.Fatalf("deliveries %+v %+v", d1, d2)
	}
	started := 0
	for _, tok := range []string{"runner1", "runner2"} {
		s := NewSched(p, r, "", SchedConfig{Parallelism: 4, Window: 100 * time.Millisecond, Budget: time.Second, Began: t0, Policy: policy, MaxSteps: 40},
			LeaseTerms{Token: tok, Margin: time.Minute}, nil)
		now := t0.Add(time.Second)
		s.Resolve(Outcome{Step: 0, Start: t0, End: now}, now)
		a := s.Next(now)
		if a.Kind == ActFence {
			s.Fenced(0, true) // both fences see the run live: nobody committed yet
			a = s.Next(now)
		}
		if a.Kind == ActStart && slices.Contains(a.Steps, 1) {
			started++
		}
	}
	if started > 0 {
		t.Fatalf("x started inline by %d runners before the wait's end was committed (only one commit of w can land)", started)
	}
}
