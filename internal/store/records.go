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
}

// WorkflowSummary is a workflow as listed.
type WorkflowSummary struct {
	ID        string    `json:"id" dynamodbav:"id"`
	Name      string    `json:"name" dynamodbav:"name"`
	CreatedAt time.Time `json:"created_at" dynamodbav:"created_at"`
}

// Run is one execution of a workflow.
type Run struct {
	ID           string     `json:"id" dynamodbav:"id"`
	WorkflowID   string     `json:"workflow_id" dynamodbav:"workflow_id"`
	WorkflowName string     `json:"workflow_name" dynamodbav:"workflow_name"`
	OrderID      *string    `json:"order_id" dynamodbav:"order_id,omitempty"`
	Status       status.Run `json:"status" dynamodbav:"status"`
	StepCount    int        `json:"step_count" dynamodbav:"step_count"`
	CreatedAt    time.Time  `json:"created_at" dynamodbav:"created_at"`
	StartedAt    *time.Time `json:"started_at" dynamodbav:"started_at,omitempty"`
	CompletedAt  *time.Time `json:"completed_at" dynamodbav:"completed_at,omitempty"`
	// Retries counts POST /runs/{id}/retry; RetriedAt is the latest.
	Retries   int        `json:"retries" dynamodbav:"retries"`
	RetriedAt *time.Time `json:"retried_at" dynamodbav:"retried_at,omitempty"`

	// SinksRemaining counts the steps with no dependents that have not
	// completed; the run completes when it reaches zero.
	SinksRemaining int `json:"-" dynamodbav:"sinks_remaining"`
}

// RunDetail is a run with its steps in step_index order.
type RunDetail struct {
	Run
	Steps []Step `json:"steps"`
}

// Step is the state of one step of a run.
type Step struct {
	ID           string      `json:"id" dynamodbav:"id"`
	StepID       string      `json:"step_id" dynamodbav:"step_id"`
	StepIndex    int         `json:"step_index" dynamodbav:"step_index"`
	Type         string      `json:"type" dynamodbav:"type"`
	Status       status.Step `json:"status" dynamodbav:"status"`
	RetryCount   int         `json:"retry_count" dynamodbav:"retry_count"`
	MaxRetries   int         `json:"max_retries" dynamodbav:"max_retries"`
	DependsOn    []string    `json:"depends_on" dynamodbav:"depends_on"`
	StartedAt    *time.Time  `json:"started_at" dynamodbav:"started_at,omitempty"`
	CompletedAt  *time.Time  `json:"completed_at" dynamodbav:"completed_at,omitempty"`
	ErrorMessage *string     `json:"error_message" dynamodbav:"error_message,omitempty"`
	// Attempts lists every finished attempt, oldest first.
	Attempts []Attempt `json:"attempts" dynamodbav:"attempts"`

	// Execution data, not part of the API.
	Config        workflow.Config `json:"-" dynamodbav:"config"`
	Dependents    []int           `json:"-" dynamodbav:"dependents"`
	DepsRemaining int             `json:"-" dynamodbav:"deps_remaining"`
	// LeaseToken identifies the attempt holding a running step; LeaseUntil
	// is when the lease expires and another runner may take the step over.
	LeaseToken string     `json:"-" dynamodbav:"lease_token,omitempty"`
	LeaseUntil *time.Time `json:"-" dynamodbav:"lease_until,omitempty"`
	// AttemptStartedAt is when the latest attempt started (the running one,
	// while the step runs).
	AttemptStartedAt *time.Time `json:"attempt_started_at,omitempty" dynamodbav:"attempt_started_at,omitempty"`
}

// Attempt is one finished attempt of a step.
type Attempt struct {
	Number    int       `json:"number" dynamodbav:"n"`
	StartedAt time.Time `json:"started_at" dynamodbav:"s"`
	EndedAt   time.Time `json:"ended_at" dynamodbav:"e"`
	// Error is empty for the attempt that completed the step.
	Error string `json:"error,omitempty" dynamodbav:"err,omitempty"`
}

// Order is an order whose status runs move along, with its audit trail.
type Order struct {
	ID        string         `json:"id" dynamodbav:"id"`
	Amount    Amount         `json:"amount" dynamodbav:"amount"`
	Status    status.Order   `json:"status" dynamodbav:"status"`
	CreatedAt time.Time      `json:"created_at" dynamodbav:"created_at"`
	UpdatedAt time.Time      `json:"updated_at" dynamodbav:"updated_at"`
	History   []HistoryEntry `json:"history" dynamodbav:"history"`
	// Version increases with every write; writers condition on it.
	Version int `json:"-" dynamodbav:"version"`
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
