package engine_test

// An adversarial review of the third pass found these interleavings, each
// driven by hand with the real store, API and engine. Each test failed
// before its fix; the comments describe the defect as it was.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/status"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"

	"github.com/aws/aws-lambda-go/events"
)

// waitUntil polls ok for up to 10 s.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttackInlineStepLeftPendingByFailingCommit: a -> (x, z). The runner
// runs a, then starts x and z inline (held by their pending slots, a not
// committed yet). x fails with no retries left before a's commit window
// ends, so one transaction commits a (completed), fails x and the run, and
// (BuildCommits skips inline claims when the commit fails the run) leaves
// z as P0 while z's task is still running. The user retries the failed
// run: z is P0 with its parent completed, so the API enqueues it and a
// second runner claims and runs z while the first attempt still runs. No
// crash, no lost lease, no lost answer: z's task runs twice.
func TestAttackInlineStepLeftPendingByFailingCommit(t *testing.T) {
	t.Parallel()
	zStarted, zRelease := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var zMu sync.Mutex
	zRuns := 0
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		switch in.StepID {
		case "x":
			if in.Generation == 0 {
				return errors.New("x fails for good")
			}
		case "z":
			zMu.Lock()
			zRuns++
			first := zRuns == 1
			zMu.Unlock()
			if first {
				once.Do(func() { close(zStarted) })
				<-zRelease
			}
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"inline-fail-run","steps":[
		{"id":"a","config":{"duration_seconds":0}},
		{"id":"x","config":{"duration_seconds":0,"max_retries":0},"depends_on":["a"]},
		{"id":"z","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	root := r.q.take()[0]
	done := handleAsync(r.plain, root)
	<-zStarted
	// The commit of a and x (failing the run) lands while z runs.
	waitUntil(t, "the run to fail", func() bool { return r.get(runID).Status == status.RunFailed })
	d := r.get(runID)
	t.Logf("after the failing commit: run %s; a %s, x %s, z %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	r.retry(runID)
	// Another runner serves what the retry enqueued.
	for _, m := range r.q.take() {
		if err := r.gated.Handle(context.Background(), engine.Delivery{Message: m}); err != nil && !errors.Is(err, engine.ErrBusy) {
			t.Log(err)
		}
	}
	close(zRelease)
	if err := <-done; err != nil {
		t.Log(err)
	}
	r.drain()
	d = r.get(runID)
	t.Logf("end: run %s; a %s, x %s, z %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	if n := r.task.executions(runID, "z"); n != 1 {
		t.Fatalf("z's task ran %d times with no crash, no lost lease and no lost answer (generations %v)", n, r.task.generations(runID, "z"))
	}
}

// TestAttackInlineStepLeftPendingAfterCancelFence: a -> (y, z), y -> w.
// The runner runs a, then y and z inline (a not committed yet). The user
// cancels (200). y ends; before starting w the runner fences and sees the
// run cancelled, so it commits a and y as a commit on an ended run
// (SameGen), which claims nothing (BuildCommits: "if !ended && !failed"):
// z, still running, is left P0 with its parent completed. The user
// retries; the API enqueues z and a second runner runs it while the first
// attempt still runs.
func TestAttackInlineStepLeftPendingAfterCancelFence(t *testing.T) {
	t.Parallel()
	yStarted, yRelease := make(chan struct{}), make(chan struct{})
	zStarted, zRelease := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	runs := map[string]int{}
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		mu.Lock()
		runs[in.StepID]++
		n := runs[in.StepID]
		mu.Unlock()
		switch {
		case in.StepID == "y" && n == 1:
			close(yStarted)
			<-yRelease
		case in.StepID == "z" && n == 1:
			close(zStarted)
			<-zRelease
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"inline-cancel-fence","steps":[
		{"id":"a","config":{"duration_seconds":0}},
		{"id":"y","config":{"duration_seconds":0},"depends_on":["a"]},
		{"id":"z","config":{"duration_seconds":0},"depends_on":["a"]},
		{"id":"w","config":{"duration_seconds":0},"depends_on":["y"]}]}`)
	root := r.q.take()[0]
	done := handleAsync(r.plain, root)
	<-yStarted
	<-zStarted
	r.cancel(runID)
	close(yRelease)
	waitUntil(t, "a and y committed", func() bool {
		d := r.get(runID)
		return d.Steps[0].Status == status.StepCompleted && d.Steps[1].Status == status.StepCompleted
	})
	d := r.get(runID)
	t.Logf("after the commit: run %s; a %s, y %s, z %s, w %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status, d.Steps[3].Status)
	r.retry(runID)
	for _, m := range r.q.take() {
		if err := r.gated.Handle(context.Background(), engine.Delivery{Message: m}); err != nil && !errors.Is(err, engine.ErrBusy) {
			t.Log(err)
		}
	}
	close(zRelease)
	if err := <-done; err != nil {
		t.Log(err)
	}
	r.drain()
	d = r.get(runID)
	t.Logf("end: run %s; a %s, y %s, z %s, w %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status, d.Steps[3].Status)
	if n := r.task.executions(runID, "z"); n != 1 {
		t.Fatalf("z's task ran %d times with no crash, no lost lease and no lost answer (generations %v)", n, r.task.generations(runID, "z"))
	}
}

// TestAttackLostCommitAnswerThenRetryTakenAsConflict: roots x, y; y -> z.
// One invocation claims x and y; x fails with a retry left, y succeeds
// and z starts inline. The commit (x -> P1:due, y -> C, z claimed
// R(inline)) lands and its answer is lost. Before the runner reads it back
// the user cancels and retries: the retry resets x to P0, keeps y and
// keeps z (running under a live lease; "its result counts in the new
// generation"). The read-back checks only the first slot (x): it is P0,
// not P1, so CommitIfHeld reports the runner's own landed commit as
// ErrConflict. The runner rebuilds on the new generation and drops z's
// outcome (it holds z by P0, storage says R(inline)). z's lease then
// expires and z runs a second time.
func TestAttackLostCommitAnswerThenRetryTakenAsConflict(t *testing.T) {
	t.Parallel()
	lostCommitThenRetry(t, true)
}

// TestControlCommitThenRetryNoLoss is the same schedule with the answer
// delivered: z runs once (it passes), so the loss alone causes the rerun.
func TestControlCommitThenRetryNoLoss(t *testing.T) {
	t.Parallel()
	lostCommitThenRetry(t, false)
}

func lostCommitThenRetry(t *testing.T, lose bool) {
	zStarted, zRelease := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	runs := map[string]int{}
	r := newRig(t, isOp("TransactWriteItems"), anyRequest, 0, func(in engine.TaskInput) error {
		mu.Lock()
		runs[in.StepID]++
		n := runs[in.StepID]
		mu.Unlock()
		switch {
		case in.StepID == "x" && in.Generation == 0:
			return errors.New("x fails, one retry left")
		case in.StepID == "z" && n == 1:
			close(zStarted)
			<-zRelease
		}
		return nil
	}, func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 600*time.Millisecond, 300*time.Millisecond })
	runID := r.start(`{"name":"lost-commit-retry","steps":[
		{"id":"x","config":{"duration_seconds":0,"max_retries":1}},
		{"id":"y","config":{"duration_seconds":0}},
		{"id":"z","config":{"duration_seconds":0},"depends_on":["y"]}]}`)
	roots := r.q.take()
	if len(roots) != 2 {
		t.Fatalf("roots: %v", roots)
	}
	var ev events.SQSEvent
	for i, m := range roots {
		b, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint(i), Body: string(b)})
	}
	if lose {
		// Every answer of the commit request is lost: on kumo the SDK's
		// retry fails its condition; on DynamoDB (Local), which honours the
		// ClientRequestToken, each retry "succeeds" and its answer is lost
		// too, until the SDK gives up (3 attempts).
		r.lose.Lose("TransactWriteItems", 3, nil)
	}
	r.gate.arm()
	done := make(chan error, 1)
	go func() { _, err := r.gated.HandleSQS(context.Background(), ev); done <- err }()
	<-zStarted
	<-r.gate.paused // the commit landed; its answer was lost (and the SDK's retry failed its condition)
	d := r.get(runID)
	t.Logf("commit landed: x %s (retry %d), y %s, z %s", d.Steps[0].Status, d.Steps[0].RetryCount, d.Steps[1].Status, d.Steps[2].Status)
	r.cancel(runID)
	r.retry(runID)
	d = r.get(runID)
	t.Logf("after cancel+retry: gen %d, x %s, y %s, z %s", d.Generation, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	close(r.gate.release)
	time.Sleep(200 * time.Millisecond)
	close(zRelease)
	if err := <-done; err != nil {
		t.Log(err)
	}
	if lost := r.lose.Lost(); lose && len(lost) == 0 {
		t.Fatalf("lost: %v", lost)
	}
	d = r.get(runID)
	t.Logf("after z's first attempt ended: x %s, y %s, z %s", d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	// The runner is gone; z's lease expires; the sweeper and redelivery
	// take over.
	time.Sleep(700 * time.Millisecond)
	sw := &sweeper.Sweeper{Store: r.store, Queue: r.q, Grace: 0}
	for range 5 {
		if _, err := sw.Sweep(context.Background()); err != nil {
			t.Log(err)
		}
		r.drain()
	}
	d = r.get(runID)
	t.Logf("end: run %s; x %s, y %s, z %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	if n := r.task.executions(runID, "z"); n != 1 {
		t.Fatalf("z's task ran %d times (generations %v): the runner took its own landed commit for a conflict and dropped z's outcome",
			n, r.task.generations(runID, "z"))
	}
}

// TestAttackLostCancelAnswerUndoesALaterRetry: client A cancels; its
// UpdateItem lands and its answer is lost (the SDK's retry fails its
// condition). Before A's API reads the header back, client B retries the
// (cancelled) run and gets 202, generation 1. The read-back finds B's
// token in "tok", not A's, so EndRunIfRunning reports A's own landed
// cancel as ErrConflict; adminRun reads again, finds the run running in
// generation 1 and cancels that generation too. B's acknowledged retry is
// undone by a cancel that was sent, and landed, before it.
func TestAttackLostCancelAnswerUndoesALaterRetry(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := newRig(t, anyRequest, isOp("UpdateItem"), 0, func(in engine.TaskInput) error {
		<-release
		return nil
	}, nil)
	defer close(release)
	runID := r.start(`{"name":"lost-cancel","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	r.q.take()
	r.apiLose.Lose("UpdateItem", 1, testenv.Containing(":end"))
	r.apiGate.arm()
	cancelled := make(chan wire.RunDetail, 1)
	var cancelCode int
	go func() {
		code, d := r.call(r.gatedAPI, http.MethodPost, "/runs/"+runID+"/cancel")
		cancelCode = code
		cancelled <- d
	}()
	<-r.apiGate.paused // A's cancel landed; its answer was lost
	if d := r.get(runID); d.Status != status.RunCancelled {
		t.Fatalf("A's cancel did not land: %s", d.Status)
	}
	code, d := r.call(r.api, http.MethodPost, "/runs/"+runID+"/retry")
	if code != http.StatusAccepted || d.Generation != 1 {
		t.Fatalf("B's retry: %d gen %d", code, d.Generation)
	}
	t.Logf("B's retry acknowledged: %d, run %s, generation %d", code, d.Status, d.Generation)
	close(r.apiGate.release)
	ad := <-cancelled
	t.Logf("A's cancel answered %d: run %s, generation %d; answers lost: %v", cancelCode, ad.Status, ad.Generation, r.apiLose.Lost())
	if d := r.get(runID); d.Status == status.RunCancelled && d.Generation == 1 {
		t.Fatalf("B's acknowledged retry (generation 1) was cancelled by A's cancel, which had already landed in generation 0: its own write was taken for someone else's")
	}
}

// TestAttackLostRetryAnswerUndoesALaterCancel: the mirror image. A's
// retry lands (generation 1) and its answer is lost; B cancels generation
// 1 (200); A's read-back sees B's token and A retries again (generation
// 2), undoing B's acknowledged cancel.
func TestAttackLostRetryAnswerUndoesALaterCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := newRig(t, anyRequest, isOp("UpdateItem"), 0, func(in engine.TaskInput) error {
		<-release
		return nil
	}, nil)
	defer close(release)
	runID := r.start(`{"name":"lost-retry","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	r.q.take()
	r.cancel(runID)
	r.apiLose.Lose("UpdateItem", 1, testenv.Containing(":g1"))
	r.apiGate.arm()
	retried := make(chan wire.RunDetail, 1)
	var retryCode int
	go func() {
		code, d := r.call(r.gatedAPI, http.MethodPost, "/runs/"+runID+"/retry")
		retryCode = code
		retried <- d
	}()
	<-r.apiGate.paused
	if d := r.get(runID); d.Generation != 1 || d.Status == status.RunCancelled {
		t.Fatalf("A's retry did not land: %s gen %d", d.Status, d.Generation)
	}
	code, d := r.call(r.api, http.MethodPost, "/runs/"+runID+"/cancel")
	if code != http.StatusOK {
		t.Fatalf("B's cancel: %d", code)
	}
	t.Logf("B's cancel acknowledged: run %s, generation %d", d.Status, d.Generation)
	close(r.apiGate.release)
	ad := <-retried
	t.Logf("A's retry answered %d: run %s, generation %d; answers lost: %v", retryCode, ad.Status, ad.Generation, r.apiLose.Lost())
	if d := r.get(runID); d.Generation > 1 {
		t.Fatalf("run %s in generation %d: A's retry was applied twice, undoing B's acknowledged cancel of generation 1", d.Status, d.Generation)
	}
}

// TestCancelBetweenFenceAndStart: a's runner reads the fence (live), and
// the cancel lands and is acknowledged before the runner starts b, a's
// dependent run in the same invocation. The start was decided on a read
// made before the cancel landed; the cancel's answer used to report b
// cancelled, and b then ran and completed. A read fence cannot stop that
// start (a write per inline start would, at a write unit each): the answer
// now reports b pending while a's attempt is in flight, and b runs once and
// commits into the cancelled run, which stays cancelled.
func TestCancelBetweenFenceAndStart(t *testing.T) {
	t.Parallel()
	var r *rig
	r = newRig(t, isOp("GetItem"), anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "a" {
			r.gate.arm() // the plan is cached by now: the next GetItem is the fence
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"fence-gap","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	root := r.q.take()[0]
	done := handleAsync(r.gated, root)
	<-r.gate.paused // the fence read returned: live, generation 0
	code, d := r.call(r.api, http.MethodPost, "/runs/"+runID+"/cancel")
	if code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if d.Status != status.RunCancelled || d.Steps[1].Status != status.StepPending {
		t.Fatalf("the cancel's answer: run %s, b %s; want cancelled, and b pending while a's attempt is in flight", d.Status, d.Steps[1].Status)
	}
	close(r.gate.release)
	if err := <-done; err != nil {
		t.Log(err)
	}
	r.drain()
	after := r.get(runID)
	if n := r.task.executions(runID, "b"); n != 1 || after.Status != status.RunCancelled || after.Steps[1].Status != status.StepCompleted {
		t.Fatalf("b ran %d times; run %s, b %s; want once, cancelled, completed", n, after.Status, after.Steps[1].Status)
	}
}

// TestAttackLostRetryAnswerWithFailedReadBackIs409: the retry's write
// lands and its answer is lost; the read-back of the header (GetItem)
// fails too (three lost answers). runLevelWrite returns the write's
// ErrConflict (the SDK's own retry failed its condition) instead of "not
// known", adminRun reads the run again, finds it running and answers 409
// "only failed or cancelled runs can be retried". The retry did land
// (generation 1, running), and because the API answered an error it never
// enqueued the ready steps: nothing but the sweeper will ever run them.
func TestAttackLostRetryAnswerWithFailedReadBackIs409(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, isOp("UpdateItem"), 0, func(in engine.TaskInput) error {
		if in.Generation == 0 {
			return errors.New("a fails for good")
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"lost-retry-readback","steps":[{"id":"a","config":{"duration_seconds":0,"max_retries":0}}]}`)
	r.drain()
	if d := r.get(runID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	r.apiLose.Lose("UpdateItem", 1, testenv.Containing(":g1"))
	r.apiGate.arm()
	type answer struct {
		code int
		d    wire.RunDetail
	}
	res := make(chan answer, 1)
	go func() {
		code, d := r.call(r.gatedAPI, http.MethodPost, "/runs/"+runID+"/retry")
		res <- answer{code, d}
	}()
	<-r.apiGate.paused                // the retry landed; its answer was lost
	r.apiLose.Lose("GetItem", 3, nil) // and so is the read-back's
	close(r.apiGate.release)
	a := <-res
	d := r.get(runID)
	sent := r.q.take()
	t.Logf("retry answered %d; run now %s in generation %d; messages enqueued: %d; answers lost: %v", a.code, d.Status, d.Generation, len(sent), r.apiLose.Lost())
	if d.Generation == 1 && a.code != http.StatusAccepted {
		t.Fatalf("the retry landed (run %s, generation 1) but the API answered %d and enqueued %d messages: its own write was taken for a conflict",
			d.Status, a.code, len(sent))
	}
}

// TestAttackLostClaimAnswerWithFailedReadBackStrandsTheStep: the claim
// lands and its answer is lost; the read-back (BatchGetItem) fails too.
// ClaimIfLive joins the read error to the write's ErrConflict, so the
// runner takes its own landed claim for a lost race: it reads again,
// drops the step (running under a live lease: not claimable) and reports
// the message done. The step is left running in storage with nobody
// running it, and its message deleted: it waits for its lease (duration +
// 30 s margin) to expire and for the sweeper.
func TestAttackLostClaimAnswerWithFailedReadBackStrandsTheStep(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("UpdateItem"), anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"lost-claim-readback","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	root := r.q.take()[0]
	r.lose.Lose("UpdateItem", 1, testenv.Containing("SET s0 = "))
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-r.gate.paused                     // the claim landed; its answer was lost
	r.lose.Lose("BatchGetItem", 3, nil) // and so are the read-back's
	close(r.gate.release)
	err := <-done
	d := r.get(runID)
	t.Logf("handle returned %v; run %s, a %s; executions %d; sent %d; lost %v", err, d.Status, d.Steps[0].Status, r.task.executions(runID, "a"), len(r.q.take()), r.lose.Lost())
	if err == nil && d.Steps[0].Status == status.StepRunning && r.task.executions(runID, "a") == 0 {
		t.Fatalf("the runner took its own landed claim for a lost race: a is running in storage, nobody runs it, and its message was reported done")
	}
}

// TestAttackReleasedClaimCarriesAttemptsIntoTheRetriedRun: a's first
// attempt failed (slot P1, one retry left). Its retry message is claimed
// (P1 -> R1:mine), the claim's answer is lost, the user cancels and
// retries (the retry keeps R1, whose lease is live), and the read-back
// finds the run in generation 1: ErrRunMoved, and the runner "gives the
// slot back" to the state before its claim, P1 of generation 0. The
// retried run thus starts with a's retry already used: one failure in
// generation 1 fails the run, although a retry resets "every failed and
// pending step to pending with no attempts".
func TestAttackReleasedClaimCarriesAttemptsIntoTheRetriedRun(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	attempts := map[int]int{}
	r := newRig(t, isOp("UpdateItem"), anyRequest, 0, func(in engine.TaskInput) error {
		mu.Lock()
		attempts[in.Generation]++
		mu.Unlock()
		return errors.New("a fails")
	}, nil)
	runID := r.start(`{"name":"carry","steps":[{"id":"a","config":{"duration_seconds":0,"max_retries":1}}]}`)
	root := r.q.take()[0]
	if err := r.plain.Handle(context.Background(), engine.Delivery{Message: root}); err != nil {
		t.Fatal(err)
	}
	if d := r.get(runID); d.Steps[0].RetryCount != 1 {
		t.Fatalf("a: %+v", d.Steps[0])
	}
	retryMsg := r.q.take()[0]
	r.lose.Lose("UpdateItem", 1, testenv.Containing("SET s0 = "))
	r.gate.arm()
	done := handleAsync(r.gated, retryMsg)
	<-r.gate.paused
	r.cancel(runID)
	r.retry(runID)
	close(r.gate.release)
	<-done
	d := r.get(runID)
	t.Logf("after the release: run %s gen %d, a %s retry_count %d", d.Status, d.Generation, d.Steps[0].Status, d.Steps[0].RetryCount)
	r.drain()
	d = r.get(runID)
	mu.Lock()
	n := attempts[1]
	mu.Unlock()
	if d.Generation == 1 && n < 2 {
		t.Fatalf("run %s after %d attempt(s) of a in generation 1 (max_retries 1 allows 2): the release wrote generation 0's attempt count into generation 1", d.Status, n)
	}
}

// TestAttackLostCommitAnswerWithFailedReadBackDropsInlineStep: y -> z.
// y runs, z starts inline; the commit (y -> C, z claimed R(inline)) lands
// and every answer is lost, and so are the answers of the read-back
// (BatchGetItem). CommitIfHeld then returns the write's own error, which
// the runner treats as a refusal (ErrConflict on kumo; on DynamoDB Local
// the SDK's error after 3 attempts also leads to the read-back). It reads
// again and rebuilds: y is dropped (storage C, held R), and when z ends it
// is dropped too (storage R(inline), held P0). z's lease expires and z
// runs a second time. No user action, no crash: only lost answers.
func TestAttackLostCommitAnswerWithFailedReadBackDropsInlineStep(t *testing.T) {
	t.Parallel()
	zStarted, zRelease := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	runs := map[string]int{}
	r := newRig(t, isOp("TransactWriteItems"), anyRequest, 0, func(in engine.TaskInput) error {
		mu.Lock()
		runs[in.StepID]++
		n := runs[in.StepID]
		mu.Unlock()
		if in.StepID == "z" && n == 1 {
			close(zStarted)
			<-zRelease
		}
		return nil
	}, func(c *engine.Config) { c.LeaseMargin, c.InlineBudget = 600*time.Millisecond, 300*time.Millisecond })
	runID := r.start(`{"name":"lost-commit-readback","steps":[
		{"id":"y","config":{"duration_seconds":0}},
		{"id":"z","config":{"duration_seconds":0},"depends_on":["y"]}]}`)
	root := r.q.take()[0]
	r.lose.Lose("TransactWriteItems", 3, nil)
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-zStarted
	<-r.gate.paused
	r.lose.Lose("BatchGetItem", 3, nil)
	close(r.gate.release)
	time.Sleep(100 * time.Millisecond)
	close(zRelease)
	if err := <-done; err != nil {
		t.Log(err)
	}
	d := r.get(runID)
	t.Logf("after the runner: y %s, z %s; lost %v", d.Steps[0].Status, d.Steps[1].Status, r.lose.Lost())
	time.Sleep(700 * time.Millisecond)
	sw := &sweeper.Sweeper{Store: r.store, Queue: r.q, Grace: 0}
	for range 3 {
		if _, err := sw.Sweep(context.Background()); err != nil {
			t.Log(err)
		}
		r.drain()
	}
	d = r.get(runID)
	if n := r.task.executions(runID, "z"); n != 1 {
		t.Fatalf("run %s; z's task ran %d times: the runner took its own landed commit for a refusal and dropped z's outcome", d.Status, n)
	}
}

var _ = queue.Message{}
