package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A conditional write can land and lose its answer (a 500, a timeout, a
// reset connection); the SDK then sends it again by itself, and the second
// try fails its condition on the first one's effect (see
// shared/notes/lost-answers.md). So every conditional write here that the
// code may meet again carries something of the writer's own (a random
// token, or a value only this writer would write), and a write that fails
// (or whose answer is lost) is read back: if the item holds the writer's
// own value, the write landed and the call succeeds; only if it holds
// someone else's is it a conflict. Nothing is deleted that the code
// cannot prove it wrote.

// attrTok is the attribute holding the token of the item's last guarded
// write: a run's creation, end or retry, an order's or a workflow's
// creation.
const attrTok = "tok"

// newToken returns a random token for a guarded write.
func newToken() string { return rand.Text()[:16] }

// ErrUnknown: a write failed or lost its answer, and reading it back failed
// too, so whether it landed is not known. It is not a conflict: callers
// must not act as if someone else had written.
var ErrUnknown = errors.New("whether the write landed is unknown")

// readBackTries bounds the reads of a write whose answer was lost; they
// back off from 50 ms, doubling.
const readBackTries = 5

// readBack runs check until it answers, up to readBackTries times.
func readBack(ctx context.Context, check func() (bool, error)) (bool, error) {
	var err error
	for try := 1; try <= readBackTries; try++ {
		var ok bool
		if ok, err = check(); err == nil {
			return ok, nil
		}
		if try < readBackTries {
			if werr := backoff(ctx, 1<<(try-1)); werr != nil {
				return false, werr
			}
		}
	}
	return false, err
}

// landedOrNot reports whether err may hide a write that landed: a failed
// condition (the SDK's retry of a landed write meets its own effect), or an
// answer that never came. A write refused as invalid, or a request that
// could not be built, did not land.
func landedOrNot(err error) bool {
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, context.Canceled) {
		return false
	}
	var rnf *types.ResourceNotFoundException
	return !errors.As(err, &rnf)
}

// putIfAbsent puts item on the condition that no item has its key. The
// item carries mine in attribute tokAttr; after a failure it is read back,
// and the put succeeded if the item there holds mine.
func (s *Store) putIfAbsent(ctx context.Context, item map[string]types.AttributeValue, tokAttr, mine, what string) error {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err == nil {
		return nil
	}
	err = invalidErr(conditionErr(err))
	if !landedOrNot(err) {
		return fmt.Errorf("put %s: %w", what, err)
	}
	var exists, ours bool
	_, rerr := readBack(ctx, func() (bool, error) {
		var err error
		exists, ours, err = s.holds(ctx, map[string]types.AttributeValue{attrPK: item[attrPK], attrSK: item[attrSK]}, tokAttr, mine)
		return ours, err
	})
	switch {
	case rerr != nil:
		// Whether it landed is unknown: not a conflict the caller may
		// clean up after.
		return fmt.Errorf("put %s: %w: %v; reading it back: %v", what, ErrUnknown, err, rerr)
	case ours:
		return nil
	case exists:
		return fmt.Errorf("put %s: %w: %v", what, ErrConflict, err)
	}
	return fmt.Errorf("put %s: %w", what, err)
}

// holds reads the item at key consistently and reports whether it exists
// and whether its attribute attr is the string want.
func (s *Store) holds(ctx context.Context, key map[string]types.AttributeValue, attr, want string) (exists, ours bool, err error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: key, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, false, err
	}
	return out.Item != nil, out.Item != nil && sAttr(out.Item, attr) == want, nil
}

// txn is a TransactWriteItems request under construction that remembers
// what each item's condition means, so that a cancelled transaction says
// which item failed its condition and why.
type txn struct {
	items []types.TransactWriteItem
	what  []string
}

func (t *txn) add(it types.TransactWriteItem, what string) {
	t.items = append(t.items, it)
	t.what = append(t.what, what)
}

// write sends the transaction with token as its idempotency token (empty:
// the SDK's own), mapping a cancellation to ErrConflict or ErrInvalid with
// the failing item named.
func (s *Store) writeTxn(ctx context.Context, t *txn, token string, opts ...func(*dynamodb.Options)) error {
	in := &dynamodb.TransactWriteItemsInput{TransactItems: t.items}
	if token != "" {
		in.ClientRequestToken = aws.String(token)
	}
	_, err := s.db.TransactWriteItems(ctx, in, opts...)
	return t.explain(err)
}

// explain maps a transaction's error: a cancellation by a failed condition
// or a conflicting transaction is ErrConflict, one refused as invalid is
// ErrInvalid, and either names the item that failed and why (DynamoDB
// lists a reason per item, in order; emulators write "" for None).
func (t *txn) explain(err error) error {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return invalidErr(err)
	}
	for n, r := range tce.CancellationReasons {
		code := aws.ToString(r.Code)
		if code == "" || code == "None" {
			continue
		}
		what := fmt.Sprintf("item %d", n)
		if n < len(t.what) {
			what = t.what[n]
		}
		why := fmt.Errorf("%s: %s (%s)", what, code, strings.TrimSpace(aws.ToString(r.Message)))
		switch code {
		case "ConditionalCheckFailed", "TransactionConflict":
			return fmt.Errorf("%w: %w", ErrConflict, why)
		case "ValidationError":
			return fmt.Errorf("%w: %w", ErrInvalid, why)
		}
		return fmt.Errorf("%w: %w", why, err)
	}
	return err
}
