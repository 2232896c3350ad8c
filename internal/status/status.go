// Package status defines the state machines of runs, steps and orders: the
// typed statuses, the transitions each allows, and the order actions that
// move an order along. Storage enforces these transitions with conditional
// writes; docs/state-machines.md draws them.
package status

import "fmt"

// Run is the status of a workflow run.
type Run string

const (
	// RunPending: created by POST /workflows/{id}/runs; no step has started.
	// Leaves when the engine starts the first step (running) or the run is
	// cancelled.
	RunPending Run = "pending"
	// RunRunning: at least one step has started. Leaves when every step is
	// completed (completed), a step fails permanently (failed), or the run is
	// cancelled.
	RunRunning Run = "running"
	// RunCompleted: every step completed. Terminal.
	RunCompleted Run = "completed"
	// RunFailed: a step exhausted its retries. Left only by a retry of the
	// run (running).
	RunFailed Run = "failed"
	// RunCancelled: cancelled by a user. Left only by a retry (running).
	RunCancelled Run = "cancelled"
)

var runEdges = map[Run][]Run{
	RunPending:   {RunRunning, RunCancelled, RunFailed},
	RunRunning:   {RunCompleted, RunFailed, RunCancelled},
	RunFailed:    {RunRunning},
	RunCancelled: {RunRunning},
	RunCompleted: nil,
}

// Runs lists every run status.
var Runs = []Run{RunPending, RunRunning, RunCompleted, RunFailed, RunCancelled}

// Terminal reports whether no step of a run in status r will start.
func (r Run) Terminal() bool { return r == RunCompleted || r == RunFailed || r == RunCancelled }

// Valid reports whether r is a known run status.
func (r Run) Valid() bool { _, ok := runEdges[r]; return ok }

// CanBecome reports whether a run may move from r to next.
func (r Run) CanBecome(next Run) bool { return contains(runEdges[r], next) }

// Step is the status of one step of a run.
type Step string

const (
	// StepPending: waiting for its dependencies, for its message, or for a
	// retry's backoff. Leaves when an attempt starts (running), or when the
	// run fails (skipped) or is cancelled (cancelled).
	StepPending Step = "pending"
	// StepRunning: an attempt holds the step's lease. Leaves on commit
	// (completed), on a failed attempt with retries left (pending), or on
	// the last failed attempt (failed). A running attempt is never cut
	// short: cancelling or failing its run lets it finish.
	StepRunning Step = "running"
	// StepCompleted: its result and effect were committed. Terminal, and
	// kept across run retries.
	StepCompleted Step = "completed"
	// StepFailed: exhausted its retries. A run retry resets it (pending).
	StepFailed Step = "failed"
	// StepSkipped: never ran because the run failed first. A run retry
	// resets it (pending).
	StepSkipped Step = "skipped"
	// StepCancelled: never started because the run was cancelled. A run
	// retry resets it (pending).
	StepCancelled Step = "cancelled"
)

var stepEdges = map[Step][]Step{
	StepPending:   {StepRunning, StepSkipped, StepCancelled},
	StepRunning:   {StepCompleted, StepPending, StepFailed},
	StepCompleted: nil,
	StepFailed:    {StepPending},
	StepSkipped:   {StepPending},
	StepCancelled: {StepPending},
}

// Terminal reports whether s will not change unless the run is retried.
func (s Step) Terminal() bool { return s != StepPending && s != StepRunning }

// Valid reports whether s is a known step status.
func (s Step) Valid() bool { _, ok := stepEdges[s]; return ok }

// CanBecome reports whether a step may move from s to next.
func (s Step) CanBecome(next Step) bool { return contains(stepEdges[s], next) }

// Order is the status of an order.
type Order string

const (
	// OrderPending: created by POST /orders. Left by validate_order.
	OrderPending Order = "pending"
	// OrderValidated: left by charge_payment.
	OrderValidated Order = "validated"
	// OrderCharged: left by ship_order.
	OrderCharged Order = "charged"
	// OrderShipped: terminal.
	OrderShipped Order = "shipped"
)

// Orders lists every order status in lifecycle order.
var Orders = []Order{OrderPending, OrderValidated, OrderCharged, OrderShipped}

// Valid reports whether o is a known order status.
func (o Order) Valid() bool { return contains(Orders, o) }

// Action is an order action named by a step's config.action.
type Action struct {
	Name string
	// From and To are the order transition the action makes; both are
	// empty for an action that only records a history entry.
	From, To Order
}

// ChangesStatus reports whether the action moves the order to a new status.
func (a Action) ChangesStatus() bool { return a.To != "" }

// Actions are the order actions, by name. Any other action name is a plain
// task with no effect on the order.
var Actions = map[string]Action{
	"validate_order":    {Name: "validate_order", From: OrderPending, To: OrderValidated},
	"charge_payment":    {Name: "charge_payment", From: OrderValidated, To: OrderCharged},
	"ship_order":        {Name: "ship_order", From: OrderCharged, To: OrderShipped},
	"send_notification": {Name: "send_notification"},
}

// ErrPrecondition is returned (wrapped) when an order is not in the status
// an action requires.
type ErrPrecondition struct {
	Action string
	Want   Order
	Got    Order
}

func (e *ErrPrecondition) Error() string {
	return fmt.Sprintf("%s needs an order in status %s, found %s", e.Action, e.Want, e.Got)
}

// Check returns an *ErrPrecondition if an order in status current cannot
// take action a.
func (a Action) Check(current Order) error {
	if a.ChangesStatus() && current != a.From {
		return &ErrPrecondition{Action: a.Name, Want: a.From, Got: current}
	}
	return nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
