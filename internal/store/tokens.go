package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/auth"
)

// TokenDB is the part of the DynamoDB client Tokens uses.
type TokenDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Tokens reads and writes the token table, which holds API token records
// (a secret's hash, never the secret) and nothing else. Keeping them out of
// the main table lets IAM give write access to the token tooling alone and
// read access to the authorizer and the API alone. Safe for concurrent use.
type Tokens struct {
	db    TokenDB
	table string
}

// NewTokens returns a Tokens over the token table named table.
func NewTokens(db TokenDB, table string) *Tokens {
	return &Tokens{db: db, table: table}
}

func tokenKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{tokenAttrID: str(id)}
}

// PutTokenIfAbsent stores a new token record, on the condition that its ID
// is new. A put whose answer was lost is recognised by the secret's hash,
// which only this record holds.
func (s *Tokens) PutTokenIfAbsent(ctx context.Context, t auth.Token) error {
	item, err := attributevalue.MarshalMap(t)
	if err != nil {
		return fmt.Errorf("marshal token %s: %w", t.ID, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(" + tokenAttrID + ")"),
	})
	if err == nil {
		return nil
	}
	if got, gerr := s.GetToken(ctx, t.ID); gerr == nil && got.SecretHash == t.SecretHash {
		return nil // this put landed; its answer was lost
	}
	return fmt.Errorf("put token %s: %w", t.ID, conditionErr(err))
}

// GetToken returns a token record (read consistently, so a revocation
// counts at once); a missing one is auth.ErrUnknown.
func (s *Tokens) GetToken(ctx context.Context, id string) (auth.Token, error) {
	var t auth.Token
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            tokenKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return t, fmt.Errorf("get token %s: %w", id, err)
	}
	if out.Item == nil {
		return t, fmt.Errorf("token %s: %w", id, auth.ErrUnknown)
	}
	if err := attributevalue.UnmarshalMap(out.Item, &t); err != nil {
		return t, fmt.Errorf("decode token %s: %w", id, err)
	}
	return t, nil
}

// RevokeToken marks a token revoked; it returns ErrNotFound for an unknown
// token. Revoking twice keeps the first time.
func (s *Tokens) RevokeToken(ctx context.Context, id string, now time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       tokenKey(id),
		UpdateExpression:          aws.String("SET revoked_at = if_not_exists(revoked_at, :now)"),
		ConditionExpression:       aws.String("attribute_exists(" + tokenAttrID + ")"),
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

// ListTokens returns every token record, oldest first. The table holds
// only tokens, which are few, so this is a Scan.
func (s *Tokens) ListTokens(ctx context.Context) ([]auth.Token, error) {
	var out []auth.Token
	p := dynamodb.NewScanPaginator(s.db, &dynamodb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		var toks []auth.Token
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &toks); err != nil {
			return nil, fmt.Errorf("decode tokens: %w", err)
		}
		out = append(out, toks...)
	}
	// Token IDs sort by creation time.
	slices.SortFunc(out, func(a, b auth.Token) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
