package meter

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// sqsChunk is the payload one billed SQS request carries: SQS bills every
// started 64 KB of a request's payload as one request (Amazon SQS pricing).
const sqsChunk = 64 * 1024

// emptyReceive names the receives that returned no message. On AWS, the
// event source mapping's long polls of an idle queue cost a steady number
// of them per hour whatever the load, so they are kept apart.
const emptyReceive = "ReceiveMessage (empty)"

// sqsBilled returns how many requests one SQS call is billed as, and the
// name it is tallied under. A send or a receive is billed one request per
// started 64 KB of the message bodies and attributes it carries, at least
// one; every other call (delete, visibility change, queue administration)
// is one request.
func sqsBilled(op string, params, result any) (int, string) {
	payload := 0
	switch p := params.(type) {
	case *sqs.SendMessageBatchInput:
		for _, e := range p.Entries {
			payload += len(aws.ToString(e.MessageBody)) + attrsSize(e.MessageAttributes)
		}
	case *sqs.SendMessageInput:
		payload = len(aws.ToString(p.MessageBody)) + attrsSize(p.MessageAttributes)
	case *sqs.ReceiveMessageInput:
		out, _ := result.(*sqs.ReceiveMessageOutput)
		if out == nil || len(out.Messages) == 0 {
			return 1, emptyReceive
		}
		for _, msg := range out.Messages {
			payload += len(aws.ToString(msg.Body)) + attrsSize(msg.MessageAttributes)
		}
	}
	return max(1, (payload+sqsChunk-1)/sqsChunk), op
}

func attrsSize(attrs map[string]types.MessageAttributeValue) int {
	n := 0
	for k, v := range attrs {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}
