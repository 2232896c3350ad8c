package meter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/sivchari/kumo"

	"stepflow/internal/awsclient"
	"stepflow/internal/meter"
)

// A test can hold code to a capacity budget: meter the client it uses and
// read the units afterwards.
func Example() {
	ctx := context.Background()
	emu := kumo.NewServer()
	defer emu.Close()
	cfg, err := awsclient.Load(ctx, true)
	if err != nil {
		panic(err)
	}
	plain := awsclient.DynamoDB(cfg, emu.URL) // unmetered: the meter reads item images through it
	table := fmt.Sprintf("example-%d", time.Now().UnixNano())
	if _, err := plain.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		panic(err)
	}
	schema, err := meter.Describe(ctx, plain, table)
	if err != nil {
		panic(err)
	}

	m := meter.New(schema, plain)
	metered := cfg.Copy()
	m.Attach(&metered)
	db := awsclient.DynamoDB(metered, emu.URL)

	// A 1,500-byte item: 2 WU to write, and 1 RU to read it back strongly
	// consistent.
	item := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "ORDER#1"}}
	item["note"] = &types.AttributeValueMemberS{Value: string(make([]byte, 1500))}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		panic(err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"pk": item["pk"]}, ConsistentRead: aws.Bool(true)}); err != nil {
		panic(err)
	}
	snap := m.Snapshot()
	fmt.Printf("%.0f WU, %.0f RU\n", snap.WU, snap.RU)
	for _, l := range snap.Lines {
		fmt.Printf("%s %s: %.0f WU %.0f RU\n", l.Op, l.Kind, l.WU, l.RU)
	}
	// Output:
	// 2 WU, 1 RU
	// GetItem ORDER: 0 WU 1 RU
	// PutItem ORDER: 2 WU 0 RU
}
