package engine_test

// Holes an adversarial review found in the second engine (issue 16), each
// driven by hand with the real store, the real API and gated or
// answer-losing DynamoDB clients. Each test failed before its fix; the
// comments say what went wrong then.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
)

// handleAsync hands a message to an engine in the background.
func handleAsync(e *engine.Engine, m queue.Message) <-chan error {
	done := make(chan error, 1)
	go func() { done <- e.Handle(context.Background(), engine.Delivery{Message: m}) }()
	return done
}

// TestNoStartAfterCancelWhenTheClaimAnswerWasLost (section 1): the claim
// lands, its answer is lost (the SDK's own retry then fails its condition),
// the user cancels and gets 200, and only then does the runner read the run
// back. It saw its claim in the slot and started the step, although the
// same read showed the run cancelled.
func TestNoStartAfterCancelWhenTheClaimAnswerWasLost(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("UpdateItem"), anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"lost-claim","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	root := r.q.take()[0]
	r.lose.Lose("UpdateItem", 1, testenv.Containing(`SET s0 = `))
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-r.gate.paused // the claim landed; its answer was lost
	r.cancel(runID)
	close(r.gate.release)
	if err := <-done; err != nil && !errors.Is(err, engine.ErrBusy) {
		t.Log(err)
	}
	if lost := r.lose.Lost(); len(lost) != 1 {
		t.Fatalf("answers lost: %v", lost)
	}
	if n := r.task.executions(runID, "a"); n != 0 {
		t.Fatalf("step a started %d times after the cancel was acknowledged", n)
	}
	if d := r.get(runID); d.Status != status.RunCancelled || d.Steps[0].Status != status.StepCancelled {
		t.Fatalf("run %s, a %s; want cancelled, cancelled", d.Status, d.Steps[0].Status)
	}
}

// TestNoOldGenerationStartAfterRetryWhenTheClaimAnswerWasLost (section
// 1): the same lost claim answer, with a cancel and a retry acknowledged
// before the runner reads back. It started the step as an attempt of the
// old generation. It may run the step only in the new one.
func TestNoOldGenerationStartAfterRetryWhenTheClaimAnswerWasLost(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("UpdateItem"), anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"lost-claim-retry","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	root := r.q.take()[0]
	r.lose.Lose("UpdateItem", 1, testenv.Containing(`SET s0 = `))
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-r.gate.paused
	r.cancel(runID)
	if code, d := r.call(r.api, http.MethodPost, "/runs/"+runID+"/retry"); code != http.StatusAccepted || d.Generation != 1 {
		t.Fatalf("retry: %d, generation %d", code, d.Generation)
	}
	close(r.gate.release)
	if err := <-done; err != nil && !errors.Is(err, engine.ErrBusy) {
		t.Log(err)
	}
	r.drain()
	if gens := r.task.generations(runID, "a"); slices.Contains(gens, 0) {
		t.Fatalf("step a ran in generation 0 after the retry to generation 1 was acknowledged (executions in generations %v)", gens)
	}
	if d := r.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("run %s after the retry", d.Status)
	}
}

// retryRacingALateOutcome drives section 2: step x runs under a live lease
// in a run that is then cancelled; a retry reads the run (x running, kept)
// and, before its write lands, x's attempt ends and commits into the ended
// run.
func retryRacingALateOutcome(t *testing.T, xFails bool) {
	xStarted, xRelease := make(chan struct{}), make(chan struct{})
	var attempts atomic.Int32
	r := newRig(t, anyRequest, isOp("Query"), 0, func(in engine.TaskInput) error {
		if in.StepID != "x" {
			return nil
		}
		if attempts.Add(1) == 1 {
			close(xStarted)
			<-xRelease
			if xFails {
				return errors.New("x fails its first attempt")
			}
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"late","steps":[{"id":"x","config":{"duration_seconds":0,"max_retries":0}},{"id":"y","config":{"duration_seconds":0},"depends_on":["x"]}]}`)
	root := r.q.take()[0]
	done := handleAsync(r.plain, root)
	<-xStarted
	r.cancel(runID)
	r.apiGate.arm()
	retried := make(chan int, 1)
	go func() { code, _ := r.call(r.gatedAPI, http.MethodPost, "/runs/"+runID+"/retry"); retried <- code }()
	<-r.apiGate.paused // the retry read x running under a live lease
	close(xRelease)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := status.StepCompleted
	if xFails {
		want = status.StepFailed
	}
	if d := r.get(runID); d.Steps[0].Status != want {
		t.Fatalf("x's late commit did not land: %s", d.Steps[0].Status)
	}
	close(r.apiGate.release)
	if code := <-retried; code != http.StatusAccepted {
		t.Fatalf("retry: %d", code)
	}
	d := r.get(runID)
	if d.Status == status.RunRunning || d.Status == status.RunPending {
		for _, s := range d.Steps {
			if s.Status == status.StepFailed {
				t.Fatalf("the retried run is %s with step %s failed", d.Status, s.StepID)
			}
		}
	}
	// No sweeper: the messages the engine and the API sent must finish it.
	r.drain()
	if d := r.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("run %s after the retry and every message (x %s, y %s); the user was told the retry was accepted",
			d.Status, d.Steps[0].Status, d.Steps[1].Status)
	}
}

// TestRetryRacingALateFailure: x fails for good; its failure landed in the
// ended run and the retry, which kept x without a condition, then made
// the run running with x failed and nothing running, ready or queued.
func TestRetryRacingALateFailure(t *testing.T) {
	t.Parallel()
	retryRacingALateOutcome(t, true)
}

// TestRetryRacingALateSuccess: x completes into the ended run; its runner
// saw the run ended and sent nothing, and the retry read x as running, so
// nobody sent y's message.
func TestRetryRacingALateSuccess(t *testing.T) {
	t.Parallel()
	retryRacingALateOutcome(t, false)
}

// TestSplitCommitLeavesNothingClaimable (section 3): a root and 50
// children all finish in one invocation; more than 40 steps commit in
// several transactions, in plan order. Between them, children in a later
// transaction were pending in storage with their parent completed, and a
// duplicate of the root's message claimed and ran them again.
func TestSplitCommitLeavesNothingClaimable(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("TransactWriteItems"), anyRequest, 0, nil, nil)
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := range 50 {
		steps = append(steps, fmt.Sprintf(`{"id":"c%02d","config":{"duration_seconds":0},"depends_on":["root"]}`, i))
	}
	runID := r.start(`{"name":"split","steps":[` + strings.Join(steps, ",") + `]}`)
	root := r.q.take()[0]
	r.gate.arm()
	done := handleAsync(r.gated, root)
	select {
	case <-r.gate.paused: // the first commit transaction landed
		// SQS delivers the root's message again, to another runner.
		if err := r.plain.Handle(context.Background(), engine.Delivery{Message: root}); err != nil && !errors.Is(err, engine.ErrBusy) {
			t.Log(err)
		}
		close(r.gate.release)
	case err := <-done:
		t.Logf("the runner committed without a transaction: %v", err)
	}
	if err := <-done; err != nil {
		t.Log(err)
	}
	r.drain()
	var twice []string
	for i := range 50 {
		id := fmt.Sprintf("c%02d", i)
		if n := r.task.executions(runID, id); n != 1 {
			twice = append(twice, fmt.Sprintf("%s x%d", id, n))
		}
	}
	if len(twice) > 0 {
		t.Fatalf("steps ran more than once with no crash and no lost lease: %v", twice)
	}
	if d := r.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
}

// TestCrashAfterAnInlineFailureServesItsRetry (section 4): b runs inline
// after a and fails with retries left; the runner dies after the commit
// and before it sends b's retry. The redelivered message of a was
// acknowledged without holding for, or sending, the retry, so the run
// waited for the sweeper.
func TestCrashAfterAnInlineFailureServesItsRetry(t *testing.T) {
	t.Parallel()
	var bFailed, crashed atomic.Bool
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "b" && bFailed.CompareAndSwap(false, true) {
			return errors.New("b fails its first attempt")
		}
		return nil
	}, func(c *engine.Config) {
		// b's retry is due 1 s after its failure.
		c.Retry = retry.Policy{Base: 2 * time.Second, Cap: 2 * time.Second, Rand: func() float64 { return 0.999 }}
		c.Crash = func(p engine.CrashPoint, _ queue.Message) bool {
			return p == engine.AfterCommit && bFailed.Load() && crashed.CompareAndSwap(false, true)
		}
	})
	runID := r.start(`{"name":"inline-fail","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","config":{"duration_seconds":0,"max_retries":2},"depends_on":["a"]}]}`)
	root := r.q.take()[0]
	if err := r.plain.Handle(context.Background(), engine.Delivery{Message: root}); !errors.Is(err, engine.ErrCrashed) {
		t.Fatalf("handle: %v, want the injected crash", err)
	}
	if d := r.get(runID); d.Steps[1].RetryCount != 1 {
		t.Fatalf("b's failed attempt was not committed before the crash: %+v", d.Steps[1])
	}
	// SQS delivers a's message again after its visibility timeout; no
	// sweeper runs.
	if err := r.q.Send(context.Background(), []queue.Message{root}); err != nil {
		t.Fatal(err)
	}
	r.drain()
	if d := r.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("run %s after the redelivery (b %s, retry count %d): the retry waited for the sweeper",
			d.Status, d.Steps[1].Status, d.Steps[1].RetryCount)
	}
}

// TestOutcomeCommitsWithoutWaitingForASlowSibling (section 5): prepare ->
// (slow, fast -> after). The fast step's failed attempt, its retry and its
// dependent waited for the slow sibling: steps claimed together were
// committed together. Here the slow step blocks until the test ends, so a
// runner that waits for it never shows the fast step's outcome.
func TestOutcomeCommitsWithoutWaitingForASlowSibling(t *testing.T) {
	t.Parallel()
	slowRelease := make(chan struct{})
	var fastAttempts atomic.Int32
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		switch in.StepID {
		case "slow":
			<-slowRelease
		case "fast":
			if fastAttempts.Add(1) == 1 {
				return errors.New("fast fails its first attempt")
			}
		}
		return nil
	}, func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 2*time.Minute, time.Minute })
	var once sync.Once
	release := func() { once.Do(func() { close(slowRelease) }) }
	defer release()
	runID := r.start(`{"name":"siblings","steps":[
		{"id":"prepare","config":{"duration_seconds":0}},
		{"id":"slow","config":{"duration_seconds":0},"depends_on":["prepare"]},
		{"id":"fast","config":{"duration_seconds":0,"max_retries":2},"depends_on":["prepare"]},
		{"id":"after","config":{"duration_seconds":0},"depends_on":["fast"]}]}`)
	root := r.q.take()[0]
	done := handleAsync(r.plain, root)

	// The fast step's failure and its retry's schedule are in storage
	// while the slow step still runs.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				d := r.get(runID)
				t.Fatalf("%s never happened while the slow step ran (slow %s, fast %s retry %d, after %s)",
					what, d.Steps[1].Status, d.Steps[2].Status, d.Steps[2].RetryCount, d.Steps[3].Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the fast step's failed attempt was committed", func() bool {
		d := r.get(runID)
		return d.Steps[2].RetryCount == 1 && d.Steps[2].NextAttemptAt != nil
	})
	// Its retry message was sent; another runner serves it once due, and
	// the fast step's dependent runs there too.
	var retryMsg *queue.Message
	waitFor("the fast step's retry was sent", func() bool {
		for _, m := range r.q.take() {
			if m.StepIndex == 2 {
				retryMsg = &m
			}
		}
		return retryMsg != nil
	})
	time.Sleep(retryMsg.Delay)
	other := r.gated // a second runner; its gate is never armed here
	waitFor("the fast step's retry ran elsewhere", func() bool {
		err := other.Handle(context.Background(), engine.Delivery{Message: *retryMsg})
		return err == nil
	})
	waitFor("the fast step's dependent completed", func() bool {
		d := r.get(runID)
		return d.Steps[2].Status == status.StepCompleted && d.Steps[3].Status == status.StepCompleted
	})
	if d := r.get(runID); d.Steps[1].Status != status.StepRunning {
		t.Fatalf("slow is %s while its task still runs", d.Steps[1].Status)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.drain()
	if d := r.get(runID); d.Status != status.RunCompleted || r.task.executions(runID, "slow") != 1 {
		t.Fatalf("run %s, slow ran %d times", d.Status, r.task.executions(runID, "slow"))
	}
}
