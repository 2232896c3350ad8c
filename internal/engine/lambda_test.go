package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// TestHandleSQSRecordedBatch feeds a recorded SQS event through the Lambda
// handler: the valid message runs its step, the malformed one is reported
// as a batch item failure (to be retried and, eventually, dead-lettered),
// and the one for an unknown run is acknowledged.
func TestHandleSQSRecordedBatch(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/sqs-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	st := testenv.Store(t)
	sq := testenv.SQS(t)
	url := testenv.Queue(t, sq, queue.Settings{VisibilityTimeout: 5 * time.Second}).URL
	ctx := context.Background()
	// The run the first recorded message names.
	def := workflow.Definition{Name: "one", Steps: []workflow.Step{{ID: "only", Type: "task", DependsOn: []string{}, Config: workflow.Config{MaxRetries: 3}}}}
	wf := wire.Workflow{ID: "wf_01KMZQ4Y8V5W3X2Y1Z0A9B8C70", Name: "one", Definition: def, CreatedAt: time.Now().UTC()}
	if err := st.CreateWorkflowIfAbsent(ctx, wf); err != nil {
		t.Fatal(err)
	}
	plan, err := workflow.NewPlan(def)
	if err != nil {
		t.Fatal(err)
	}
	run := runstate.New("run_01KMZQ4Y8V5W3X2Y1Z0A9B8C7D", wf.ID, wf.Name, "", plan, time.Now())
	if err := st.CreateRunIfAbsent(ctx, run, nil); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Queue: &queue.SQS{Client: sq, URL: url}, Task: engine.Simulated{Rand: func() float64 { return 0.5 }},
		Retry: retry.Default(func() float64 { return 0 })})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := eng.HandleSQS(ctx, ev)
	if err != nil {
		t.Fatalf("HandleSQS failed the whole batch: %v", err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "2e1424d4-f796-459a-8184-9c92662be6da" {
		t.Fatalf("batch item failures = %+v, want only the malformed message", resp.BatchItemFailures)
	}
	d, err := st.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != status.RunCompleted || d.Steps[0].Status != status.StepCompleted {
		t.Fatalf("run %s, step %s", d.Status, d.Steps[0].Status)
	}
	// The same batch again: everything is a duplicate now.
	resp, _ = eng.HandleSQS(ctx, ev)
	if len(resp.BatchItemFailures) != 1 {
		t.Fatalf("replay: failures %+v", resp.BatchItemFailures)
	}
	if d2, _ := st.GetRun(ctx, run.ID); len(d2.Steps[0].Attempts) != 1 {
		t.Fatalf("replayed message ran the step again: %+v", d2.Steps[0].Attempts)
	}
}
