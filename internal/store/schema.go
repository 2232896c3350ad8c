package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Key attribute names of the table and its indexes.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	attrKind       = "kind"
	attrID         = "id"
	attrWorkflowID = "workflow_id"
	// attrWorkflowKey is the by_workflow index's key: the run's workflow
	// ID and shard (see shards.go).
	attrWorkflowKey = "wfk"
	attrActive      = "active"
)

// Index is a global secondary index of the table. Its key attributes are
// strings; only Projected attributes (plus keys) are copied into it, so
// writes that change other attributes cost no index write. With no
// Projected attributes it holds keys only.
type Index struct {
	Name      string
	PK, SK    string
	Projected []string
}

// Schema describes the table: its key, its indexes and its TTL attribute.
type Schema struct {
	PK, SK  string
	Indexes []Index
	// TTL names the attribute (epoch seconds) after which DynamoDB may
	// delete an item; only rate-limit counters carry it.
	TTL string
}

// Index names.
const (
	indexByKind     = "by_kind"     // every workflow, run or order, newest first, in shards
	indexByWorkflow = "by_workflow" // runs of one workflow, in shards
	indexActive     = "by_active"   // runs that are running (sparse), in shards
)

// TableSchema returns the table's definition. Every index is keys-only and
// keyed on attributes the items carry anyway, so an item is written to an
// index only when it enters or leaves it (see DECISIONS.md).
func TableSchema() Schema {
	return Schema{
		PK:  attrPK,
		SK:  attrSK,
		TTL: "ttl",
		Indexes: []Index{
			{Name: indexByKind, PK: attrKind, SK: attrID},
			{Name: indexByWorkflow, PK: attrWorkflowKey, SK: attrID},
			{Name: indexActive, PK: attrActive, SK: attrID},
		},
	}
}

// CreateTableInput returns the request that creates the table named name,
// billed on demand.
func CreateTableInput(name string) *dynamodb.CreateTableInput {
	s := TableSchema()
	attrs := []types.AttributeDefinition{
		{AttributeName: aws.String(s.PK), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(s.SK), AttributeType: types.ScalarAttributeTypeS},
	}
	var gsis []types.GlobalSecondaryIndex
	defined := map[string]bool{s.PK: true, s.SK: true}
	for _, ix := range s.Indexes {
		for _, a := range []string{ix.PK, ix.SK} {
			if !defined[a] {
				defined[a] = true
				attrs = append(attrs, types.AttributeDefinition{AttributeName: aws.String(a), AttributeType: types.ScalarAttributeTypeS})
			}
		}
		gsis = append(gsis, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.PK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(ix.SK), KeyType: types.KeyTypeRange},
			},
			Projection: projection(ix),
		})
	}
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: attrs,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(s.PK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(s.SK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: gsis,
	}
}

// TableAdmin is the part of the DynamoDB client EnsureTable uses.
type TableAdmin interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// EnsureTable creates the table if it does not exist and waits until it is
// active. An existing table and its data are left alone.
func EnsureTable(ctx context.Context, db TableAdmin, name string) error {
	return ensureTable(ctx, db, CreateTableInput(name))
}

func ensureTable(ctx context.Context, db TableAdmin, in *dynamodb.CreateTableInput) error {
	name := aws.ToString(in.TableName)
	_, err := db.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	if diff := indexDiff(in.GlobalSecondaryIndexes, out.Table.GlobalSecondaryIndexes); diff != "" {
		return fmt.Errorf("table %s was made by another version of Stepflow (%s): delete it, or choose another table name", name, diff)
	}
	return nil
}

// indexDiff names the first index of want that have does not key the same
// way, or "".
func indexDiff(want []types.GlobalSecondaryIndex, have []types.GlobalSecondaryIndexDescription) string {
	keys := func(ks []types.KeySchemaElement) string {
		var s []string
		for _, k := range ks {
			s = append(s, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
		}
		return strings.Join(s, ", ")
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			if aws.ToString(h.IndexName) == aws.ToString(w.IndexName) {
				found = true
				if keys(h.KeySchema) != keys(w.KeySchema) {
					return fmt.Sprintf("index %s is keyed on %s, not %s", aws.ToString(w.IndexName), keys(h.KeySchema), keys(w.KeySchema))
				}
			}
		}
		if !found {
			return "index " + aws.ToString(w.IndexName) + " is missing"
		}
	}
	return ""
}

func projection(ix Index) *types.Projection {
	if len(ix.Projected) == 0 {
		return &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}
	}
	return &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: ix.Projected}
}
