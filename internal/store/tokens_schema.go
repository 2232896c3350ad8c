package store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// tokenAttrID is the token table's key: the token's id (auth.Token's "id").
const tokenAttrID = "id"

// TokenTableSchema returns the token table's definition: a string partition
// key, no sort key, no indexes, no TTL. The local stack and infra/ both
// build the table from it.
func TokenTableSchema() Schema {
	return Schema{PK: tokenAttrID}
}

// CreateTokenTableInput returns the request that creates the token table
// named name, billed on demand.
func CreateTokenTableInput(name string) *dynamodb.CreateTableInput {
	s := TokenTableSchema()
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(s.PK), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(s.PK), KeyType: types.KeyTypeHash}},
	}
}

// EnsureTokenTable creates the token table if it does not exist and waits
// until it is active. An existing table and its tokens are left alone.
func EnsureTokenTable(ctx context.Context, db TableAdmin, name string) error {
	return ensureTable(ctx, db, CreateTokenTableInput(name))
}
