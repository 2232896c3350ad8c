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
	// Gen is the run's generation when the message was sent.
	Gen int
}

// Delivery is what a runner does with the messages of one run that arrived
// together.
type Delivery struct {
	// Claim lists the steps to claim, ascending: ready pending steps, and
	// running steps whose lease expired (taken over).
	Claim []int
	// Wait maps the index of a message (in the input) to when it should be
	// delivered again: a step it answers for runs under a live lease, or
	// waits for its retry's due time. Every other message is done once the
	// claims and what follows them are.
	Wait map[int]time.Time
	// Need lists items (see ItemOf) that were not read and that the
	// decision needs: read them and decide again.
	Need []int
	// Expire lists waiting steps whose deadline has come, ascending: their
	// waits end (a wait step completes, an approval times out).
	Expire []int
	// Later maps the index of a message of a waiting step whose deadline
	// is still to come to that deadline: a new message is sent, delayed
	// as long as a message may be, and this one is done.
	Later map[int]time.Time
}

// Deliver decides what to do with msgs, the messages of run r that arrived
// together, at now. A message answers for its step and, once that step has
// completed, for the steps its completion led to that have no message of
// their own: walking down from it through completed steps, it claims every
// ready step it reaches (a dependent whose claim or message a crash may
// have lost), waits for a retry that is not due yet (a failed attempt of a
// step run in the same invocation, whose retry message a crash may have
// lost), and waits for the lease of a step claimed in its parent's commit
// (Slot.Inline), taking it over once expired. Anything else is dropped: a
// message for an ended run, a step that is not ready (the last of its
// parents to commit claims it), or a failed step.
//
// A message of a waiting step whose deadline has come ends its wait
// (Expire); one whose deadline is still to come is replaced by a later
// message (Later): a wait longer than a message's longest delay is a chain
// of messages. An approval with no deadline has no messages.
func Deliver(r State, p workflow.Plan, msgs []Message, now time.Time) Delivery {
	d := Delivery{Wait: map[int]time.Time{}, Later: map[int]time.Time{}}
	if !r.Live() {
		return d
	}
	claim := map[int]bool{}
	expire := map[int]bool{}
	wait := func(mi int, until time.Time) {
		if w, ok := d.Wait[mi]; !ok || until.Before(w) {
			d.Wait[mi] = until
		}
	}
	need := func(i int) { d.Need = appendItem(d.Need, ItemOf(i)) }
	for mi, m := range msgs {
		if m.Step < 0 || m.Step >= len(r.Steps) {
			continue
		}
		if !r.Knows(m.Step) {
			need(m.Step)
			continue
		}
		s := r.Steps[m.Step]
		switch s.Status {
		case status.StepPending:
			// Any message of a ready step serves, whatever attempt it
			// names: after a crash between a failed attempt's commit and
			// the send of its retry, the redelivered message is the only
			// one left. A duplicate claim fails its condition.
			switch r.Readiness(p, m.Step, now) {
			case ReadyNow:
				claim[m.Step] = true
			case ReadyLater:
				wait(mi, s.Due)
			case Unread:
				for _, parent := range p[m.Step].Parents {
					if !r.Knows(parent) {
						need(parent)
					}
				}
			}
		case status.StepRunning:
			if s.LeaseLive(now) {
				wait(mi, s.End)
			} else {
				claim[m.Step] = true
			}
		case status.StepWaiting:
			switch {
			case m.Gen != r.Gen:
				// A wait of an earlier generation: its chain ends here
				// (a retry began the wait again, with a chain of its own).
			case s.WaitOver(now):
				expire[m.Step] = true
			case !s.End.IsZero():
				d.Later[mi] = s.End
			}
		case status.StepCompleted:
			r.walk(p, m.Step, now, claim, expire, func(until time.Time) { wait(mi, until) }, need)
		}
	}
	if len(d.Need) > 0 {
		slices.Sort(d.Need)
		return Delivery{Wait: map[int]time.Time{}, Later: map[int]time.Time{}, Need: d.Need}
	}
	d.Claim, d.Expire = sortedKeys(claim), sortedKeys(expire)
	return d
}

// walk visits the steps below completed step from, through completed
// steps, and claims, waits for or asks to read what a message of from
// answers for (see Deliver).
func (r State) walk(p workflow.Plan, from int, now time.Time, claim, expire map[int]bool, wait func(time.Time), need func(int)) {
	seen := map[int]bool{from: true}
	next := []int{from}
	for len(next) > 0 {
		i := next[0]
		next = next[1:]
		for _, c := range p[i].Dependents {
			if seen[c] {
				continue
			}
			seen[c] = true
			if !r.Knows(c) {
				need(c)
				continue
			}
			s := r.Steps[c]
			switch s.Status {
			case status.StepCompleted:
				next = append(next, c)
			case status.StepWaiting:
				// It has messages of its own; one lost to a crash is
				// replaced here once its deadline has come.
				if s.WaitOver(now) {
					expire[c] = true
				}
			case status.StepRunning:
				switch {
				case !s.Inline:
					// It has a message of its own.
				case s.LeaseLive(now):
					wait(s.End)
				default:
					claim[c] = true
				}
			case status.StepPending:
				switch r.Readiness(p, c, now) {
				case ReadyNow:
					claim[c] = true
				case ReadyLater:
					wait(s.Due)
				case Unread:
					for _, parent := range p[c].Parents {
						if !r.Knows(parent) {
							need(parent)
						}
					}
				}
			}
		}
	}
}

// Claimable reports whether step i of live run r can be claimed at now: it
// is ready (pending, due, every parent completed), or running under a
// lease that has expired.
func Claimable(r State, p workflow.Plan, i int, now time.Time) bool {
	if !r.Live() || !r.Knows(i) {
		return false
	}
	s := r.Steps[i]
	if s.Status == status.StepRunning {
		return !s.LeaseLive(now)
	}
	return r.Readiness(p, i, now) == ReadyNow
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

// Lease is a step a runner holds: the running slot its claim wrote, or,
// for a step started in the same invocation as its parent before that
// parent's commit, the pending slot it read. The runner must present it to
// commit or end the attempt.
type Lease struct {
	Step int
	Held Slot
}

// LeaseTerms are how a runner's claims are written: its token, and the
// margin each lease adds to its step's duration.
type LeaseTerms struct {
	Token  string
	Margin time.Duration
}

// lease returns the running slot that claims step i, held from old, at
// now: it lasts the step's own duration plus the margin.
func (t LeaseTerms) lease(p workflow.Plan, i int, old Slot, now time.Time, inline bool) Slot {
	return old.to(Slot{
		Status: status.StepRunning, Attempt: old.Attempt, Token: t.Token,
		Start: now, End: Ms(now.Add(StepDuration(p, i) + t.Margin)), Inline: inline,
	})
}

// NewClaim builds the claim of steps (each claimable) at now. Each lease
// lasts its own step's duration plus the margin: each step commits as soon
// as it ends. The caller starts every claimed step at once (it claims no
// more than it can run at a time).
func NewClaim(r State, p workflow.Plan, steps []int, terms LeaseTerms, now time.Time) (Claim, []Lease) {
	now = Ms(now)
	c := Claim{RunID: r.ID, Gen: r.Gen}
	leases := make([]Lease, 0, len(steps))
	for _, i := range steps {
		held := terms.lease(p, i, r.Steps[i], now, false)
		c.Swaps = append(c.Swaps, Swap{Step: i, Old: r.Steps[i], New: held})
		leases = append(leases, Lease{Step: i, Held: held})
	}
	return c, leases
}

// Release is the write that gives back claims a runner will not run. A
// runner releases a claim whose answer was lost when the read that found it
// landed shows the run no longer live in the claim's generation: if the run
// is in generation gen still (cancelled), each slot returns from the
// running state the claim wrote to the state before it; if a retry moved
// it on (the retry kept the slot, its lease being live), the slot becomes
// pending with no attempts, as the retry would have made it.
func Release(c Claim, gen int) []Swap {
	out := make([]Swap, len(c.Swaps))
	for n, sw := range c.Swaps {
		back := sw.Old
		if gen != c.Gen {
			back = Pending0
		}
		out[n] = Swap{Step: sw.Step, Old: sw.New, New: sw.New.to(back)}
	}
	return out
}

// StepDuration is how long one attempt of step i may run (see
// workflow.Step.Seconds): what its lease covers.
func StepDuration(p workflow.Plan, i int) time.Duration {
	return time.Duration(p[i].Seconds() * float64(time.Second))
}
