package runstate

import (
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// SweepDecision is what the sweeper does with one live run.
type SweepDecision struct {
	// End, if set, ends the run: completed when every step completed, or
	// failed when no step can make progress (a state the engine never
	// leaves behind; ending the run keeps it from hanging if it happens).
	End *End
	// Enqueue are messages to send: steps whose runner is gone (a running
	// step whose lease expired) or whose message was lost (a ready pending
	// step that waited longer than grace, a waiting step whose deadline
	// passed longer than grace ago).
	Enqueue []Message
}

// Sweep decides what the sweeper does with run r (read whole) at now. It
// never changes a step's state; its only writes end the run, conditioned on
// the generation it read.
func Sweep(r State, p workflow.Plan, now time.Time, grace time.Duration) SweepDecision {
	var d SweepDecision
	if !r.Live() {
		return d
	}
	end := func(to status.RunStatus) *End {
		e, _ := endAs(r, to, now) // r is live
		return &e
	}
	if r.AllCompleted() {
		d.End = end(status.RunCompleted)
		return d
	}
	progress := false
	for i, s := range r.Steps {
		switch s.Status {
		case status.StepRunning:
			progress = true
			if !s.LeaseLive(now) {
				d.Enqueue = append(d.Enqueue, Message{Step: i, Attempt: s.Attempt})
			}
		case status.StepWaiting:
			// Waiting is progress: a wait's messages, or a decision, end
			// it. One whose deadline passed longer than grace ago lost
			// its message to a crash.
			progress = true
			if s.WaitOver(now.Add(-grace)) {
				d.Enqueue = append(d.Enqueue, Message{Step: i, Attempt: s.Attempt})
			}
		case status.StepPending:
			switch r.Readiness(p, i, now) {
			case ReadyNow:
				progress = true
				if now.Sub(r.readySince(p, i)) > grace {
					d.Enqueue = append(d.Enqueue, Message{Step: i, Attempt: s.Attempt})
				}
			case ReadyLater:
				progress = true
			}
		}
	}
	if !progress {
		d.End = end(status.RunFailed)
	}
	return d
}
