package redrive_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"stepflow/internal/queue"
	"stepflow/internal/redrive"
	"stepflow/internal/testenv"
)

func setup(t *testing.T, n int) (*sqs.Client, queue.Queues, []string) {
	t.Helper()
	c := testenv.SQS(t)
	qs := testenv.Queue(t, c, queue.Settings{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 3})
	var bodies []string
	for i := range n {
		body := fmt.Sprintf(`{"n":%d}`, i)
		bodies = append(bodies, body)
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(qs.DLQURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	return c, qs, bodies
}

// drain receives every message of a queue and returns the bodies.
func drain(t *testing.T, c *sqs.Client, url string) []string {
	t.Helper()
	var out []string
	for {
		res, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 60,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) == 0 {
			slices.Sort(out)
			return out
		}
		for _, m := range res.Messages {
			out = append(out, aws.ToString(m.Body))
		}
	}
}

// TestRedriveMovesEveryMessageOnce: redrive moves every dead-lettered
// message back to the work queue, unchanged, and a second redrive moves
// nothing.
func TestRedriveMovesEveryMessageOnce(t *testing.T) {
	t.Parallel()
	c, qs, bodies := setup(t, 23)
	ctx := context.Background()
	n, err := redrive.Redrive(ctx, c, qs.DLQURL, qs.URL)
	if err != nil || n != 23 {
		t.Fatalf("redrive moved %d, %v", n, err)
	}
	if n, err := redrive.Redrive(ctx, c, qs.DLQURL, qs.URL); err != nil || n != 0 {
		t.Fatalf("second redrive moved %d, %v", n, err)
	}
	slices.Sort(bodies)
	if got := drain(t, c, qs.URL); !slices.Equal(got, bodies) {
		t.Fatalf("work queue holds %v, want %v", got, bodies)
	}
}

// TestConcurrentRedrivesLoseNothing: redrives running at once receive
// different messages; together they move each one.
func TestConcurrentRedrivesLoseNothing(t *testing.T) {
	t.Parallel()
	c, qs, bodies := setup(t, 30)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := redrive.Queues{Client: c, DLQURL: qs.DLQURL, QueueURL: qs.URL}.Redrive(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 30 {
		t.Fatalf("redrives moved %d in all, want 30", total)
	}
	got := drain(t, c, qs.URL)
	slices.Sort(bodies)
	if !slices.Equal(slices.Compact(got), bodies) {
		t.Fatalf("work queue holds %d distinct of %d messages", len(slices.Compact(got)), len(bodies))
	}
	if left := drain(t, c, qs.DLQURL); len(left) != 0 {
		t.Fatalf("%d messages left in the dead-letter queue", len(left))
	}
}

// TestRedriveStopsOnRefusedSends: a message the work queue refuses stays
// in the dead-letter queue, and the error says so.
func TestRedriveStopsOnRefusedSends(t *testing.T) {
	t.Parallel()
	c, qs, _ := setup(t, 2)
	refusing := refuse{Client: c}
	n, err := redrive.Redrive(context.Background(), refusing, qs.DLQURL, qs.URL)
	if err == nil || n != 0 {
		t.Fatalf("redrive through a refusing queue: moved %d, %v", n, err)
	}
	// Received but not deleted: both are still in the dead-letter queue
	// (hidden for the redrive's visibility timeout), none in the work queue.
	if got := count(t, c, qs.DLQURL); got != 2 {
		t.Fatalf("%d messages left in the dead-letter queue, want 2", got)
	}
	if got := count(t, c, qs.URL); got != 0 {
		t.Fatalf("%d messages reached the work queue", got)
	}
}

// count is a queue's visible plus in-flight messages.
func count(t *testing.T, c *sqs.Client, url string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	var visible, hidden int
	fmt.Sscan(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)], &visible)
	fmt.Sscan(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)], &hidden)
	return visible + hidden
}

// refuse is an SQS client whose sends are all refused (a fault the
// emulator cannot produce on demand).
type refuse struct{ *sqs.Client }

func (r refuse) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
	}
	return out, nil
}
