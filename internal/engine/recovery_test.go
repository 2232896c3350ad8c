package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"stepflow/internal/api"
	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// TestCrashPoints makes runners die at each named crash point, at most once
// per message, with probability one half. A crash abandons the message and
// the batch, as a dead Lambda would. Redelivery and the sweeper alone must
// bring every run to completion, with every order effect exactly once and no
// completed step executed again. Work is lost only by a crash while attempts
// of the run were in flight or ended and not committed: then a step runs
// again, at most once per such crash of its run.
func TestCrashPoints(t *testing.T) {
	t.Parallel()
	for i, point := range engine.CrashPoints {
		t.Run(string(point), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			crashed := map[string]bool{}
			runCrashes := map[string]int{}
			var crashes atomic.Int64
			b := setup(t, options{
				scale: 0.001, visibility: time.Second, leaseMargin: time.Second,
				sweepEvery: 500 * time.Millisecond, sweepGrace: 2 * time.Second,
				crash: func(p engine.CrashPoint, m queue.Message) bool {
					if p != point {
						return false
					}
					mu.Lock()
					defer mu.Unlock()
					k := fmt.Sprintf("%s/%d/%d", m.RunID, m.StepIndex, m.Attempt)
					if crashed[k] || rng.IntN(2) == 0 {
						return false
					}
					crashed[k] = true
					runCrashes[m.RunID]++
					crashes.Add(1)
					return true
				},
			})
			type started struct{ run, order string }
			var runs []started
			for n := range 5 {
				r, o := b.startRun(example(t, "order-processing.json"), fmt.Sprintf("%d", n+1))
				runs = append(runs, started{r, o})
				r, _ = b.startRun(example(t, "diamond-workflow.json"), "")
				runs = append(runs, started{r, ""})
			}
			for _, r := range runs {
				d := b.wait(r.run, 90*time.Second)
				if d.Status != status.RunCompleted {
					t.Fatalf("run %s ended %s", r.run, d.Status)
				}
				mu.Lock()
				lost := 0
				if point != engine.AfterReceive {
					// Each crash of the run may lose the attempts that
					// were in flight in its invocation: each outcome is
					// committed as it ends, so attempts run on after a
					// claim, a commit or a send of their siblings.
					lost = runCrashes[r.run]
				}
				mu.Unlock()
				for _, s := range d.Steps {
					n := b.task.executions(r.run, s.StepID)
					if n < 1 || n > 1+lost {
						t.Errorf("step %s of %s executed %d times, want 1 to %d", s.StepID, r.run, n, 1+lost)
					}
					commit, ok := b.committedAt(r.run, s.StepIndex)
					if !ok {
						t.Errorf("step %s of %s: no commit observed", s.StepID, r.run)
						continue
					}
					b.task.mu.Lock()
					starts := b.task.starts[r.run+"/"+s.StepID]
					b.task.mu.Unlock()
					for _, at := range starts {
						if at.After(commit) {
							t.Errorf("step %s of %s executed again after it completed", s.StepID, r.run)
						}
					}
				}
				if r.order != "" {
					o, err := b.store.GetOrder(context.Background(), r.order)
					if err != nil {
						t.Fatal(err)
					}
					checkHistory(t, o, r.run)
				}
			}
			if crashes.Load() == 0 {
				t.Fatal("no crash was injected")
			}
			t.Logf("%d crashes injected at %s", crashes.Load(), point)
		})
	}
}

// TestSweeperStartsRunsNeverEnqueued creates runs whose first steps were
// never enqueued (as if the API died after storing them): only the sweeper
// can start them.
func TestSweeperStartsRunsNeverEnqueued(t *testing.T) {
	t.Parallel()
	b := setup(t, options{scale: 0.001, sweepEvery: 300 * time.Millisecond, sweepGrace: time.Second})
	noStart := httptest.NewServer(api.New(api.Config{Store: b.store}))
	defer noStart.Close()
	var runs []string
	for range 3 {
		nb := &bundle{t: t, url: noStart.URL}
		r, _ := nb.startRun(example(t, "diamond-workflow.json"), "")
		runs = append(runs, r)
	}
	for _, r := range runs {
		if d := b.wait(r, 30*time.Second); d.Status != status.RunCompleted {
			t.Fatalf("run %s ended %s", r, d.Status)
		}
	}
}

// TestPoisonMessageIsRedriven: a message that keeps failing reaches the
// dead-letter queue after maxReceiveCount receives; once the cause is gone,
// redrive brings it back and its run completes. Redriving again is safe.
func TestPoisonMessageIsRedriven(t *testing.T) {
	t.Parallel()
	var poisoned atomic.Bool
	poisoned.Store(true)
	b := setup(t, options{scale: 0.001, visibility: time.Second, maxReceive: 2,
		crash: func(p engine.CrashPoint, m queue.Message) bool { return p == engine.AfterReceive && poisoned.Load() }})
	runID, _ := b.startRun(`{"name":"poison","steps":[{"id":"a","config":{"duration_seconds":0}}]}`, "")
	sq := testenv.SQS(t)
	deadline := time.Now().Add(30 * time.Second)
	for dlqDepth(t, sq, b.queues.DLQURL) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("message never reached the dead-letter queue")
		}
		time.Sleep(200 * time.Millisecond)
	}
	poisoned.Store(false)
	var moved struct {
		Moved int `json:"moved"`
	}
	b.post("/redrive", "", &moved)
	if moved.Moved != 1 {
		t.Fatalf("redrive moved %d, want 1", moved.Moved)
	}
	if d := b.wait(runID, 30*time.Second); d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
	b.post("/redrive", "", &moved)
	if moved.Moved != 0 {
		t.Fatalf("second redrive moved %d", moved.Moved)
	}
}

func dlqDepth(t *testing.T, c *sqs.Client, url string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)], &n)
	return n
}

func (b *bundle) status(method, path string) int {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.url+path, strings.NewReader(""))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (b *bundle) waitStep(runID, stepID string, want status.StepStatus) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := b.store.GetRun(context.Background(), runID)
		if err != nil {
			b.t.Fatal(err)
		}
		if step(d, stepID).Status == want {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("step %s never became %s", stepID, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCancelThenRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, options{scale: 1})
	def := `{"name":"slow","steps":[
	 {"id":"a","config":{"duration_seconds":1}},
	 {"id":"b","config":{"duration_seconds":0},"depends_on":["a"]},
	 {"id":"c","config":{"duration_seconds":0},"depends_on":["b"]}]}`
	runID, _ := b.startRun(def, "")
	if got := b.status("POST", "/runs/"+runID+"/retry"); got != http.StatusConflict {
		t.Fatalf("retry of an active run: %d, want 409", got)
	}
	b.waitStep(runID, "a", status.StepRunning)
	var d wire.RunDetail
	b.post("/runs/"+runID+"/cancel", "", &d)
	// b's fate is known when a's attempt is over (a runner may start a
	// step right after its parent, on a read made before the cancel); c's
	// is known now.
	if d.Status != status.RunCancelled || step(d, "b").Status != status.StepPending || step(d, "c").Status != status.StepCancelled {
		t.Fatalf("after cancel: run %s, b %s, c %s", d.Status, step(d, "b").Status, step(d, "c").Status)
	}
	if got := b.status("POST", "/runs/"+runID+"/cancel"); got != http.StatusConflict {
		t.Fatalf("second cancel: %d, want 409", got)
	}
	// The attempt in flight finishes and commits; nothing after it starts.
	b.waitStep(runID, "a", status.StepCompleted)
	time.Sleep(300 * time.Millisecond)
	if n := b.task.executions(runID, "b"); n != 0 {
		t.Fatalf("b ran %d times after the cancel", n)
	}
	if d, err := b.store.GetRun(context.Background(), runID); err != nil || step(d, "b").Status != status.StepCancelled {
		t.Fatalf("once a's attempt is over, b is %s (%v), want cancelled", step(d, "b").Status, err)
	}
	b.post("/runs/"+runID+"/retry", "", &d)
	// (The runner may finish b and c before the answer is read.)
	if (d.Status != status.RunRunning && d.Status != status.RunCompleted) || d.Retries != 1 || d.RetriedAt == nil || d.Generation != 1 {
		t.Fatalf("after retry: %+v", d.RunSummary)
	}
	if d = b.wait(runID, 30*time.Second); d.Status != status.RunCompleted {
		t.Fatalf("retried run ended %s", d.Status)
	}
	if n := b.task.executions(runID, "a"); n != 1 {
		t.Fatalf("completed step a ran %d times", n)
	}
	for _, c := range []struct{ path string }{{"/runs/" + runID + "/cancel"}, {"/runs/" + runID + "/retry"}} {
		if got := b.status("POST", c.path); got != http.StatusConflict {
			t.Errorf("POST %s on a completed run: %d, want 409", c.path, got)
		}
	}
	if got := b.status("POST", "/runs/run_01KAAAAAAAAAAAAAAAAAAAAAAA/cancel"); got != http.StatusNotFound {
		t.Errorf("cancel unknown run: %d", got)
	}
}

func TestRetryFailedOrderRunKeepsEffectsOnce(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	b := setup(t, options{scale: 0.001, fail: func(in engine.TaskInput) error {
		if in.StepID == "charge" && broken.Load() {
			return fmt.Errorf("card processor down")
		}
		return nil
	}})
	def := strings.Replace(example(t, "order-processing.json"), `"max_retries": 3}, "depends_on": ["validate"]`, `"max_retries": 0}, "depends_on": ["validate"]`, 1)
	runID, orderID := b.startRun(def, "99.90")
	d := b.wait(runID, 30*time.Second)
	if d.Status != status.RunFailed || step(d, "charge").Status != status.StepFailed || step(d, "ship").Status != status.StepSkipped {
		t.Fatalf("run %s, charge %s, ship %s", d.Status, step(d, "charge").Status, step(d, "ship").Status)
	}
	o, _ := b.store.GetOrder(context.Background(), orderID)
	if o.Status != status.OrderValidated {
		t.Fatalf("order %s after the failure, want validated", o.Status)
	}
	broken.Store(false)
	b.post("/runs/"+runID+"/retry", "", &d)
	d = b.wait(runID, 30*time.Second)
	if d.Status != status.RunCompleted || d.Retries != 1 {
		t.Fatalf("retried run: %+v", d.RunSummary)
	}
	if c := step(d, "charge"); c.RetryCount != 0 || len(c.Attempts) != 2 || c.Attempts[0].Error == "" || c.Attempts[1].Error != "" {
		t.Fatalf("charge after retry: %+v", c)
	}
	o, _ = b.store.GetOrder(context.Background(), orderID)
	checkHistory(t, o, runID)
	if n := b.task.executions(runID, "validate"); n != 1 {
		t.Fatalf("validate ran %d times", n)
	}
}
