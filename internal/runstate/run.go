package runstate

import (
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// State is a run's state as read: its header's metadata and every step's slot.
type State struct {
	ID           string
	WorkflowID   string
	WorkflowName string
	// OrderID is the order the run's actions move, or "".
	OrderID string
	// Status is the stored status: running, completed, failed or
	// cancelled.
	Status status.RunStatus
	// Gen is the generation, raised by each retry.
	Gen       int
	CreatedAt time.Time
	// EndedAt is when the run last ended (zero while running).
	EndedAt   time.Time
	Retries   int
	RetriedAt time.Time
	// Steps holds every step's slot, by plan index.
	Steps []Slot
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

// Ready reports whether every parent of step i has completed.
func (r State) Ready(p workflow.Plan, i int) bool {
	for _, parent := range p[i].Parents {
		if r.Steps[parent].Status != status.StepCompleted {
			return false
		}
	}
	return true
}

// AllCompleted reports whether every step has completed.
func (r State) AllCompleted() bool {
	for _, s := range r.Steps {
		if s.Status != status.StepCompleted {
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
// will not run because its run ended (pending, or running under a lease
// that expired after the run ended) is skipped in a failed run and cancelled
// in a cancelled one; nothing is stored for these.
func (r State) StepReported(i int, now time.Time) status.StepStatus {
	s := r.Steps[i]
	abandoned := s.Status == status.StepPending || (s.Status == status.StepRunning && !s.LeaseLive(now))
	if r.Live() || !abandoned {
		return s.Status
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
		if s.Status != status.StepRunning {
			later(s.End) // a running step's End is its lease's
		}
	}
	return t
}

// readySince is when pending step i became able to start: the latest of the
// run's creation or retry, its parents' completions and its retry's due
// time. It is false if a parent has not completed.
func (r State) readySince(p workflow.Plan, i int) (time.Time, bool) {
	since := r.CreatedAt
	if r.RetriedAt.After(since) {
		since = r.RetriedAt
	}
	for _, parent := range p[i].Parents {
		ps := r.Steps[parent]
		if ps.Status != status.StepCompleted {
			return time.Time{}, false
		}
		if ps.End.After(since) {
			since = ps.End
		}
	}
	if d := r.Steps[i].Due; d.After(since) {
		since = d
	}
	return since, true
}
