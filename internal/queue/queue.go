// Package queue sends step messages to the SQS work queue and creates the
// queue locally. Receiving is done by Lambda's event source mapping on AWS
// and by package poller locally.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"stepflow/internal/runstate"
)

// Message asks a runner to run one attempt of one step. It names the run's
// workflow and order so that the runner reads the run with one request.
type Message struct {
	RunID      string `json:"run_id"`
	WorkflowID string `json:"workflow_id"`
	OrderID    string `json:"order_id,omitempty"`
	StepIndex  int    `json:"step_index"`
	// Attempt is the step's retry_count this message is for.
	Attempt int `json:"attempt"`
	// Gen is the run's generation when the message was sent (for logs).
	Gen int `json:"gen"`
	// SentAt is when the message was sent (after the parent's commit), for
	// measuring hand-off latency.
	SentAt time.Time `json:"sent_at"`
	// Delay postpones delivery (retry backoff); it is not part of the body.
	Delay time.Duration `json:"-"`
}

// Decode parses a message body.
func Decode(body string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return m, fmt.Errorf("decode step message: %w", err)
	}
	if m.RunID == "" || m.WorkflowID == "" || m.StepIndex < 0 || m.Attempt < 0 {
		return m, fmt.Errorf("decode step message: missing or negative fields in %q", body)
	}
	return m, nil
}

// For returns the message for an attempt of step of run r, sent at at.
func For(r runstate.State, step, attempt int, at time.Time) Message {
	return Message{RunID: r.ID, WorkflowID: r.WorkflowID, OrderID: r.OrderID, StepIndex: step, Attempt: attempt, Gen: r.Gen, SentAt: at.UTC()}
}

// SQSAPI is the part of the SQS client the queue uses.
type SQSAPI interface {
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Extend keeps a received message hidden for d from now (at most 12 hours).
func (q *SQS) Extend(ctx context.Context, receipt string, d time.Duration) error {
	secs := int32(min(d, 12*time.Hour) / time.Second)
	_, err := q.Client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.URL), ReceiptHandle: aws.String(receipt), VisibilityTimeout: secs,
	})
	if err != nil {
		return fmt.Errorf("change message visibility: %w", err)
	}
	return nil
}

// SQS sends messages to one queue. It is safe for concurrent use.
type SQS struct {
	Client SQSAPI
	URL    string
}

// Send sends msgs, in batches of up to ten. Entries SQS rejects are retried
// a few times before Send gives up with an error; on error some messages
// may have been sent (a resend is safe: runners ignore duplicates).
func (q *SQS) Send(ctx context.Context, msgs []Message) error {
	for len(msgs) > 0 {
		n := min(len(msgs), 10)
		if err := q.sendBatch(ctx, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (q *SQS) sendBatch(ctx context.Context, msgs []Message) error {
	pending := map[string]types.SendMessageBatchRequestEntry{}
	for i, m := range msgs {
		body, err := json.Marshal(m)
		if err != nil {
			return err
		}
		id := strconv.Itoa(i)
		pending[id] = types.SendMessageBatchRequestEntry{
			Id: aws.String(id), MessageBody: aws.String(string(body)),
			DelaySeconds: int32(min(m.Delay, 900*time.Second) / time.Second),
		}
	}
	var lastErr error
	for attempt := 0; attempt < 4 && len(pending) > 0; attempt++ {
		entries := make([]types.SendMessageBatchRequestEntry, 0, len(pending))
		for _, e := range pending {
			entries = append(entries, e)
		}
		out, err := q.Client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: entries})
		if err != nil {
			return fmt.Errorf("send step messages: %w", err)
		}
		for _, s := range out.Successful {
			delete(pending, aws.ToString(s.Id))
		}
		for _, f := range out.Failed {
			lastErr = fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			if f.SenderFault {
				return fmt.Errorf("send step message: %w", lastErr)
			}
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("send step messages: %d not accepted: %w", len(pending), errors.Join(lastErr))
	}
	return nil
}

// AdminAPI is the part of the SQS client EnsureQueue uses.
type AdminAPI interface {
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// createQueue creates a queue, or finds it if it exists, and applies attrs
// either way: SQS refuses to create an existing queue with other
// attributes, and some emulators return it without applying them.
func createQueue(ctx context.Context, c AdminAPI, name string, attrs map[string]string) (string, error) {
	var url *string
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	var exists *types.QueueNameExists
	switch {
	case err == nil:
		url = out.QueueUrl
	case errors.As(err, &exists):
		got, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("find queue %s: %w", name, err)
		}
		url = got.QueueUrl
	default:
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: attrs}); err != nil {
		return "", fmt.Errorf("set attributes of queue %s: %w", name, err)
	}
	return aws.ToString(url), nil
}

// DefaultMaxReceiveCount is how many receives a message gets before it is
// moved to the dead-letter queue.
const DefaultMaxReceiveCount = 5

// Settings of the work queue.
type Settings struct {
	// VisibilityTimeout is how long a received message stays hidden.
	VisibilityTimeout time.Duration
	// MaxReceiveCount, if positive, gives the queue a dead-letter queue
	// named <name>-dlq that takes messages received this many times.
	MaxReceiveCount int
}

// Queues are the URLs of a work queue and its dead-letter queue ("" if it
// has none).
type Queues struct {
	URL, DLQURL string
}

// EnsureQueue creates the queue (and its dead-letter queue) if needed and
// returns its URL.
func EnsureQueue(ctx context.Context, c AdminAPI, name string, s Settings) (string, error) {
	q, err := EnsureQueues(ctx, c, name, s)
	return q.URL, err
}

// EnsureQueues is EnsureQueue returning the dead-letter queue's URL too.
func EnsureQueues(ctx context.Context, c AdminAPI, name string, s Settings) (Queues, error) {
	var q Queues
	attrs := map[string]string{
		"VisibilityTimeout":      strconv.Itoa(int(s.VisibilityTimeout / time.Second)),
		"MessageRetentionPeriod": strconv.Itoa(4 * 24 * 3600),
	}
	if s.MaxReceiveCount > 0 {
		dlqURL, err := createQueue(ctx, c, name+"-dlq", map[string]string{"MessageRetentionPeriod": strconv.Itoa(14 * 24 * 3600)})
		if err != nil {
			return q, err
		}
		q.DLQURL = dlqURL
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(dlqURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return q, fmt.Errorf("get dead-letter queue arn: %w", err)
		}
		policy, _ := json.Marshal(map[string]string{
			"deadLetterTargetArn": out.Attributes[string(types.QueueAttributeNameQueueArn)],
			"maxReceiveCount":     strconv.Itoa(s.MaxReceiveCount),
		})
		attrs["RedrivePolicy"] = string(policy)
	}
	url, err := createQueue(ctx, c, name, attrs)
	if err != nil {
		return q, err
	}
	q.URL = url
	return q, nil
}
