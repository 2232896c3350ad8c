package store

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Write-sharded index keys. An index partition key that every run shares
// (by_kind's RUN, by_active's ACTIVE) or every run of one workflow shares
// (by_workflow's workflow ID) would put all their index writes on one
// partition, which takes about 1,000 writes a second. Each such key is
// written as <base>#<k>, with shard k a hash of the item's ID, so the
// writes spread over Shards() partitions; a list queries every shard and
// merges their pages by ID (see DECISIONS.md, "Scale").

// shardOf is the shard of the item with ID id among n.
func shardOf(id string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// shardKey is the index partition key value of the item with ID id, for
// the shared key base.
func (s *Store) shardKey(base, id string) string {
	return shardValue(base, shardOf(id, s.shards))
}

func shardValue(base string, k int) string { return base + "#" + strconv.Itoa(k) }

// listQuery names the index and the shared key a list reads.
type listQuery struct {
	index string
	base  string // the shared key; its shards are base#0 .. base#(n-1)
}

// maxExamined bounds the index entries one filtered list request reads; a
// page that reaches it comes back short, with a cursor to continue.
const maxExamined = 1000

// entry is one index entry: the item's ID and table key.
type entry struct {
	id  string
	key map[string]types.AttributeValue
}

// shardStream reads one index partition in ID order, a batch at a time.
type shardStream struct {
	in   *dynamodb.QueryInput
	sk   string
	buf  []entry
	done bool
}

// merged reads the shards of one shared key as one sequence in ID order
// (descending unless ascending), from after the cursor.
type merged struct {
	s         *Store
	ascending bool
	streams   []*shardStream
}

func (s *Store) merged(q listQuery, cursor string, ascending bool) *merged {
	ix := indexNamed(q.index)
	m := &merged{s: s, ascending: ascending}
	cond, op := "#pk = :pk", "<"
	if ascending {
		op = ">"
	}
	if cursor != "" {
		cond += " AND #sk " + op + " :cur"
	}
	for k := range s.shards {
		in := &dynamodb.QueryInput{
			TableName:                 aws.String(s.table),
			IndexName:                 aws.String(ix.Name),
			KeyConditionExpression:    aws.String(cond),
			ExpressionAttributeNames:  map[string]string{"#pk": ix.PK},
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(shardValue(q.base, k))},
			ScanIndexForward:          aws.Bool(ascending),
		}
		if cursor != "" {
			in.ExpressionAttributeNames["#sk"] = ix.SK
			in.ExpressionAttributeValues[":cur"] = str(cursor)
		}
		m.streams = append(m.streams, &shardStream{in: in, sk: ix.SK})
	}
	return m
}

// fill reads the next batch of up to want entries of every stream that
// has none buffered, concurrently.
func (m *merged) fill(ctx context.Context, want int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.streams))
	for i, st := range m.streams {
		if len(st.buf) > 0 || st.done {
			continue
		}
		wg.Go(func() {
			st.in.Limit = aws.Int32(int32(want))
			res, err := m.s.db.Query(ctx, st.in)
			if err != nil {
				errs[i] = err
				return
			}
			for _, it := range res.Items {
				id := sAttr(it, st.sk)
				if id == "" {
					continue
				}
				st.buf = append(st.buf, entry{id: id, key: map[string]types.AttributeValue{attrPK: it[attrPK], attrSK: it[attrSK]}})
			}
			if res.LastEvaluatedKey == nil {
				st.done = true
			} else {
				st.in.ExclusiveStartKey = res.LastEvaluatedKey
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// next returns up to want entries in order; fewer only when the shards
// hold no more.
func (m *merged) next(ctx context.Context, want int) ([]entry, error) {
	var out []entry
	for len(out) < want {
		// Each shard holds about 1/n of what is wanted: ask each for its
		// share and a little more, and refill a shard that runs dry, so a
		// page reads about what it returns whatever the shard count.
		left := want - len(out)
		if err := m.fill(ctx, min(left, left/len(m.streams)+2)); err != nil {
			return out, err
		}
		// Take entries while every stream that may hold more has one
		// buffered, so the smallest (or largest) head is the next.
		for len(out) < want {
			best := -1
			ready := true
			for i, st := range m.streams {
				if len(st.buf) == 0 {
					if !st.done {
						ready = false
					}
					continue
				}
				if best < 0 || m.before(st.buf[0].id, m.streams[best].buf[0].id) {
					best = i
				}
			}
			if !ready || best < 0 {
				break
			}
			out = append(out, m.streams[best].buf[0])
			m.streams[best].buf = m.streams[best].buf[1:]
		}
		if m.exhausted() {
			break
		}
	}
	return out, nil
}

func (m *merged) before(a, b string) bool {
	if m.ascending {
		return a < b
	}
	return a > b
}

func (m *merged) exhausted() bool {
	for _, st := range m.streams {
		if len(st.buf) > 0 || !st.done {
			return false
		}
	}
	return true
}

// list reads one page of a sharded keys-only index newest first, then the
// page's items with BatchGetItem, handing each to keep, which decodes it
// and says whether it belongs in the page (a filter). keep sees up to
// limit+1 items; callers return only the first limit. It reads limit+1
// kept items where it can, so a next page is announced only when one
// exists; the cursor is the ID of the last item returned (or, when
// maxExamined entries were read without filling the page, of the last
// entry read). An item past its retention is skipped as if deleted.
func (s *Store) list(ctx context.Context, q listQuery, p Page, keep func(map[string]types.AttributeValue) (bool, error)) (string, error) {
	m := s.merged(q, p.Cursor, false)
	kept, examined := 0, 0
	var ids []string // IDs of kept items, in order
	lastRead := ""
	now := s.now()
	for kept <= p.Limit && examined < maxExamined {
		entries, err := m.next(ctx, min(p.Limit+1-kept, maxExamined-examined))
		if err != nil {
			return "", err
		}
		examined += len(entries)
		keys := make([]map[string]types.AttributeValue, len(entries))
		for i, e := range entries {
			keys[i] = e.key
		}
		items, err := s.batchGet(ctx, keys, false)
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if kept > p.Limit {
				break
			}
			lastRead = e.id
			item, ok := items[itemKey(e.key)]
			if !ok || expired(item, now) {
				continue // an index entry whose item is gone (index lag), or expired
			}
			ok, err := keep(item)
			if err != nil {
				return "", err
			}
			if ok {
				kept++
				ids = append(ids, e.id)
			}
		}
		if m.exhausted() {
			if kept > p.Limit {
				return ids[p.Limit-1], nil
			}
			return "", nil
		}
	}
	if kept > p.Limit {
		return ids[p.Limit-1], nil
	}
	return lastRead, nil
}

// ListActiveRuns returns the IDs of running runs in one shard (0 to
// Shards()-1), oldest first, one page at a time, from the keys-only
// by_active index; the cursor is the last ID returned.
func (s *Store) ListActiveRuns(ctx context.Context, shard int, p Page) ([]string, string, error) {
	if shard < 0 || shard >= s.shards {
		return nil, "", errors.New("list active runs: no shard " + strconv.Itoa(shard))
	}
	ix := indexNamed(indexActive)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(ix.Name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ix.PK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(shardValue(activeValue, shard))},
		Limit:                     aws.Int32(int32(p.Limit)),
	}
	if p.Cursor != "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk > :cur")
		in.ExpressionAttributeNames["#sk"] = ix.SK
		in.ExpressionAttributeValues[":cur"] = str(p.Cursor)
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if v := sAttr(it, ix.SK); v != "" {
			ids = append(ids, v)
		}
	}
	next := ""
	if out.LastEvaluatedKey != nil && len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return ids, next, nil
}
