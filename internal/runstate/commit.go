package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Outcome is a finished attempt of a step, to be committed: a success, a
// failure, or the start of a wait (Wait).
type Outcome struct {
	Step int
	// Held is the slot the runner holds the step by (see Lease), or the
	// waiting slot a decision or a deadline ends.
	Held       Slot
	Start, End time.Time
	// Err is nil for a successful attempt.
	Err error
	// Output is a successful attempt's output (JSON), or nil.
	Output json.RawMessage
	// RetryAfter is the least delay before the next attempt of a failed
	// one (an HTTP service's Retry-After), on top of the retry policy's.
	RetryAfter time.Duration
	// Wait: the attempt began a wait (a wait step, or an approval), which
	// ends at Until (zero: only a decision ends it). The step is waiting
	// once this commits.
	Wait  bool
	Until time.Time
	// Callback is the hash of the callback token of an approval: stored
	// when its wait begins, deleted when the wait ends.
	Callback string
	// ReadsInput: the step's templates read the run's input, the one
	// given in generation InputGen (kept with its output).
	ReadsInput bool
	InputGen   int
}

// size is about how many bytes the outcome adds to a transaction.
func (o Outcome) size() int { return len(o.Output) + len(o.Callback) + 600 }

// Done is a step's commit record: put once, in the commit, with the
// condition that it does not exist. For an order action on a run with an
// order, the record is the order's history entry.
type Done struct {
	Step    int
	Attempt int
	History *HistoryEntry
	// Output, when set, is stored as an item of its own, which is then the
	// commit record (put on the condition that it does not exist) unless
	// History is; ReadsInput and InputGen with it (see Outcome).
	Output     json.RawMessage
	ReadsInput bool
	InputGen   int
}

// Waiting is a step whose wait begins with a commit.
type Waiting struct {
	Step, Attempt int
	Start, Until  time.Time
	// Callback is the hash of an approval's callback token, stored so that
	// the token can be looked up (empty for a wait step).
	Callback string
}

// HistoryEntry is one change to an order: a status transition, or a
// notification (From and To empty).
type HistoryEntry struct {
	At       time.Time
	Event    string
	From, To status.OrderStatus
	RunID    string
	StepID   string
}

// Failure is a failed attempt's record.
type Failure struct {
	Step, Gen, Attempt int
	Start, End         time.Time
	Error              string
}

// OrderChange moves an order's status, on the condition that it is From.
type OrderChange struct {
	OrderID  string
	From, To status.OrderStatus
}

// NextAttempt is a delayed message to send after a commit: the next attempt
// of a step whose attempt failed with retries left.
type NextAttempt struct {
	Step, Attempt int
	Due           time.Time
}

// Commit is everything one transaction writes, atomically.
type Commit struct {
	RunID   string
	OrderID string
	Gen     int
	// Items is how many items hold the run's slots (for a run-level end).
	Items int
	// Swaps are the slot writes: each committed outcome, and each claim of
	// a step running in the same invocation whose last parent this commit
	// completes (Slot.Inline).
	Swaps    []Swap
	Done     []Done
	Failures []Failure
	// Waits are the steps whose waits begin; Resolved are the callback
	// hashes of approvals whose waits end.
	Waits    []Waiting
	Resolved []string
	Order    *OrderChange
	// End is the run's new status if this commit ends it (completed, or
	// failed by a step with no retries left), else "".
	End status.RunStatus
	// SameGen: the run was read as ended, so the commit holds only while
	// the run stays in generation Gen. A retry landing first makes it fail
	// and be rebuilt on the live run, which ends the run if a step failed
	// and goes on to the dependents if steps completed.
	SameGen bool
	// Live: the commit holds only while the run is live in generation Gen
	// (a decision on an approval, which is a new act like a start, not an
	// attempt finishing).
	Live bool
	At   time.Time
	// Retries are the messages to send once the commit landed: next
	// attempts, and the first message of each wait with a deadline.
	Retries []NextAttempt
	// Refused are successful attempts of order actions that fail because
	// the order, as the runner knows it, is not in the status the action
	// needs. The runner reads the order again before it commits such a
	// failure: a read of several items is not isolated, so what it knew may
	// be older than the run's slots.
	Refused []int
	// Dropped are outcomes that are not committed: the slot is no longer
	// the one the runner held (its lease was lost, or the run was retried
	// meanwhile), or a parent was not committed. Their steps stay as they
	// are and run again later.
	Dropped []int
}

// Committed returns the steps this commit completes.
func (c Commit) Committed() []int {
	var out []int
	for _, s := range c.Swaps {
		if s.New.Status == status.StepCompleted {
			out = append(out, s.Step)
		}
	}
	return out
}

// Claimed returns the claims this commit writes for steps running in the
// same invocation as their parents.
func (c Commit) Claimed() []Lease {
	var out []Lease
	for _, s := range c.Swaps {
		if s.New.Status == status.StepRunning {
			out = append(out, Lease{Step: s.Step, Held: s.New})
		}
	}
	return out
}

// ErrPermanent marks an attempt's error that no retry can cure: the step
// fails at once, whatever retries it has left.
var ErrPermanent = errors.New("permanent failure")

// ErrNotStarted marks an attempt that stopped before its effect because
// the run was found ended or in another generation (the write that had to
// prove it live right before the effect was refused): nothing is committed
// for it, and its claim's lease runs out.
var ErrNotStarted = errors.New("not started: the run ended or was retried")

// Permanent marks err as one no retry can cure (errors.Is(err,
// ErrPermanent) holds), keeping its text as it is.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// orderRefusal is the error of an order action refused by the order's
// status: permanent when the order has moved past the status the action
// needs (it never comes back), else one a later attempt may not meet.
func orderRefusal(err error) error {
	var pe *status.ErrPrecondition
	if errors.As(err, &pe) && pe.Passed() {
		return Permanent(err)
	}
	return err
}

// ErrStorage marks an attempt that failed because storage refused its
// commit for good (a ValidationException).
var ErrStorage = fmt.Errorf("storage refused the commit: %w", ErrPermanent)

// CommitInput is what BuildCommits decides from.
type CommitInput struct {
	// Run is the run as the runner knows it; Order is its order's status
	// (ignored when the run has none).
	Run   State
	Plan  workflow.Plan
	Order status.OrderStatus
	// Outcomes are the ended attempts to commit.
	Outcomes []Outcome
	// Running are attempts still running that the runner started in the
	// same invocation as a parent, before that parent's commit (held by
	// their pending slot). A commit that completes the last such parent
	// claims the step in the same transaction, so that it is never
	// claimable by anyone else.
	Running []Lease
	Policy  retry.Policy
	Terms   LeaseTerms
	Now     time.Time
	// MaxSteps bounds the outcomes of one transaction (DynamoDB's 100
	// items: per step at most a history entry, an output and a failure
	// record); MaxBytes bounds the bytes of their outputs (DynamoDB's 4 MB
	// per transaction). An outcome larger than MaxBytes goes alone.
	MaxSteps, MaxBytes int
	// Hop is the longest delay of one message (SQS's 15 minutes): a wait
	// longer than that is a chain of messages.
	Hop time.Duration
}

// DefaultHop is the longest delay SQS gives a message.
const DefaultHop = 15 * time.Minute

// groups splits outcomes (in plan order) into transactions of at most
// maxSteps outcomes and maxBytes bytes each (an outcome larger than
// maxBytes goes alone).
func groups(outcomes []Outcome, maxSteps, maxBytes int) [][]Outcome {
	var out [][]Outcome
	start, bytes := 0, 0
	for i, o := range outcomes {
		n := i - start
		if n > 0 && (n >= maxSteps || (maxBytes > 0 && bytes+o.size() > maxBytes)) {
			out = append(out, outcomes[start:i])
			start, bytes = i, 0
		}
		bytes += o.size()
	}
	if start < len(outcomes) {
		out = append(out, outcomes[start:])
	}
	return out
}

// BuildCommits decides the commits of in.Outcomes: one transaction, or
// several of at most in.MaxSteps outcomes each, to be written in order.
// Outcomes are taken in plan order, which is a dependency order: a
// successful order action whose precondition does not hold on the order as
// its predecessors leave it fails instead; a failed attempt goes back to
// pending until a due time from the policy, or, with no retries left or a
// permanent error, fails the step and the run in the same transaction. Each
// transaction also claims the steps the runner runs, or has run, in the
// same invocation whose parents are all completed once it lands and whose
// outcome comes in a later transaction or not yet: between two
// transactions, or after this commit, such a step is running in storage,
// never ready for another runner. The last transaction ends the run as
// completed when every step will be completed (which needs every slot
// known).
func BuildCommits(in CommitInput) []Commit {
	now := Ms(in.Now)
	r, p := in.Run, in.Plan
	sorted := slices.Clone(in.Outcomes)
	slices.SortFunc(sorted, func(a, b Outcome) int { return a.Step - b.Step })
	held := map[int]Slot{}
	for _, l := range in.Running {
		held[l.Step] = l.Held
	}
	for _, o := range sorted {
		held[o.Step] = o.Held
	}
	maxSteps := max(1, in.MaxSteps)
	order := in.Order
	ended := !r.Live()
	decided := map[int]bool{} // outcomes committed or dropped so far
	hop := in.Hop
	if hop <= 0 {
		hop = DefaultHop
	}
	var commits []Commit
	all := groups(sorted, maxSteps, in.MaxBytes)
	for gi, group := range all {
		c := Commit{RunID: r.ID, OrderID: r.OrderID, Gen: r.Gen, Items: Items(len(r.Steps)), At: now, SameGen: ended}
		orderBefore := order
		committed := map[int]bool{}
		failed := false
		for _, o := range group {
			decided[o.Step] = true
			h := held[o.Step]
			if !r.Knows(o.Step) || r.Steps[o.Step] != h || !parentsDone(r, p, o.Step, committed) {
				c.Dropped = append(c.Dropped, o.Step)
				continue
			}
			step := p[o.Step]
			err := o.Err
			begin, end := Ms(o.Start), Ms(o.End)
			if h.Status == status.StepWaiting && o.Callback != "" {
				c.Resolved = append(c.Resolved, o.Callback)
			}
			if o.Wait && err == nil {
				until := o.Until
				if !until.IsZero() {
					until = Ms(until)
				}
				c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: h, New: h.to(Slot{
					Status: status.StepWaiting, Attempt: h.Attempt, Start: begin, End: until,
				})})
				c.Waits = append(c.Waits, Waiting{Step: o.Step, Attempt: h.Attempt, Start: begin, Until: until, Callback: o.Callback})
				if !until.IsZero() {
					c.Retries = append(c.Retries, NextAttempt{Step: o.Step, Attempt: h.Attempt, Due: minTime(until, now.Add(hop))})
				}
				continue
			}
			var entry *HistoryEntry
			if err == nil && r.OrderID != "" {
				if a, ok := status.Actions[step.Config.Action]; ok {
					if perr := a.Check(order); perr != nil {
						err = orderRefusal(perr)
						c.Refused = append(c.Refused, o.Step)
					} else if a.ChangesStatus() && r.OrderHold.HeldAgainst(r.ID, now) {
						// Another run's http step is moving the order:
						// its call may be at the service right now.
						err = &HoldError{Action: a.Name, Hold: r.OrderHold}
						c.Refused = append(c.Refused, o.Step)
					} else {
						entry = &HistoryEntry{At: Ms(o.End), Event: a.Name, From: a.From, To: a.To, RunID: r.ID, StepID: step.ID}
						if a.ChangesStatus() {
							order = a.To
						}
					}
				}
			}
			if err == nil {
				c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: h, New: h.to(Slot{
					Status: status.StepCompleted, Attempt: h.Attempt, Start: begin, End: end,
				})})
				c.Done = append(c.Done, Done{Step: o.Step, Attempt: h.Attempt, History: entry, Output: o.Output, ReadsInput: o.ReadsInput, InputGen: o.InputGen})
				committed[o.Step] = true
				continue
			}
			c.Failures = append(c.Failures, Failure{Step: o.Step, Gen: r.Gen, Attempt: h.Attempt, Start: begin, End: end, Error: err.Error()})
			if RetriesLeft(p, o.Step, h.Attempt) && !errors.Is(err, ErrPermanent) {
				due := Ms(now.Add(max(in.Policy.Delay(h.Attempt+1), o.RetryAfter)))
				c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: h, New: h.to(Slot{
					Status: status.StepPending, Attempt: h.Attempt + 1, Due: due, End: end,
				})})
				c.Retries = append(c.Retries, NextAttempt{Step: o.Step, Attempt: h.Attempt + 1, Due: due})
				continue
			}
			c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: h, New: h.to(Slot{
				Status: status.StepFailed, Attempt: h.Attempt, Start: begin, End: end,
			})})
			failed = true
		}
		// Claim every step run here whose parents are all completed once
		// this transaction lands, whether or not the run goes on: a step
		// left pending with its parents completed would be started again
		// by a retry of the run while it still runs here.
		after := r.Apply(c.Swaps)
		for _, s := range sortedKeys(held) {
			h := held[s]
			if decided[s] || h.Status != status.StepPending || !after.Knows(s) || after.Steps[s] != h || !parentsDone(after, p, s, nil) {
				continue
			}
			sw := Swap{Step: s, Old: h, New: in.Terms.lease(p, s, h, now, true)}
			c.Swaps = append(c.Swaps, sw)
			held[s] = sw.New
		}
		after = r.Apply(c.Swaps)
		if r.OrderID != "" && order != orderBefore {
			c.Order = &OrderChange{OrderID: r.OrderID, From: orderBefore, To: order}
		}
		switch {
		case ended:
		case failed:
			c.End = moveRun(r.Status, status.RunFailed)
			ended = true
		case gi == len(all)-1 && after.AllCompleted():
			c.End = moveRun(r.Status, status.RunCompleted)
			ended = true
		}
		if len(c.Swaps) > 0 || len(c.Dropped) > 0 {
			commits = append(commits, c)
		}
		r = after
		if c.End != "" {
			r.Status = c.End
		}
	}
	return commits
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// parentsDone reports whether every parent of step i is completed in r or
// in committed.
func parentsDone(r State, p workflow.Plan, i int, committed map[int]bool) bool {
	for _, parent := range p[i].Parents {
		if committed[parent] {
			continue
		}
		if !r.Knows(parent) || r.Steps[parent].Status != status.StepCompleted {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// BuildCommit is BuildCommits for outcomes that fit one transaction with
// no attempt of the runner still running: the commit of everything an
// invocation ran, once all of it ended.
func BuildCommit(r State, p workflow.Plan, order status.OrderStatus, outcomes []Outcome, policy retry.Policy, now time.Time) Commit {
	cs := BuildCommits(CommitInput{Run: r, Plan: p, Order: order, Outcomes: outcomes, Policy: policy, Now: now, MaxSteps: len(outcomes)})
	if len(cs) == 0 {
		return Commit{RunID: r.ID, OrderID: r.OrderID, Gen: r.Gen, Items: Items(len(r.Steps)), At: Ms(now)}
	}
	return cs[0]
}
