package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the workflow, run or order does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a conditional write found the item in another state.
	ErrConflict = errors.New("conflict")
	// ErrOrderNotFound: a run names an order that does not exist.
	ErrOrderNotFound = errors.New("order not found")
)

// DynamoDB is the part of the DynamoDB client the store uses.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Store reads and writes Stepflow's table. It is safe for concurrent use.
type Store struct {
	db    DynamoDB
	table string
}

// New returns a Store over the table named table.
func New(db DynamoDB, table string) *Store {
	return &Store{db: db, table: table}
}

// Key prefixes and sort keys. See DECISIONS.md for the layout.
const (
	kindWorkflow = "WORKFLOW"
	kindRun      = "RUN"
	kindOrder    = "ORDER"
	stepPrefix   = "STEP#"
)

func wfKey(id string) (pk, sk string)    { return "WF#" + id, kindWorkflow }
func runKey(id string) (pk, sk string)   { return "RUN#" + id, kindRun }
func orderKey(id string) (pk, sk string) { return "ORDER#" + id, kindOrder }
func stepSK(index int) string            { return fmt.Sprintf("%s%03d", stepPrefix, index) }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: pk},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// indexKeys are the index attributes of a listed item.
func indexKeys(item map[string]types.AttributeValue, kind, id string) {
	item["gsi1pk"] = str(kind)
	item["gsi1sk"] = str(id)
}

func runIndexKeys(item map[string]types.AttributeValue, r Run) {
	indexKeys(item, kindRun, r.ID)
	item["gsi2pk"] = str(kindRun + "#" + string(r.Status))
	item["gsi2sk"] = str(r.ID)
	item["gsi3pk"] = str("WF#" + r.WorkflowID)
	item["gsi3sk"] = str(r.ID)
	if !r.Status.Terminal() {
		item["gsi4pk"] = str(activePartition)
		item["gsi4sk"] = str(r.ID)
	}
}

// activePartition is the by_active partition of every non-terminal run.
// Runs leave it (both keys removed) in the write that ends them.
const activePartition = "ACTIVE"

func marshal(v any, pk, sk string) (map[string]types.AttributeValue, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return nil, fmt.Errorf("marshal item: %w", err)
	}
	item[attrPK] = str(pk)
	item[attrSK] = str(sk)
	return item, nil
}

// CreateWorkflow stores w. Its ID must be new.
func (s *Store) CreateWorkflow(ctx context.Context, w Workflow) error {
	pk, sk := wfKey(w.ID)
	item, err := marshal(w, pk, sk)
	if err != nil {
		return err
	}
	def, err := json.Marshal(w.Definition)
	if err != nil {
		return fmt.Errorf("encode definition: %w", err)
	}
	item["definition"] = str(string(def))
	item["step_count"] = &types.AttributeValueMemberN{Value: strconv.Itoa(len(w.Definition.Steps))}
	indexKeys(item, kindWorkflow, w.ID)
	return s.putNew(ctx, item, "workflow "+w.ID)
}

func (s *Store) putNew(ctx context.Context, item map[string]types.AttributeValue, what string) error {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", what, conditionErr(err))
	}
	return nil
}

// GetWorkflow returns the workflow with the given ID or ErrNotFound.
func (s *Store) GetWorkflow(ctx context.Context, id string) (Workflow, error) {
	var w Workflow
	item, err := s.get(ctx, wfKey, id)
	if err != nil {
		return w, fmt.Errorf("get workflow %s: %w", id, err)
	}
	if err := attributevalue.UnmarshalMap(item, &w); err != nil {
		return w, fmt.Errorf("decode workflow %s: %w", id, err)
	}
	def, _ := item["definition"].(*types.AttributeValueMemberS)
	if def == nil {
		return w, fmt.Errorf("decode workflow %s: no definition", id)
	}
	if err := json.Unmarshal([]byte(def.Value), &w.Definition); err != nil {
		return w, fmt.Errorf("decode workflow %s definition: %w", id, err)
	}
	return w, nil
}

func (s *Store) get(ctx context.Context, keyOf func(string) (string, string), id string) (map[string]types.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(keyOf(id)),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if out.Item == nil {
		return nil, ErrNotFound
	}
	return out.Item, nil
}

// Page selects one page of a list: at most Limit items after the item
// whose ID is Cursor (empty for the first page).
type Page struct {
	Limit  int
	Cursor string
}

// ListWorkflows returns workflows newest first and the cursor of the next
// page ("" on the last page).
func (s *Store) ListWorkflows(ctx context.Context, p Page) ([]WorkflowSummary, string, error) {
	var out []WorkflowSummary
	next, err := s.list(ctx, listQuery{index: indexByKind, partition: kindWorkflow, keyOf: wfKey}, p, &out)
	if err != nil {
		return nil, "", fmt.Errorf("list workflows: %w", err)
	}
	return out, next, nil
}

// RunFilter narrows ListRuns. Empty fields do not filter.
type RunFilter struct {
	Status     status.Run
	WorkflowID string
}

// ListRuns returns runs newest first and the cursor of the next page.
func (s *Store) ListRuns(ctx context.Context, f RunFilter, p Page) ([]Run, string, error) {
	q := listQuery{index: indexByKind, partition: kindRun, keyOf: runKey}
	switch {
	case f.WorkflowID != "":
		q.index, q.partition = indexByWorkflow, "WF#"+f.WorkflowID
		if f.Status != "" {
			q.statusFilter = f.Status
		}
	case f.Status != "":
		q.index, q.partition = indexByStatus, kindRun+"#"+string(f.Status)
	}
	var out []Run
	next, err := s.list(ctx, q, p, &out)
	if err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	return out, next, nil
}

// ListOrders returns orders newest first and the cursor of the next page.
func (s *Store) ListOrders(ctx context.Context, p Page) ([]OrderSummary, string, error) {
	var out []OrderSummary
	next, err := s.list(ctx, listQuery{index: indexByKind, partition: kindOrder, keyOf: orderKey}, p, &out)
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	return out, next, nil
}

type listQuery struct {
	index, partition string
	keyOf            func(string) (string, string)
	statusFilter     status.Run
}

// list runs a newest-first Query on an index and decodes one page into out
// (a pointer to a slice). The cursor is the ID of the last item returned;
// the index keys of every listed item are derived from its ID, so the
// exclusive start key can be rebuilt from the cursor alone.
func (s *Store) list(ctx context.Context, q listQuery, p Page, out any) (string, error) {
	ix := indexNamed(q.index)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(ix.Name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ix.PK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(q.partition)},
		ScanIndexForward:          aws.Bool(false),
	}
	if q.statusFilter != "" {
		in.FilterExpression = aws.String("#st = :st")
		in.ExpressionAttributeNames["#st"] = "status"
		in.ExpressionAttributeValues[":st"] = str(string(q.statusFilter))
	}
	if p.Cursor != "" {
		start := key(q.keyOf(p.Cursor))
		start[ix.PK] = str(q.partition)
		start[ix.SK] = str(p.Cursor)
		in.ExclusiveStartKey = start
	}
	// Read one item more than the page holds, to know whether a next page
	// exists without returning an empty last page.
	var items []map[string]types.AttributeValue
	for {
		in.Limit = aws.Int32(int32(p.Limit + 1 - len(items)))
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return "", err
		}
		items = append(items, res.Items...)
		if len(items) > p.Limit || res.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	next := ""
	if len(items) > p.Limit {
		items = items[:p.Limit]
		id, _ := items[p.Limit-1]["id"].(*types.AttributeValueMemberS)
		if id == nil {
			return "", errors.New("listed item has no id")
		}
		next = id.Value
	}
	if err := attributevalue.UnmarshalListOfMaps(items, out); err != nil {
		return "", fmt.Errorf("decode list: %w", err)
	}
	return next, nil
}

func indexNamed(name string) Index {
	for _, ix := range TableSchema().Indexes {
		if ix.Name == name {
			return ix
		}
	}
	panic("store: unknown index " + name)
}

// CreateOrder stores o, which must be new, at version 1.
func (s *Store) CreateOrder(ctx context.Context, o Order) error {
	o.Version = 1
	pk, sk := orderKey(o.ID)
	item, err := marshal(o, pk, sk)
	if err != nil {
		return err
	}
	indexKeys(item, kindOrder, o.ID)
	return s.putNew(ctx, item, "order "+o.ID)
}

// GetOrder returns the order with the given ID or ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	item, err := s.get(ctx, orderKey, id)
	if err != nil {
		return o, fmt.Errorf("get order %s: %w", id, err)
	}
	if err := attributevalue.UnmarshalMap(item, &o); err != nil {
		return o, fmt.Errorf("decode order %s: %w", id, err)
	}
	return o, nil
}

// CreateRun stores a new run and its steps. If the run names an order that
// does not exist it returns ErrOrderNotFound and the run is not created.
//
// Step items are written first (in batches) and the run item last, in a
// transaction that also checks the order exists: the run item is the commit
// point, and GetRun ignores steps without a run item. Should the
// transaction fail, the step items are deleted again.
func (s *Store) CreateRun(ctx context.Context, r Run, steps []Step) error {
	if r.OrderID != nil {
		if _, err := s.get(ctx, orderKey, *r.OrderID); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("create run %s: %w", r.ID, ErrOrderNotFound)
		} else if err != nil {
			return fmt.Errorf("create run %s: check order: %w", r.ID, err)
		}
	}
	pk, _ := runKey(r.ID)
	var puts []types.WriteRequest
	for _, st := range steps {
		item, err := marshal(st, pk, stepSK(st.StepIndex))
		if err != nil {
			return err
		}
		puts = append(puts, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	if err := s.batchWrite(ctx, puts); err != nil {
		return fmt.Errorf("create run %s: write steps: %w", r.ID, err)
	}
	item, err := marshal(r, pk, kindRun)
	if err != nil {
		return err
	}
	runIndexKeys(item, r)
	tx := []types.TransactWriteItem{{Put: &types.Put{
		TableName:           aws.String(s.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}}
	if r.OrderID != nil {
		tx = append(tx, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:           aws.String(s.table),
			Key:                 key(orderKey(*r.OrderID)),
			ConditionExpression: aws.String("attribute_exists(pk)"),
		}})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: tx})
	var cancelled *types.TransactionCanceledException
	if err != nil && !errors.As(err, &cancelled) {
		// The outcome is unknown (the write may have landed): leave the
		// steps, which are invisible without the run item anyway.
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	if err != nil {
		err = txErr(err, ErrConflict, ErrOrderNotFound)
		var dels []types.WriteRequest
		for _, st := range steps {
			dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(pk, stepSK(st.StepIndex))}})
		}
		if derr := s.batchWrite(context.WithoutCancel(ctx), dels); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete orphan steps: %w", derr))
		}
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	return nil
}

func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	const maxBatch = 25
	for len(reqs) > 0 {
		n := min(len(reqs), maxBatch)
		batch := reqs[:n]
		reqs = reqs[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt > 0 {
				// Unprocessed items mean throttling: back off before retrying.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(min(attempt, 8)) * 50 * time.Millisecond):
				}
			}
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{s.table: batch},
			})
			if err != nil {
				return err
			}
			batch = out.UnprocessedItems[s.table]
		}
	}
	return nil
}

// GetRun returns the run with its steps in one Query, or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (RunDetail, error) {
	var d RunDetail
	pk, _ := runKey(id)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ConsistentRead:            aws.Bool(true),
	}
	var items []map[string]types.AttributeValue
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return d, fmt.Errorf("get run %s: %w", id, err)
		}
		items = append(items, out.Items...)
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	found := false
	d.Steps = []Step{}
	for _, item := range items {
		sk, _ := item[attrSK].(*types.AttributeValueMemberS)
		switch {
		case sk == nil:
			continue
		case sk.Value == kindRun:
			if err := attributevalue.UnmarshalMap(item, &d.Run); err != nil {
				return d, fmt.Errorf("decode run %s: %w", id, err)
			}
			found = true
		case strings.HasPrefix(sk.Value, stepPrefix):
			var st Step
			if err := attributevalue.UnmarshalMap(item, &st); err != nil {
				return d, fmt.Errorf("decode run %s step %s: %w", id, sk.Value, err)
			}
			d.Steps = append(d.Steps, st)
		}
	}
	if !found {
		return RunDetail{}, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	}
	return d, nil
}

// conditionErr maps a failed condition on a single-item write to ErrConflict.
func conditionErr(err error) error {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// txErr maps a cancelled transaction to the sentinel of the first item whose
// condition failed: perItem[i] is the sentinel for item i. Items are matched
// by position and code, since emulators differ in how they spell "None".
func txErr(err error, perItem ...error) error {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return err
	}
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			if i < len(perItem) {
				return fmt.Errorf("%w: %w", perItem[i], err)
			}
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
	}
	return err
}
