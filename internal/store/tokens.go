package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/auth"
)

// ErrRateLimited: the caller used up its allowance for this window.
var ErrRateLimited = errors.New("rate limited")

func tokenKey(id string) (pk, sk string) { return "TOKEN#" + id, "TOKEN" }

// PutToken stores a new API token record (it holds only the secret's hash).
func (s *Store) PutToken(ctx context.Context, t auth.Token) error {
	pk, sk := tokenKey(t.ID)
	item, err := marshal(t, pk, sk)
	if err != nil {
		return err
	}
	return s.putNew(ctx, item, "token "+t.ID)
}

// GetToken returns a token record; a missing one is auth.ErrUnknown.
func (s *Store) GetToken(ctx context.Context, id string) (auth.Token, error) {
	var t auth.Token
	item, err := s.get(ctx, tokenKey, id, true)
	if errors.Is(err, ErrNotFound) {
		return t, fmt.Errorf("token %s: %w", id, auth.ErrUnknown)
	}
	if err != nil {
		return t, fmt.Errorf("get token %s: %w", id, err)
	}
	if err := attributevalue.UnmarshalMap(item, &t); err != nil {
		return t, fmt.Errorf("decode token %s: %w", id, err)
	}
	return t, nil
}

// RevokeToken marks a token revoked; it returns ErrNotFound for an unknown
// token.
func (s *Store) RevokeToken(ctx context.Context, id string, now time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(tokenKey(id)),
		UpdateExpression:          aws.String("SET revoked_at = if_not_exists(revoked_at, :now)"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": ts(now)},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// CountRunStart counts one run started by caller in the current minute and
// returns ErrRateLimited once limit starts were counted in it. Counters
// expire an hour later (the table's TTL attribute, "ttl").
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
