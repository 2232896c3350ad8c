package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/awsclient"
	"stepflow/internal/poller"
	"stepflow/internal/queue"
)

// floor pushes steps, as chains of four, through bare SQS and one 3-item
// transaction each, with the poller settings of the engine's flooded pass
// and the same per-call latency: the least any engine on this design must
// do per step. It returns steps per second.
func (e env) floor(ctx context.Context, steps, pollers int, latency, timeout time.Duration) (float64, error) {
	name, url, cleanup, err := e.scratch(ctx, "floor")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	cfg := e.cfg.Copy()
	addLatency(&cfg, latency)
	sq := awsclient.SQS(cfg, e.sqsEP)
	q := &queue.SQS{Client: sq, URL: url}
	var n atomic.Int64
	done := make(chan struct{})
	steps = steps / 4 * 4
	h := floorHandler{db: awsclient.DynamoDB(cfg, e.dynEP), table: name, q: q, n: &n, total: int64(steps), done: done}
	var roots []queue.Message
	for i := range steps / 4 {
		roots = append(roots, queue.Message{RunID: fmt.Sprintf("floor%d", i), WorkflowID: "floor"})
	}
	if err := q.Send(ctx, roots); err != nil {
		return 0, err
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		poller.Run(pctx, poller.Config{Client: sq, QueueURL: url, Handler: h.handle, Concurrency: pollers})
	}()
	defer wg.Wait()
	select {
	case <-done:
	case <-time.After(timeout):
		stop()
		return 0, fmt.Errorf("floor: %d of %d steps within %v", n.Load(), steps, timeout)
	}
	el := time.Since(start)
	stop()
	return float64(steps) / el.Seconds(), nil
}

type floorHandler struct {
	db    *dynamodb.Client
	table string
	q     *queue.SQS
	n     *atomic.Int64
	total int64
	done  chan struct{}
}

func (f floorHandler) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, rec := range ev.Records {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.one(ctx, rec.Body); err != nil {
				mu.Lock()
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return resp, nil
}

func (f floorHandler) one(ctx context.Context, body string) error {
	m, err := queue.Decode(body)
	if err != nil {
		return err
	}
	put := func(sk string) types.TransactWriteItem {
		return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(f.table), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("FLOOR#%s#%d", m.RunID, m.StepIndex)},
			"sk": &types.AttributeValueMemberS{Value: sk},
		}}}
	}
	if _, err := f.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{put("a"), put("b"), put("c")},
	}); err != nil {
		return err
	}
	if m.StepIndex < 3 {
		m.StepIndex++
		if err := f.q.Send(ctx, []queue.Message{m}); err != nil {
			return err
		}
	}
	if f.n.Add(1) == f.total {
		close(f.done)
	}
	return nil
}
