package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"stepflow/internal/queue"
	"stepflow/internal/testenv"
)

// TestEnsureQueuesIsIdempotentAndUpdates: a restart with other settings
// finds the same queues and applies the new settings, and the work queue
// dead-letters to its DLQ.
func TestEnsureQueuesIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	c := testenv.SQS(t)
	ctx := context.Background()
	name := testenv.Name(t, "eq")
	first, err := queue.EnsureQueues(ctx, c, name, queue.Settings{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, u := range []string{first.URL, first.DLQURL} {
			_, _ = c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	})
	second, err := queue.EnsureQueues(ctx, c, name, queue.Settings{VisibilityTimeout: 45 * time.Second, MaxReceiveCount: 3})
	if err != nil {
		t.Fatalf("second EnsureQueues with other settings: %v", err)
	}
	if second != first {
		t.Fatalf("queues changed: %+v then %+v", first, second)
	}
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(second.URL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout, types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attributes["VisibilityTimeout"] != "45" {
		t.Errorf("visibility timeout %q, want 45", out.Attributes["VisibilityTimeout"])
	}
	if rp := out.Attributes["RedrivePolicy"]; rp == "" {
		t.Error("work queue has no redrive policy")
	}
}
