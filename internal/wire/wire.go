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
	// ExpiresAt is when an ended run is gone, with its attempts (the
	// retention after its end); a retry keeps it.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
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
	// Input is the input of the current generation (null if none); Inputs
	// lists each input given, with the generation it applies from.
	Input  json.RawMessage `json:"input"`
	Inputs []RunInput      `json:"inputs"`
	Steps  []StepDetail    `json:"steps"`
}

// RunInput is an input given to a run when it was created (generation 0)
// or retried, which its steps see from that generation on.
type RunInput struct {
	Generation int             `json:"generation"`
	Input      json.RawMessage `json:"input"`
	SetAt      time.Time       `json:"set_at"`
	// Omitted: the input was left out to keep the answer small (the
	// current one never is).
	Omitted bool `json:"input_omitted,omitempty"`
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
	// Output is a completed step's output (null if it has none), and
	// InputGeneration the generation of the run's input its templates read
	// (absent when they read none). OutputOmitted says the output was left
	// out of this answer to keep it small: GET
	// /runs/{id}/steps/{step_id}/output gives it.
	Output          json.RawMessage `json:"output"`
	InputGeneration *int            `json:"input_generation,omitempty"`
	OutputOmitted   bool            `json:"output_omitted,omitempty"`
	// WaitUntil is when a waiting step's wait ends: a wait step resumes,
	// an approval times out (absent: an approval with no timeout).
	WaitUntil *time.Time `json:"wait_until,omitempty"`
	// CallbackToken is a waiting approval's callback token, shown to
	// operators only: POST /callbacks/{token} completes or fails the step
	// without a bearer token.
	CallbackToken *string `json:"callback_token,omitempty"`
}

// Attempt is one finished attempt of a step.
type Attempt struct {
	Number int `json:"number"`
	// Generation is the run's generation the attempt ran in (absent when
	// it is not known: a step completed before the latest retry).
	Generation *int      `json:"generation,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at"`
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
