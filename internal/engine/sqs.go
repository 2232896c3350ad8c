package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/queue"
)

// HandleSQS processes a batch of step messages and reports the ones to
// deliver again as batch item failures. Messages of one run are handled
// together (one read, one claim per item, one commit); different runs are
// handled concurrently. It never fails the whole batch for one message;
// only an injected crash (ErrCrashed) fails the batch, as a dead process
// would.
func (e *Engine) HandleSQS(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	failed := func(id string) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	runs := map[string][]int{} // run ID -> indexes of its records
	var order []string
	ds := make([]Delivery, len(ev.Records))
	for i, rec := range ev.Records {
		m, err := queue.Decode(rec.Body)
		if err != nil {
			// Left to the redrive policy and the DLQ.
			e.log.WarnContext(ctx, "undecodable message", "message_id", rec.MessageId, "error", err)
			failed(rec.MessageId)
			continue
		}
		ds[i] = Delivery{Message: m, Receipt: rec.ReceiptHandle}
		if _, ok := runs[m.RunID]; !ok {
			order = append(order, m.RunID)
		}
		runs[m.RunID] = append(runs[m.RunID], i)
	}
	errs := make([]error, len(ev.Records))
	var wg sync.WaitGroup
	for _, runID := range order {
		idx := runs[runID]
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := make([]Delivery, len(idx))
			for j, i := range idx {
				group[j] = ds[i]
			}
			for j, err := range e.handleRun(ctx, group) {
				errs[idx[j]] = err
			}
		}()
	}
	wg.Wait()
	crashed := false
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrCrashed):
			crashed = true
		default:
			if !errors.Is(err, ErrBusy) {
				e.log.WarnContext(ctx, "message will be retried", "message_id", ev.Records[i].MessageId, "error", err)
			}
			failed(ev.Records[i].MessageId)
		}
	}
	if crashed {
		return events.SQSEventResponse{}, ErrCrashed
	}
	return resp, nil
}
