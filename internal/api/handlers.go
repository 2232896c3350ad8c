package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"time"

	"stepflow/internal/id"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/workflow"
)

// decodeWorkflow decodes and validates a POST /workflows body.
func decodeWorkflow(body io.Reader) (workflow.Definition, error) {
	var in workflow.Input
	if err := decodeJSON(body, &in, false); err != nil {
		return workflow.Definition{}, err
	}
	return in.Normalize()
}

func (s *server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	wfID := r.PathValue("id")
	if !id.Valid("wf", wfID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	wf, err := s.Store.GetWorkflow(r.Context(), wfID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, wf)
}

func (s *server) listWorkflows(w http.ResponseWriter, r *http.Request) {
	p, err := page(r, "wf")
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	items, next, err := s.Store.ListWorkflows(r.Context(), p)
	writeList(w, r, s, items, next, err)
}

type startRunRequest struct {
	OrderID *string `json:"order_id"`
}

func (s *server) createRun(w http.ResponseWriter, r *http.Request) {
	wfID := r.PathValue("id")
	var req startRunRequest
	if err := decodeJSON(r.Body, &req, true); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if !id.Valid("wf", wfID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	if req.OrderID != nil && !id.Valid("ord", *req.OrderID) {
		writeError(w, r, s.Logger, unprocessable("order_id", fmt.Sprintf("order_id %q names no order", *req.OrderID)))
		return
	}
	wf, err := s.Store.GetWorkflow(r.Context(), wfID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if !s.limitRunStart(w, r) {
		return
	}
	run, err := newRun(s.IDs.New("run"), wf, req.OrderID, s.Now().UTC())
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if err := s.Store.CreateRun(r.Context(), run.Run, run.Steps); err != nil {
		if errors.Is(err, store.ErrOrderNotFound) {
			err = unprocessable("order_id", fmt.Sprintf("order_id %q names no order", *req.OrderID))
		}
		writeError(w, r, s.Logger, err)
		return
	}
	if s.Starter != nil {
		if err := s.Starter.StartRun(r.Context(), run); err != nil {
			// The run is stored; the sweeper starts runs left pending.
			s.Logger.ErrorContext(r.Context(), "start run", "run_id", run.ID, "error", err)
		}
	}
	writeJSON(w, http.StatusAccepted, run)
}

// newRun lays out a new pending run of wf with its steps in dependency
// order.
func newRun(runID string, wf store.Workflow, orderID *string, now time.Time) (store.RunDetail, error) {
	plan, err := workflow.Plan(wf.Definition)
	if err != nil {
		return store.RunDetail{}, err
	}
	d := store.RunDetail{Run: store.Run{
		ID: runID, WorkflowID: wf.ID, WorkflowName: wf.Name, OrderID: orderID,
		Status: status.RunPending, StepCount: len(plan), CreatedAt: now,
	}}
	for _, p := range plan {
		deps := p.Dependents
		if len(deps) == 0 {
			deps = []int{}
			d.SinksRemaining++
		}
		d.Steps = append(d.Steps, store.Step{
			ID: runID + ":" + p.ID, StepID: p.ID, StepIndex: p.Index, Type: p.Type,
			Status: status.StepPending, MaxRetries: p.Config.MaxRetries, DependsOn: p.DependsOn,
			Config: p.Config, Dependents: deps, DepsRemaining: len(p.DependsOn), Attempts: []store.Attempt{},
		})
	}
	return d, nil
}

func conflict(msg string) *httpError {
	return &httpError{status: http.StatusConflict, msg: msg}
}

// cancelRun cancels a pending or running run: nothing new starts, steps
// that have not started become cancelled, and attempts already running
// finish and commit their own result (see DECISIONS.md).
func (s *server) cancelRun(w http.ResponseWriter, r *http.Request) {
	d, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	if d.Status.Terminal() {
		writeError(w, r, s.Logger, conflict(fmt.Sprintf("run is %s; only pending or running runs can be cancelled", d.Status)))
		return
	}
	now := s.Now().UTC()
	if err := s.Store.EndRun(r.Context(), d.ID, status.RunCancelled, now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = conflict("run ended while it was being cancelled")
		}
		writeError(w, r, s.Logger, err)
		return
	}
	for _, st := range d.Steps {
		if st.Status == status.StepPending {
			if err := s.Store.SettleStep(r.Context(), d.ID, st.StepIndex, status.StepCancelled, now); err != nil {
				writeError(w, r, s.Logger, err)
				return
			}
		}
	}
	s.writeRun(w, r, d.ID, http.StatusOK)
}

// retryRun resumes a failed or cancelled run from its failed and never-run
// steps; completed steps and their effects stay as they are.
func (s *server) retryRun(w http.ResponseWriter, r *http.Request) {
	d, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	if d.Status != status.RunFailed && d.Status != status.RunCancelled {
		writeError(w, r, s.Logger, conflict(fmt.Sprintf("run is %s; only failed or cancelled runs can be retried", d.Status)))
		return
	}
	if !s.limitRunStart(w, r) {
		return
	}
	if err := s.Store.RetryRun(r.Context(), d, s.Now().UTC()); err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			err = conflict("run changed while it was being retried")
		case errors.Is(err, store.ErrTooManyResets):
			err = &httpError{status: http.StatusUnprocessableEntity, msg: "a retry can reset at most 99 steps at once; this run needs more"}
		}
		writeError(w, r, s.Logger, err)
		return
	}
	d, err := s.Store.GetRun(r.Context(), d.ID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if s.Starter != nil {
		if err := s.Starter.StartRun(r.Context(), d); err != nil {
			s.Logger.ErrorContext(r.Context(), "start retried run", "run_id", d.ID, "error", err)
		}
	}
	writeJSON(w, http.StatusAccepted, d)
}

func (s *server) loadRun(w http.ResponseWriter, r *http.Request) (store.RunDetail, bool) {
	runID := r.PathValue("id")
	if !id.Valid("run", runID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return store.RunDetail{}, false
	}
	d, err := s.Store.GetRun(r.Context(), runID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return d, false
	}
	return d, true
}

func (s *server) writeRun(w http.ResponseWriter, r *http.Request, runID string, code int) {
	d, err := s.Store.GetRun(r.Context(), runID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, code, d)
}

func (s *server) redrive(w http.ResponseWriter, r *http.Request) {
	n, err := s.Redriver.Redrive(r.Context())
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"moved": n})
}

// Order amounts are decimals with at most two places, 0 < amount <= MaxAmount.
const MaxAmount = 1_000_000

var amountPattern = regexp.MustCompile(`^(0|[1-9][0-9]{0,6})(\.[0-9]{1,2})?$`)

// jsonNumber accepts only a JSON number (not a string holding one) and
// keeps its exact text.
type jsonNumber string

func (n *jsonNumber) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return &json.UnmarshalTypeError{Value: describeJSON(b), Type: reflect.TypeFor[float64]()}
	}
	*n = jsonNumber(b)
	return nil
}

func describeJSON(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '"':
		return "string"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	}
	return "null"
}

type createOrderRequest struct {
	Amount *jsonNumber `json:"amount"`
}

func (s *server) createOrder(w http.ResponseWriter, r *http.Request) {
	var req createOrderRequest
	if err := decodeJSON(r.Body, &req, false); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	amount, err := checkAmount(req.Amount)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	now := s.Now().UTC()
	o := store.Order{
		ID: s.IDs.New("ord"), Amount: amount, Status: status.OrderPending, CreatedAt: now, UpdatedAt: now,
		History: []store.HistoryEntry{{At: now, Event: "created", To: status.OrderPending}},
	}
	if err := s.Store.CreateOrder(r.Context(), o); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

func checkAmount(n *jsonNumber) (store.Amount, error) {
	if n == nil {
		return "", unprocessable("amount", "amount is required")
	}
	v := string(*n)
	if !amountPattern.MatchString(v) {
		return "", unprocessable("amount", fmt.Sprintf("amount must be a decimal number with at most 2 decimal places, greater than 0 and at most %d; got %s", MaxAmount, v))
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > MaxAmount {
		return "", unprocessable("amount", fmt.Sprintf("amount must be greater than 0 and at most %d; got %s", MaxAmount, v))
	}
	return store.Amount(v), nil
}

func (s *server) listOrders(w http.ResponseWriter, r *http.Request) {
	p, err := page(r, "ord")
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	items, next, err := s.Store.ListOrders(r.Context(), p)
	writeList(w, r, s, items, next, err)
}
