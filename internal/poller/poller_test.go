package poller_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"stepflow/internal/poller"
	"stepflow/internal/queue"
	"stepflow/internal/testenv"
)

// TestPollerDeletesWhatSucceededAndKeepsFailures: the poller hands batches
// to the handler; messages it reports as failed (and every message of a
// batch whose handler fails) come back after the visibility timeout, the
// others are deleted. On shutdown it waits for the batch in flight.
func TestPollerDeletesWhatSucceededAndKeepsFailures(t *testing.T) {
	t.Parallel()
	c := testenv.SQS(t)
	url := testenv.Queue(t, c, queue.Settings{VisibilityTimeout: time.Second}).URL
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 12 {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	inFailedBatch := map[string]bool{}
	batches := 0
	all := make(chan struct{})
	handler := func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		batches++
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			seen[r.Body]++
			// m0 fails once; m1 is in a batch that fails whole once.
			if r.Body == "m0" && seen[r.Body] == 1 {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		for _, r := range ev.Records {
			if r.Body == "m1" && seen[r.Body] == 1 {
				for _, r := range ev.Records {
					inFailedBatch[r.Body] = true
				}
				return events.SQSEventResponse{}, errors.New("the whole batch fails")
			}
		}
		if len(seen) == 12 && seen["m0"] >= 2 && seen["m1"] >= 2 {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		return resp, nil
	}
	done := make(chan struct{})
	go func() {
		poller.Run(ctx, poller.Config{Client: c, QueueURL: url, Handler: handler, Concurrency: 2, BatchSize: 5})
		close(done)
	}()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("not every message was handled: %v", seen)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	for body, n := range seen {
		want := 1
		if body == "m0" || inFailedBatch[body] {
			want = 2
		}
		if n != want {
			t.Errorf("%s handled %d times, want %d", body, n, want)
		}
	}
	// Nothing is left: the failures were handled again and deleted.
	time.Sleep(1100 * time.Millisecond)
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, m := range out.Messages {
		left = append(left, aws.ToString(m.Body))
	}
	slices.Sort(left)
	if len(left) != 0 {
		t.Fatalf("messages left on the queue: %v", left)
	}
	if batches < 4 {
		t.Fatalf("%d batches for 12 messages in batches of at most 5 plus redeliveries", batches)
	}
}
