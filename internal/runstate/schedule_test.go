package runstate

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// schedRig drives a Sched as the engine's loop does, with no I/O: it
// claims and commits by applying the writes to its own copy of the run
// (storage), so a table of events checks the scheduler's decisions.
type schedRig struct {
	t       *testing.T
	p       workflow.Plan
	s       *Sched
	storage State
	commits []Commit
}

var testTerms = LeaseTerms{Token: "mine", Margin: 30 * time.Second}

func newSchedRig(t *testing.T, p workflow.Plan, r State, claim []int) *schedRig {
	cfg := SchedConfig{Parallelism: 16, Window: 100 * time.Millisecond, Budget: 2 * time.Second, Began: t0, Policy: policy, MaxSteps: 40}
	return &schedRig{t: t, p: p, s: NewSched(p, r, "", cfg, testTerms, claim), storage: r}
}

// next returns the next action at t0+at and checks its kind.
func (g *schedRig) next(at time.Duration, want ActionKind) Action {
	g.t.Helper()
	a := g.s.Next(t0.Add(at))
	if a.Kind != want {
		g.t.Fatalf("at +%v: action %+v, want kind %d", at, a, want)
	}
	return a
}

// claim performs a claim action.
func (g *schedRig) claim(at time.Duration, steps ...int) {
	g.t.Helper()
	a := g.next(at, ActClaim)
	if !slices.Equal(a.Steps, steps) {
		g.t.Fatalf("claims %v, want %v", a.Steps, steps)
	}
	c, leases := NewClaim(g.s.Run(), g.p, a.Steps, testTerms, t0.Add(at))
	g.storage = g.storage.Apply(c.Swaps)
	g.s.Claimed(leases)
}

// start performs a fence (live) and an inline start.
func (g *schedRig) start(at time.Duration, steps ...int) {
	g.t.Helper()
	g.next(at, ActFence)
	g.s.Fenced(g.storage.Gen, true)
	a := g.next(at, ActStart)
	if !slices.Equal(a.Steps, steps) {
		g.t.Fatalf("starts %v, want %v", a.Steps, steps)
	}
	g.s.Started(a.Steps, t0.Add(at))
}

func (g *schedRig) end(at time.Duration, step int, err error) {
	g.s.Ended(Outcome{Step: step, Start: t0, End: t0.Add(at), Err: err}, t0.Add(at))
}

// commit performs a commit action: every transaction lands.
func (g *schedRig) commit(at time.Duration) []Commit {
	g.t.Helper()
	g.next(at, ActCommit)
	cs := g.s.Commits(t0.Add(at))
	for _, c := range cs {
		for _, sw := range c.Swaps {
			if g.storage.Steps[sw.Step] != sw.Old {
				g.t.Fatalf("commit swaps step %d from %s, storage holds %s", sw.Step, sw.Old.Encode(), g.storage.Steps[sw.Step].Encode())
			}
		}
		g.storage = g.storage.Apply(c.Swaps)
		if c.End != "" {
			g.storage.Status = c.End
		}
		g.s.Landed(c)
	}
	g.commits = append(g.commits, cs...)
	return cs
}

func steps(cs []Commit) []int {
	var out []int
	for _, c := range cs {
		for _, sw := range c.Swaps {
			out = append(out, sw.Step)
		}
	}
	return out
}

// TestSchedDiamondInOneInvocation: a diamond of short steps runs in one
// invocation: one claim, a fence before each wave of inline starts, and
// one commit that ends the run.
func TestSchedDiamondInOneInvocation(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a", "c:a", "d:b,c")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.next(0, ActWait)
	g.end(time.Millisecond, 0, nil)
	g.start(time.Millisecond, 1, 2)
	g.end(2*time.Millisecond, 1, nil)
	g.next(2*time.Millisecond, ActWait) // c still runs; d waits for it
	g.end(3*time.Millisecond, 2, nil)
	g.start(3*time.Millisecond, 3)
	g.end(4*time.Millisecond, 3, nil)
	cs := g.commit(4 * time.Millisecond)
	if len(cs) != 1 || cs[0].End != status.RunCompleted || !slices.Equal(steps(cs), []int{0, 1, 2, 3}) {
		t.Fatalf("commits %+v", cs)
	}
	g.next(4*time.Millisecond, ActDone)
}

// TestSchedOutcomeDoesNotWaitForASlowSibling (section 5): a fast step's
// outcome is committed within the window of its end while a slow sibling
// runs on; the slow sibling is claimed in that commit; the fast step's
// retry is sent and its dependent starts at once.
func TestSchedOutcomeDoesNotWaitForASlowSibling(t *testing.T) {
	t.Parallel()
	p := plan(t, "prep", "slow:prep", "fast:prep/2", "after:fast")
	p[1].Config.DurationSeconds = 1.5
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.start(0, 1, 2)
	// prep's outcome waits at most the window for company, then commits
	// with the claims of slow and fast, which run on.
	if w := g.next(0, ActWait); !w.Until.Equal(t0.Add(100 * time.Millisecond)) {
		t.Fatalf("prep waits until %v, want the window's end", w.Until)
	}
	if got := steps(g.commit(100 * time.Millisecond)); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("commit swaps %v, want prep and the claims of slow and fast", got)
	}
	// fast fails; slow is not expected to end within the window, so the
	// failure commits at once.
	g.end(200*time.Millisecond, 2, errors.New("fast fails"))
	cs := g.commit(200 * time.Millisecond)
	if got := steps(cs); !slices.Equal(got, []int{2}) {
		t.Fatalf("commit swaps %v, want fast's failure alone", got)
	}
	if s := g.storage.Steps[1]; s.Status != status.StepRunning || !s.Inline {
		t.Fatalf("slow is %+v in storage; it must be claimed while it runs", s)
	}
	if s := g.storage.Steps[2]; s.Status != status.StepPending || s.Attempt != 1 {
		t.Fatalf("fast is %+v in storage", s)
	}
	g.next(200*time.Millisecond, ActSend)
	if sends := g.s.Sends(); len(sends) != 1 || sends[0].Step != 2 {
		t.Fatalf("sends %+v, want fast's retry", sends)
	}
	g.s.Sent()
	g.next(200*time.Millisecond, ActWait)
	g.end(1500*time.Millisecond, 1, nil)
	cs = g.commit(1500 * time.Millisecond)
	if got := steps(cs); !slices.Equal(got, []int{1}) {
		t.Fatalf("slow's commit swaps %v", got)
	}
	if s := g.storage.Steps[1]; s.Status != status.StepCompleted {
		t.Fatalf("slow is %s", s.Status)
	}
}

// TestSchedStopsOnAFailedFence: a fence that shows the run cancelled
// starts nothing; what ended commits at once.
func TestSchedStopsOnAFailedFence(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.next(0, ActFence)
	g.s.Fenced(g.storage.Gen, false)
	cs := g.commit(0)
	if got := steps(cs); !slices.Equal(got, []int{0}) || cs[0].End != "" {
		t.Fatalf("commits %+v", cs)
	}
	g.next(0, ActDone)
	// A fence that shows another generation reads the run first.
	g = newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.next(0, ActFence)
	g.s.Fenced(g.storage.Gen+1, true)
	if a := g.next(0, ActRead); !slices.Equal(a.Items, []int{0}) {
		t.Fatalf("reads %v", a.Items)
	}
}

// TestSchedSendsWhatDoesNotFit: a dependent over the inline budget is sent
// once its parent's commit landed (before that it is not ready in storage,
// and a message for it would be dropped).
func TestSchedSendsWhatDoesNotFit(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a")
	p[1].Config.DurationSeconds = 3
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.commit(0)
	g.next(0, ActSend)
	if sends := g.s.Sends(); len(sends) != 1 || sends[0].Step != 1 || !sends[0].Due.IsZero() {
		t.Fatalf("sends %+v", sends)
	}
	g.s.Sent()
	g.next(0, ActDone)
}

// TestSchedReadsAJoinsOtherParent: a join whose other parent runs
// elsewhere is read again after the commit; if it completed, the join
// is claimed here.
func TestSchedReadsAJoinsOtherParent(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b", "j:a,b")
	other := "R0:other:" + ms(0) + ":" + ms(time.Minute)
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", other, "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.commit(0)
	if a := g.next(0, ActRead); !slices.Equal(a.Items, []int{0}) {
		t.Fatalf("reads %v", a.Items)
	}
	fresh := g.storage
	fresh.Steps = slices.Clone(fresh.Steps)
	fresh.Steps[1] = Slot{Status: status.StepCompleted, Start: t0, End: t0}
	g.storage = fresh
	g.s.Read(fresh, "")
	g.claim(0, 2)
}

// TestSchedReadsAcrossItems: a chain step whose dependent sits in an item
// not read yet reads it, then runs the dependent inline.
func TestSchedReadsAcrossItems(t *testing.T) {
	t.Parallel()
	var specs []string
	for i := range 12 {
		if i == 0 {
			specs = append(specs, "s0")
		} else {
			specs = append(specs, fmt.Sprintf("s%d:s%d", i, i-1))
		}
	}
	p := plan(t, specs...)
	vs := make([]string, 12)
	for i := range vs {
		vs[i] = "P0"
	}
	for i := range 9 {
		vs[i] = "C0:1:2"
	}
	r := run(t, status.RunRunning, vs...)
	r.Known = make([]bool, 12)
	for i := range HeaderSlots {
		r.Known[i] = true
	}
	g := newSchedRig(t, p, r, []int{9})
	g.claim(0, 9)
	g.end(0, 9, nil)
	if a := g.next(0, ActRead); !slices.Equal(a.Items, []int{1}) {
		t.Fatalf("reads %v, want chunk 1", a.Items)
	}
	full := run(t, status.RunRunning, vs...)
	full.Steps[9] = g.storage.Steps[9]
	g.s.Read(full, "")
	g.start(0, 10)
}

// TestSchedEndsTheRun: the last step's commit ends the run in the same
// transaction when the runner knows every slot; when it does not, it reads
// the rest and ends the run with a write of its own.
func TestSchedEndsTheRun(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b")
	done := "C0:1:2"
	g := newSchedRig(t, p, run(t, status.RunRunning, done, "P0"), []int{1})
	g.claim(0, 1)
	g.end(0, 1, nil)
	if cs := g.commit(0); cs[0].End != status.RunCompleted {
		t.Fatalf("commit %+v", cs[0])
	}
	g.next(0, ActDone)

	r := run(t, status.RunRunning, "R0:other:1:2", "P0")
	g = newSchedRig(t, p, r, []int{1})
	g.claim(0, 1)
	g.end(0, 1, nil)
	if cs := g.commit(0); cs[0].End != "" {
		t.Fatalf("commit %+v", cs[0])
	}
	g.next(0, ActRead)
	fresh := g.storage
	fresh.Steps = slices.Clone(fresh.Steps)
	fresh.Steps[0] = Slot{Status: status.StepCompleted, Start: t0, End: t0}
	g.s.Read(fresh, "")
	g.next(0, ActEnd)
	g.s.EndLanded()
	g.next(0, ActDone)
}

// TestSchedLastFailureStopsStarts: a failure with no retries left starts
// nothing more and commits at once, failing the run.
func TestSchedLastFailureStopsStarts(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b", "c:a")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0"), []int{0, 1})
	g.claim(0, 0, 1)
	g.end(0, 0, errors.New("boom"))
	cs := g.commit(0)
	if cs[0].End != status.RunFailed {
		t.Fatalf("commit %+v", cs[0])
	}
	g.next(0, ActWait) // b still runs: it finishes and commits
	g.end(time.Millisecond, 1, nil)
	cs = g.commit(time.Millisecond)
	if !cs[0].SameGen || cs[0].End != "" {
		t.Fatalf("b's commit into the failed run: %+v", cs[0])
	}
	g.next(time.Millisecond, ActDone)
}

// TestSchedOrderCheck: an order action whose precondition the order (as
// the runner knows it, after its own uncommitted actions) does not meet
// fails without running its task.
func TestSchedOrderCheck(t *testing.T) {
	t.Parallel()
	p := plan(t, "v@validate_order", "c:v@charge_payment", "s:v@ship_order")
	r := run(t, status.RunRunning, "P0", "P0", "P0")
	r.OrderID = "ord_1"
	cfg := SchedConfig{Parallelism: 16, Window: 100 * time.Millisecond, Budget: 2 * time.Second, Began: t0, Policy: policy, MaxSteps: 40}
	s := NewSched(p, r, status.OrderPending, cfg, testTerms, []int{0})
	if err := s.OrderCheck(0, t0); err != nil {
		t.Fatalf("validate on a pending order: %v", err)
	}
	if err := s.OrderCheck(1, t0); err == nil {
		t.Fatal("charge on a pending order passed")
	}
	c, leases := NewClaim(r, p, []int{0}, testTerms, t0)
	_ = c
	s.Claimed(leases)
	s.Ended(Outcome{Step: 0, Start: t0, End: t0}, t0)
	if err := s.OrderCheck(1, t0); err != nil {
		t.Fatalf("charge after this runner's validate: %v", err)
	}
	var pe *status.ErrPrecondition
	if err := s.OrderCheck(2, t0); !errors.As(err, &pe) || pe.Want != status.OrderCharged {
		t.Fatalf("ship before any charge: %v", err)
	}
}

// TestSchedFenceCoversOnlyTheStartsThatFollowIt: a fence read, then a
// commit (the window ran out) instead of the starts it was for: the next
// inline start needs a fence of its own, or it could start after a cancel
// acknowledged in between (found by the random schedules, seed 2683).
func TestSchedFenceCoversOnlyTheStartsThatFollowIt(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a", "c:b")
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0"), []int{0})
	g.claim(0, 0)
	g.end(0, 0, nil)
	g.next(0, ActFence)
	g.s.Fenced(g.storage.Gen, true)
	g.commit(200 * time.Millisecond) // the window ran out before b started
	g.claim(200*time.Millisecond, 1) // b is ready in storage now: claimed
	g.end(200*time.Millisecond, 1, nil)
	g.next(200*time.Millisecond, ActFence) // c: a fresh fence, not the old one
}

// TestSchedWaitsOnlyForWhatEndsSoon: an outcome waits for a sibling
// expected to end within the window and shares its commit; it does not
// wait for one expected to end later.
func TestSchedWaitsOnlyForWhatEndsSoon(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b", "c")
	p[0].Config.DurationSeconds, p[1].Config.DurationSeconds, p[2].Config.DurationSeconds = 0.05, 0.08, 5
	g := newSchedRig(t, p, run(t, status.RunRunning, "P0", "P0", "P0"), []int{0, 1, 2})
	g.claim(0, 0, 1, 2)
	g.end(50*time.Millisecond, 0, nil)
	if w := g.next(50*time.Millisecond, ActWait); !w.Until.Equal(t0.Add(150 * time.Millisecond)) {
		t.Fatalf("a waits until %v", w.Until)
	}
	g.end(80*time.Millisecond, 1, nil)
	if got := steps(g.commit(80 * time.Millisecond)); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("commit %v, want a and b together, c not awaited", got)
	}
}
