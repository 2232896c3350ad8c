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

// CountRunStart counts one run started by caller in the current minute and
// returns ErrRateLimited once limit starts were counted in it. Counters
// live in the main table (the API already writes there, so counting needs
// no access to the token table) and expire an hour later (the table's TTL
// attribute, "ttl").
func (s *Store) CountRunStart(ctx context.Context, caller string, limit int, now time.Time) error {
	minute := now.UTC().Truncate(time.Minute)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      key("RATE#"+caller, "RUNS#"+minute.Format(time.RFC3339)),
		UpdateExpression:         aws.String("ADD n :one SET #ttl = :exp"),
		ConditionExpression:      aws.String("attribute_not_exists(n) OR n < :limit"),
		ExpressionAttributeNames: map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": num(1), ":limit": num(limit),
			":exp": &types.AttributeValueMemberN{Value: strconv.FormatInt(minute.Add(time.Hour).Unix(), 10)},
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrRateLimited
	}
	if err != nil {
		return fmt.Errorf("count run start: %w", err)
	}
	return nil
}
