package sweeper

import (
	"time"

	"stepflow/internal/runstate"
	"stepflow/internal/store"
)

// Backoff spaces the sweeper's re-sends of one step's message while the
// step stays in one state: the first re-send is made when runstate.Sweep
// finds the step stalled, the next Wait(1) = First later, then 2·First,
// 4·First, ..., at most Max.
type Backoff struct {
	First, Max time.Duration
}

// DefaultResendMax is Backoff.Max when it is not set.
const DefaultResendMax = 15 * time.Minute

// Wait is how long after the sends-th re-send for one step state the next
// is due. A zero First means no wait: every pass re-sends.
func (b Backoff) Wait(sends int) time.Duration {
	if b.First <= 0 || sends < 1 {
		return 0
	}
	w := b.First
	for range sends - 1 {
		if w >= b.Max/2 {
			return max(b.Max, b.First)
		}
		w *= 2
	}
	return min(w, max(b.Max, b.First))
}

// keep is how long a mark is kept after its last re-send: past the longest
// wait, so it outlives the next re-send that is due. DynamoDB's TTL deletes
// it some time after.
func (b Backoff) keep() time.Duration { return max(2*b.Max, time.Hour) }

// resends decides which of run r's stalled steps get a message at now,
// given marks, the marks of the sweeper's earlier re-sends for r. It
// returns the messages due, the marks to store if any is due (one per
// stalled step; marks of steps no longer stalled are dropped), and how many
// re-sends it held back because one for the same step state was sent less
// than a wait ago.
func (b Backoff) resends(r runstate.State, stalled []runstate.Message, marks map[int]store.ResendMark, now time.Time) (due []runstate.Message, next map[int]store.ResendMark, held int) {
	next = make(map[int]store.ResendMark, len(stalled))
	for _, m := range stalled {
		state := store.StepState(r, m.Step)
		mk, seen := marks[m.Step]
		seen = seen && mk.State == state
		if seen && now.Before(mk.Last.Add(b.Wait(mk.Sends))) {
			held++
			next[m.Step] = mk
			continue
		}
		sends := 1
		if seen {
			sends = mk.Sends + 1
		}
		due = append(due, m)
		next[m.Step] = store.ResendMark{State: state, Sends: sends, Last: now}
	}
	return due, next, held
}
