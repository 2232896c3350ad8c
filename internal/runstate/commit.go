package runstate

import (
	"errors"
	"slices"
	"time"

	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Outcome is a finished attempt of a step, to be committed.
type Outcome struct {
	Step int
	// Held is the slot the runner holds the step by: the running slot its
	// claim wrote, or, for a step run in the same invocation as its parent,
	// the pending slot it read.
	Held       Slot
	Start, End time.Time
	// Err is nil for a successful attempt.
	Err error
}

// Done is a step's commit record: put once, in the commit, with the
// condition that it does not exist. For an order action on a run with an
// order, the record is the order's history entry.
type Done struct {
	Step    int
	Attempt int
	History *HistoryEntry
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

// Commit is everything one group commit writes, atomically.
type Commit struct {
	RunID   string
	OrderID string
	Gen     int
	// Items is how many items hold the run's slots (for a run-level end).
	Items    int
	Swaps    []Swap
	Done     []Done
	Failures []Failure
	Order    *OrderChange
	// End is the run's new status if this commit ends it (completed, or
	// failed by a step with no retries left), else "".
	End status.RunStatus
	// SameGen: the run was read as ended, so the commit holds only while
	// the run stays in generation Gen. A retry landing first makes it fail
	// and be rebuilt on the live run, which ends the run if a step failed
	// and goes on to the dependents if steps completed.
	SameGen bool
	At      time.Time
	// Retries are the messages to send once the commit landed.
	Retries []NextAttempt
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

// ErrStorage marks an attempt that failed because storage refused its
// commit for good (a ValidationException): the attempt fails with no
// retries left.
var ErrStorage = errors.New("storage refused the commit")

// BuildCommit decides the commit of the outcomes of steps of run r (as last
// read), with the run's order in orderStatus (ignored if the run has none).
// Outcomes are taken in plan order, which is a dependency order: a
// successful order action whose precondition does not hold on the order as
// its predecessors in this commit leave it fails instead; a failed attempt
// goes back to pending until a due time from policy, or, with no retries
// left (or refused by storage), fails the step and the run. The commit also
// ends the run as completed when every step will be completed.
func BuildCommit(r State, p workflow.Plan, orderStatus status.OrderStatus, outcomes []Outcome, policy retry.Policy, now time.Time) Commit {
	now = Ms(now)
	c := Commit{RunID: r.ID, OrderID: r.OrderID, Gen: r.Gen, Items: Items(len(r.Steps)), At: now}
	sorted := slices.Clone(outcomes)
	slices.SortFunc(sorted, func(a, b Outcome) int { return a.Step - b.Step })
	committed := map[int]bool{}
	order := orderStatus
	failed := false
	for _, o := range sorted {
		if r.Steps[o.Step] != o.Held || !parentsDone(r, p, o.Step, committed) {
			c.Dropped = append(c.Dropped, o.Step)
			continue
		}
		step := p[o.Step]
		err := o.Err
		var entry *HistoryEntry
		if err == nil && r.OrderID != "" {
			if a, ok := status.Actions[step.Config.Action]; ok {
				if perr := a.Check(order); perr != nil {
					err = perr
				} else {
					entry = &HistoryEntry{At: Ms(o.End), Event: a.Name, From: a.From, To: a.To, RunID: r.ID, StepID: step.ID}
					if a.ChangesStatus() {
						order = a.To
					}
				}
			}
		}
		start, end := Ms(o.Start), Ms(o.End)
		if err == nil {
			c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: o.Held, New: o.Held.to(Slot{
				Status: status.StepCompleted, Attempt: o.Held.Attempt, Start: start, End: end,
			})})
			c.Done = append(c.Done, Done{Step: o.Step, Attempt: o.Held.Attempt, History: entry})
			committed[o.Step] = true
			continue
		}
		c.Failures = append(c.Failures, Failure{Step: o.Step, Gen: r.Gen, Attempt: o.Held.Attempt, Start: start, End: end, Error: err.Error()})
		if o.Held.Attempt < step.Config.MaxRetries && !errors.Is(err, ErrStorage) {
			due := Ms(now.Add(policy.Delay(o.Held.Attempt + 1)))
			c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: o.Held, New: o.Held.to(Slot{
				Status: status.StepPending, Attempt: o.Held.Attempt + 1, Due: due, End: end,
			})})
			c.Retries = append(c.Retries, NextAttempt{Step: o.Step, Attempt: o.Held.Attempt + 1, Due: due})
			continue
		}
		c.Swaps = append(c.Swaps, Swap{Step: o.Step, Old: o.Held, New: o.Held.to(Slot{
			Status: status.StepFailed, Attempt: o.Held.Attempt, Start: start, End: end,
		})})
		failed = true
	}
	if r.OrderID != "" && order != orderStatus {
		c.Order = &OrderChange{OrderID: r.OrderID, From: orderStatus, To: order}
	}
	switch {
	case !r.Live():
		c.SameGen = true
	case failed:
		c.End = status.RunFailed
	case r.Apply(c.Swaps).AllCompleted():
		c.End = status.RunCompleted
	}
	if c.End != "" {
		moveRun(r.Status, c.End)
	}
	return c
}

func parentsDone(r State, p workflow.Plan, i int, committed map[int]bool) bool {
	for _, parent := range p[i].Parents {
		if r.Steps[parent].Status != status.StepCompleted && !committed[parent] {
			return false
		}
	}
	return true
}

// FollowUp decides what follows the commit of the steps done, from run r as
// it is after that commit: the dependents of those steps that can start now
// as far as r shows, and whether r may be stale in a way that matters, so
// that the runner must read the run again and decide with Next. It may be
// stale when a dependent of a committed step waits for a parent that another
// runner may have completed meanwhile, or when a committed step is a sink
// and other steps may have completed meanwhile (the run may be complete).
func FollowUp(r State, p workflow.Plan, done []int, now time.Time) (ready []int, reread bool) {
	if !r.Live() {
		return nil, false
	}
	for _, i := range done {
		if len(p[i].Dependents) == 0 && !r.AllCompleted() {
			reread = true
		}
		for _, d := range p[i].Dependents {
			if r.Steps[d].Status == status.StepPending && !r.Ready(p, d) {
				reread = true
			}
		}
	}
	return ReadyDependents(r, p, done, now), reread
}

// Next decides, from a fresh read of run r after this runner committed the
// steps done, which of their dependents to claim, and whether the run is
// complete (every step completed while it is still live).
func Next(r State, p workflow.Plan, done []int, now time.Time) (ready []int, complete bool) {
	if !r.Live() {
		return nil, false
	}
	if r.AllCompleted() {
		return nil, true
	}
	return ReadyDependents(r, p, done, now), false
}
