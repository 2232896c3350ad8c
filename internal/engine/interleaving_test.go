package engine_test

// Interleavings found by an adversarial review of the second engine, each
// driven by hand with the real store (testenv), the real API and the real
// sweeper, like regression_test.go. Each test failed before its fix; the
// comments describe the defect as it was.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/status"
	"stepflow/internal/sweeper"
)

// TestRetryKeepsALateCommit: POST /runs/{id}/retry resets a step
// whose lease expired to P0 with an UNCONDITIONAL write (store.ResetRun sets
// the slot without "s<i> = :old"). If the step's slow-but-alive runner
// commits it between the API's read and the reset, the reset turns the
// completed step back to pending while its commit record d<i> stays. The
// step then runs again (a completed step re-executed, no crash), and every
// later commit of it fails attribute_not_exists(d<i>) forever: the run never
// ends, and each redelivery/sweep runs the task once more.
func TestRetryKeepsALateCommit(t *testing.T) {
	t.Parallel()
	aStarted, aRelease := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	r := newRig(t, anyRequest, isOp("Query"), 0, func(in engine.TaskInput) error {
		if in.StepID == "a" && first.CompareAndSwap(false, true) {
			close(aStarted)
			<-aRelease // the runner is slow: its lease (duration + margin) runs out
		}
		return nil
	}, func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 300*time.Millisecond, 100*time.Millisecond })
	runID := r.start(`{"name":"late","steps":[{"id":"a","config":{"duration_seconds":0,"max_retries":0}},{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	roots := r.q.take()
	handled := make(chan error)
	go func() { handled <- r.plain.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-aStarted
	r.cancel(runID)
	time.Sleep(400 * time.Millisecond) // a's lease has expired; its runner is still alive

	// The retry reads the run (a running, lease expired: to be reset) ...
	r.apiGate.arm()
	retried := make(chan int)
	go func() { code, _ := r.call(r.gatedAPI, http.MethodPost, "/runs/"+runID+"/retry"); retried <- code }()
	<-r.apiGate.paused
	// ... then a's runner commits a (completed, record d0 written) ...
	close(aRelease)
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	if d := r.get(runID); d.Steps[0].Status != status.StepCompleted {
		t.Fatalf("a's late commit did not land: %s", d.Steps[0].Status)
	}
	// ... and only then does the retry write.
	close(r.apiGate.release)
	if code := <-retried; code != http.StatusAccepted {
		t.Fatalf("retry: %d", code)
	}
	d := r.get(runID)
	t.Logf("after the retry: run %s, a %s, b %s", d.Status, d.Steps[0].Status, d.Steps[1].Status)

	// Redelivery and the sweeper, as in production, a few rounds.
	sw := &sweeper.Sweeper{Store: r.store, Queue: r.q, Grace: 0}
	r.drain()
	for range 3 {
		time.Sleep(400 * time.Millisecond) // leases expire
		if _, err := sw.Sweep(context.Background()); err != nil {
			t.Log(err)
		}
		r.drain()
	}
	d = r.get(runID)
	if n := r.task.executions(runID, "a"); d.Status != status.RunCompleted || n != 1 {
		t.Fatalf("completed step a was reset by the retry: run %s (a %s, b %s); a executed %d times (want run completed, a once)",
			d.Status, d.Steps[0].Status, d.Steps[1].Status, n)
	}
}

// TestClaimedDependentsKeepTheirLeases: a duplicate (or redelivered)
// message for a completed step claims ALL its ready dependents at once
// (runstate.Deliver), each with a lease of duration + margin from the claim,
// but the runner runs at most Parallelism (default 16) of them at a time and
// commits them all together only when the last finishes. The 17th starts
// after its lease has already expired, and the first 16 sit finished but
// uncommitted past theirs, so the messages their parent's commit sent take
// them over: the tasks run twice with no crash.
func TestClaimedDependentsKeepTheirLeases(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 1, nil,
		func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 400*time.Millisecond, 200*time.Millisecond })
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := range 17 {
		steps = append(steps, fmt.Sprintf(`{"id":"c%02d","config":{"duration_seconds":1},"depends_on":["root"]}`, i))
	}
	runID := r.start(`{"name":"fan","steps":[` + strings.Join(steps, ",") + `]}`)
	root := r.q.take()[0]
	// First delivery: root commits, its 17 dependents are enqueued (1 s
	// each does not fit the inline budget).
	if err := r.plain.Handle(context.Background(), engine.Delivery{Message: root}); err != nil {
		t.Fatal(err)
	}
	enqueued := r.q.take()
	if len(enqueued) != 17 {
		t.Fatalf("%d dependents enqueued", len(enqueued))
	}
	// SQS delivers root's message a second time (at-least-once): the runner
	// claims all 17 dependents and runs them 16 at a time.
	dup := make(chan error)
	go func() { dup <- r.plain.Handle(context.Background(), engine.Delivery{Message: root}) }()
	// The dependents' own messages arrive; the last one's step is running
	// (claimed) but its lease (1 s + 0.4 s) ends before its attempt starts.
	time.Sleep(1600 * time.Millisecond)
	var wg sync.WaitGroup
	for _, m := range enqueued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.gated.Handle(context.Background(), engine.Delivery{Message: m})
		}()
	}
	wg.Wait()
	if err := <-dup; err != nil {
		t.Log(err)
	}
	r.drain()
	twice := []string{}
	for i := range 17 {
		id := fmt.Sprintf("c%02d", i)
		if n := r.task.executions(runID, id); n != 1 {
			twice = append(twice, fmt.Sprintf("%s x%d", id, n))
		}
	}
	if len(twice) > 0 {
		t.Fatalf("steps executed more than once without any crash: %v (run %s)", twice, r.get(runID).Status)
	}
}

// TestShortSiblingKeepsItsLease: the API sends a run's root messages
// together, so one SQS batch usually holds them, and the runner claims them
// in one write and commits them in one transaction once ALL have finished.
// A short root's lease (its own duration + margin) ends while it sits
// finished-but-uncommitted waiting for a long sibling; the sweeper sees a
// running step with an expired lease and re-sends it, and another runner
// takes it over and runs it again. No crash, no stall: default parallelism,
// only durations that differ by more than the lease margin.
func TestShortSiblingKeepsItsLease(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 1, nil,
		func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 400*time.Millisecond, 200*time.Millisecond })
	runID := r.start(`{"name":"siblings","steps":[{"id":"short","config":{"duration_seconds":0.1}},{"id":"long","config":{"duration_seconds":1.5}}]}`)
	roots := r.q.take()
	if len(roots) != 2 {
		t.Fatalf("%d roots", len(roots))
	}
	var ev events.SQSEvent
	for i, m := range roots {
		body, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(i), Body: string(body)})
	}
	batch := make(chan error)
	go func() {
		_, err := r.plain.HandleSQS(context.Background(), ev)
		batch <- err
	}()
	time.Sleep(800 * time.Millisecond) // short finished at 0.1 s; its lease ended at 0.5 s
	sw := &sweeper.Sweeper{Store: r.store, Queue: r.q, Grace: time.Minute}
	if _, err := sw.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range r.q.take() { // the sweeper's message for "short"
		if err := r.gated.Handle(context.Background(), engine.Delivery{Message: m}); err != nil {
			t.Log(err)
		}
	}
	if err := <-batch; err != nil {
		t.Fatal(err)
	}
	r.drain()
	d := r.get(runID)
	if n := r.task.executions(runID, "short"); n != 1 {
		t.Fatalf("step short executed %d times without any crash (run %s)", n, d.Status)
	}
}

// TestNoFailedStepInALiveRun: a runner's commit of a failed attempt
// (no retries left) is refused because the run was cancelled; it re-reads
// (cancelled) and, before it rebuilds, the run is retried (the step's lease
// is live, so the retry keeps it running). The rebuilt commit, decided on the
// stale "cancelled" read, swaps the slot to F without ending the run: the run
// is live in the new generation with a failed step, nothing running and
// nothing enqueued. DECISIONS.md says this state cannot exist ("Failing a
// step and failing its run are one transaction, so a retry cannot land
// between them"); only the sweeper's no-progress fallback ends it.
func TestNoFailedStepInALiveRun(t *testing.T) {
	t.Parallel()
	xStarted, xRelease := make(chan struct{}), make(chan struct{})
	r := newRig(t, isOp("BatchGetItem"), anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "x" {
			close(xStarted)
			<-xRelease
			return errors.New("x fails for good")
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"f","steps":[{"id":"x","config":{"duration_seconds":0,"max_retries":0}},{"id":"y","config":{"duration_seconds":0},"depends_on":["x"]}]}`)
	roots := r.q.take()
	handled := make(chan error)
	go func() { handled <- r.gated.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-xStarted
	r.cancel(runID)
	r.gate.arm() // pause the runner after the read that follows its refused commit
	close(xRelease)
	<-r.gate.paused
	r.retry(runID)
	close(r.gate.release)
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	queued := len(r.q.take())
	d := r.get(runID)
	if d.Status != status.RunFailed {
		t.Fatalf("run %s (active) with x %s, y %s and %d messages queued: a live run with a failed step that nothing but the sweeper's fallback will end",
			d.Status, d.Steps[0].Status, d.Steps[1].Status, queued)
	}
}

// TestRedeliveryAfterACrashServesTheRetry: DECISIONS.md ("Worst-case
// recovery time") says a runner that dies after its commit and before its
// sends is recovered by the redelivery of its own message within the
// visibility timeout. When the commit put a failed attempt back to pending
// (P1:due), the redelivered message carries attempt 0, which Deliver drops
// as stale, and nothing re-sends the retry's message: only the sweeper
// (sweep interval + grace) recovers the step.
func TestRedeliveryAfterACrashServesTheRetry(t *testing.T) {
	t.Parallel()
	var crashed atomic.Bool
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "x" && in.Attempt == 0 {
			return errors.New("x's first attempt fails")
		}
		return nil
	}, func(c *engine.Config) {
		c.Crash = func(p engine.CrashPoint, m queue.Message) bool {
			return p == engine.AfterCommit && crashed.CompareAndSwap(false, true)
		}
	})
	runID := r.start(`{"name":"c","steps":[{"id":"x","config":{"duration_seconds":0,"max_retries":2}}]}`)
	roots := r.q.take()
	if err := r.plain.Handle(context.Background(), engine.Delivery{Message: roots[0]}); !errors.Is(err, engine.ErrCrashed) {
		t.Fatalf("first delivery: %v", err)
	}
	// SQS redelivers the same message after its visibility timeout.
	if err := r.plain.Handle(context.Background(), engine.Delivery{Message: roots[0]}); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	// The redelivered message serves the retry (due at once here).
	msgs := r.q.take()
	if d := r.get(runID); d.Status != status.RunCompleted && len(msgs) == 0 {
		t.Fatalf("redelivery of the crashed runner's message neither ran the retry nor sent it: x is %s (retry_count %d) and waits for the sweeper",
			d.Steps[0].Status, d.Steps[0].RetryCount)
	}
}

// TestNoInlineStepStartsAfterCancel: DECISIONS.md says "No step starts
// after a cancel or retry is acknowledged ... a step run in the same
// invocation starts only after a consistent read of the header shows the run
// live". The fence is read once when a wave of inline dependents becomes
// ready, but the wave is then started Parallelism (16) at a time: the 17th
// and later dependents start whenever a slot frees, with no new fence, after
// the cancel has been acknowledged.
func TestNoInlineStepStartsAfterCancel(t *testing.T) {
	t.Parallel()
	firstChild := make(chan struct{})
	var once sync.Once
	r := newRig(t, anyRequest, anyRequest, 1, nil, func(c *engine.Config) {
		c.OnStart = func(_ engine.TaskInput, m queue.Message, _ time.Time) {
			if m.StepIndex > 0 {
				once.Do(func() { close(firstChild) })
			}
		}
	})
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := range 20 {
		steps = append(steps, fmt.Sprintf(`{"id":"c%02d","config":{"duration_seconds":0.5},"depends_on":["root"]}`, i))
	}
	runID := r.start(`{"name":"wave","steps":[` + strings.Join(steps, ",") + `]}`)
	root := r.q.take()[0]
	handled := make(chan error)
	go func() { handled <- r.plain.Handle(context.Background(), engine.Delivery{Message: root}) }()
	<-firstChild // the fence passed; the first 16 dependents are starting
	// Cancel once the whole first wave has started (its tasks recorded:
	// on a loaded machine their goroutines may lag the first), so that
	// any start after the acknowledgement is one of the later waves.
	for deadline := time.Now().Add(10 * time.Second); ; {
		r.task.mu.Lock()
		started := 0
		for i := range 20 {
			if len(r.task.starts[fmt.Sprintf("%s/c%02d", runID, i)]) > 0 {
				started++
			}
		}
		r.task.mu.Unlock()
		if started >= engine.DefaultParallelism {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dependents started, want the first wave of %d", started, engine.DefaultParallelism)
		}
		time.Sleep(time.Millisecond)
	}
	r.cancel(runID)
	acked := time.Now()
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	r.task.mu.Lock()
	defer r.task.mu.Unlock()
	var late []string
	for i := range 20 {
		id := fmt.Sprintf("c%02d", i)
		for _, at := range r.task.starts[runID+"/"+id] {
			if at.After(acked) {
				late = append(late, fmt.Sprintf("%s +%v", id, at.Sub(acked).Round(time.Millisecond)))
			}
		}
	}
	if len(late) > 0 {
		t.Fatalf("steps started after the cancel was acknowledged: %v", late)
	}
}
