package sweeper_test

// Issue 18's adversarial review of the sweeper (h-review18): what its
// marks, cursor and pages promise when a write or a send fails.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"stepflow/internal/queue"
)

// failingQueue fails the first fails sends (the whole batch: SQS down,
// throttled, the sweeper's Lambda timing out mid-send), then forwards.
type failingQueue struct {
	next interface {
		Send(ctx context.Context, msgs []queue.Message) error
	}
	mu    sync.Mutex
	fails int
}

func (q *failingQueue) Send(ctx context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	fail := q.fails > 0
	if fail {
		q.fails--
	}
	q.mu.Unlock()
	if fail {
		return errors.New("injected: SendMessageBatch failed")
	}
	return q.next.Send(ctx, msgs)
}

// TestAttack18SweepHoldsBackAResendThatWasNeverSent: the sweeper writes a
// run's re-send mark before it sends the messages. When the send fails,
// the mark stays and says the step was re-sent; the page still counts as
// swept and the shard's cursor moves past it. The next pass (a minute
// later, within the first wait) then holds the re-send back "because one
// may still be queued", though no message was ever sent. Each failed send
// also doubles the next wait, so after an SQS outage of a few passes a
// stalled step waits up to Backoff.Max (15 min) more before its first
// real re-send, beyond the worst case DECISIONS.md gives ("grace + the
// visit bound" for a message lost for good).
//
// Want: a pass after a failed send re-sends the step.
func TestAttack18SweepHoldsBackAResendThatWasNeverSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := &failingQueue{next: b.sw.Queue, fails: 1}
	b.sw.Queue = q
	b.run("a")

	b.now = t0.Add(2 * time.Minute) // stalled: the first re-send is due
	rep, err := b.sw.Sweep(context.Background())
	if err == nil {
		t.Fatalf("the injected send failure was not reported: %+v", rep)
	}
	if got := b.sent(); len(got) != 0 {
		t.Fatalf("sent %v through a failing queue", got)
	}

	b.now = t0.Add(150 * time.Second) // the next pass; the queue works again
	rep = b.sweep()
	if got := b.sent(); rep.Requeued != 1 || len(got) != 1 {
		t.Fatalf("after a failed send, the next pass re-sent %v (report %+v): the mark written before the failed send holds back a re-send that never happened", got, rep)
	}
}
