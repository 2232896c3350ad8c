package meter_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"stepflow/internal/awsclient"
	"stepflow/internal/meter"
	"stepflow/internal/queue"
	"stepflow/internal/testenv"
)

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

type bundle struct {
	plain  *dynamodb.Client
	table  string
	schema meter.Schema
}

// setup creates a table whose key and index names differ from Stepflow's,
// with one index of each projection, and reads its schema back from the
// endpoint.
func setup(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	db := testenv.DynamoDB(t)
	table := testenv.Name(t, "meter")
	attr := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	key := func(name string, kt types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kt}
	}
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{attr("id"), attr("rk"), attr("st"), attr("at"), attr("owner"), attr("all")},
		KeySchema:            []types.KeySchemaElement{key("id", types.KeyTypeHash), key("rk", types.KeyTypeRange)},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{IndexName: aws.String("by_status"), KeySchema: []types.KeySchemaElement{key("st", types.KeyTypeHash), key("at", types.KeyTypeRange)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"note"}}},
			{IndexName: aws.String("by_owner"), KeySchema: []types.KeySchemaElement{key("owner", types.KeyTypeHash)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}},
			{IndexName: aws.String("everything"), KeySchema: []types.KeySchemaElement{key("all", types.KeyTypeHash)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	schema, err := meter.Describe(ctx, db, table)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(schema.Indexes, func(a, b meter.Index) int { return strings.Compare(a.Name, b.Name) })
	want := []meter.Index{
		{Name: "by_owner", PK: "owner", Projection: types.ProjectionTypeKeysOnly},
		{Name: "by_status", PK: "st", SK: "at", Projection: types.ProjectionTypeInclude, NonKey: []string{"note"}},
		{Name: "everything", PK: "all", Projection: types.ProjectionTypeAll},
	}
	if schema.PK != "id" || schema.SK != "rk" || !reflect.DeepEqual(schema.Indexes, want) {
		t.Fatalf("schema read from the endpoint = %+v", schema)
	}
	return bundle{plain: db, table: table, schema: schema}
}

// metered returns a fresh meter and a client it meters.
func (b bundle) metered(t *testing.T) (*meter.Meter, *dynamodb.Client) {
	t.Helper()
	m := meter.New(b.schema, b.plain)
	cfg := testenv.Config(t)
	m.Attach(&cfg)
	return m, awsclient.DynamoDB(cfg, testenv.Endpoint(t))
}

func (b bundle) put(ctx context.Context, db *dynamodb.Client, it map[string]types.AttributeValue, cond string) error {
	in := &dynamodb.PutItemInput{TableName: aws.String(b.table), Item: it}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	_, err := db.PutItem(ctx, in)
	return err
}

// numbered returns it with the number attribute name set to v.
func numbered(it map[string]types.AttributeValue, name, v string) map[string]types.AttributeValue {
	it[name] = num(v)
	return it
}

func k(id, rk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"id": str(id), "rk": str(rk)}
}

func with(key map[string]types.AttributeValue, kv ...string) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{}
	for n, v := range key {
		it[n] = v
	}
	for i := 0; i < len(kv); i += 2 {
		it[kv[i]] = str(kv[i+1])
	}
	return it
}

// wantErr returns an error unless err is of type T.
func wantErr[T error](err error) error {
	var target T
	if !errors.As(err, &target) {
		return fmt.Errorf("err = %v, want a %T", err, target)
	}
	return nil
}

// The hand computations use DynamoDB's size rules: a string attribute is
// len(name) + len(value); a number len(name) + ceil(digits/2) + 1. One WU
// per started 1024 bytes, one RU per started 4096.
func TestMeterAppliesTheBillingRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	line := func(op, kind string, items, failed int, wu, ru, failedWU float64) meter.Line {
		return meter.Line{Op: op, Kind: kind, Items: items, Failed: failed, WU: wu, RU: ru, FailedWU: failedWU}
	}
	blob := with(k("BLOB#3k", "BLOB"), "xpad", strings.Repeat("x", 3000))
	tests := []struct {
		name   string
		seed   []map[string]types.AttributeValue
		run    func(db *dynamodb.Client) error
		wu, ru float64
		lines  []meter.Line
	}{{
		// id (2+7) + rk (2+5) + n "12345" (1 + ceil(5/2)+1 = 5) + st (2+3)
		// + at (2+2) = 30 bytes: 1 WU. It has both by_status keys, so the
		// index gets an entry: id 9 + rk 7 + st 5 + at 4 = 25 bytes, 1 WU.
		name: "a put",
		run: func(db *dynamodb.Client) error {
			return b.put(ctx, db, numbered(with(k("ORDER#put", "ORDER"), "st", "new", "at", "t1"), "n", "12345"), "")
		},
		wu:    2,
		lines: []meter.Line{line("PutItem", "ORDER", 1, 0, 1, 0, 0), line("PutItem", "index:by_status", 1, 0, 1, 0, 0)},
	}, {
		// The 30-byte item's by_status key "st" moves from "new" to "old":
		// 1 WU for the item (30 bytes before and after), and in the index a
		// delete of the old 25-byte entry plus a put of the new one: 2 WU.
		name: "an update that moves an index key",
		seed: []map[string]types.AttributeValue{numbered(with(k("ORDER#upd", "ORDER"), "st", "new", "at", "t1"), "n", "12345")},
		run: func(db *dynamodb.Client) error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(b.table), Key: k("ORDER#upd", "ORDER"),
				UpdateExpression:          aws.String("SET st = :s"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":s": str("old")},
			})
			return err
		},
		wu:    3,
		lines: []meter.Line{line("UpdateItem", "ORDER", 1, 0, 1, 0, 0), line("UpdateItem", "index:by_status", 2, 0, 2, 0, 0)},
	}, {
		// Four items, each under 1 KB, 2 WU each in a transaction = 8:
		// put IDEM (14 bytes), put ORDER with an owner (23 bytes), update
		// RUN/STEP n 1 -> 2 (20 bytes), condition check on RUN (25 bytes).
		// The ORDER enters the keys-only by_owner index (id 9 + rk 7 +
		// owner 7 = 23 bytes): 1 WU, not doubled. 9 WU in all.
		name: "a transaction of four items",
		seed: []map[string]types.AttributeValue{
			numbered(k("RUN#tx", "STEP#001"), "n", "1"),
			with(k("RUN#tx", "RUN"), "st", "running", "at", "t0"),
		},
		run: func(db *dynamodb.Client) error {
			tbl := aws.String(b.table)
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: tbl, Item: k("IDEM#tx", "IDEM"), ConditionExpression: aws.String("attribute_not_exists(id)")}},
				{Put: &types.Put{TableName: tbl, Item: with(k("ORDER#tx", "ORDER"), "owner", "me")}},
				{Update: &types.Update{TableName: tbl, Key: k("RUN#tx", "STEP#001"), UpdateExpression: aws.String("SET n = n + :one"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":one": num("1")}}},
				{ConditionCheck: &types.ConditionCheck{TableName: tbl, Key: k("RUN#tx", "RUN"), ConditionExpression: aws.String("attribute_exists(id)")}},
			}})
			return err
		},
		wu: 9,
		lines: []meter.Line{
			line("TransactWriteItems", "IDEM", 1, 0, 2, 0, 0), line("TransactWriteItems", "ORDER", 1, 0, 2, 0, 0),
			line("TransactWriteItems", "RUN", 1, 0, 2, 0, 0), line("TransactWriteItems", "RUN/STEP", 1, 0, 2, 0, 0),
			line("TransactWriteItems", "index:by_owner", 1, 0, 1, 0, 0),
		},
	}, {
		// id (2+7) + rk (2+4) + xpad (4+3000) = 3019 bytes: a put costs 3 WU;
		// a strongly consistent read 1 RU (under 4096), an eventually
		// consistent one 0.5, a projected read still 1 (the whole item is
		// charged). Removing the pad costs 3 WU: the larger of before
		// (3019) and after (15).
		name: "a 3 KB item",
		run: func(db *dynamodb.Client) error {
			if err := b.put(ctx, db, blob, ""); err != nil {
				return err
			}
			for _, in := range []*dynamodb.GetItemInput{
				{TableName: aws.String(b.table), Key: k("BLOB#3k", "BLOB"), ConsistentRead: aws.Bool(true)},
				{TableName: aws.String(b.table), Key: k("BLOB#3k", "BLOB")},
				{TableName: aws.String(b.table), Key: k("BLOB#3k", "BLOB"), ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("rk")},
			} {
				if _, err := db.GetItem(ctx, in); err != nil {
					return err
				}
			}
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(b.table), Key: k("BLOB#3k", "BLOB"), UpdateExpression: aws.String("REMOVE xpad")})
			return err
		},
		wu: 6, ru: 2.5,
		lines: []meter.Line{line("GetItem", "BLOB", 3, 0, 0, 2.5, 0), line("PutItem", "BLOB", 1, 0, 3, 0, 0), line("UpdateItem", "BLOB", 1, 0, 3, 0, 0)},
	}, {
		// Failed conditions cost the larger of the item as it is and as the
		// write tried to make it, and write no index:
		//   - a conditional put of a 15-byte item over the 3019-byte one: 3 WU;
		//   - an update of a missing item: key (2+6 + 2+4 = 14) + st (2+3)
		//     = 19 bytes tried: 1 WU;
		//   - a cancelled transaction: the put it tried (id 9 + rk 7 + st 3
		//     + at 3 = 22 bytes) 2 WU, and the failed check of the 3019-byte
		//     item 2 x 3 = 6 WU.
		name: "failed conditions",
		seed: []map[string]types.AttributeValue{with(k("BLOB#f", "BLOB"), "xpad", strings.Repeat("x", 3000))},
		run: func(db *dynamodb.Client) error {
			err := b.put(ctx, db, k("BLOB#f", "BLOB"), "attribute_not_exists(id)")
			if err := wantErr[*types.ConditionalCheckFailedException](err); err != nil {
				return err
			}
			_, err = db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(b.table), Key: k("GONE#f", "GONE"),
				UpdateExpression: aws.String("SET st = :s"), ConditionExpression: aws.String("attribute_exists(id)"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":s": str("new")},
			})
			if err := wantErr[*types.ConditionalCheckFailedException](err); err != nil {
				return err
			}
			_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: aws.String(b.table), Item: with(k("ORDER#f", "ORDER"), "st", "a", "at", "b")}},
				{ConditionCheck: &types.ConditionCheck{TableName: aws.String(b.table), Key: k("BLOB#f", "BLOB"), ConditionExpression: aws.String("attribute_not_exists(id)")}},
			}})
			return wantErr[*types.TransactionCanceledException](err)
		},
		wu: 12,
		lines: []meter.Line{
			line("PutItem", "BLOB", 1, 1, 3, 0, 3), line("TransactWriteItems", "BLOB", 1, 1, 6, 0, 6),
			line("UpdateItem", "GONE", 1, 1, 1, 0, 1), line("TransactWriteItems", "ORDER", 1, 1, 2, 0, 2),
		},
	}, {
		// Ten items in one partition: id (2+5) + rk "STEP#00i" (2+8) + xpad
		// (4+482) + i (1 + 1 byte for 0, 2 for 1..9) = 505 and 9 x 506 bytes,
		// 5059 in all: 2 RU strongly consistent, filter or not, projection or
		// not. With Limit 4 the first four are read (2023 bytes): 1 unit,
		// 0.5 RU eventually consistent. 2 + 2 + 2 + 0.5 = 6.5 RU.
		name: "a query over ten items, with and without a filter",
		seed: func() []map[string]types.AttributeValue {
			var items []map[string]types.AttributeValue
			for i := range 10 {
				items = append(items, numbered(with(k("RUN#q", fmt.Sprintf("STEP#%03d", i)), "xpad", strings.Repeat("p", 482)), "i", fmt.Sprint(i)))
			}
			return items
		}(),
		run: func(db *dynamodb.Client) error {
			query := func(consistent bool, limit int32, filter, projection string) (*dynamodb.QueryOutput, error) {
				in := &dynamodb.QueryInput{
					TableName: aws.String(b.table), KeyConditionExpression: aws.String("id = :id"), ConsistentRead: aws.Bool(consistent),
					ExpressionAttributeValues: map[string]types.AttributeValue{":id": str("RUN#q")},
				}
				if limit > 0 {
					in.Limit = aws.Int32(limit)
				}
				if filter != "" {
					in.FilterExpression = aws.String(filter)
					in.ExpressionAttributeValues[":one"] = num("1")
				}
				if projection != "" {
					in.ProjectionExpression = aws.String(projection)
				}
				return db.Query(ctx, in)
			}
			for _, q := range []struct {
				consistent     bool
				limit          int32
				filter, proj   string
				returned, read int
			}{
				{true, 0, "", "", 10, 10}, {true, 0, "i = :one", "", 1, 10}, {false, 4, "i = :one", "", 1, 4}, {true, 0, "", "rk", 10, 10},
			} {
				out, err := query(q.consistent, q.limit, q.filter, q.proj)
				if err != nil {
					return err
				}
				// The meter must not change what the caller gets.
				if len(out.Items) != q.returned || int(out.ScannedCount) != q.read {
					return fmt.Errorf("query %+v returned %d items of %d read", q, len(out.Items), out.ScannedCount)
				}
			}
			return nil
		},
		ru:    6.5,
		lines: []meter.Line{line("Query", "RUN", 4, 0, 0, 6.5, 0)},
	}, {
		// A batch write of a run/step item (id 2+6 + rk 2+8 = 18 bytes) and a
		// run item with an owner (8 + 5 + owner 5+2 = 20 bytes, which enters
		// the keys-only by_owner index): 1 + 1 + 1 WU. Deleting an order in
		// by_status (11 + 7 + 5 + 4 = 27 bytes): 1 WU, and an index delete,
		// 1 WU. A consistent batch read of the step item and a missing one:
		// 1 RU each. A transactional read of the run item and a missing one:
		// 2 RU each. An index query (always eventually consistent) reading
		// one 20-byte entry: 0.5 RU.
		name: "batches, a delete and reads of missing items",
		seed: []map[string]types.AttributeValue{with(k("ORDER#del", "ORDER"), "st", "new", "at", "t1")},
		run: func(db *dynamodb.Client) error {
			tbl := aws.String(b.table)
			if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{b.table: {
				{PutRequest: &types.PutRequest{Item: k("RUN#bw", "STEP#001")}},
				{PutRequest: &types.PutRequest{Item: with(k("RUN#bw", "RUN"), "owner", "bw")}},
			}}}); err != nil {
				return err
			}
			if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: k("ORDER#del", "ORDER")}); err != nil {
				return err
			}
			if _, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{b.table: {
				Keys: []map[string]types.AttributeValue{k("RUN#bw", "STEP#001"), k("GONE#bg", "GONE")}, ConsistentRead: aws.Bool(true),
			}}}); err != nil {
				return err
			}
			if _, err := db.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: []types.TransactGetItem{
				{Get: &types.Get{TableName: tbl, Key: k("RUN#bw", "RUN")}}, {Get: &types.Get{TableName: tbl, Key: k("GONE#bg", "GONE")}},
			}}); err != nil {
				return err
			}
			out, err := db.Query(ctx, &dynamodb.QueryInput{TableName: tbl, IndexName: aws.String("by_owner"),
				KeyConditionExpression: aws.String("#o = :o"), ExpressionAttributeNames: map[string]string{"#o": "owner"},
				ExpressionAttributeValues: map[string]types.AttributeValue{":o": str("bw")}})
			if err == nil && len(out.Items) != 1 {
				err = fmt.Errorf("index query returned %d items", len(out.Items))
			}
			return err
		},
		wu: 5, ru: 6.5,
		lines: []meter.Line{
			line("BatchGetItem", "GONE", 1, 0, 0, 1, 0), line("TransactGetItems", "GONE", 1, 0, 0, 2, 0),
			line("DeleteItem", "ORDER", 1, 0, 1, 0, 0),
			line("BatchWriteItem", "RUN", 1, 0, 1, 0, 0), line("TransactGetItems", "RUN", 1, 0, 0, 2, 0),
			line("BatchGetItem", "RUN/STEP", 1, 0, 0, 1, 0), line("BatchWriteItem", "RUN/STEP", 1, 0, 1, 0, 0),
			line("BatchWriteItem", "index:by_owner", 1, 0, 1, 0, 0), line("Query", "index:by_owner", 1, 0, 0, 0.5, 0),
			line("DeleteItem", "index:by_status", 1, 0, 1, 0, 0),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, it := range tt.seed {
				if err := b.put(ctx, b.plain, it, ""); err != nil {
					t.Fatal(err)
				}
			}
			m, db := b.metered(t)
			if err := tt.run(db); err != nil {
				t.Fatal(err)
			}
			snap := m.Snapshot()
			if snap.WU != tt.wu || snap.RU != tt.ru || snap.Errors != 0 || !reflect.DeepEqual(snap.Lines, tt.lines) {
				t.Fatalf("WU %v RU %v errors %d, want WU %v RU %v\n got lines %+v\nwant lines %+v", snap.WU, snap.RU, snap.Errors, tt.wu, tt.ru, snap.Lines, tt.lines)
			}
		})
	}
}

// Twenty writers at once: each put is 1 WU for the item and 1 for its
// by_status entry, and no count may be lost.
func TestMeterIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m, db := b.metered(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.put(context.Background(), db, with(k(fmt.Sprintf("CONC#%d", i), "CONC"), "st", "s", "at", "t"), "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	snap := m.Snapshot()
	if snap.WU != 40 || snap.Requests["DynamoDB.PutItem"] != 20 || len(snap.Lines) != 2 || snap.Lines[0].Items != 20 {
		t.Fatalf("snapshot = %+v", snap)
	}
}

// SQS sends and receives are billed one request per started 64 KB of
// payload; deletes one per call; empty receives are tallied apart. A meter
// without a reader counts requests and measures no capacity.
func TestMeterCountsSQSRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := meter.New(meter.Schema{}, nil)
	cfg := testenv.Config(t)
	m.Attach(&cfg)
	c := awsclient.SQS(cfg, testenv.SQSEndpoint(t))
	url := testenv.Queue(t, testenv.SQS(t), queue.Settings{VisibilityTimeout: time.Minute}).URL
	big := strings.Repeat("b", 40*1024)
	send := func(bodies ...string) {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, body := range bodies {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(body)})
		}
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	send(big, big) // 80 KB: 2 requests
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) == 0 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	received := (len(out.Messages)*len(big) + 64*1024 - 1) / (64 * 1024) // 1 for one message, 2 for both
	var del []sqstypes.DeleteMessageBatchRequestEntry
	for i, msg := range out.Messages {
		del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: msg.ReceiptHandle})
	}
	if _, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del}); err != nil {
		t.Fatal(err)
	}
	send("a", "b", "c", "d", "e", "f", "g", "h", "i", "j") // 10 small messages: 1 request
	empty := testenv.Queue(t, testenv.SQS(t), queue.Settings{VisibilityTimeout: time.Minute}).URL
	if _, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(empty)}); err != nil {
		t.Fatal(err)
	}
	snap := m.Snapshot()
	want := map[string]int{"SendMessageBatch": 3, "ReceiveMessage": received, "DeleteMessageBatch": 1, "ReceiveMessage (empty)": 1}
	if !reflect.DeepEqual(snap.SQS, want) || snap.SQSRequests(false) != 4+received || snap.SQSRequests(true) != 5+received {
		t.Fatalf("SQS = %v, want %v", snap.SQS, want)
	}
	if snap.Requests["SQS.SendMessageBatch"] != 2 || snap.Requests["SQS.ReceiveMessage"] != 2 || snap.WU != 0 || len(snap.Lines) != 0 {
		t.Fatalf("requests %v, WU %v", snap.Requests, snap.WU)
	}
}

// Every write unit lands on a partition: the item's partition key value
// for the table, "index:<name>/<value>" for an index, the value being the
// index entry's partition key (before the write for a delete). Failed
// writes land on the table partition; reads land nowhere.
func TestMeterAttributesWritesToPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	m, db := b.metered(t)
	steps := []func() error{
		func() error { return b.put(ctx, db, with(k("A#1", "A"), "st", "new", "at", "t1"), "") },
		func() error { return b.put(ctx, db, with(k("A#2", "A"), "st", "new", "at", "t2"), "") },
		func() error { // A#1 moves from by_status partition "new" to "old"
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(b.table), Key: k("A#1", "A"),
				UpdateExpression: aws.String("SET st = :s"), ExpressionAttributeValues: map[string]types.AttributeValue{":s": str("old")}})
			return err
		},
		func() error {
			return wantErr[*types.ConditionalCheckFailedException](b.put(ctx, db, with(k("A#2", "A"), "st", "x", "at", "t"), "attribute_not_exists(id)"))
		},
		func() error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: aws.String(b.table), Item: with(k("C#1", "C"), "owner", "me")}},
			}})
			return err
		},
		func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b.table), Key: k("A#1", "A")})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	snap := m.Snapshot()
	want := map[string][2]float64{ // WU, writes
		"A#1": {2, 2}, "A#2": {2, 2}, "C#1": {2, 1},
		"index:by_status/new": {3, 3}, "index:by_status/old": {1, 1}, "index:by_owner/me": {1, 1},
	}
	got := map[string][2]float64{}
	total := 0.0
	for part, l := range snap.Keys {
		got[part] = [2]float64{l.WU, float64(l.Writes)}
		total += l.WU
		if at, peak := l.Peak(); at.IsZero() || peak <= 0 || peak > l.WU {
			t.Errorf("%s: peak %v at %v of %v WU", part, peak, at, l.WU)
		}
	}
	if !reflect.DeepEqual(got, want) || total != snap.WU {
		t.Fatalf("keys %v (%v WU of %v), want %v", got, total, snap.WU, want)
	}
	if sum := snap.Plus(snap); sum.Keys["index:by_status/new"].WU != 6 || sum.Keys["A#1"].Writes != 4 {
		t.Fatalf("keys of a sum %+v", sum.Keys)
	}
}
