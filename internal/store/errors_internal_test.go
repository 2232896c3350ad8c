package store

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestTransactionConflictIsAConflict: on Amazon DynamoDB (not kumo),
// a write that touches an item while another transaction on it is in flight
// fails with TransactionConflictException (single-item UpdateItem) or with a
// TransactionCanceledException whose only reason is "TransactionConflict".
// Neither is retried by the SDK's standard retryer; both must be ErrConflict,
// or the API's cancel and retry (adminRun re-reads on ErrConflict) answer
// 500 whenever a runner commits the same run at that moment.
func TestTransactionConflictIsAConflict(t *testing.T) {
	tx := &types.TransactionCanceledException{
		Message: aws.String("Transaction cancelled"),
		CancellationReasons: []types.CancellationReason{
			{Code: aws.String("TransactionConflict")}, {Code: aws.String("None")},
		},
	}
	if err := txErr(tx); !errors.Is(err, ErrConflict) {
		t.Errorf("TransactWriteItems cancelled by TransactionConflict: %v is not ErrConflict", err)
	}
	single := &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
	if err := invalidErr(conditionErr(single)); !errors.Is(err, ErrConflict) {
		t.Errorf("UpdateItem refused with TransactionConflictException: %v is not ErrConflict", err)
	}
}
