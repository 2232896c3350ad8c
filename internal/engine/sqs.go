package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/queue"
)

// HandleSQS processes a batch of step messages concurrently (steps of one
// batch may be independent branches that should overlap) and reports the
// messages to deliver again as batch item failures. It never fails the
// whole batch for one message; only an injected crash (ErrCrashed) fails
// the batch, as a dead process would.
func (e *Engine) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var (
		mu      sync.Mutex
		resp    events.SQSEventResponse
		wg      sync.WaitGroup
		crashed bool
	)
	for _, rec := range ev.Records {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.handleRecord(ctx, rec)
			if err == nil {
				return
			}
			if errors.Is(err, ErrCrashed) {
				mu.Lock()
				crashed = true
				mu.Unlock()
				return
			}
			e.log.WarnContext(ctx, "message will be retried", "message_id", rec.MessageId, "error", err)
			mu.Lock()
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if crashed {
		return events.SQSEventResponse{}, ErrCrashed
	}
	return resp, nil
}

func (e *Engine) handleRecord(ctx context.Context, rec events.SQSMessage) error {
	m, err := queue.Decode(rec.Body)
	if err != nil {
		return err // left to the redrive policy and the DLQ
	}
	return e.Handle(ctx, Delivery{Message: m, Receipt: rec.ReceiptHandle})
}
