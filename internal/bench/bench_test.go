package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchRunsAndAccounts runs a tiny benchmark: every run must complete
// (Run checks runs and orders itself) and the report must account for the
// requests the engine made.
func TestBenchRunsAndAccounts(t *testing.T) {
	rep, err := Run(context.Background(), Config{Diamonds: 3, Orders: 3, Concurrency: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Steps != 24 || rep.StepsPerSecond <= 0 || rep.FloorPerSecond <= 0 || rep.Invocations == 0 {
		t.Fatalf("report = %+v", rep)
	}
	// At least one commit transaction and one claim per run, and a commit
	// record (2 units in a transaction) per step.
	runs := rep.Steps / 4
	if n := rep.Requests.Calls["DynamoDB.TransactWriteItems"]; n < runs {
		t.Fatalf("%d transactions for %d runs", n, runs)
	}
	if n := rep.Requests.Calls["DynamoDB.UpdateItem"]; n < runs {
		t.Fatalf("%d updates for %d runs", n, runs)
	}
	if rep.Requests.WCU < 2*float64(rep.Steps) || rep.Cost() <= 0 {
		t.Fatalf("capacity %.1f WCU for %d steps, cost %.2f", rep.Requests.WCU, rep.Steps, rep.Cost())
	}
	var out strings.Builder
	rep.Print(&out)
	for _, want := range []string{"engine/floor ratio", "hand-off latency", "Step Functions", "SQS.SendMessageBatch"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
