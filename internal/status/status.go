// Package status defines the state machines of runs, steps and orders: the
// typed statuses, the transitions each stored status allows, and the order
// actions that move an order along. Package runstate checks every state it
// computes against these tables and package store writes it conditioned on
// the old state; docs/state-machines.md draws them.
package status

import (
	"fmt"
	"slices"
)

// RunStatus is the status of a workflow run. Four are stored; pending is only
// reported (see RunPending).
type RunStatus string

const (
	// RunPending is reported, never stored: a running run no step of which
	// has started yet (POST /workflows/{id}/runs stores it as running).
	RunPending RunStatus = "pending"
	// RunRunning: created or retried, and not ended. Leaves when its last
	// step completes (completed), a step fails with no retries left
	// (failed), or it is cancelled.
	RunRunning RunStatus = "running"
	// RunCompleted: every step completed. Terminal.
	RunCompleted RunStatus = "completed"
	// RunFailed: a step exhausted its retries. Left only by a retry of the
	// run (running, next generation).
	RunFailed RunStatus = "failed"
	// RunCancelled: cancelled by a user. Left only by a retry (running).
	RunCancelled RunStatus = "cancelled"
)

// runEdges are the transitions of stored run statuses.
var runEdges = map[RunStatus][]RunStatus{
	RunRunning:   {RunCompleted, RunFailed, RunCancelled},
	RunFailed:    {RunRunning},
	RunCancelled: {RunRunning},
	RunCompleted: nil,
}

// Runs lists every run status the API reports.
var Runs = []RunStatus{RunPending, RunRunning, RunCompleted, RunFailed, RunCancelled}

// Terminal reports whether no step of a run in status r will start.
func (r RunStatus) Terminal() bool { return r == RunCompleted || r == RunFailed || r == RunCancelled }

// Valid reports whether r is a run status the API reports.
func (r RunStatus) Valid() bool { return contains(Runs, r) }

// CanBecome reports whether a stored run status may move from r to next.
func (r RunStatus) CanBecome(next RunStatus) bool { return contains(runEdges[r], next) }

// StepStatus is the status of one step of a run. Five are stored per
// generation (pending, running, waiting, completed, failed); skipped and
// cancelled are only reported, for steps that will not run because their run
// ended.
type StepStatus string

const (
	// StepPending: waiting for its dependencies, for its message, or for a
	// retry's backoff. Leaves when claimed (running), or when run in the
	// same invocation as its parent and committed with it (completed,
	// pending again after a failed attempt, or failed).
	StepPending StepStatus = "pending"
	// StepRunning: an attempt holds the step's lease. Leaves on commit
	// (completed), on a failed attempt with retries left (pending), on the
	// last failed attempt (failed), or when its expired lease is taken over
	// (running again). A running attempt is never cut short: cancelling or
	// failing its run lets it finish.
	StepRunning StepStatus = "running"
	// StepWaiting: a wait step waiting for its time, or an approval waiting
	// for a decision (or its timeout), with no runner holding it. Entered
	// by the commit of its start (from running, or from pending when it
	// started in the same invocation as its parent); left when its time
	// comes or the decision lands (completed), when an approval is
	// refused or times out (failed), or by a run retry (pending).
	StepWaiting StepStatus = "waiting"
	// StepCompleted: its result and effect were committed. Terminal, and
	// kept across run retries.
	StepCompleted StepStatus = "completed"
	// StepFailed: exhausted its retries. A run retry resets it (pending).
	StepFailed StepStatus = "failed"
	// StepSkipped is reported, never stored: a step that had not started
	// (or whose attempt's runner died) when its run failed.
	StepSkipped StepStatus = "skipped"
	// StepCancelled is reported, never stored: the same for a cancelled
	// run.
	StepCancelled StepStatus = "cancelled"
)

// stepEdges are the transitions of stored step statuses, within a
// generation and by a run retry (which resets failed, pending and
// abandoned running steps to pending).
var stepEdges = map[StepStatus][]StepStatus{
	StepPending:   {StepRunning, StepWaiting, StepCompleted, StepFailed, StepPending},
	StepRunning:   {StepWaiting, StepCompleted, StepPending, StepFailed, StepRunning},
	StepWaiting:   {StepCompleted, StepFailed, StepPending},
	StepCompleted: nil,
	StepFailed:    {StepPending},
}

// Steps lists every step status the API reports.
var Steps = []StepStatus{StepPending, StepRunning, StepWaiting, StepCompleted, StepFailed, StepSkipped, StepCancelled}

// Terminal reports whether s will not change unless the run is retried.
func (s StepStatus) Terminal() bool { return s != StepPending && s != StepRunning && s != StepWaiting }

// Valid reports whether s is a step status the API reports.
func (s StepStatus) Valid() bool { return contains(Steps, s) }

// CanBecome reports whether a stored step status may move from s to next.
func (s StepStatus) CanBecome(next StepStatus) bool { return contains(stepEdges[s], next) }

// OrderStatus is the status of an order.
type OrderStatus string

const (
	// OrderPending: created by POST /orders. Left by validate_order.
	OrderPending OrderStatus = "pending"
	// OrderValidated: left by charge_payment.
	OrderValidated OrderStatus = "validated"
	// OrderCharged: left by ship_order.
	OrderCharged OrderStatus = "charged"
	// OrderShipped: terminal.
	OrderShipped OrderStatus = "shipped"
)

// Orders lists every order status in lifecycle order.
var Orders = []OrderStatus{OrderPending, OrderValidated, OrderCharged, OrderShipped}

// Valid reports whether o is a known order status.
func (o OrderStatus) Valid() bool { return contains(Orders, o) }

// Action is an order action named by a step's config.action.
type Action struct {
	Name string
	// From and To are the order transition the action makes; both are
	// empty for an action that only records a history entry.
	From, To OrderStatus
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
	Want   OrderStatus
	Got    OrderStatus
}

func (e *ErrPrecondition) Error() string {
	return fmt.Sprintf("%s needs an order in status %s, found %s", e.Action, e.Want, e.Got)
}

// Passed reports whether the order has moved past the status the action
// needs: orders only move forward, so waiting cannot help.
func (e *ErrPrecondition) Passed() bool {
	return slices.Index(Orders, e.Got) > slices.Index(Orders, e.Want)
}

// Check returns an *ErrPrecondition if an order in status current cannot
// take action a.
func (a Action) Check(current OrderStatus) error {
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
