// Package redrive moves messages from the dead-letter queue back to the
// work queue, and reports how many wait there. It uses only ReceiveMessage, SendMessageBatch and
// DeleteMessageBatch, so it works on every endpoint (kumo has no
// StartMessageMoveTask). Running it twice, or twice at once, is safe: a
// message is deleted from the DLQ only after it was sent, concurrent
// redrivers receive different messages, and a message sent twice is a
// duplicate the step runner ignores.
package redrive

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the part of the SQS client Redrive uses.
type SQSAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Redrive moves every message it can receive from dlqURL to queueURL and
// returns how many it moved. It stops when a receive comes back empty.
func Redrive(ctx context.Context, c SQSAPI, dlqURL, queueURL string) (int, error) {
	moved := 0
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			// A short long-poll: a zero wait samples only some SQS servers
			// and could end the redrive with messages left.
			QueueUrl: aws.String(dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
		})
		if err != nil {
			return moved, fmt.Errorf("receive from dead-letter queue: %w", err)
		}
		if len(out.Messages) == 0 {
			return moved, nil
		}
		send := make([]types.SendMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			send[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: m.Body}
		}
		sent, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: send})
		if err != nil {
			return moved, fmt.Errorf("send to work queue: %w", err)
		}
		var del []types.DeleteMessageBatchRequestEntry
		for _, s := range sent.Successful {
			i, _ := strconv.Atoi(aws.ToString(s.Id))
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: s.Id, ReceiptHandle: out.Messages[i].ReceiptHandle})
		}
		if len(del) > 0 {
			d, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(dlqURL), Entries: del})
			if err != nil {
				return moved, fmt.Errorf("delete from dead-letter queue: %w", err)
			}
			moved += len(d.Successful)
		}
		if len(sent.Failed) > 0 {
			return moved, fmt.Errorf("send to work queue: %d messages refused (%s)", len(sent.Failed), aws.ToString(sent.Failed[0].Code))
		}
	}
}

// Queues redrives one dead-letter queue into one work queue; it
// implements api.Redriver.
type Queues struct {
	Client           SQSAPI
	DLQURL, QueueURL string
}

// Redrive moves the dead-letter queue's messages back.
func (q Queues) Redrive(ctx context.Context) (int, error) {
	return Redrive(ctx, q.Client, q.DLQURL, q.QueueURL)
}

// Depth returns the dead-letter queue's approximate number of messages,
// visible and in flight (received by a redrive that has not deleted them
// yet). SQS counts are approximate: a message just sent may not be counted
// for a few seconds.
func (q Queues) Depth(ctx context.Context) (int, error) {
	out, err := q.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.DLQURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("dead-letter queue attributes: %w", err)
	}
	total := 0
	for _, name := range []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	} {
		v := out.Attributes[string(name)]
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("dead-letter queue attribute %s: %q is not a count", name, v)
		}
		total += n
	}
	return total, nil
}
