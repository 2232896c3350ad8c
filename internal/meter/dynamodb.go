package meter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// keyRef names one item: its table and primary key.
type keyRef struct {
	table string
	key   Item
}

// images holds item images by ref (see refString); a missing item is nil.
type images map[string]Item

func refString(table string, key Item) string {
	var b strings.Builder
	b.WriteString(table)
	for _, name := range slices.Sorted(maps.Keys(key)) {
		fmt.Fprintf(&b, "\x00%s=", name)
		switch v := key[name].(type) {
		case *types.AttributeValueMemberS:
			b.WriteString("S" + v.Value)
		case *types.AttributeValueMemberN:
			b.WriteString("N" + v.Value)
		case *types.AttributeValueMemberB:
			b.WriteString("B" + string(v.Value))
		}
	}
	return b.String()
}

// writeRefs lists the items a write request touches.
func (m *Meter) writeRefs(params any) []keyRef {
	var refs []keyRef
	switch p := params.(type) {
	case *dynamodb.PutItemInput:
		refs = append(refs, keyRef{aws.ToString(p.TableName), m.schema.key(p.Item)})
	case *dynamodb.UpdateItemInput:
		refs = append(refs, keyRef{aws.ToString(p.TableName), p.Key})
	case *dynamodb.DeleteItemInput:
		refs = append(refs, keyRef{aws.ToString(p.TableName), p.Key})
	case *dynamodb.BatchWriteItemInput:
		for table, reqs := range p.RequestItems {
			for _, r := range reqs {
				refs = append(refs, keyRef{table, m.requestKey(r)})
			}
		}
	case *dynamodb.TransactWriteItemsInput:
		for _, ti := range p.TransactItems {
			table, key, _, _ := m.transactItem(ti)
			refs = append(refs, keyRef{table, key})
		}
	}
	return refs
}

func (m *Meter) requestKey(r types.WriteRequest) Item {
	if r.PutRequest != nil {
		return m.schema.key(r.PutRequest.Item)
	}
	if r.DeleteRequest != nil {
		return r.DeleteRequest.Key
	}
	return nil
}

// before reads the images of the items a write is about to change, through
// the unmetered client, before the write is sent.
func (m *Meter) before(ctx context.Context, params any) images {
	refs := m.writeRefs(params)
	if len(refs) == 0 {
		return nil
	}
	img, err := m.fetch(ctx, refs)
	if err != nil {
		m.fail()
	}
	return img
}

// fetch reads items with strongly consistent reads: one GetItem for one
// item, BatchGetItem (in pages of 100) for more.
func (m *Meter) fetch(ctx context.Context, refs []keyRef) (images, error) {
	img := images{}
	if len(refs) == 1 {
		out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(refs[0].table), Key: refs[0].key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return img, fmt.Errorf("meter: read item image: %w", err)
		}
		img[refString(refs[0].table, refs[0].key)] = out.Item
		return img, nil
	}
	seen := map[string]bool{}
	var pending []keyRef
	for _, r := range refs {
		if s := refString(r.table, r.key); !seen[s] {
			seen[s] = true
			pending = append(pending, r)
		}
	}
	for len(pending) > 0 {
		n := min(len(pending), 100)
		req := map[string]types.KeysAndAttributes{}
		for _, r := range pending[:n] {
			ka := req[r.table]
			ka.Keys = append(ka.Keys, r.key)
			ka.ConsistentRead = aws.Bool(true)
			req[r.table] = ka
		}
		pending = pending[n:]
		for len(req) > 0 {
			out, err := m.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return img, fmt.Errorf("meter: read item images: %w", err)
			}
			for table, items := range out.Responses {
				for _, it := range items {
					img[refString(table, m.schema.key(it))] = it
				}
			}
			req = out.UnprocessedKeys
		}
	}
	return img, nil
}

// failedCondition reports whether err is a failed condition or a cancelled
// transaction: the two failures that still consume capacity.
func failedCondition(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	var tce *types.TransactionCanceledException
	return errors.As(err, &ccf) || errors.As(err, &tce)
}

// written charges a write that happened: factor (1, or 2 in a transaction)
// times one unit per started KB of the larger of the item before and
// after, and the index writes the change causes, which are never doubled.
func (m *Meter) written(op string, key, before, after Item, factor float64) {
	m.add(op, m.schema.Kind(key), m.schema.partition(key), factor*WriteUnits(max(ItemSize(before), ItemSize(after))), 0, false)
	for _, w := range m.schema.indexWrites(before, after) {
		m.add(op, "index:"+w.Index, w.Partition, WriteUnits(w.Size), 0, false)
	}
}

// notWritten charges a write whose condition failed or whose transaction
// was cancelled: the larger of the item as it is and as the write tried
// to make it (size), with no index writes, since the index never changed.
func (m *Meter) notWritten(op string, key Item, size int, factor float64) {
	m.add(op, m.schema.Kind(key), m.schema.partition(key), factor*WriteUnits(size), 0, true)
}

// attempted is the size of the item an update tried to write: the update
// evaluated on the item as it was (applyUpdate), or, for expressions beyond
// that evaluator, a conservative bound: the item plus every expression value
// and name, as if each were added as a new attribute.
func attempted(before, key Item, expr *string, names map[string]string, values map[string]types.AttributeValue) int {
	if expr != nil {
		if it, err := applyUpdate(before, key, *expr, names, values); err == nil {
			return ItemSize(it)
		}
	}
	n := ItemSize(before)
	if before == nil {
		n = ItemSize(key)
	}
	for _, v := range values {
		n += ValueSize(v)
	}
	for _, name := range names {
		n += len(name)
	}
	return n
}

func half(consistent *bool) float64 {
	if aws.ToBool(consistent) {
		return 1
	}
	return 0.5
}

func hasProjection(expr *string, attrs []string) bool { return expr != nil || len(attrs) > 0 }

// charge applies the billing rules to a finished request (see the package
// documentation for each rule and its source).
func (m *Meter) charge(ctx context.Context, op string, params, result any, err error, before images) {
	failed := failedCondition(err)
	if err != nil && !failed {
		return // rejected before any item was read or written
	}
	switch p := params.(type) {
	case *dynamodb.PutItemInput:
		t, k := aws.ToString(p.TableName), m.schema.key(p.Item)
		b := before[refString(t, k)]
		if failed {
			m.notWritten(op, k, max(ItemSize(b), ItemSize(p.Item)), 1)
			return
		}
		m.written(op, k, b, p.Item, 1)
	case *dynamodb.UpdateItemInput:
		t := aws.ToString(p.TableName)
		b := before[refString(t, p.Key)]
		if failed {
			m.notWritten(op, p.Key, max(ItemSize(b), attempted(b, p.Key, p.UpdateExpression, p.ExpressionAttributeNames, p.ExpressionAttributeValues)), 1)
			return
		}
		after, ferr := m.fetch(ctx, []keyRef{{t, p.Key}})
		if ferr != nil {
			m.fail()
			return
		}
		m.written(op, p.Key, b, after[refString(t, p.Key)], 1)
	case *dynamodb.DeleteItemInput:
		t := aws.ToString(p.TableName)
		b := before[refString(t, p.Key)]
		if failed {
			m.notWritten(op, p.Key, ItemSize(b), 1)
			return
		}
		m.written(op, p.Key, b, nil, 1)
	case *dynamodb.BatchWriteItemInput:
		out, _ := result.(*dynamodb.BatchWriteItemOutput)
		skip := map[string]bool{}
		if out != nil {
			for table, reqs := range out.UnprocessedItems {
				for _, r := range reqs {
					skip[refString(table, m.requestKey(r))] = true
				}
			}
		}
		for table, reqs := range p.RequestItems {
			for _, r := range reqs {
				k := m.requestKey(r)
				s := refString(table, k)
				if skip[s] {
					continue
				}
				var after Item
				if r.PutRequest != nil {
					after = r.PutRequest.Item
				}
				m.written(op, k, before[s], after, 1)
			}
		}
	case *dynamodb.TransactWriteItemsInput:
		m.chargeTransaction(ctx, op, p, failed, before)
	case *dynamodb.GetItemInput:
		out, _ := result.(*dynamodb.GetItemOutput)
		t := aws.ToString(p.TableName)
		var it Item
		if out != nil {
			it = out.Item
		}
		if hasProjection(p.ProjectionExpression, p.AttributesToGet) {
			img, ferr := m.fetch(ctx, []keyRef{{t, p.Key}})
			if ferr != nil {
				m.fail()
				return
			}
			it = img[refString(t, p.Key)]
		}
		m.add(op, m.schema.Kind(p.Key), "", 0, half(p.ConsistentRead)*ReadUnits(ItemSize(it)), false)
	case *dynamodb.BatchGetItemInput:
		m.chargeBatchGet(ctx, op, p, result)
	case *dynamodb.TransactGetItemsInput:
		m.chargeTransactGet(ctx, op, p, result, failed)
	case *dynamodb.QueryInput:
		m.chargeQuery(ctx, op, p, result)
	case *dynamodb.ScanInput:
		m.chargeScan(ctx, op, p, result)
	}
}

// transactItem returns an action's table, key, the item it puts (for Put)
// and whether it only checks a condition.
func (m *Meter) transactItem(ti types.TransactWriteItem) (table string, key, put Item, check bool) {
	switch {
	case ti.Put != nil:
		return aws.ToString(ti.Put.TableName), m.schema.key(ti.Put.Item), ti.Put.Item, false
	case ti.Update != nil:
		return aws.ToString(ti.Update.TableName), ti.Update.Key, nil, false
	case ti.Delete != nil:
		return aws.ToString(ti.Delete.TableName), ti.Delete.Key, nil, false
	case ti.ConditionCheck != nil:
		return aws.ToString(ti.ConditionCheck.TableName), ti.ConditionCheck.Key, nil, true
	}
	return "", nil, nil, false
}

func (m *Meter) chargeTransaction(ctx context.Context, op string, p *dynamodb.TransactWriteItemsInput, cancelled bool, before images) {
	var after images
	if !cancelled {
		var updates []keyRef
		for _, ti := range p.TransactItems {
			if ti.Update != nil {
				updates = append(updates, keyRef{aws.ToString(ti.Update.TableName), ti.Update.Key})
			}
		}
		if len(updates) > 0 {
			var err error
			if after, err = m.fetch(ctx, updates); err != nil {
				m.fail()
				return
			}
		}
	}
	for _, ti := range p.TransactItems {
		table, key, put, check := m.transactItem(ti)
		s := refString(table, key)
		b := before[s]
		switch {
		case check:
			// A ConditionCheck is charged as a transactional write of the
			// item it checks (see the package documentation).
			m.add(op, m.schema.Kind(key), m.schema.partition(key), 2*WriteUnits(ItemSize(b)), 0, cancelled)
		case cancelled:
			size := ItemSize(put)
			if u := ti.Update; u != nil {
				size = attempted(b, key, u.UpdateExpression, u.ExpressionAttributeNames, u.ExpressionAttributeValues)
			}
			m.notWritten(op, key, max(ItemSize(b), size), 2)
		case ti.Update != nil:
			m.written(op, key, b, after[s], 2)
		default:
			m.written(op, key, b, put, 2) // put is nil for a Delete
		}
	}
}

func (m *Meter) chargeBatchGet(ctx context.Context, op string, p *dynamodb.BatchGetItemInput, result any) {
	out, _ := result.(*dynamodb.BatchGetItemOutput)
	if out == nil {
		return
	}
	for table, ka := range p.RequestItems {
		skip := map[string]bool{}
		for _, k := range out.UnprocessedKeys[table].Keys {
			skip[refString(table, k)] = true
		}
		var refs []keyRef
		for _, k := range ka.Keys {
			if !skip[refString(table, k)] {
				refs = append(refs, keyRef{table, k})
			}
		}
		img := images{}
		if hasProjection(ka.ProjectionExpression, ka.AttributesToGet) {
			var err error
			if img, err = m.fetch(ctx, refs); err != nil {
				m.fail()
				continue
			}
		} else {
			for _, it := range out.Responses[table] {
				img[refString(table, m.schema.key(it))] = it
			}
		}
		for _, r := range refs {
			m.add(op, m.schema.Kind(r.key), "", 0, half(ka.ConsistentRead)*ReadUnits(ItemSize(img[refString(table, r.key)])), false)
		}
	}
}

func (m *Meter) chargeTransactGet(ctx context.Context, op string, p *dynamodb.TransactGetItemsInput, result any, cancelled bool) {
	out, _ := result.(*dynamodb.TransactGetItemsOutput)
	var refs []keyRef
	refetch := cancelled || out == nil
	for _, tg := range p.TransactItems {
		if tg.Get == nil {
			continue
		}
		refs = append(refs, keyRef{aws.ToString(tg.Get.TableName), tg.Get.Key})
		refetch = refetch || hasProjection(tg.Get.ProjectionExpression, nil)
	}
	img := images{}
	if refetch {
		var err error
		if img, err = m.fetch(ctx, refs); err != nil {
			m.fail()
			return
		}
	} else {
		for i, r := range refs {
			if i < len(out.Responses) {
				img[refString(r.table, r.key)] = out.Responses[i].Item
			}
		}
	}
	for _, r := range refs {
		m.add(op, m.schema.Kind(r.key), "", 0, 2*ReadUnits(ItemSize(img[refString(r.table, r.key)])), cancelled)
	}
}

var placeholder = regexp.MustCompile(`[#:][A-Za-z0-9_]+`)

// only keeps the names and values an expression uses: DynamoDB rejects a
// request with unused ones.
func only[V any](expr *string, m map[string]V) map[string]V {
	if expr == nil || m == nil {
		return nil
	}
	out := map[string]V{}
	for _, ph := range placeholder.FindAllString(*expr, -1) {
		if v, ok := m[ph]; ok {
			out[ph] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// readSize returns the size of the items a Query or Scan response read.
func readSize(items []Item) int {
	n := 0
	for _, it := range items {
		n += ItemSize(it)
	}
	return n
}

func (m *Meter) queryKind(index *string, items []Item) string {
	if index != nil {
		return "index:" + *index
	}
	if len(items) == 0 {
		return "(none)"
	}
	return m.schema.Kind(Item{m.schema.PK: items[0][m.schema.PK]})
}

// hides reports whether a Query or Scan returns less than it reads: a
// filter (or a legacy one), a projection, or a Select of counts or
// specific attributes.
func hides(filter, projection *string, attrs []string, legacyFilters int, sel types.Select) bool {
	return filter != nil || hasProjection(projection, attrs) || legacyFilters > 0 ||
		(sel != "" && sel != types.SelectAllAttributes && sel != types.SelectAllProjectedAttributes)
}

func (m *Meter) chargeQuery(ctx context.Context, op string, p *dynamodb.QueryInput, result any) {
	out, _ := result.(*dynamodb.QueryOutput)
	if out == nil {
		return
	}
	items := out.Items
	if hides(p.FilterExpression, p.ProjectionExpression, p.AttributesToGet, len(p.QueryFilter), p.Select) {
		// The same page without what hides items or attributes: same key
		// condition, index, order, Limit and start key.
		q := *p
		q.FilterExpression, q.ProjectionExpression, q.AttributesToGet, q.QueryFilter = nil, nil, nil, nil
		q.Select, q.ConditionalOperator, q.ReturnConsumedCapacity = "", "", ""
		q.ExpressionAttributeNames = only(p.KeyConditionExpression, p.ExpressionAttributeNames)
		q.ExpressionAttributeValues = only(p.KeyConditionExpression, p.ExpressionAttributeValues)
		again, err := m.db.Query(ctx, &q)
		if err != nil {
			m.fail()
			return
		}
		items = again.Items
	}
	m.add(op, m.queryKind(p.IndexName, items), "", 0, half(p.ConsistentRead)*ReadUnits(readSize(items)), false)
}

func (m *Meter) chargeScan(ctx context.Context, op string, p *dynamodb.ScanInput, result any) {
	out, _ := result.(*dynamodb.ScanOutput)
	if out == nil {
		return
	}
	items := out.Items
	if hides(p.FilterExpression, p.ProjectionExpression, p.AttributesToGet, len(p.ScanFilter), p.Select) {
		q := *p
		q.FilterExpression, q.ProjectionExpression, q.AttributesToGet, q.ScanFilter = nil, nil, nil, nil
		q.Select, q.ConditionalOperator, q.ReturnConsumedCapacity = "", "", ""
		q.ExpressionAttributeNames, q.ExpressionAttributeValues = nil, nil
		again, err := m.db.Scan(ctx, &q)
		if err != nil {
			m.fail()
			return
		}
		items = again.Items
	}
	kind := "scan"
	if p.IndexName != nil {
		kind = "index:" + *p.IndexName
	}
	m.add(op, kind, "", 0, half(p.ConsistentRead)*ReadUnits(readSize(items)), false)
}
