package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// ErrNotLive: the run has ended, so it cannot be cancelled.
var ErrNotLive = errors.New("run is not live")

// ErrNotRetryable: only a failed or cancelled run can be retried.
var ErrNotRetryable = errors.New("run is not failed or cancelled")

// End is a run-level write that ends a live run (completed, failed,
// cancelled): the header's status changes and every item stops accepting
// claims, on the condition that the run is still live in generation Gen.
type End struct {
	RunID string
	Gen   int
	Items int
	To    status.RunStatus
	At    time.Time
}

// Cancel decides the cancellation of run r at now.
func Cancel(r State, now time.Time) (End, error) { return endAs(r, status.RunCancelled, now) }

// Fail decides the failure of run r at now, for a run whose steps cannot be
// committed at all.
func Fail(r State, now time.Time) (End, error) { return endAs(r, status.RunFailed, now) }

// Complete decides the end of run r, every step of which completed.
func Complete(r State, now time.Time) (End, error) {
	if !r.AllCompleted() {
		return End{}, fmt.Errorf("complete run %s: not every step completed", r.ID)
	}
	return endAs(r, status.RunCompleted, now)
}

func endAs(r State, to status.RunStatus, now time.Time) (End, error) {
	if !r.Live() {
		return End{}, fmt.Errorf("end run %s (%s) as %s: %w", r.ID, r.Status, to, ErrNotLive)
	}
	return End{RunID: r.ID, Gen: r.Gen, Items: Items(len(r.Steps)), To: moveRun(r.Status, to), At: Ms(now)}, nil
}

// Reset is the write that retries a run: it raises the generation from Gen,
// makes the run live again, and writes Swaps, on the condition that the
// run is still in status From in generation Gen and every swapped slot is
// still as read.
type Reset struct {
	RunID string
	Gen   int
	Items int
	From  status.RunStatus
	// Swaps has a swap for every slot that is not completed: a reset to
	// pending, or, for a slot that stays as it is (pending from the start,
	// or running under a live lease), the slot to itself, so that a late
	// commit of any step between the retry's read and its write fails the
	// write and the retry reads again.
	Swaps []Swap
	At    time.Time
	// Input, if not nil, replaces the run's input from the new generation
	// on (completed steps keep their outputs).
	Input json.RawMessage
}

// Retry decides the retry of run r (read whole) at now: failed and pending
// steps, and running steps whose lease has expired (their runner is gone),
// start again from their first attempt; completed steps keep their results
// and effects; a step still running under a live lease keeps running, and
// its result counts in the new generation.
func Retry(r State, now time.Time) (Reset, error) {
	if !r.Status.CanBecome(status.RunRunning) {
		return Reset{}, fmt.Errorf("retry run %s (%s): %w", r.ID, r.Status, ErrNotRetryable)
	}
	if !r.KnowsAll() {
		return Reset{}, fmt.Errorf("retry run %s: the run was not read whole", r.ID)
	}
	rs := Reset{RunID: r.ID, Gen: r.Gen, Items: Items(len(r.Steps)), From: r.Status, At: Ms(now)}
	for i, s := range r.Steps {
		switch {
		case s.Status == status.StepCompleted:
		case s.LeaseLive(now) || s == Pending0:
			rs.Swaps = append(rs.Swaps, Swap{Step: i, Old: s, New: s})
		default:
			rs.Swaps = append(rs.Swaps, Swap{Step: i, Old: s, New: s.to(Pending0)})
		}
	}
	return rs, nil
}

// Applied returns r as it is after reset rs.
func (rs Reset) Applied(r State) State {
	out := r.Apply(rs.Swaps)
	out.Status, out.Gen, out.Retries, out.RetriedAt, out.EndedAt = moveRun(r.Status, status.RunRunning), r.Gen+1, r.Retries+1, rs.At, time.Time{}
	return out
}

// moveRun returns to after checking that a stored run status may move from
// from to it (status.RunStatus.CanBecome).
func moveRun(from, to status.RunStatus) status.RunStatus {
	if !from.CanBecome(to) {
		panic(fmt.Sprintf("runstate: run may not move from %s to %s", from, to))
	}
	return to
}

// Roots returns the steps of r that can start at now (see Readiness): a new
// run's roots, or where a retried run resumes.
func Roots(r State, p workflow.Plan, now time.Time) []int {
	var out []int
	for i := range r.Steps {
		if r.Readiness(p, i, now) == ReadyNow {
			out = append(out, i)
		}
	}
	return out
}
