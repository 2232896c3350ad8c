package status

import (
	"errors"
	"testing"
)

func TestRunTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to RunStatus
		want     bool
	}{
		{RunPending, RunRunning, false}, // pending is reported, never stored
		{RunRunning, RunCompleted, true},
		{RunRunning, RunFailed, true},
		{RunRunning, RunCancelled, true},
		{RunRunning, RunPending, false},
		{RunCompleted, RunRunning, false},
		{RunCompleted, RunFailed, false},
		{RunFailed, RunRunning, true},
		{RunFailed, RunCompleted, false},
		{RunCancelled, RunRunning, true},
		{RunCancelled, RunCompleted, false},
	}
	for _, tt := range tests {
		if got := tt.from.CanBecome(tt.to); got != tt.want {
			t.Errorf("%s -> %s = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	for _, r := range Runs {
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	if RunStatus("paused").Valid() {
		t.Error("unknown run status reported valid")
	}
}

func TestStepTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to StepStatus
		want     bool
	}{
		{StepPending, StepRunning, true},
		{StepPending, StepCompleted, true}, // run in its parent's invocation
		{StepPending, StepSkipped, false},  // skipped is never stored
		{StepRunning, StepCompleted, true},
		{StepRunning, StepPending, true}, // a failed attempt with retries left
		{StepRunning, StepFailed, true},
		{StepRunning, StepRunning, true}, // an expired lease taken over
		{StepCompleted, StepPending, false},
		{StepCompleted, StepRunning, false},
		{StepFailed, StepPending, true}, // run retry
		{StepFailed, StepRunning, false},
		{StepRunning, StepCancelled, false},
		{StepRunning, StepWaiting, true},   // a wait or an approval begins
		{StepPending, StepWaiting, true},   // ... started with its parent's commit
		{StepWaiting, StepCompleted, true}, // its time came, or approved
		{StepWaiting, StepFailed, true},    // refused, or timed out
		{StepWaiting, StepPending, true},   // run retry
		{StepWaiting, StepRunning, false},  // nothing runs it again
		{StepCompleted, StepWaiting, false},
	}
	for _, tt := range tests {
		if got := tt.from.CanBecome(tt.to); got != tt.want {
			t.Errorf("%s -> %s = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
	for _, s := range Steps {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if StepPending.Terminal() || StepRunning.Terminal() || StepWaiting.Terminal() || !StepCompleted.Terminal() || !StepSkipped.Terminal() {
		t.Error("Terminal wrong")
	}
}

func TestOrderActions(t *testing.T) {
	t.Parallel()
	// Walking the actions in order takes an order from pending to shipped.
	o := OrderPending
	for _, name := range []string{"validate_order", "send_notification", "charge_payment", "ship_order"} {
		a := Actions[name]
		if err := a.Check(o); err != nil {
			t.Fatalf("%s from %s: %v", name, o, err)
		}
		if a.ChangesStatus() {
			o = a.To
		}
	}
	if o != OrderShipped {
		t.Fatalf("ended at %s", o)
	}
	tests := []struct {
		action string
		from   OrderStatus
	}{
		{"ship_order", OrderPending},
		{"charge_payment", OrderPending},
		{"validate_order", OrderValidated},
		{"validate_order", OrderShipped},
	}
	for _, tt := range tests {
		err := Actions[tt.action].Check(tt.from)
		var pe *ErrPrecondition
		if !errors.As(err, &pe) || pe.Got != tt.from {
			t.Errorf("%s from %s: err = %v, want precondition error", tt.action, tt.from, err)
		}
	}
	if err := Actions["send_notification"].Check(OrderShipped); err != nil {
		t.Errorf("send_notification must work in any status: %v", err)
	}
}
