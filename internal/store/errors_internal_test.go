package store

import (
	"errors"
	"strings"
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
	if err := (&txn{}).explain(tx); !errors.Is(err, ErrConflict) {
		t.Errorf("TransactWriteItems cancelled by TransactionConflict: %v is not ErrConflict", err)
	}
	single := &types.TransactionConflictException{Message: aws.String("Transaction is ongoing for the item")}
	if err := invalidErr(conditionErr(single)); !errors.Is(err, ErrConflict) {
		t.Errorf("UpdateItem refused with TransactionConflictException: %v is not ErrConflict", err)
	}
}

// TestCancelledTransactionNamesTheItem: a cancelled transaction says which
// item failed its condition and what that condition required, whether the
// other reasons are "None" (DynamoDB) or "" (kumo).
func TestCancelledTransactionNamesTheItem(t *testing.T) {
	tx := &txn{}
	tx.add(types.TransactWriteItem{}, "order ord_1 history entry of step 2 (requires none yet)")
	tx.add(types.TransactWriteItem{}, "run run_1 header (requires step 3 still R0:tok:1:2)")
	for _, none := range []string{"None", ""} {
		err := tx.explain(&types.TransactionCanceledException{
			Message: aws.String("Transaction cancelled"),
			CancellationReasons: []types.CancellationReason{
				{Code: aws.String(none)}, {Code: aws.String("ConditionalCheckFailed"), Message: aws.String("The conditional request failed")},
			},
		})
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "run run_1 header (requires step 3 still R0:tok:1:2): ConditionalCheckFailed") {
			t.Errorf("with %q for None: %v", none, err)
		}
	}
	err := tx.explain(&types.TransactionCanceledException{CancellationReasons: []types.CancellationReason{
		{Code: aws.String("ValidationError"), Message: aws.String("Item size has exceeded the maximum allowed size")},
	}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "order ord_1 history entry") {
		t.Errorf("validation: %v", err)
	}
}
