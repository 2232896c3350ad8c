package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"stepflow/internal/callback"
	"stepflow/internal/id"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// Decisions on waiting approval steps: an operator completes or fails one
// (POST /runs/{id}/steps/{step}/complete and .../fail), or an outside
// system does with its callback token (POST /callbacks/{token}, no bearer
// token). A decision is a commit like a runner's: the waiting slot moves
// to completed (with the output) or failed, on the condition that it is
// still the slot read, so exactly one decision lands.

// DefaultCallbacksPerMinute caps the callback requests from one source
// address per minute.
const DefaultCallbacksPerMinute = 60

// MaxDecisionError bounds the text of a refusal.
const MaxDecisionError = 1024

// decision is what is decided: an output (nil: none) or a refusal.
type decision struct {
	output json.RawMessage
	reason string // non-empty: the step fails with it
}

// errNoDecision: the step is not waiting for a decision; the operator
// routes say why, the callback route answers 404 as for an unknown token.
type errNoDecision struct{ msg string }

func (e errNoDecision) Error() string { return e.msg }

// wanted names the wait a callback token answers (nil: whatever wait the
// step is in, for an operator).
type wanted struct {
	attempt int
	start   time.Time
}

func (s *server) completeStep(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Output json.RawMessage `json:"output"`
	}
	if err := decodeJSON(r.Body, &req, true); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	out, err := checkData("output", req.Output)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	s.operatorDecision(w, r, decision{output: out})
}

func (s *server) failStep(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Error *string `json:"error"`
	}
	if err := decodeJSON(r.Body, &req, false); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	reason, err := checkReason(req.Error)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	s.operatorDecision(w, r, decision{reason: reason})
}

func checkReason(text *string) (string, error) {
	if text == nil || strings.TrimSpace(*text) == "" {
		return "", badRequest("error", "error is required: say why the step fails")
	}
	t := strings.TrimSpace(*text)
	if len(t) > MaxDecisionError {
		return "", badRequest("error", fmt.Sprintf("error is longer than %d bytes", MaxDecisionError))
	}
	if strings.ContainsFunc(t, unicode.IsControl) {
		return "", badRequest("error", "error must not contain control characters")
	}
	return t, nil
}

func (s *server) operatorDecision(w http.ResponseWriter, r *http.Request, d decision) {
	runID, stepID := r.PathValue("id"), r.PathValue("step")
	if !id.Valid("run", runID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	err := s.decide(r.Context(), runID, func(p workflow.Plan) (int, error) {
		for i, st := range p {
			if st.ID == stepID {
				return i, nil
			}
		}
		return 0, &httpError{status: http.StatusNotFound, field: "step", msg: fmt.Sprintf("run %s has no step %q", runID, stepID)}
	}, nil, d)
	var nd errNoDecision
	if errors.As(err, &nd) {
		err = conflict(nd.msg)
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	s.writeRun(w, r, runID, http.StatusOK)
}

// callbackAnswer is what POST /callbacks/{token} answers.
type callbackAnswer struct {
	RunID  string            `json:"run_id"`
	StepID string            `json:"step_id"`
	Status status.StepStatus `json:"status"`
}

// callback takes a decision from the holder of a callback token:
// {"output": ...} (or no body) completes the step, {"error": "..."} fails
// it. An unknown, used or expired token, or one whose run has ended, gets
// the same 404; requests are counted per source address and capped.
func (s *server) callback(w http.ResponseWriter, r *http.Request) {
	if !s.limitCallbacks(w, r) {
		return
	}
	var req struct {
		Output json.RawMessage `json:"output"`
		Error  *string         `json:"error"`
	}
	if err := decodeJSON(r.Body, &req, true); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	var d decision
	var err error
	switch {
	case req.Error != nil && req.Output != nil:
		err = badRequest("", "send either output (to complete the step) or error (to fail it), not both")
	case req.Error != nil:
		d.reason, err = checkReason(req.Error)
	default:
		d.output, err = checkData("output", req.Output)
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	notFound := &httpError{status: http.StatusNotFound, msg: "no approval is waiting for this token"}
	token := r.PathValue("token")
	if !callback.WellFormed(token) {
		writeError(w, r, s.Logger, notFound)
		return
	}
	cb, err := s.Store.CallbackFor(r.Context(), callback.Hash(token))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, r, s.Logger, notFound)
		return
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	var stepID string
	err = s.decide(r.Context(), cb.RunID, func(p workflow.Plan) (int, error) {
		if cb.Step < 0 || cb.Step >= len(p) {
			return 0, errNoDecision{"no such step"}
		}
		stepID = p[cb.Step].ID
		return cb.Step, nil
	}, &wanted{attempt: cb.Attempt, start: cb.Start}, d)
	var nd errNoDecision
	switch {
	case errors.As(err, &nd), errors.Is(err, store.ErrNotFound):
		writeError(w, r, s.Logger, notFound)
		return
	case err != nil:
		writeError(w, r, s.Logger, err)
		return
	}
	st := status.StepCompleted
	if d.reason != "" {
		st = status.StepFailed
	}
	writeJSON(w, http.StatusOK, callbackAnswer{RunID: cb.RunID, StepID: stepID, Status: st})
}

// limitCallbacks counts a callback request against its source address's
// allowance; it writes the error and returns false when the request must
// stop.
func (s *server) limitCallbacks(w http.ResponseWriter, r *http.Request) bool {
	if s.Limiter == nil || s.CallbacksPerMinute < 0 {
		return true
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	return s.allow(w, r, "callback:"+ip, s.CallbacksPerMinute,
		fmt.Sprintf("at most %d callback requests per minute from one address", s.CallbacksPerMinute))
}

// decide commits decision d on the step pick chooses of run runID, if it
// is a waiting approval (in the wait want names, if set) of a live run;
// else it returns errNoDecision saying why. It reads again when the run
// changed under it, and enqueues what the decision makes ready.
func (s *server) decide(ctx context.Context, runID string, pick func(workflow.Plan) (int, error), want *wanted, d decision) error {
	for try := 1; ; try++ {
		head, _, err := s.Store.ReadRun(ctx, runID, true)
		if err != nil {
			return err
		}
		_, plan, err := s.Store.Plan(ctx, head.WorkflowID)
		if err != nil {
			return err
		}
		i, err := pick(plan)
		if err != nil {
			return err
		}
		r, order, err := s.Store.LoadRun(ctx, store.RunRef{ID: runID, WorkflowID: head.WorkflowID, OrderID: head.OrderID, Steps: len(plan)})
		if err != nil {
			return err
		}
		slot := r.Steps[i]
		switch {
		case !r.Live():
			return errNoDecision{fmt.Sprintf("run is %s; a decision needs a running run", r.Status)}
		case plan[i].Type != workflow.TypeApproval:
			return errNoDecision{fmt.Sprintf("step %s is a %s step; only approval steps take a decision", plan[i].ID, plan[i].Type)}
		case slot.Status != status.StepWaiting:
			return errNoDecision{fmt.Sprintf("step %s is %s, not waiting for a decision", plan[i].ID, r.StepReported(plan, i, s.Now()))}
		case want != nil && (want.attempt != slot.Attempt || !want.start.Equal(slot.Start)):
			return errNoDecision{"the token is for an earlier wait of this step"}
		case slot.WaitOver(s.Now()):
			return errNoDecision{fmt.Sprintf("step %s timed out at %s", plan[i].ID, slot.End.Format(time.RFC3339))}
		}
		key, err := s.Store.CallbackKey(ctx)
		if err != nil {
			return err
		}
		now := s.Now()
		o := runstate.Outcome{
			Step: i, Held: slot, Start: slot.Start, End: now, Output: d.output,
			Callback: callback.Hash(callback.Token(key, r.ID, i, slot.Attempt, slot.Start)),
		}
		if d.reason != "" {
			o.Output, o.Err = nil, runstate.Permanent(fmt.Errorf("approval refused: %s", d.reason))
		}
		cs := runstate.BuildCommits(runstate.CommitInput{Run: r, Plan: plan, Order: order, Outcomes: []runstate.Outcome{o}, Now: now, MaxSteps: 1})
		if len(cs) != 1 || len(cs[0].Swaps) == 0 {
			return errNoDecision{"the step changed; read the run again"}
		}
		c := cs[0]
		if len(c.Refused) > 0 && d.reason == "" {
			// The order refuses the approval's action: say so, and
			// leave the step waiting (a refusal may still be decided).
			return conflict(fmt.Sprintf("step %s cannot complete: %s", plan[i].ID, c.Failures[0].Error))
		}
		// A decision is a new act, like a start: it lands only while the
		// run is live in the generation read, never after a cancel.
		c.Live = true
		err = s.Store.CommitIfHeld(ctx, c, s.IDs.New("cmt"))
		switch {
		case errors.Is(err, store.ErrConflict) && try < maxAdminTries:
			continue // the run changed: read again
		case errors.Is(err, store.ErrConflict):
			return conflict("the run kept changing; try again")
		case errors.Is(err, store.ErrUnknown):
			return unavailable("the decision may not have landed: read the run and try again")
		case err != nil:
			return err
		}
		s.Logger.InfoContext(ctx, "approval decided", "run_id", r.ID, "step_id", plan[i].ID, "completed", d.reason == "")
		after := r.Apply(c.Swaps)
		if c.End != "" {
			after.Status = c.End
		}
		if after.Live() && s.Starter != nil {
			// The steps the decision made ready; if this send fails, the
			// sweeper sends them after its grace period.
			if err := s.Starter.Start(ctx, after, plan); err != nil {
				s.Logger.ErrorContext(ctx, "enqueue after a decision", "run_id", r.ID, "error", err)
			}
		}
		return nil
	}
}

// withCallbacks adds their callback tokens to the waiting approval steps
// of d, for an operator.
func (s *server) withCallbacks(ctx context.Context, d *wire.RunDetail, p workflow.Plan) error {
	var key []byte
	for n, st := range d.Steps {
		if st.Status != status.StepWaiting || p[st.StepIndex].Type != workflow.TypeApproval {
			continue
		}
		if key == nil {
			k, err := s.Store.CallbackKey(ctx)
			if err != nil {
				return err
			}
			key = k
		}
		if st.AttemptStartedAt == nil {
			continue
		}
		tok := callback.Token(key, d.ID, st.StepIndex, st.RetryCount, *st.AttemptStartedAt)
		d.Steps[n].CallbackToken = &tok
	}
	return nil
}
