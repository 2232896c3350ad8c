package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strconv"

	"stepflow/internal/id"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
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
	OrderID *string         `json:"order_id"`
	Input   json.RawMessage `json:"input"`
}

// MaxInputBytes bounds a run's input (POST /workflows/{id}/runs, POST
// /runs/{id}/retry) and an approval's output.
const MaxInputBytes = 64 << 10

// checkData checks a run's input or a decision's output: at most
// MaxInputBytes of JSON; JSON null stands for none (nil).
func checkData(field string, v json.RawMessage) (json.RawMessage, error) {
	if len(v) == 0 || string(v) == "null" {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return nil, badRequest(field, field+" is not valid JSON")
	}
	if b.Len() > MaxInputBytes {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, field: field,
			msg: fmt.Sprintf("%s is %d bytes; the maximum is %d (64 KiB)", field, b.Len(), MaxInputBytes)}
	}
	return b.Bytes(), nil
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
	input, err := checkData("input", req.Input)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	wf, plan, err := s.Store.Plan(r.Context(), wfID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if err := plan.CheckStart(input, req.OrderID != nil); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if !s.limitRunStart(w, r) {
		return
	}
	orderID := ""
	if req.OrderID != nil {
		orderID = *req.OrderID
	}
	run := runstate.New(s.IDs.New("run"), wf.ID, wf.Name, orderID, plan, s.Now())
	if err := s.Store.CreateRunIfAbsent(r.Context(), run, input); err != nil {
		if errors.Is(err, store.ErrOrderNotFound) {
			err = unprocessable("order_id", fmt.Sprintf("order_id %q names no order", orderID))
		}
		writeError(w, r, s.Logger, err)
		return
	}
	s.start(r, run, plan)
	var data store.RunData
	if input != nil {
		data.Inputs = []store.Input{{Input: input, SetAt: run.CreatedAt}}
	}
	writeJSON(w, http.StatusAccepted, store.RunView(run, plan, nil, data, s.Now()))
}

// start enqueues the steps of a stored run that can start; if that fails,
// the sweeper starts them after its grace period.
func (s *server) start(r *http.Request, run runstate.State, plan workflow.Plan) {
	if s.Starter == nil {
		return
	}
	if err := s.Starter.Start(r.Context(), run, plan); err != nil {
		s.Logger.ErrorContext(r.Context(), "start run", "run_id", run.ID, "error", err)
	}
}

func (s *server) getRun(w http.ResponseWriter, r *http.Request) {
	runID := r.PathValue("id")
	if !id.Valid("run", runID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	s.writeRun(w, r, runID, http.StatusOK)
}

// stepOutput answers a step's output as it is (a run detail may leave a
// large one out: output_omitted).
func (s *server) stepOutput(w http.ResponseWriter, r *http.Request) {
	runID, stepID := r.PathValue("id"), r.PathValue("step")
	if !id.Valid("run", runID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	run, _, err := s.Store.ReadRun(r.Context(), runID, true)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	_, plan, err := s.Store.Plan(r.Context(), run.WorkflowID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	idx := plan.Indexes([]string{stepID})
	if len(idx) == 0 {
		writeError(w, r, s.Logger, &httpError{status: http.StatusNotFound, field: "step", msg: fmt.Sprintf("run %s has no step %q", runID, stepID)})
		return
	}
	data, err := s.Store.LoadData(r.Context(), runID, run.Gen, false, idx)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	out, ok := data.Outputs[idx[0]]
	if !ok {
		writeError(w, r, s.Logger, &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("step %s has no output", stepID)})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(out)
}

func conflict(msg string) *httpError {
	return &httpError{status: http.StatusConflict, msg: msg}
}

// unavailable says a write's outcome is unknown (503): the client should
// read the resource and decide again.
func unavailable(msg string) *httpError {
	return &httpError{status: http.StatusServiceUnavailable, msg: msg}
}

// maxAdminTries bounds how often cancel and retry read the run again after
// it changed under them; each change is a step committing or failing.
const maxAdminTries = 5

// cancelRun cancels a pending or running run with one write: nothing new
// starts, steps that have not started are reported as cancelled, and
// attempts already running finish and commit their own result (see
// DECISIONS.md).
func (s *server) cancelRun(w http.ResponseWriter, r *http.Request) {
	s.adminRun(w, r, http.StatusOK, func(run runstate.State) error {
		end, err := runstate.Cancel(run, s.Now())
		if errors.Is(err, runstate.ErrNotLive) {
			return conflict(fmt.Sprintf("run is %s; only pending or running runs can be cancelled", run.Reported()))
		}
		if err != nil {
			return err
		}
		err = s.Store.EndRunIfRunning(r.Context(), end)
		if errors.Is(err, store.ErrUnknown) {
			// Neither the answer nor a read-back came: if the run is
			// cancelled in the generation the cancel was for, it is done.
			if fresh, _, rerr := s.Store.ReadRun(r.Context(), run.ID, true); rerr == nil && fresh.Gen == end.Gen && fresh.Status == status.RunCancelled {
				return nil
			}
			return unavailable("the cancel may not have landed: read the run and try again")
		}
		return err
	})
}

// retryRun resumes a failed or cancelled run from its failed and never-run
// steps in a new generation, with one write; completed steps and their
// effects stay as they are.
//
// An optional {"input": ...} replaces the run's input for the steps that
// run again; completed steps keep their outputs.
func (s *server) retryRun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if err := decodeJSON(r.Body, &req, true); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	input, err := checkData("input", req.Input)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	limited := false
	s.adminRun(w, r, http.StatusAccepted, func(run runstate.State) error {
		rs, err := runstate.Retry(run, s.Now())
		rs.Input = input
		if errors.Is(err, runstate.ErrNotRetryable) {
			return conflict(fmt.Sprintf("run is %s; only failed or cancelled runs can be retried", run.Reported()))
		}
		if err != nil {
			return err
		}
		if !limited {
			if !s.limitRunStart(w, r) {
				return errLimited
			}
			limited = true
		}
		_, plan, err := s.Store.Plan(r.Context(), run.WorkflowID)
		if err != nil {
			return err
		}
		if input != nil {
			if err := plan.CheckStart(input, run.OrderID != ""); err != nil {
				return err
			}
		}
		after := rs.Applied(run)
		err = s.Store.RetryRunIfEnded(r.Context(), rs)
		if errors.Is(err, store.ErrUnknown) {
			// Neither the answer nor a read-back came: if the run is
			// live in the next generation, it is retried (by this call
			// or another), and its ready steps are enqueued from what
			// is there.
			fresh, _, rerr := s.Store.ReadRun(r.Context(), run.ID, true)
			if rerr != nil || fresh.Gen != rs.Gen+1 || !fresh.Live() {
				return unavailable("the retry may not have landed: read the run and try again")
			}
			after, err = fresh, nil
		}
		if err != nil {
			return err
		}
		// Enqueue before anything else can fail: the reset has landed,
		// and a client that retries this call would get 409.
		s.start(r, after, plan)
		d, err := s.Store.GetRun(r.Context(), run.ID)
		if err != nil {
			return err
		}
		return answered{d}
	})
}

// answered carries the response a write already prepared.
type answered struct{ d wire.RunDetail }

func (answered) Error() string { return "answered" }

// errLimited: the rate limiter already answered the request.
var errLimited = errors.New("rate limited")

// adminRun reads the run and applies write, reading again and retrying
// when the run changed between the read and the write (ErrConflict).
func (s *server) adminRun(w http.ResponseWriter, r *http.Request, code int, write func(runstate.State) error) {
	runID := r.PathValue("id")
	if !id.Valid("run", runID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	for try := 1; ; try++ {
		run, _, err := s.Store.ReadRun(r.Context(), runID, true)
		if err == nil {
			err = write(run)
		}
		var a answered
		switch {
		case err == nil:
			s.writeRun(w, r, runID, code)
			return
		case errors.As(err, &a):
			writeJSON(w, code, a.d)
			return
		case errors.Is(err, errLimited):
			return
		case errors.Is(err, store.ErrConflict) && try < maxAdminTries:
			continue
		case errors.Is(err, store.ErrConflict):
			err = conflict("the run kept changing; try again")
		}
		writeError(w, r, s.Logger, err)
		return
	}
}

func (s *server) writeRun(w http.ResponseWriter, r *http.Request, runID string, code int) {
	d, err := s.Store.GetRun(r.Context(), runID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	_, plan, err := s.Store.Plan(r.Context(), d.WorkflowID) // cached by GetRun
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	d.Stalled = s.stalled(d.RunSummary, plan, s.Now())
	if s.operator(r) {
		if err := s.withCallbacks(r.Context(), &d, plan); err != nil {
			writeError(w, r, s.Logger, err)
			return
		}
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
	o := wire.Order{
		ID: s.IDs.New("ord"), Amount: amount, Status: status.OrderPending, CreatedAt: now, UpdatedAt: now,
		History: []wire.HistoryEntry{{At: now, Event: "created", To: status.OrderPending}},
	}
	if err := s.Store.CreateOrderIfAbsent(r.Context(), o); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

func checkAmount(n *jsonNumber) (wire.Amount, error) {
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
	return wire.Amount(v), nil
}

// historyCursor is the form of an order history cursor: "0" (the creation
// entry) or "<run id>.<step index>".
var historyCursor = regexp.MustCompile(`^(0|run_[0-9A-HJKMNP-TV-Z]{26}\.[0-9]{3})$`)

func (s *server) orderHistory(w http.ResponseWriter, r *http.Request) {
	orderID := r.PathValue("id")
	if !id.Valid("ord", orderID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	p, err := page(r, "")
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if p.Cursor != "" && !historyCursor.MatchString(p.Cursor) {
		writeError(w, r, s.Logger, badRequest("cursor", "cursor is not valid for this list; use the URL from the Link header"))
		return
	}
	if _, err := s.Store.GetOrder(r.Context(), orderID); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	items, next, err := s.Store.OrderHistory(r.Context(), orderID, p)
	writeList(w, r, s, items, next, err)
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	orderID := r.PathValue("id")
	if !id.Valid("ord", orderID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return
	}
	o, err := s.Store.GetOrder(r.Context(), orderID)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
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
