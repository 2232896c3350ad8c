package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/engine"
	"stepflow/internal/status"
	"stepflow/internal/wire"
)

// These tests replay, one by one, the failures the first design had when
// a write was decided on a read taken before a cancel or retry. Each pauses
// a runner between its read and its writes (a gate on its DynamoDB client)
// while the test acts through the API.

// TestStaleRetryMessageAroundARunRetry (first design, failure 1, case A):
// step x fails for good while its sibling y is running, so the run fails;
// then y's attempt fails too and waits for its retry. y's delayed message is
// read while the run is failed, the run is retried, and only then does the
// runner act on its read. The first design settled y as skipped in the
// retried run, which then never ended. Now a runner that read an ended run
// writes nothing, and the retried run completes.
func TestStaleRetryMessageAroundARunRetry(t *testing.T) {
	t.Parallel()
	var retried sync.Map
	yRuns, xFailed := make(chan struct{}), make(chan struct{})
	s := newRig(t, anyRequest, writeRequest, 0, func(in engine.TaskInput) error {
		_, again := retried.Load(in.RunID)
		switch {
		case again:
			return nil
		case in.StepID == "x":
			return errors.New("x fails for good")
		case in.Attempt == 0:
			close(yRuns)
			<-xFailed
			return errors.New("y's first attempt fails after x")
		}
		return nil
	}, nil)
	runID := s.start(`{"name":"a","steps":[{"id":"y","config":{"duration_seconds":0,"max_retries":2}},{"id":"x","config":{"duration_seconds":0,"max_retries":0}},{"id":"after","config":{"duration_seconds":0},"depends_on":["x","y"]}]}`)
	roots := s.q.take()
	yDone := make(chan error)
	go func() { yDone <- s.plain.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-yRuns
	if err := s.plain.Handle(context.Background(), engine.Delivery{Message: roots[1]}); err != nil {
		t.Fatal(err)
	}
	close(xFailed)
	if err := <-yDone; err != nil {
		t.Fatal(err)
	}
	delayed := s.q.take()
	if d := s.get(runID); d.Status != status.RunFailed || len(delayed) != 1 || d.Steps[0].RetryCount != 1 {
		t.Fatalf("run %s, y %+v, %d retry messages", d.Status, d.Steps[0], len(delayed))
	}
	// y's retry message is read before the run retry lands and acted on
	// after it.
	time.Sleep(delayed[0].Delay)
	s.gate.arm()
	done := make(chan error)
	go func() { done <- s.gated.Handle(context.Background(), engine.Delivery{Message: delayed[0]}) }()
	<-s.gate.paused
	retried.Store(runID, true)
	if code, _ := s.call(s.gatedAPI, http.MethodPost, "/runs/"+runID+"/retry"); code != http.StatusAccepted {
		t.Fatalf("retry: %d", code)
	}
	close(s.gate.release)
	if err := <-done; err != nil && !errors.Is(err, engine.ErrBusy) {
		t.Fatal(err)
	}
	s.drain()
	if d := s.get(runID); d.Status != status.RunCompleted {
		t.Fatalf("retried run: %s, steps %s %s %s", d.Status, d.Steps[0].Status, d.Steps[1].Status, d.Steps[2].Status)
	}
}

// TestNoStartAfterCancel (first design, failure 4): a runner reads a live
// run; the cancel then changes the run; only then does the runner try to
// take a step, and the cancel answers after that. The first design's lease
// write did not look at the run, so the step ran in a cancelled run (the
// cancel's per-step loop came too late to stop it). Now the claim fails.
func TestNoStartAfterCancel(t *testing.T) {
	t.Parallel()
	s := newRig(t, anyRequest, writeRequest, 0, nil, nil)
	runID := s.start(`{"name":"c","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	roots := s.q.take()
	s.gate.arm()
	runnerDone := make(chan error)
	go func() { runnerDone <- s.gated.Handle(context.Background(), engine.Delivery{Message: roots[0]}) }()
	<-s.gate.paused
	s.apiGate.arm()
	type answer struct {
		code int
		d    wire.RunDetail
	}
	cancelled := make(chan answer)
	go func() {
		code, d := s.call(s.gatedAPI, http.MethodPost, "/runs/"+runID+"/cancel")
		cancelled <- answer{code, d}
	}()
	<-s.apiGate.paused // the cancel's first write landed
	close(s.gate.release)
	if err := <-runnerDone; err != nil {
		t.Fatal(err)
	}
	close(s.apiGate.release)
	if a := <-cancelled; a.code != http.StatusOK || a.d.Status != status.RunCancelled {
		t.Fatalf("cancel: %d %s", a.code, a.d.Status)
	}
	if n := s.task.executions(runID, "a"); n != 0 {
		t.Fatalf("step a ran %d times in a cancelled run", n)
	}
	d := s.get(runID)
	if d.Status != status.RunCancelled || d.Steps[0].Status != status.StepCancelled || d.Steps[1].Status != status.StepCancelled {
		t.Fatalf("after the late claim: run %s, steps %s %s", d.Status, d.Steps[0].Status, d.Steps[1].Status)
	}
}

// TestRetryOfAHundredStepRunFailedAtItsRoot (first design, failure 5):
// resetting a 100-step run that failed at its root took 101 transaction
// items, so the retry answered 422. Now any run of up to 100 steps resets
// in one write.
func TestRetryOfAHundredStepRunFailedAtItsRoot(t *testing.T) {
	t.Parallel()
	var broken sync.Map
	s := newRig(t, anyRequest, writeRequest, 0, func(in engine.TaskInput) error {
		if _, ok := broken.Load(in.RunID); ok && in.StepID == "root" {
			return errors.New("root fails")
		}
		return nil
	}, nil)
	steps := []string{`{"id":"root","config":{"duration_seconds":0,"max_retries":0}}`}
	for i := range 99 {
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","config":{"duration_seconds":0},"depends_on":["root"]}`, i))
	}
	def := `{"name":"wide","steps":[` + strings.Join(steps, ",") + `]}`
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/workflows", strings.NewReader(def))
	req.Header.Set("Content-Type", "application/json")
	s.api.ServeHTTP(rec, req)
	var wf struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &wf)
	_, d := s.call(s.gatedAPI, http.MethodPost, "/workflows/"+wf.ID+"/runs")
	broken.Store(d.ID, true)
	s.drain()
	if d = s.get(d.ID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	broken.Delete(d.ID)
	code, after := s.call(s.gatedAPI, http.MethodPost, "/runs/"+d.ID+"/retry")
	if code != http.StatusAccepted || after.Status != status.RunRunning {
		t.Fatalf("retry of a 100-step run: %d %s", code, after.Status)
	}
	s.drain()
	if d = s.get(d.ID); d.Status != status.RunCompleted || d.StepsCompleted != 100 {
		t.Fatalf("retried run: %s with %d steps completed", d.Status, d.StepsCompleted)
	}
}
