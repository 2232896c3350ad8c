package sweeper

import (
	"fmt"
	"testing"
	"time"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
)

func TestBackoffWait(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		b     Backoff
		sends int
		want  time.Duration
	}{
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 0, 0},
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 1, time.Minute},
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 2, 2 * time.Minute},
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 4, 8 * time.Minute},
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 5, 15 * time.Minute},
		{Backoff{First: time.Minute, Max: 15 * time.Minute}, 1000, 15 * time.Minute}, // no overflow
		{Backoff{First: time.Minute, Max: 16 * time.Minute}, 5, 16 * time.Minute},
		{Backoff{First: time.Minute, Max: 16 * time.Minute}, 6, 16 * time.Minute},
		{Backoff{First: 10 * time.Minute, Max: time.Minute}, 3, 10 * time.Minute}, // Max below First
		{Backoff{First: 0, Max: time.Hour}, 3, 0},                                 // no wait at all
	} {
		t.Run(fmt.Sprintf("%v/%d", tt.b, tt.sends), func(t *testing.T) {
			if got := tt.b.Wait(tt.sends); got != tt.want {
				t.Errorf("Wait(%d) = %v, want %v", tt.sends, got, tt.want)
			}
		})
	}
}

// TestBackoffResends: the decision, per stalled step, whether its message
// is due, from the marks of earlier re-sends.
func TestBackoffResends(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	b := Backoff{First: time.Minute, Max: 4 * time.Minute}
	r := runstate.State{ID: "run_1", Gen: 2, Status: status.RunRunning, Steps: []runstate.Slot{
		{Status: status.StepPending},
		{Status: status.StepRunning, Token: "tok", Start: t0.Add(-time.Hour), End: t0.Add(-time.Minute)},
		{Status: status.StepPending, Attempt: 1},
	}}
	state := func(i int) string { return store.StepState(r, i) }
	mark := func(i, sends int, ago time.Duration) store.ResendMark {
		return store.ResendMark{State: state(i), Sends: sends, Last: t0.Add(-ago)}
	}
	stalled := []runstate.Message{{Step: 0}, {Step: 1}}
	for _, tt := range []struct {
		name      string
		marks     map[int]store.ResendMark
		due       string // steps due
		held      int
		nextSends string // sends in the marks to store, by step
	}{
		{"never re-sent: both due", nil, "[0 1]", 0, "map[0:1 1:1]"},
		{"one re-sent 30 s ago: held", map[int]store.ResendMark{0: mark(0, 1, 30*time.Second)}, "[1]", 1, "map[0:1 1:1]"},
		{"one re-sent a wait ago: due again", map[int]store.ResendMark{0: mark(0, 1, time.Minute)}, "[0 1]", 0, "map[0:2 1:1]"},
		{"second wait doubles: held at 1m59s", map[int]store.ResendMark{0: mark(0, 2, 119*time.Second)}, "[1]", 1, "map[0:2 1:1]"},
		{"second wait doubles: due at 2m", map[int]store.ResendMark{0: mark(0, 2, 2*time.Minute)}, "[0 1]", 0, "map[0:3 1:1]"},
		{"the wait is capped", map[int]store.ResendMark{0: mark(0, 9, 4*time.Minute), 1: mark(1, 9, 3*time.Minute)}, "[0]", 1, "map[0:10 1:9]"},
		{"the step moved since: due, counting from 1", map[int]store.ResendMark{
			0: {State: "2/R0:old:1:2", Sends: 5, Last: t0}, 1: {State: "1/" + r.Steps[1].Encode(), Sends: 5, Last: t0}}, "[0 1]", 0, "map[0:1 1:1]"},
		{"marks of steps no longer stalled are dropped", map[int]store.ResendMark{2: mark(2, 1, time.Second)}, "[0 1]", 0, "map[0:1 1:1]"},
		{"both held", map[int]store.ResendMark{0: mark(0, 1, 0), 1: mark(1, 3, 3*time.Minute)}, "[]", 2, "map[0:1 1:3]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			due, next, held := b.resends(r, stalled, tt.marks, t0)
			var steps []int
			for _, m := range due {
				steps = append(steps, m.Step)
			}
			sends := map[int]int{}
			for i, m := range next {
				sends[i] = m.Sends
				if m.State != state(i) && tt.marks[i].State != m.State {
					t.Errorf("step %d: mark state %q", i, m.State)
				}
			}
			if fmt.Sprint(steps) != tt.due && !(tt.due == "[]" && len(steps) == 0) || held != tt.held || fmt.Sprint(sends) != tt.nextSends {
				t.Errorf("due %v, held %d, next sends %v; want %s, %d, %s", steps, held, sends, tt.due, tt.held, tt.nextSends)
			}
			for _, m := range due {
				if !next[m.Step].Last.Equal(t0) {
					t.Errorf("step %d due, but its mark says it was sent at %v", m.Step, next[m.Step].Last)
				}
			}
		})
	}
}
