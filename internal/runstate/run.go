package runstate

import (
	"fmt"
	"slices"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// State is a run's state as read: its header's metadata and its steps'
// slots. A runner reads only the items a decision needs (see ItemsFor), so
// a State may know some slots only: Known says which.
type State struct {
	ID           string
	WorkflowID   string
	WorkflowName string
	// OrderID is the order the run's actions move, or "".
	OrderID string
	// OrderHold is the order's reservation as read with the run (see
	// Hold), if any.
	OrderHold Hold
	// Status is the stored status: running, completed, failed or
	// cancelled. When the header was not read it is running if every item
	// read holds the run live, and "" (ended, how unknown) if not.
	Status status.RunStatus
	// Gen is the generation, raised by each retry.
	Gen       int
	CreatedAt time.Time
	// EndedAt is when the run last ended (zero while running).
	EndedAt   time.Time
	Retries   int
	RetriedAt time.Time
	// Steps holds every step's slot, by plan index; a slot that was not
	// read is the zero Slot.
	Steps []Slot
	// Known says which slots were read, by plan index; nil means all.
	Known []bool
}

// Hold is an order's reservation: run RunID's step StepID is moving the
// order until Until (an http step reserves the order before it calls out).
type Hold struct {
	RunID, StepID string
	Until         time.Time
}

// HeldAgainst reports whether the order is held, at now, by a run other
// than runID.
func (h Hold) HeldAgainst(runID string, now time.Time) bool {
	return h.RunID != "" && h.RunID != runID && h.Until.After(now)
}

// HoldError says that another run holds the order.
type HoldError struct {
	Action string
	Hold   Hold
}

func (e *HoldError) Error() string {
	return fmt.Sprintf("%s not run: the order is being moved by run %s (step %s) until %s",
		e.Action, e.Hold.RunID, e.Hold.StepID, e.Hold.Until.Format(time.RFC3339))
}

// New returns a new run of plan: running, generation 0, every step
// pending.
func New(id, workflowID, workflowName, orderID string, plan workflow.Plan, now time.Time) State {
	r := State{
		ID: id, WorkflowID: workflowID, WorkflowName: workflowName, OrderID: orderID,
		Status: status.RunRunning, CreatedAt: Ms(now), Steps: make([]Slot, len(plan)),
	}
	for i := range r.Steps {
		r.Steps[i] = Pending0
	}
	return r
}

// Live reports whether steps of the run may still start.
func (r State) Live() bool { return r.Status == status.RunRunning }

// Knows reports whether step i's slot was read.
func (r State) Knows(i int) bool { return r.Known == nil || r.Known[i] }

// KnowsAll reports whether every slot was read.
func (r State) KnowsAll() bool { return r.Known == nil || !slices.Contains(r.Known, false) }

// UnknownItems returns the items (see ItemOf) holding a slot that was not
// read.
func (r State) UnknownItems() []int {
	var out []int
	for i := range r.Steps {
		if !r.Knows(i) {
			out = appendItem(out, ItemOf(i))
		}
	}
	return out
}

func appendItem(items []int, k int) []int {
	if slices.Contains(items, k) {
		return items
	}
	return append(items, k)
}

// Readiness is whether a step can start, from its slot and its parents'.
type Readiness int

const (
	// NotReady: the step is not pending, or a parent has not completed.
	NotReady Readiness = iota
	// ReadyNow: pending, every parent completed, and any retry due.
	ReadyNow
	// ReadyLater: pending and every parent completed, but its retry's
	// backoff ends later (Slot.Due).
	ReadyLater
	// Unread: the step's slot, or a slot that decides it, was not read.
	Unread
)

// Readiness tells whether step i of r can start at now. It is the one rule
// for "ready to start": claims, deliveries, a runner's follow-ups, the
// sweeper and where a new or retried run starts all go through it.
func (r State) Readiness(p workflow.Plan, i int, now time.Time) Readiness {
	if !r.Knows(i) {
		return Unread
	}
	s := r.Steps[i]
	if s.Status != status.StepPending {
		return NotReady
	}
	unread := false
	for _, parent := range p[i].Parents {
		switch {
		case !r.Knows(parent):
			unread = true
		case r.Steps[parent].Status != status.StepCompleted:
			return NotReady
		}
	}
	switch {
	case unread:
		return Unread
	case s.Due.After(now):
		return ReadyLater
	}
	return ReadyNow
}

// RetriesLeft reports whether step i may be tried again after attempt
// number attempt (0 for the first) failed. It is the one rule for "no
// retries left".
func RetriesLeft(p workflow.Plan, i, attempt int) bool {
	return attempt < p[i].Config.MaxRetries
}

// AllCompleted reports whether every step has completed (false when a slot
// was not read).
func (r State) AllCompleted() bool {
	for i, s := range r.Steps {
		if !r.Knows(i) || s.Status != status.StepCompleted {
			return false
		}
	}
	return true
}

// Reported is the run status the API shows: the stored status, except that
// a running run that was never retried and none of whose steps has started
// is pending.
func (r State) Reported() status.RunStatus {
	if r.Status != status.RunRunning || r.Retries > 0 {
		return r.Status
	}
	for _, s := range r.Steps {
		if s != Pending0 {
			return status.RunRunning
		}
	}
	return status.RunPending
}

// StepReported is the status the API shows for step i at now. A step that
// will not run because its run ended (pending, waiting, or running under a
// lease that expired after the run ended) is skipped in a failed run and cancelled
// in a cancelled one; nothing is stored for these. A pending step of an
// ended run with a parent still running under a live lease is reported
// pending: its runner may have decided to start it right after that
// parent ended, on a read made before the run ended (see DECISIONS.md,
// "Why it holds"), so its fate is known only when that attempt is over.
func (r State) StepReported(p workflow.Plan, i int, now time.Time) status.StepStatus {
	s := r.Steps[i]
	abandoned := s.Status == status.StepPending || s.Status == status.StepWaiting || (s.Status == status.StepRunning && !s.LeaseLive(now))
	if r.Live() || !abandoned {
		return s.Status
	}
	if s.Status == status.StepPending {
		for _, parent := range p[i].Parents {
			if r.Steps[parent].LeaseLive(now) {
				return status.StepPending
			}
		}
	}
	if r.Status == status.RunCancelled {
		return status.StepCancelled
	}
	return status.StepSkipped
}

// ProgressAt is the latest time the run was created, retried, or had an
// attempt start or end.
func (r State) ProgressAt() time.Time {
	t := r.CreatedAt
	later := func(u time.Time) {
		if u.After(t) {
			t = u
		}
	}
	later(r.RetriedAt)
	for _, s := range r.Steps {
		later(s.Start)
		if s.Status != status.StepRunning && s.Status != status.StepWaiting {
			later(s.End) // a running step's End is its lease's, a waiting one's its deadline
		}
	}
	return t
}

// readySince is when a step that is ready (now or later, see Readiness)
// became able to start: the latest of the run's creation or retry, its
// parents' completions and its retry's due time.
func (r State) readySince(p workflow.Plan, i int) time.Time {
	since := r.CreatedAt
	if r.RetriedAt.After(since) {
		since = r.RetriedAt
	}
	for _, parent := range p[i].Parents {
		if end := r.Steps[parent].End; end.After(since) {
			since = end
		}
	}
	if d := r.Steps[i].Due; d.After(since) {
		since = d
	}
	return since
}

// Apply returns r with the swaps' new states (known from now on).
func (r State) Apply(swaps []Swap) State {
	out := r
	out.Steps = slices.Clone(r.Steps)
	if r.Known != nil {
		out.Known = slices.Clone(r.Known)
	}
	for _, s := range swaps {
		out.Steps[s.Step] = s.New
		if out.Known != nil {
			out.Known[s.Step] = true
		}
	}
	return out
}
