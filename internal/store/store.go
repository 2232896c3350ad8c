package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
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
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	// DeleteItem removes only what a write of the store's own put, on
	// the condition that it still holds that write's token.
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Store reads and writes Stepflow's table. It is safe for concurrent use.
type Store struct {
	db        DynamoDB
	table     string
	shards    int
	retention time.Duration
	now       func() time.Time
	plans     planCache
	keyCache
}

// Index shards and retention: see DECISIONS.md ("Scale").
const (
	// DefaultShards is how many partitions each shared index key is
	// written across when no WithShards option says otherwise.
	DefaultShards = 8
	// MaxShards bounds the shard count: a list page queries every shard.
	MaxShards = 64
	// DefaultRetention is how long an ended run is kept.
	DefaultRetention = 90 * 24 * time.Hour
)

// Option configures a Store.
type Option func(*Store)

// WithShards sets how many partitions each index key that all runs (or
// all runs of a workflow) share is written across, from 1 to MaxShards.
// Raising it keeps every stored item listed; lowering it hides the items
// written to the shards it drops.
func WithShards(n int) Option {
	return func(s *Store) { s.shards = min(max(n, 1), MaxShards) }
}

// WithRetention sets how long an ended run, its failed attempts and the
// order history its steps wrote are kept (at least a day).
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = max(d, 24*time.Hour) }
}

// WithClock sets the clock that decides which ended runs have expired.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns a Store over the table named table.
func New(db DynamoDB, table string, opts ...Option) *Store {
	s := &Store{db: db, table: table, shards: DefaultShards, retention: DefaultRetention, now: time.Now,
		plans: planCache{m: map[string]cachedPlan{}}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Shards returns the index shard count (see WithShards).
func (s *Store) Shards() int { return s.shards }

// Retention returns how long an ended run is kept (see WithRetention).
func (s *Store) Retention() time.Duration { return s.retention }

// Key prefixes, kinds and sort keys. See DECISIONS.md for the layout.
const (
	kindWorkflow = "WORKFLOW"
	kindRun      = "RUN"
	kindOrder    = "ORDER"
	// activeValue is the by_active key of every running run.
	activeValue = "ACTIVE"
)

func wfKey(id string) (pk, sk string)    { return "WF#" + id, "WF" }
func runKey(id string) (pk, sk string)   { return "RUN#" + id, "RUN" }
func orderKey(id string) (pk, sk string) { return "ORDER#" + id, "ORDER" }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: pk},
		attrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int) types.AttributeValue { return &types.AttributeValueMemberN{Value: strconv.Itoa(n)} }

// tsLayout is RFC 3339 with a fixed nine-digit fraction, so that stored
// timestamps compare correctly as strings.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

func ts(t time.Time) types.AttributeValue { return str(t.UTC().Format(tsLayout)) }

func marshal(v any, pk, sk string) (map[string]types.AttributeValue, error) {
	item, err := attributevalue.MarshalMap(v)
	if err != nil {
		return nil, fmt.Errorf("marshal item: %w", err)
	}
	item[attrPK] = str(pk)
	item[attrSK] = str(sk)
	return item, nil
}

// CreateWorkflowIfAbsent stores w on the condition that its ID is new; a
// put whose answer was lost is recognised by its token.
func (s *Store) CreateWorkflowIfAbsent(ctx context.Context, w wire.Workflow) error {
	pk, sk := wfKey(w.ID)
	w.StepCount = len(w.Definition.Steps)
	item, err := marshal(workflowRecord{ID: w.ID, Name: w.Name, CreatedAt: w.CreatedAt, StepCount: w.StepCount}, pk, sk)
	if err != nil {
		return err
	}
	def, err := json.Marshal(w.Definition)
	if err != nil {
		return fmt.Errorf("encode definition: %w", err)
	}
	item["definition"] = str(string(def))
	item[attrKind] = str(s.shardKey(kindWorkflow, w.ID))
	tok := newToken()
	item[attrTok] = str(tok)
	return s.putIfAbsent(ctx, item, attrTok, tok, "workflow "+w.ID)
}

// GetWorkflow returns the workflow with the given ID or ErrNotFound.
func (s *Store) GetWorkflow(ctx context.Context, id string) (wire.Workflow, error) {
	item, err := s.get(ctx, wfKey, id, true)
	if err != nil {
		return wire.Workflow{}, fmt.Errorf("get workflow %s: %w", id, err)
	}
	return decodeWorkflow(item)
}

func decodeWorkflow(item map[string]types.AttributeValue) (wire.Workflow, error) {
	var rec workflowRecord
	if err := attributevalue.UnmarshalMap(item, &rec); err != nil {
		return wire.Workflow{}, fmt.Errorf("decode workflow: %w", err)
	}
	w := wire.Workflow{ID: rec.ID, Name: rec.Name, CreatedAt: rec.CreatedAt}
	def, _ := item["definition"].(*types.AttributeValueMemberS)
	if def == nil {
		return w, fmt.Errorf("decode workflow %s: no definition", w.ID)
	}
	if err := json.Unmarshal([]byte(def.Value), &w.Definition); err != nil {
		return w, fmt.Errorf("decode workflow %s definition: %w", w.ID, err)
	}
	w.StepCount = len(w.Definition.Steps)
	return w, nil
}

// Plan returns the workflow's plan. Workflows never change, so plans are
// cached in memory; a miss reads the workflow.
func (s *Store) Plan(ctx context.Context, workflowID string) (wire.Workflow, workflow.Plan, error) {
	if c, ok := s.plans.get(workflowID); ok {
		return c.wf, c.plan, nil
	}
	w, err := s.GetWorkflow(ctx, workflowID)
	if err != nil {
		return wire.Workflow{}, nil, err
	}
	p, err := workflow.NewPlan(w.Definition)
	if err != nil {
		return wire.Workflow{}, nil, fmt.Errorf("plan workflow %s: %w", workflowID, err)
	}
	s.plans.put(workflowID, cachedPlan{wf: w, plan: p})
	return w, p, nil
}

type cachedPlan struct {
	wf   wire.Workflow
	plan workflow.Plan
}

// planCache holds at most maxPlans plans; when full, an arbitrary one makes
// room.
type planCache struct {
	mu sync.Mutex
	m  map[string]cachedPlan
}

const maxPlans = 1000

func (c *planCache) get(id string) (cachedPlan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[id]
	return p, ok
}

func (c *planCache) put(id string, p cachedPlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxPlans {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = p
}

func (s *Store) get(ctx context.Context, keyOf func(string) (string, string), id string, consistent bool) (map[string]types.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(keyOf(id)),
		ConsistentRead: aws.Bool(consistent),
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
func (s *Store) ListWorkflows(ctx context.Context, p Page) ([]wire.WorkflowSummary, string, error) {
	var out []wire.WorkflowSummary
	next, err := s.list(ctx, listQuery{index: indexByKind, base: kindWorkflow}, p,
		func(item map[string]types.AttributeValue) (bool, error) {
			var w workflowRecord
			if err := attributevalue.UnmarshalMap(item, &w); err != nil {
				return false, fmt.Errorf("decode workflow: %w", err)
			}
			out = append(out, wire.WorkflowSummary(w))
			return true, nil
		})
	if err != nil {
		return nil, "", fmt.Errorf("list workflows: %w", err)
	}
	return out[:min(len(out), p.Limit)], next, nil
}

// ListOrders returns orders newest first and the cursor of the next page.
func (s *Store) ListOrders(ctx context.Context, p Page) ([]wire.OrderSummary, string, error) {
	var out []wire.OrderSummary
	next, err := s.list(ctx, listQuery{index: indexByKind, base: kindOrder}, p,
		func(item map[string]types.AttributeValue) (bool, error) {
			o, err := decodeOrder(item)
			if err != nil {
				return false, err
			}
			out = append(out, o.summary())
			return true, nil
		})
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	return out[:min(len(out), p.Limit)], next, nil
}

func indexNamed(name string) Index {
	for _, ix := range TableSchema().Indexes {
		if ix.Name == name {
			return ix
		}
	}
	panic("store: unknown index " + name)
}

// itemKey is a map key for an item's primary key.
func itemKey(item map[string]types.AttributeValue) string {
	pk, _ := item[attrPK].(*types.AttributeValueMemberS)
	sk, _ := item[attrSK].(*types.AttributeValueMemberS)
	if pk == nil || sk == nil {
		return ""
	}
	return pk.Value + "\x00" + sk.Value
}

// batchGet reads items by key, 100 keys a request, retrying unprocessed
// keys, and returns them by itemKey. Missing items are absent.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, consistent bool) (map[string]map[string]types.AttributeValue, error) {
	out := make(map[string]map[string]types.AttributeValue, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), 100)
		batch := keys[:n]
		keys = keys[n:]
		for attempt := 0; len(batch) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
				s.table: {Keys: batch, ConsistentRead: aws.Bool(consistent)},
			}})
			if err != nil {
				return nil, fmt.Errorf("batch get: %w", err)
			}
			for _, it := range res.Responses[s.table] {
				out[itemKey(it)] = it
			}
			batch = res.UnprocessedKeys[s.table].Keys
		}
	}
	return out, nil
}

// backoff waits before retrying unprocessed items (which mean throttling).
func backoff(ctx context.Context, attempt int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(min(attempt, 8)) * 50 * time.Millisecond):
		return nil
	}
}

// CreateOrderIfAbsent stores o, on the condition that its ID is new, with
// its creation as the first history entry, in one transaction. A creation
// whose answer was lost is recognised by its token.
func (s *Store) CreateOrderIfAbsent(ctx context.Context, o wire.Order) error {
	pk, sk := orderKey(o.ID)
	item, err := marshal(orderRecord{ID: o.ID, Amount: amount(o.Amount), Status: o.Status, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}, pk, sk)
	if err != nil {
		return err
	}
	tok := newToken()
	item[attrKind], item[attrTok] = str(s.shardKey(kindOrder, o.ID)), str(tok)
	created := historyItem(o.ID, "0", historyRecord{At: o.CreatedAt, Event: "created", To: status.OrderPending})
	t := &txn{}
	t.add(types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		"order "+o.ID+" (requires a new id)")
	t.add(types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: created}}, "order "+o.ID+" creation entry")
	err = s.writeTxn(ctx, t, "")
	if landedOrNot(err) {
		if _, ours, rerr := s.holds(ctx, key(pk, sk), attrTok, tok); rerr == nil && ours {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("create order %s: %w", o.ID, err)
	}
	return nil
}

// historyPageSize is how many history entries GET /orders/{id} returns.
const historyPageSize = 100

// GetOrder returns the order with the first page of its history, or
// ErrNotFound.
func (s *Store) GetOrder(ctx context.Context, id string) (wire.Order, error) {
	item, err := s.get(ctx, orderKey, id, true)
	if err != nil {
		return wire.Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	rec, err := decodeOrder(item)
	if err != nil {
		return wire.Order{}, fmt.Errorf("order %s: %w", id, err)
	}
	sum := rec.summary()
	o := wire.Order{ID: sum.ID, Amount: sum.Amount, Status: sum.Status, CreatedAt: sum.CreatedAt, UpdatedAt: sum.UpdatedAt}
	hist, next, err := s.OrderHistory(ctx, id, Page{Limit: historyPageSize})
	if err != nil {
		return o, err
	}
	o.History = hist
	if next != "" {
		o.HistoryNext = &next
	}
	return o, nil
}

// history sort keys: the creation entry, then one per committed order
// action, "<run id>#<step index>" (run IDs sort by time).
const historyPrefix = "H#"

func historySK(runID string, step int) string { return fmt.Sprintf("%s#%03d", runID, step) }

func historyItem(orderID, suffix string, h historyRecord) map[string]types.AttributeValue {
	pk, _ := orderKey(orderID)
	item := key(pk, historyPrefix+suffix)
	item["at"] = ts(h.At)
	item["event"] = str(h.Event)
	if h.From != "" {
		item["from"] = str(string(h.From))
	}
	if h.To != "" {
		item["to"] = str(string(h.To))
	}
	if h.RunID != "" {
		item["run_id"] = str(h.RunID)
		item["step_id"] = str(h.StepID)
	}
	return item
}

// OrderHistory returns one page of an order's history, oldest first: its
// creation, then the entries of each run (runs in creation order, steps in
// dependency order). The cursor names the last entry returned: "0" (the
// creation) or "<run id>.<step index>", safe in a URL as it is.
func (s *Store) OrderHistory(ctx context.Context, orderID string, p Page) ([]wire.HistoryEntry, string, error) {
	pk, _ := orderKey(orderID)
	in := s.prefixQuery(pk, historyPrefix, true)
	if p.Cursor != "" {
		in.ExclusiveStartKey = key(pk, historyPrefix+strings.Replace(p.Cursor, ".", "#", 1))
	}
	out := []wire.HistoryEntry{}
	var keys []string
	for len(out) <= p.Limit {
		in.Limit = aws.Int32(int32(p.Limit + 1 - len(out)))
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("order %s history: %w", orderID, err)
		}
		for _, it := range res.Items {
			if expired(it, s.now()) {
				continue
			}
			h, err := decodeHistory(it)
			if err != nil {
				return nil, "", fmt.Errorf("order %s: %w", orderID, err)
			}
			sk, _ := it[attrSK].(*types.AttributeValueMemberS)
			if sk == nil {
				return nil, "", fmt.Errorf("order %s history entry without a key", orderID)
			}
			out = append(out, h)
			keys = append(keys, strings.Replace(sk.Value[len(historyPrefix):], "#", ".", 1))
		}
		if res.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	if len(out) > p.Limit {
		return out[:p.Limit], keys[p.Limit-1], nil
	}
	return out, "", nil
}

// prefixQuery reads the items of partition pk whose sort key begins with
// prefix, in sort key order.
func (s *Store) prefixQuery(pk, prefix string, consistent bool) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(pk), ":prefix": str(prefix),
		},
		ConsistentRead: aws.Bool(consistent),
	}
}

// conditionErr maps a failed condition on a single-item write to
// ErrConflict, and so a write refused because a transaction on the item is
// in flight (the SDK does not retry that one): either way the caller reads
// again and decides again.
func conditionErr(err error) error {
	var ccf *types.ConditionalCheckFailedException
	var tc *types.TransactionConflictException
	if errors.As(err, &ccf) || errors.As(err, &tc) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// ErrInvalid: DynamoDB refused a request as invalid (a ValidationException,
// such as an item over 400 KB or a transaction over 100 items). Retrying
// it cannot succeed.
var ErrInvalid = errors.New("request refused as invalid")

func invalidErr(err error) error {
	var ve interface{ ErrorCode() string }
	if errors.As(err, &ve) && ve.ErrorCode() == "ValidationException" {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}
