package runstate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stepflow/internal/status"
)

// Slot is the stored state of one step in the run's current generation.
// Five statuses are stored: pending, running, waiting, completed and failed.
type Slot struct {
	Status status.StepStatus
	// Attempt is the number of attempts of this step that failed in this
	// generation (the API's retry_count); a running, completed or failed
	// step's current attempt has this number.
	Attempt int
	// Token identifies the claim of a running step.
	Token string
	// Start is when the current attempt started (running, completed,
	// failed).
	Start time.Time
	// End is when the attempt ended (completed, failed, and pending after a
	// failed attempt), when the lease of a running step ends, or when a
	// waiting step's wait ends (zero: an approval with no timeout).
	End time.Time
	// Due is the earliest start of a pending step's next attempt (a
	// retry's backoff); zero means now.
	Due time.Time
	// Inline marks a running step claimed in its parent's commit: it ran
	// in the same invocation as its parent and has no message of its own,
	// so a redelivery of an ancestor's message watches its lease (see
	// Deliver).
	Inline bool
}

// Pending0 is every step's state when its run is created or retried.
var Pending0 = Slot{Status: status.StepPending}

var stepCodes = map[status.StepStatus]byte{
	status.StepPending: 'P', status.StepRunning: 'R', status.StepWaiting: 'W', status.StepCompleted: 'C', status.StepFailed: 'F',
}

// Encode returns the slot string stored for s:
//
//	P<attempt>[:<due>:<failed at>]     pending (after a failed attempt)
//	R<attempt>:<token>:<start>:<until>[:i] running ([:i] when Inline)
//	W<attempt>:<start>:<until>|-       waiting (- : no deadline)
//	C<attempt>:<start>:<end>           completed
//	F<attempt>:<start>:<end>           failed
//
// Times are Unix milliseconds in base 36. Writes compare a slot's whole
// string, so Encode must be deterministic: times are truncated to
// milliseconds by Ms before they are stored.
func (s Slot) Encode() string {
	code, ok := stepCodes[s.Status]
	if !ok {
		panic(fmt.Sprintf("runstate: status %q is not stored", s.Status))
	}
	var b strings.Builder
	b.WriteByte(code)
	b.WriteString(strconv.Itoa(s.Attempt))
	switch s.Status {
	case status.StepPending:
		if !s.Due.IsZero() {
			b.WriteString(":" + t36(s.Due) + ":" + t36(s.End))
		}
	case status.StepRunning:
		b.WriteString(":" + s.Token + ":" + t36(s.Start) + ":" + t36(s.End))
		if s.Inline {
			b.WriteString(":i")
		}
	case status.StepWaiting:
		b.WriteString(":" + t36(s.Start) + ":")
		if s.End.IsZero() {
			b.WriteString("-")
		} else {
			b.WriteString(t36(s.End))
		}
	default:
		b.WriteString(":" + t36(s.Start) + ":" + t36(s.End))
	}
	return b.String()
}

// ParseSlot decodes a slot string written by Encode.
func ParseSlot(v string) (Slot, error) {
	bad := func(why string) (Slot, error) { return Slot{}, fmt.Errorf("step slot %q: %s", v, why) }
	if v == "" {
		return bad("empty")
	}
	var s Slot
	switch v[0] {
	case 'P':
		s.Status = status.StepPending
	case 'R':
		s.Status = status.StepRunning
	case 'C':
		s.Status = status.StepCompleted
	case 'F':
		s.Status = status.StepFailed
	case 'W':
		s.Status = status.StepWaiting
	default:
		return bad("unknown status code")
	}
	parts := strings.Split(v[1:], ":")
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 {
		return bad("bad attempt")
	}
	s.Attempt = n
	times := func(fields ...string) ([]time.Time, error) {
		out := make([]time.Time, len(fields))
		for i, f := range fields {
			ms, err := strconv.ParseInt(f, 36, 64)
			if err != nil {
				return nil, errors.New("bad time")
			}
			out[i] = time.UnixMilli(ms).UTC()
		}
		return out, nil
	}
	switch {
	case s.Status == status.StepPending && len(parts) == 1:
	case s.Status == status.StepPending && len(parts) == 3:
		ts, err := times(parts[1], parts[2])
		if err != nil {
			return bad(err.Error())
		}
		s.Due, s.End = ts[0], ts[1]
	case s.Status == status.StepRunning && (len(parts) == 4 || len(parts) == 5 && parts[4] == "i") && parts[1] != "":
		ts, err := times(parts[2], parts[3])
		if err != nil {
			return bad(err.Error())
		}
		s.Token, s.Start, s.End, s.Inline = parts[1], ts[0], ts[1], len(parts) == 5
	case s.Status == status.StepWaiting && len(parts) == 3 && parts[2] == "-":
		ts, err := times(parts[1])
		if err != nil {
			return bad(err.Error())
		}
		s.Start = ts[0]
	case (s.Status == status.StepCompleted || s.Status == status.StepFailed || s.Status == status.StepWaiting) && len(parts) == 3:
		ts, err := times(parts[1], parts[2])
		if err != nil {
			return bad(err.Error())
		}
		s.Start, s.End = ts[0], ts[1]
	default:
		return bad("wrong number of fields")
	}
	return s, nil
}

func t36(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 36) }

// Ms truncates t to the millisecond precision slots store, in UTC.
func Ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// to returns next after checking that a stored step may move from s to it
// (status.StepStatus.CanBecome). Every new state this package computes goes
// through it, so the transition table in package status is the one source of
// truth for which writes exist.
func (s Slot) to(next Slot) Slot {
	if !s.Status.CanBecome(next.Status) {
		panic(fmt.Sprintf("runstate: step may not move from %s to %s", s.Status, next.Status))
	}
	return next
}

// WaitOver reports whether a waiting step's deadline has come at now (never,
// for an approval with no timeout).
func (s Slot) WaitOver(now time.Time) bool {
	return s.Status == status.StepWaiting && !s.End.IsZero() && !s.End.After(now)
}

// LeaseLive reports whether a running step's lease has not ended at now.
func (s Slot) LeaseLive(now time.Time) bool {
	return s.Status == status.StepRunning && s.End.After(now)
}
