package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"stepflow/internal/callback"
	"stepflow/internal/httpstep"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/template"
	"stepflow/internal/workflow"
)

// HTTPClient makes the request of an http step: a 2xx response's output,
// or an error: a *httpstep.RetryableError for a failure a later attempt
// may not meet, one wrapping httpstep.ErrPermanent for one it will (a
// 4xx, a refused address, an output too large). *httpstep.Client is one.
type HTTPClient interface {
	Do(ctx context.Context, r httpstep.Request) (json.RawMessage, error)
}

// Secrets resolves the {{secrets.NAME}} of http steps.
type Secrets interface {
	Get(ctx context.Context, name string) (string, error)
}

// MaxOutputBytes bounds a step's output, as stored.
const MaxOutputBytes = 64 << 10

// IdempotencyKey is the Idempotency-Key header of an http step's requests.
// It is the same for every attempt, redelivery and retry of step stepID in
// run runID, and differs between steps and between runs; for a step that
// carries an order action on an order, it is derived from the order and
// the action instead, so that two runs moving one order send the service
// the same key.
func IdempotencyKey(runID, stepID, orderID, action string) string {
	var h [32]byte
	if _, ok := status.Actions[action]; ok && orderID != "" {
		h = sha256.Sum256([]byte("order\x00" + orderID + "\x00" + action))
	} else {
		h = sha256.Sum256([]byte("step\x00" + runID + "\x00" + stepID))
	}
	return "sf-" + hex.EncodeToString(h[:16])
}

// attempt is what one attempt of a step returns.
type attempt struct {
	output     json.RawMessage
	retryAfter time.Duration
	wait       bool
	until      time.Time
	callback   string
	err        error
}

// approvalHash is the hash of the callback token of approval step i's wait
// in attempt n of generation gen.
func (rn *runner) approvalHash(ctx context.Context, i, gen, n int) (string, error) {
	key, err := rn.e.cfg.Store.CallbackKey(ctx)
	if err != nil {
		return "", fmt.Errorf("callback key: %w", err)
	}
	return callback.Hash(callback.Token(key, rn.ref.ID, i, gen, n)), nil
}

// run performs one attempt of step i, held by held, of run (as known),
// started at start: a task's simulation, an http step's call, or the start
// of a wait.
//
// here holds the outputs of steps that succeeded in this invocation and
// are not committed yet (see runstate.Sched.OutputsHere).
func (rn *runner) run(ctx context.Context, i int, held runstate.Slot, run runstate.State, start time.Time, in TaskInput, here map[int]json.RawMessage) attempt {
	step := rn.plan[i]
	switch step.Type {
	case workflow.TypeWait:
		return attempt{wait: true, until: start.Add(seconds(step.Config.Seconds))}
	case workflow.TypeApproval:
		h, err := rn.approvalHash(ctx, i, run.Gen, held.Attempt)
		if err != nil {
			return attempt{err: err}
		}
		a := attempt{wait: true, callback: h}
		if t := step.Config.TimeoutSeconds; t > 0 {
			a.until = start.Add(seconds(t))
		}
		return a
	case workflow.TypeHTTP:
		return rn.call(ctx, i, held, run, here)
	}
	return attempt{err: rn.e.cfg.Task.Run(ctx, in)}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// expired is the outcome of waiting step i, held by w, whose deadline
// came at now: a wait completes, an approval fails for good.
func (rn *runner) expired(ctx context.Context, i int, w runstate.Slot, gen int, now time.Time) runstate.Outcome {
	o := runstate.Outcome{Step: i, Held: w, Start: w.Start, End: now}
	if rn.plan[i].Type != workflow.TypeApproval {
		return o
	}
	o.Err = runstate.Permanent(fmt.Errorf("approval timed out: no decision within %v", w.End.Sub(w.Start)))
	if h, err := rn.approvalHash(ctx, i, gen, w.Attempt); err == nil {
		o.Callback = h
	}
	return o
}

// call makes http step i's request: it reserves the order if the step
// moves it, reads what its templates need, fills them in and calls out.
// Secrets are redacted from its output and error.
func (rn *runner) call(ctx context.Context, i int, held runstate.Slot, run runstate.State, here map[int]json.RawMessage) attempt {
	e, step := rn.e, rn.plan[i]
	if e.cfg.HTTP == nil {
		return attempt{err: runstate.Permanent(errors.New("http steps are not configured on this runner"))}
	}
	if runstate.ReservesOrder(rn.plan, i, run.OrderID) {
		a := status.Actions[step.Config.Action]
		err := e.cfg.Store.ReserveOrderIfFree(ctx, store.Reservation{
			OrderID: run.OrderID, RunID: run.ID, StepID: step.ID, From: a.From,
			At: e.cfg.Now(), Until: held.End,
		})
		var refused *store.OrderRefusedError
		switch {
		case errors.As(err, &refused) && refused.HeldBy != "":
			return attempt{err: fmt.Errorf("%s not called: order %s is being moved from %s by run %s (step %s) until %s",
				a.Name, run.OrderID, a.From, refused.HeldBy, refused.HeldStep, refused.HeldUntil.Format(time.RFC3339))}
		case errors.As(err, &refused):
			err := fmt.Errorf("%s not called: order %s is %s, moved there by run %s; %s needs it %s",
				a.Name, run.OrderID, refused.Status, refused.ByRun, a.Name, a.From)
			if (&status.ErrPrecondition{Want: a.From, Got: refused.Status}).Passed() {
				err = runstate.Permanent(err) // orders only move forward
			}
			return attempt{err: err}
		case err != nil:
			return attempt{err: fmt.Errorf("reserve order %s: %w", run.OrderID, err)}
		}
	}
	red := &template.Redactor{}
	tc := template.Context{RunID: run.ID, OrderID: run.OrderID, Redactor: red, Secret: func(name string) (string, error) {
		if e.cfg.Secrets == nil {
			return "", errors.New("no secrets are configured on this runner")
		}
		return e.cfg.Secrets.Get(ctx, name)
	}}
	needs := rn.plan[i].Needs
	if needs.Input || len(needs.Steps) > 0 {
		tc.Outputs = map[string]json.RawMessage{}
		var stored []int // outputs to read: those committed already
		for _, j := range rn.plan.Indexes(needs.Steps) {
			if out, ok := here[j]; ok {
				tc.Outputs[rn.plan[j].ID] = out
			} else {
				stored = append(stored, j)
			}
		}
		data, err := e.cfg.Store.LoadData(ctx, run.ID, run.Gen, needs.Input, stored)
		if err != nil {
			return attempt{err: err}
		}
		tc.Input = data.InputAt(run.Gen)
		for _, j := range stored {
			tc.Outputs[rn.plan[j].ID] = data.Outputs[j]
		}
	}
	req, err := render(step, tc)
	if err != nil {
		return attempt{err: redacted(red, err)}
	}
	req.IdempotencyKey = IdempotencyKey(run.ID, step.ID, run.OrderID, step.Config.Action)
	out, err := e.cfg.HTTP.Do(ctx, req)
	var retryable *httpstep.RetryableError
	switch {
	case errors.As(err, &retryable):
		return attempt{err: redacted(red, err), retryAfter: retryable.After}
	case errors.Is(err, httpstep.ErrPermanent):
		return attempt{err: redacted(red, runstate.Permanent(err))}
	case err != nil:
		return attempt{err: redacted(red, err)}
	}
	out = red.RedactJSON(out)
	if len(out) > MaxOutputBytes {
		return attempt{err: runstate.Permanent(fmt.Errorf("the output is %d bytes; the most a step may output is %d (64 KiB)", len(out), MaxOutputBytes))}
	}
	return attempt{output: out}
}

// render fills in the templates of an http step's request. A template that
// cannot be filled in (a path missing at run time) fails the step for
// good; a secret that cannot be read fails the attempt.
func render(step workflow.PlannedStep, tc template.Context) (httpstep.Request, error) {
	c := step.Config
	fail := func(field string, err error) (httpstep.Request, error) {
		var re *template.RenderError
		if errors.As(err, &re) {
			return httpstep.Request{}, runstate.Permanent(fmt.Errorf("config.%s: %w", field, err))
		}
		return httpstep.Request{}, fmt.Errorf("config.%s: %w", field, err)
	}
	url, err := template.RenderString(c.URL, tc)
	if err != nil {
		return fail("url", err)
	}
	req := httpstep.Request{Method: c.Method, URL: url, Timeout: seconds(c.TimeoutSeconds)}
	if len(c.Headers) > 0 {
		req.Headers = make(map[string]string, len(c.Headers))
		for name, v := range c.Headers {
			if req.Headers[name], err = template.RenderString(v, tc); err != nil {
				return fail("headers."+name, err)
			}
		}
	}
	if len(c.Body) > 0 {
		if req.Body, err = template.Render(c.Body, tc); err != nil {
			return fail("body", err)
		}
	}
	return req, nil
}

// redactedError is an error whose text has secrets redacted, keeping what
// it wraps for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redacted(r *template.Redactor, err error) error {
	return &redactedError{msg: r.Redact(err.Error()), err: err}
}
