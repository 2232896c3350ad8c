package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrRateLimited: the caller used up its allowance for this window.
var ErrRateLimited = errors.New("rate limited")

// CountRunStartIfUnderLimit counts one run started by caller in the
// current minute, on the condition that fewer than limit were counted in
// it, and returns ErrRateLimited once limit starts were (see
// TakeRunStarts).
func (s *Store) CountRunStartIfUnderLimit(ctx context.Context, caller string, limit int, now time.Time) error {
	return s.TakeRunStarts(ctx, caller, 1, limit, now)
}

// TakeRunStarts counts n run starts by caller in the current minute, on
// the condition that the minute's count stays at most limit, and returns
// ErrRateLimited if it would not. Counters live in the main table (the API
// already writes there, so counting needs no access to the token table)
// and expire an hour later (the table's TTL attribute, "ttl"). Each count
// writes its own token; a count whose answer was lost (its retry refused
// at the limit) is recognised by it.
func (s *Store) TakeRunStarts(ctx context.Context, caller string, n, limit int, now time.Time) error {
	if n < 1 || n > limit {
		return ErrRateLimited
	}
	minute := now.UTC().Truncate(time.Minute)
	k := key("RATE#"+caller, "RUNS#"+minute.Format(time.RFC3339))
	tok := newToken()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      k,
		UpdateExpression:         aws.String("ADD n :n SET #ttl = :exp, #tok = :tok"),
		ConditionExpression:      aws.String("(attribute_not_exists(n) OR n <= :room) AND (attribute_not_exists(#tok) OR #tok <> :tok)"),
		ExpressionAttributeNames: map[string]string{"#ttl": "ttl", "#tok": attrTok},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": num(n), ":room": num(limit - n), ":tok": str(tok),
			":exp": &types.AttributeValueMemberN{Value: strconv.FormatInt(minute.Add(time.Hour).Unix(), 10)},
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if _, ours, rerr := s.holds(ctx, k, attrTok, tok); rerr == nil && ours {
			return nil // this count landed; its answer was lost
		}
		return ErrRateLimited
	}
	if err != nil {
		return fmt.Errorf("count run starts: %w", err)
	}
	return nil
}
