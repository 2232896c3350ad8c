package store

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
	"stepflow/internal/wire"
)

// How workflows, orders and order history entries are stored: private
// records with DynamoDB tags, converted to and from the API's wire types.

type workflowRecord struct {
	ID        string    `dynamodbav:"id"`
	Name      string    `dynamodbav:"name"`
	CreatedAt time.Time `dynamodbav:"created_at"`
	StepCount int       `dynamodbav:"step_count"`
}

type orderRecord struct {
	ID        string             `dynamodbav:"id"`
	Amount    amount             `dynamodbav:"amount"`
	Status    status.OrderStatus `dynamodbav:"status"`
	CreatedAt time.Time          `dynamodbav:"created_at"`
	UpdatedAt time.Time          `dynamodbav:"updated_at"`
}

func (o orderRecord) summary() wire.OrderSummary {
	return wire.OrderSummary{ID: o.ID, Amount: wire.Amount(o.Amount), Status: o.Status, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

type historyRecord struct {
	At     time.Time          `dynamodbav:"at"`
	Event  string             `dynamodbav:"event"`
	From   status.OrderStatus `dynamodbav:"from,omitempty"`
	To     status.OrderStatus `dynamodbav:"to,omitempty"`
	RunID  string             `dynamodbav:"run_id,omitempty"`
	StepID string             `dynamodbav:"step_id,omitempty"`
}

// amount is an order's exact decimal amount, stored as a DynamoDB number so
// that no float rounding ever touches it.
type amount string

// MarshalDynamoDBAttributeValue stores the amount as a DynamoDB number.
func (a amount) MarshalDynamoDBAttributeValue() (types.AttributeValue, error) {
	return &types.AttributeValueMemberN{Value: string(a)}, nil
}

// UnmarshalDynamoDBAttributeValue reads a DynamoDB number.
func (a *amount) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return fmt.Errorf("amount: want a number attribute, got %T", av)
	}
	*a = amount(n.Value)
	return nil
}

func decodeOrder(item map[string]types.AttributeValue) (orderRecord, error) {
	var o orderRecord
	if err := attributevalue.UnmarshalMap(item, &o); err != nil {
		return o, fmt.Errorf("decode order: %w", err)
	}
	return o, nil
}

func decodeHistory(item map[string]types.AttributeValue) (wire.HistoryEntry, error) {
	var h historyRecord
	if err := attributevalue.UnmarshalMap(item, &h); err != nil {
		return wire.HistoryEntry{}, fmt.Errorf("decode order history: %w", err)
	}
	return wire.HistoryEntry(h), nil
}
