package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Workflow is a stored workflow definition. Workflows are immutable.
type Workflow struct {
	ID         string              `json:"id" dynamodbav:"id"`
	Name       string              `json:"name" dynamodbav:"name"`
	Definition workflow.Definition `json:"definition" dynamodbav:"-"`
	CreatedAt  time.Time           `json:"created_at" dynamodbav:"created_at"`
	StepCount  int                 `json:"step_count" dynamodbav:"step_count"`
}

// WorkflowSummary is a workflow as listed.
type WorkflowSummary struct {
	ID        string    `json:"id" dynamodbav:"id"`
	Name      string    `json:"name" dynamodbav:"name"`
	CreatedAt time.Time `json:"created_at" dynamodbav:"created_at"`
	StepCount int       `json:"step_count" dynamodbav:"step_count"`
}

// Run is one execution of a workflow, as the API shows it.
type Run struct {
	ID           string     `json:"id"`
	WorkflowID   string     `json:"workflow_id"`
	WorkflowName string     `json:"workflow_name"`
	OrderID      *string    `json:"order_id"`
	Status       status.Run `json:"status"`
	StepCount    int        `json:"step_count"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at"`
	CompletedAt  *time.Time `json:"completed_at"`
	// Retries counts POST /runs/{id}/retry; RetriedAt is the latest.
	Retries   int        `json:"retries"`
	RetriedAt *time.Time `json:"retried_at"`
	// Generation is raised by each retry.
	Generation int `json:"generation"`
	// StepsCompleted counts the completed steps; StepStatuses has every
	// step's status in step_index order.
	StepsCompleted int           `json:"steps_completed"`
	StepStatuses   []status.Step `json:"step_statuses"`
	// ProgressAt is the latest time the run was created, retried, or had
	// an attempt start or end.
	ProgressAt time.Time `json:"progress_at"`
	// OrderStatus is the status of the run's order, in lists.
	OrderStatus *status.Order `json:"order_status,omitempty"`
	// RetryDueAt is the latest time a step waiting for a retry's backoff
	// may run next (nil if none waits).
	RetryDueAt *time.Time `json:"retry_due_at,omitempty"`
	// Stalled tells that the run has not ended and has shown no progress
	// for longer than recovery should take (set by the API).
	Stalled bool `json:"stalled"`
}

// RunDetail is a run with its steps in step_index order.
type RunDetail struct {
	Run
	Steps []Step `json:"steps"`
}

// Step is the state of one step of a run, as the API shows it.
type Step struct {
	ID           string          `json:"id"`
	StepID       string          `json:"step_id"`
	StepIndex    int             `json:"step_index"`
	Type         string          `json:"type"`
	Status       status.Step     `json:"status"`
	RetryCount   int             `json:"retry_count"`
	MaxRetries   int             `json:"max_retries"`
	DependsOn    []string        `json:"depends_on"`
	Config       workflow.Config `json:"config"`
	StartedAt    *time.Time      `json:"started_at"`
	CompletedAt  *time.Time      `json:"completed_at"`
	ErrorMessage *string         `json:"error_message"`
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
	ID        string       `json:"id" dynamodbav:"id"`
	Amount    Amount       `json:"amount" dynamodbav:"amount"`
	Status    status.Order `json:"status" dynamodbav:"status"`
	CreatedAt time.Time    `json:"created_at" dynamodbav:"created_at"`
	UpdatedAt time.Time    `json:"updated_at" dynamodbav:"updated_at"`
	// History is the first page of the order's history, oldest first;
	// HistoryNext is the cursor of the next page (GET
	// /orders/{id}/history), or nil.
	History     []HistoryEntry `json:"history" dynamodbav:"-"`
	HistoryNext *string        `json:"history_next" dynamodbav:"-"`
}

// OrderSummary is an order as listed.
type OrderSummary struct {
	ID        string       `json:"id" dynamodbav:"id"`
	Amount    Amount       `json:"amount" dynamodbav:"amount"`
	Status    status.Order `json:"status" dynamodbav:"status"`
	CreatedAt time.Time    `json:"created_at" dynamodbav:"created_at"`
	UpdatedAt time.Time    `json:"updated_at" dynamodbav:"updated_at"`
}

// HistoryEntry records one change to an order: a status transition, or a
// notification (From and To empty). RunID and StepID name the step that
// caused it; creation has neither.
type HistoryEntry struct {
	At     time.Time    `json:"at" dynamodbav:"at"`
	Event  string       `json:"event" dynamodbav:"event"`
	From   status.Order `json:"from,omitempty" dynamodbav:"from,omitempty"`
	To     status.Order `json:"to,omitempty" dynamodbav:"to,omitempty"`
	RunID  string       `json:"run_id,omitempty" dynamodbav:"run_id,omitempty"`
	StepID string       `json:"step_id,omitempty" dynamodbav:"step_id,omitempty"`
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

// MarshalDynamoDBAttributeValue stores the amount as a DynamoDB number.
func (a Amount) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	return &types.AttributeValueMemberN{Value: string(a)}, nil
}

// UnmarshalDynamoDBAttributeValue reads a DynamoDB number.
func (a *Amount) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return fmt.Errorf("amount: want a number attribute, got %T", av)
	}
	*a = Amount(n.Value)
	return nil
}
