package runstate

import (
	"slices"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Message is what a runner needs of one step message.
type Message struct {
	Step    int
	Attempt int
}

// Delivery is what a runner does with the messages of one run that arrived
// together.
type Delivery struct {
	// Claim lists the steps to claim, ascending: a ready pending step a
	// message asks for, a running step whose lease expired (taken over), and
	// the ready dependents of a completed step a message names again (a
	// duplicate, or a redelivery after a crash between commit and the
	// claims that follow it).
	Claim []int
	// Wait maps the index of a message (in the input) to when it should be
	// delivered again: its step runs under a live lease, or waits for its
	// retry's due time. Every other message is done once the claims and
	// what follows them are.
	Wait map[int]time.Time
}

// Deliver decides what to do with msgs, the messages of run r that arrived
// together, at now. Anything it does not claim or wait for is dropped: a
// message for an ended run, a step that is not ready (the last of its
// parents to commit claims it), or a step that is failed.
func Deliver(r State, p workflow.Plan, msgs []Message, now time.Time) Delivery {
	d := Delivery{Wait: map[int]time.Time{}}
	if !r.Live() {
		return d
	}
	claim := map[int]bool{}
	for mi, m := range msgs {
		if m.Step < 0 || m.Step >= len(r.Steps) {
			continue
		}
		s := r.Steps[m.Step]
		switch s.Status {
		case status.StepCompleted:
			for _, c := range ReadyDependents(r, p, []int{m.Step}, now) {
				claim[c] = true
			}
		case status.StepPending:
			// Any message of a ready step serves, whatever attempt it
			// names: after a crash between a failed attempt's commit and
			// the send of its retry, the redelivered message is the only
			// one left. A duplicate claim fails its condition.
			switch {
			case !r.Ready(p, m.Step):
			case s.Due.After(now):
				d.Wait[mi] = s.Due
			default:
				claim[m.Step] = true
			}
		case status.StepRunning:
			if Claimable(r, p, m.Step, now) {
				claim[m.Step] = true
			} else {
				d.Wait[mi] = s.End
			}
		}
	}
	for i := range claim {
		d.Claim = append(d.Claim, i)
	}
	slices.Sort(d.Claim)
	return d
}

// Claimable reports whether step i of live run r can be claimed at now: it
// is pending, due and ready, or running under a lease that has expired.
func Claimable(r State, p workflow.Plan, i int, now time.Time) bool {
	s := r.Steps[i]
	switch {
	case !r.Live():
		return false
	case s.Status == status.StepPending:
		return !s.Due.After(now) && r.Ready(p, i)
	case s.Status == status.StepRunning:
		return !s.LeaseLive(now)
	}
	return false
}

// ReadyDependents returns the dependents of the given steps that can start
// at now: pending, past their due time, with every parent completed.
func ReadyDependents(r State, p workflow.Plan, of []int, now time.Time) []int {
	seen := map[int]bool{}
	var out []int
	for _, i := range of {
		for _, c := range p[i].Dependents {
			s := r.Steps[c]
			if seen[c] || s.Status != status.StepPending || s.Due.After(now) || !r.Ready(p, c) {
				continue
			}
			seen[c] = true
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// Swap is one slot write: from exactly Old to New.
type Swap struct {
	Step     int
	Old, New Slot
}

// Claim is the write that takes steps of a run: each slot goes from the
// state read to running, on the condition that the run is live in
// generation Gen.
type Claim struct {
	RunID string
	Gen   int
	Swaps []Swap
}

// Lease is a claimed step: the running slot the claim wrote, which the
// runner must hold to commit or fail the attempt.
type Lease struct {
	Step int
	Held Slot
}

// NewClaim builds the claim of steps (pending and ready, or running under an
// expired lease) with token at now. The steps of a claim are committed
// together, after the longest of them ends, so every lease lasts the longest
// claimed step's duration plus margin: a short step waiting for a long
// sibling's commit keeps its lease. The caller starts every claimed step at
// once (it claims no more than it can run at a time).
func NewClaim(r State, p workflow.Plan, steps []int, token string, now time.Time, margin time.Duration) (Claim, []Lease) {
	now = Ms(now)
	c := Claim{RunID: r.ID, Gen: r.Gen}
	leases := make([]Lease, 0, len(steps))
	longest := time.Duration(0)
	for _, i := range steps {
		longest = max(longest, StepDuration(p, i))
	}
	for _, i := range steps {
		old := r.Steps[i]
		held := old.to(Slot{
			Status: status.StepRunning, Attempt: old.Attempt, Token: token,
			Start: now, End: Ms(now.Add(longest + margin)),
		})
		c.Swaps = append(c.Swaps, Swap{Step: i, Old: old, New: held})
		leases = append(leases, Lease{Step: i, Held: held})
	}
	return c, leases
}

// StepDuration is step i's configured duration.
func StepDuration(p workflow.Plan, i int) time.Duration {
	return time.Duration(p[i].Config.DurationSeconds * float64(time.Second))
}

// Apply returns r with the swaps' new states.
func (r State) Apply(swaps []Swap) State {
	out := r
	out.Steps = slices.Clone(r.Steps)
	for _, s := range swaps {
		out.Steps[s.Step] = s.New
	}
	return out
}
