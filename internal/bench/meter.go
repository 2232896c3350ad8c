package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// Meter counts AWS requests by service and operation, and the DynamoDB
// capacity the endpoint reports. It asks every DynamoDB call for its
// consumed capacity (ReturnConsumedCapacity=TOTAL); endpoints that do not
// report it (kumo) leave the reported totals at zero.
type Meter struct {
	mu       sync.Mutex
	calls    map[string]int
	wcu, rcu float64
	reported bool
	// modelled units: 1 per single-item write or consistent read, 2 per
	// transaction item, 1 per item of a batch write (items under 1 KB).
	modelW, modelR float64
}

// NewMeter returns an empty Meter.
func NewMeter() *Meter { return &Meter{calls: map[string]int{}} }

// Attach adds the meter's middleware to cfg; clients built from it are
// metered.
func (m *Meter) Attach(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("stepflowMeter", m.handle), middleware.After)
	})
}

func (m *Meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	askCapacity(in.Parameters)
	out, md, err := next.HandleInitialize(ctx, in)
	op := awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[op]++
	switch p := in.Parameters.(type) {
	case *dynamodb.PutItemInput, *dynamodb.UpdateItemInput:
		m.modelW++
	case *dynamodb.TransactWriteItemsInput:
		m.modelW += 2 * float64(len(p.TransactItems))
	case *dynamodb.BatchWriteItemInput:
		for _, reqs := range p.RequestItems {
			m.modelW += float64(len(reqs))
		}
	case *dynamodb.GetItemInput, *dynamodb.QueryInput:
		m.modelR++
	}
	for _, c := range consumed(out.Result) {
		if c.CapacityUnits == nil {
			continue
		}
		m.reported = true
		w, r := aws.ToFloat64(c.WriteCapacityUnits), aws.ToFloat64(c.ReadCapacityUnits)
		if w == 0 && r == 0 {
			// Only a total: writes and reads are told apart by operation.
			if isWrite(op) {
				w = aws.ToFloat64(c.CapacityUnits)
			} else {
				r = aws.ToFloat64(c.CapacityUnits)
			}
		}
		m.wcu += w
		m.rcu += r
	}
	return out, md, err
}

func isWrite(op string) bool {
	return strings.Contains(op, "Put") || strings.Contains(op, "Update") || strings.Contains(op, "Write") || strings.Contains(op, "Delete")
}

func askCapacity(params any) {
	t := types.ReturnConsumedCapacityTotal
	switch p := params.(type) {
	case *dynamodb.GetItemInput:
		p.ReturnConsumedCapacity = t
	case *dynamodb.PutItemInput:
		p.ReturnConsumedCapacity = t
	case *dynamodb.UpdateItemInput:
		p.ReturnConsumedCapacity = t
	case *dynamodb.QueryInput:
		p.ReturnConsumedCapacity = t
	case *dynamodb.TransactWriteItemsInput:
		p.ReturnConsumedCapacity = t
	case *dynamodb.BatchWriteItemInput:
		p.ReturnConsumedCapacity = t
	}
}

func consumed(result any) []types.ConsumedCapacity {
	one := func(c *types.ConsumedCapacity) []types.ConsumedCapacity {
		if c == nil {
			return nil
		}
		return []types.ConsumedCapacity{*c}
	}
	switch r := result.(type) {
	case *dynamodb.GetItemOutput:
		return one(r.ConsumedCapacity)
	case *dynamodb.PutItemOutput:
		return one(r.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		return one(r.ConsumedCapacity)
	case *dynamodb.QueryOutput:
		return one(r.ConsumedCapacity)
	case *dynamodb.TransactWriteItemsOutput:
		return r.ConsumedCapacity
	case *dynamodb.BatchWriteItemOutput:
		return r.ConsumedCapacity
	}
	return nil
}

// Snapshot is a copy of the meter's counts.
type Snapshot struct {
	Calls    map[string]int
	WCU, RCU float64
	// Reported tells whether WCU and RCU are what the endpoint reported;
	// if not they are modelled (see Meter).
	Reported bool
}

// Snapshot returns the counts so far.
func (m *Meter) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[string]int, len(m.calls))
	for k, v := range m.calls {
		c[k] = v
	}
	if !m.reported {
		return Snapshot{Calls: c, WCU: m.modelW, RCU: m.modelR}
	}
	return Snapshot{Calls: c, WCU: m.wcu, RCU: m.rcu, Reported: true}
}

// Total returns the number of calls whose operation has the given service
// prefix ("DynamoDB", "SQS").
func (s Snapshot) Total(service string) int {
	n := 0
	for k, v := range s.Calls {
		if strings.HasPrefix(k, service+".") {
			n += v
		}
	}
	return n
}

// Lines renders the calls per step, sorted by operation.
func (s Snapshot) Lines(steps int) []string {
	var keys []string
	for k := range s.Calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%-34s %8d  %6.2f/step", k, s.Calls[k], float64(s.Calls[k])/float64(steps)))
	}
	return out
}
