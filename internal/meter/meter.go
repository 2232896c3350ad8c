package meter

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Reader is the unmetered DynamoDB client the meter reads item images
// through. It must not carry this meter's middleware (calls the meter makes
// are never metered anyway). Safe for concurrent use, as SDK clients are.
type Reader interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Meter tallies what the requests of the clients it is attached to cost.
// It is safe for concurrent use.
type Meter struct {
	schema Schema
	db     Reader
	id     string

	mu       sync.Mutex
	requests map[string]int
	sqs      map[string]int
	lines    map[[2]string]*Line
	keys     map[string]*KeyLoad
	errors   int
	now      func() time.Time
}

var meters atomic.Int64

// New returns a meter that applies schema to every table it sees (Stepflow
// has one table) and reads item images through db. With a nil db it only
// counts requests (and SQS billed requests): no DynamoDB capacity, and no
// extra reads.
func New(schema Schema, db Reader) *Meter {
	return &Meter{
		schema: schema, db: db, id: fmt.Sprintf("stepflowMeter%d", meters.Add(1)),
		requests: map[string]int{}, sqs: map[string]int{}, lines: map[[2]string]*Line{},
		keys: map[string]*KeyLoad{}, now: time.Now,
	}
}

// Attach adds the meter to cfg: every client built from cfg afterwards is
// metered.
func (m *Meter) Attach(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc(m.id, m.handle), middleware.After)
	})
}

// unmetered marks the meter's own calls.
type unmetered struct{}

func quiet(ctx context.Context) context.Context { return context.WithValue(ctx, unmetered{}, true) }

func (m *Meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if ctx.Value(unmetered{}) != nil {
		return next.HandleInitialize(ctx, in)
	}
	svc, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	var before images
	capacity := svc == "DynamoDB" && m.db != nil
	if capacity {
		before = m.before(quiet(ctx), in.Parameters)
	}
	out, md, err := next.HandleInitialize(ctx, in)
	m.mu.Lock()
	m.requests[svc+"."+op]++
	m.mu.Unlock()
	switch {
	case svc == "SQS":
		billed, name := sqsBilled(op, in.Parameters, out.Result)
		m.mu.Lock()
		m.sqs[name] += billed
		m.mu.Unlock()
	case capacity:
		m.charge(quiet(ctx), op, in.Parameters, out.Result, err, before)
	}
	return out, md, err
}

// Line is what one kind of item cost through one operation.
type Line struct {
	Op   string // the DynamoDB operation, such as "TransactWriteItems"
	Kind string // see Schema.Kind; "index:<name>" for index writes
	// Items counts the item reads or writes charged (a Query's response
	// counts once); Failed those whose condition failed or whose
	// transaction was cancelled, which cost FailedWU of WU.
	Items, Failed int
	WU, RU        float64
	FailedWU      float64
}

// add tallies a read (part empty) or a write of wu write units that
// landed on partition part (see Snapshot.Keys).
func (m *Meter) add(op, kind, part string, wu, ru float64, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if part != "" && wu > 0 {
		k := m.keys[part]
		if k == nil {
			k = &KeyLoad{}
			m.keys[part] = k
		}
		k.add(m.now().Unix(), wu)
	}
	l := m.lines[[2]string{op, kind}]
	if l == nil {
		l = &Line{Op: op, Kind: kind}
		m.lines[[2]string{op, kind}] = l
	}
	l.Items++
	l.WU += wu
	l.RU += ru
	if failed {
		l.Failed++
		l.FailedWU += wu
	}
}

func (m *Meter) fail() {
	m.mu.Lock()
	m.errors++
	m.mu.Unlock()
}

// Snapshot is a copy of a meter's tallies.
type Snapshot struct {
	// Requests counts calls by "Service.Operation", whatever their outcome.
	Requests map[string]int
	// SQS counts billed SQS requests by operation (see sqsBilled); receives
	// that returned nothing are apart, as "ReceiveMessage (empty)".
	SQS map[string]int
	// Lines is the DynamoDB capacity by operation and item kind, sorted.
	Lines  []Line
	WU, RU float64
	// Keys is the write units that landed on each partition key: the
	// table's partition key value for table writes ("RUN#r1"), and
	// "index:<name>/<value>" for index writes, the value being the index's
	// partition key. A partition takes about 1,000 WU a second on AWS, so
	// the key that takes the most of a workload's writes bounds its rate.
	// Read units are not attributed.
	Keys map[string]KeyLoad
	// Errors counts the meter's own reads that failed: when it is not zero
	// the capacity figures are incomplete.
	Errors int
}

// Snapshot returns the tallies so far.
func (m *Meter) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Requests: maps.Clone(m.requests), SQS: maps.Clone(m.sqs), Errors: m.errors, Keys: make(map[string]KeyLoad, len(m.keys))}
	for part, k := range m.keys {
		s.Keys[part] = KeyLoad{WU: k.WU, Writes: k.Writes, seconds: slices.Clone(k.seconds)}
	}
	for _, l := range m.lines {
		s.Lines = append(s.Lines, *l)
		s.WU += l.WU
		s.RU += l.RU
	}
	sortLines(s.Lines)
	return s
}

func sortLines(ls []Line) {
	slices.SortFunc(ls, func(a, b Line) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Op, b.Op)) })
}

// Plus returns the sum of two snapshots (of meters on different clients).
func (s Snapshot) Plus(o Snapshot) Snapshot {
	r := Snapshot{Requests: maps.Clone(s.Requests), SQS: maps.Clone(s.SQS), WU: s.WU + o.WU, RU: s.RU + o.RU, Errors: s.Errors + o.Errors}
	if r.Requests == nil {
		r.Requests = map[string]int{}
	}
	if r.SQS == nil {
		r.SQS = map[string]int{}
	}
	for k, v := range o.Requests {
		r.Requests[k] += v
	}
	for k, v := range o.SQS {
		r.SQS[k] += v
	}
	byKey := map[[2]string]Line{}
	for _, l := range append(slices.Clone(s.Lines), o.Lines...) {
		k := [2]string{l.Op, l.Kind}
		t := byKey[k]
		t.Op, t.Kind = l.Op, l.Kind
		t.Items += l.Items
		t.Failed += l.Failed
		t.WU += l.WU
		t.RU += l.RU
		t.FailedWU += l.FailedWU
		byKey[k] = t
	}
	for _, l := range byKey {
		r.Lines = append(r.Lines, l)
	}
	sortLines(r.Lines)
	r.Keys = make(map[string]KeyLoad, max(len(s.Keys), len(o.Keys)))
	for part, k := range s.Keys {
		r.Keys[part] = k.plus(KeyLoad{})
	}
	for part, k := range o.Keys {
		r.Keys[part] = r.Keys[part].plus(k)
	}
	return r
}

// SQSRequests is the number of billed SQS requests, with or without the
// receives that returned nothing.
func (s Snapshot) SQSRequests(withEmpty bool) int {
	n := 0
	for op, v := range s.SQS {
		if withEmpty || op != emptyReceive {
			n += v
		}
	}
	return n
}
