package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/status"
	"stepflow/internal/testenv"
)

// TestAttackMultiItemClaimLostAnswerStartsAfterCancel: a claim of steps 9
// (header) and 10 (chunk 1) is one TransactWriteItems, whose
// ClientRequestToken the SDK fills in once for all its attempts. The
// claim lands and its answer is lost; the user cancels (200) before the
// SDK's own retry. On DynamoDB (and DynamoDB Local), the retry with the
// same token "returns successfully without making any changes", so
// ClaimIfLive returns nil without reading back and both steps start after
// the cancel was acknowledged. (A single-item claim, an UpdateItem with no
// token, is read back and released; kumo ignores the token, so this test
// passes on kumo and fails on DynamoDB Local.)
func TestAttackMultiItemClaimLostAnswerStartsAfterCancel(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
	var steps []string
	for i := range 11 {
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","config":{"duration_seconds":0}}`, i))
	}
	runID := r.start(`{"name":"wide","steps":[` + strings.Join(steps, ",") + `]}`)
	var ev events.SQSEvent
	for _, m := range r.q.take() {
		if m.StepIndex == 9 || m.StepIndex == 10 {
			b, _ := json.Marshal(m)
			ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(m.StepIndex), Body: string(b)})
		}
	}
	landed, release := r.lose.Hold("TransactWriteItems", testenv.Containing("attribute_exists(#live)"))
	defer release()
	done := make(chan error, 1)
	go func() { _, err := r.gated.HandleSQS(context.Background(), ev); done <- err }()
	select {
	case <-landed:
	case err := <-done:
		t.Fatalf("the runner finished without a claim transaction: %v", err)
	}
	r.cancel(runID)
	release()
	if err := <-done; err != nil {
		t.Log(err)
	}
	for _, id := range []string{"s9", "s10"} {
		if n := r.task.executions(runID, id); n != 0 {
			t.Fatalf("step %s started %d times after the cancel was acknowledged (endpoint %s)", id, n, testenv.Endpoint(t))
		}
	}
	if d := r.get(runID); d.Status != status.RunCancelled {
		t.Fatalf("run %s", d.Status)
	}
}
