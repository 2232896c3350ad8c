// Package wire holds the JSON types of the HTTP API: what the API answers,
// and what the CLI and the dashboard's tests read. It depends on the domain
// packages only (status, workflow), never on storage or an AWS SDK.
package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Workflow is a stored workflow definition. Workflows are immutable.
type Workflow struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Definition workflow.Definition `json:"definition"`
	CreatedAt  time.Time           `json:"created_at"`
	StepCount  int                 `json:"step_count"`
}

// WorkflowSummary is a workflow as listed.
type WorkflowSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	StepCount int       `json:"step_count"`
}

// RunSummary is one execution of a workflow, as lists show it.
type RunSummary struct {
	ID           string           `json:"id"`
	WorkflowID   string           `json:"workflow_id"`
	WorkflowName string           `json:"workflow_name"`
	OrderID      *string          `json:"order_id"`
	Status       status.RunStatus `json:"status"`
	StepCount    int              `json:"step_count"`
	CreatedAt    time.Time        `json:"created_at"`
	StartedAt    *time.Time       `json:"started_at"`
	CompletedAt  *time.Time       `json:"completed_at"`
	// Retries counts POST /runs/{id}/retry; RetriedAt is the latest.
	Retries   int        `json:"retries"`
	RetriedAt *time.Time `json:"retried_at"`
	// Generation is raised by each retry.
	Generation int `json:"generation"`
	// StepsCompleted counts the completed steps; StepStatuses has every
	// step's status in step_index order.
	StepsCompleted int                 `json:"steps_completed"`
	StepStatuses   []status.StepStatus `json:"step_statuses"`
	// ProgressAt is the latest time the run was created, retried, or had
	// an attempt start or end.
	ProgressAt time.Time `json:"progress_at"`
	// OrderStatus is the status of the run's order, in lists.
	OrderStatus *status.OrderStatus `json:"order_status,omitempty"`
	// RetryDueAt is the latest time a step waiting for a retry's backoff
	// may run next (nil if none waits).
	RetryDueAt *time.Time `json:"retry_due_at,omitempty"`
	// Stalled tells that the run has not ended and has shown no progress
	// for longer than recovery should take (set by the API).
	Stalled bool `json:"stalled"`
}

// RunDetail is a run with its steps in step_index order.
type RunDetail struct {
	RunSummary
	Steps []StepDetail `json:"steps"`
}

// StepDetail is the state of one step of a run, as the API shows it.
type StepDetail struct {
	ID           string            `json:"id"`
	StepID       string            `json:"step_id"`
	StepIndex    int               `json:"step_index"`
	Type         string            `json:"type"`
	Status       status.StepStatus `json:"status"`
	RetryCount   int               `json:"retry_count"`
	MaxRetries   int               `json:"max_retries"`
	DependsOn    []string          `json:"depends_on"`
	Config       workflow.Config   `json:"config"`
	StartedAt    *time.Time        `json:"started_at"`
	CompletedAt  *time.Time        `json:"completed_at"`
	ErrorMessage *string           `json:"error_message"`
	// Attempts lists the finished attempts of the current and the previous
	// generation, oldest first.
	Attempts []Attempt `json:"attempts"`
	// AttemptStartedAt is when the running attempt started.
	AttemptStartedAt *time.Time `json:"attempt_started_at,omitempty"`
	// NextAttemptAt is when a pending step waiting for a retry's backoff
	// may run next.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// Attempt is one finished attempt of a step.
type Attempt struct {
	Number    int       `json:"number"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Error is empty for the attempt that completed the step.
	Error string `json:"error,omitempty"`
}

// Order is an order whose status runs move along, with its audit trail.
type Order struct {
	ID        string             `json:"id"`
	Amount    Amount             `json:"amount"`
	Status    status.OrderStatus `json:"status"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
	// History is the first page of the order's history, oldest first;
	// HistoryNext is the cursor of the next page (GET
	// /orders/{id}/history), or nil.
	History     []HistoryEntry `json:"history"`
	HistoryNext *string        `json:"history_next"`
}

// OrderSummary is an order as listed.
type OrderSummary struct {
	ID        string             `json:"id"`
	Amount    Amount             `json:"amount"`
	Status    status.OrderStatus `json:"status"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// HistoryEntry records one change to an order: a status transition, or a
// notification (From and To empty). RunID and StepID name the step that
// caused it; creation has neither.
type HistoryEntry struct {
	At     time.Time          `json:"at"`
	Event  string             `json:"event"`
	From   status.OrderStatus `json:"from,omitempty"`
	To     status.OrderStatus `json:"to,omitempty"`
	RunID  string             `json:"run_id,omitempty"`
	StepID string             `json:"step_id,omitempty"`
}

// Amount is an exact decimal amount, such as "19.99". It is a number both
// in JSON and in DynamoDB, so no float rounding ever touches it.
type Amount string

// MarshalJSON writes the amount as a JSON number.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a), nil }

// UnmarshalJSON reads a JSON number, keeping its exact text.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil || len(b) == 0 || b[0] == '"' {
		return fmt.Errorf("amount: want a JSON number, got %s", b)
	}
	*a = Amount(n)
	return nil
}
