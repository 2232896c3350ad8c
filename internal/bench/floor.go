package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/queue"
)

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

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }
