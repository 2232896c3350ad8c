// Package poller feeds SQS messages to a Lambda-style SQS handler locally,
// the way Lambda's event source mapping does on AWS: long polls for batches
// of up to ten, runs the handler, deletes the messages it did not report as
// failed, and leaves failed ones to reappear after the visibility timeout.
// A handler error fails the whole batch.
package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Handler is a Lambda SQS handler with partial batch responses.
type Handler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// SQSAPI is the part of the SQS client the poller uses.
type SQSAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Config configures a Poller.
type Config struct {
	Client   SQSAPI
	QueueURL string
	QueueARN string
	Handler  Handler
	// BatchSize is at most 10 (default 10).
	BatchSize int
	// Concurrency is the number of batches in flight at once (default 2),
	// like the event source mapping's maximum concurrency.
	Concurrency int
	// WaitTime is the long-poll wait (default 1s; emulators do not wake a
	// long poll when a delayed message becomes visible).
	WaitTime time.Duration
	Logger   *slog.Logger
}

// Run polls until ctx is done, then waits for batches in flight.
func Run(ctx context.Context, cfg Config) {
	if cfg.BatchSize <= 0 || cfg.BatchSize > 10 {
		cfg.BatchSize = 10
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := pollOnce(ctx, cfg); err != nil && ctx.Err() == nil {
					cfg.Logger.WarnContext(ctx, "poll failed", "error", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}
		}()
	}
	wg.Wait()
}

func pollOnce(ctx context.Context, cfg Config) error {
	out, err := cfg.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(cfg.QueueURL),
		MaxNumberOfMessages:         int32(cfg.BatchSize),
		WaitTimeSeconds:             int32(cfg.WaitTime / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return fmt.Errorf("receive messages: %w", err)
	}
	if len(out.Messages) == 0 {
		return nil
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
	handles := map[string]string{}
	for i, m := range out.Messages {
		attrs := map[string]string{}
		for k, v := range m.Attributes {
			attrs[k] = v
		}
		ev.Records[i] = events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: attrs,
			EventSource: "aws:sqs", EventSourceARN: cfg.QueueARN, AWSRegion: "us-east-1",
		}
		handles[aws.ToString(m.MessageId)] = aws.ToString(m.ReceiptHandle)
	}
	// The handler gets a context that outlives a shutdown request long
	// enough to finish, as a Lambda invocation runs to its end.
	resp, err := cfg.Handler(context.WithoutCancel(ctx), ev)
	if err != nil {
		return errors.Join(errors.New("handler failed the whole batch"), err)
	}
	for _, f := range resp.BatchItemFailures {
		delete(handles, f.ItemIdentifier)
	}
	if len(handles) == 0 {
		return nil
	}
	var entries []types.DeleteMessageBatchRequestEntry
	i := 0
	for _, h := range handles {
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h)})
		i++
	}
	del, err := cfg.Client.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(cfg.QueueURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("delete handled messages: %w", err)
	}
	if len(del.Failed) > 0 {
		// Undeleted messages come back and are recognised as duplicates.
		cfg.Logger.WarnContext(ctx, "some messages were not deleted", "count", len(del.Failed))
	}
	return nil
}
