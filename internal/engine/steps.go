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
// carries an order action that moves the order, it is derived from the
// order and the action instead, so that two runs moving one order send the
// service the same key (an action that does not move the order, such as
// send_notification, is the step's own: each run notifies). inputGen is the
// generation of the run's input the step's templates read (0 when they read
// none, or the input the run was created with): a retry that gives a new
// input makes a new request, which gets a new key, so that a service that
// saved its answer to the old request (a refusal included) does not replay
// it.
func IdempotencyKey(runID, stepID, orderID, action string, inputGen int) string {
	var h [32]byte
	if a, ok := status.Actions[action]; ok && a.ChangesStatus() && orderID != "" {
		h = sha256.Sum256([]byte("order\x00" + orderID + "\x00" + action))
	} else if inputGen > 0 {
		h = sha256.Sum256([]byte(fmt.Sprintf("step\x00%s\x00%s\x00%d", runID, stepID, inputGen)))
	} else {
		h = sha256.Sum256([]byte("step\x00" + runID + "\x00" + stepID))
	}
	return "sf-" + hex.EncodeToString(h[:16])
}

// attempt is what one attempt of a step returns.
type attempt struct {
	output     json.RawMessage
	readsInput bool
	inputGen   int
	retryAfter time.Duration
	wait       bool
	until      time.Time
	callback   string
	err        error
}

// approvalHash is the hash of the callback token of the wait that attempt
// n of approval step i began at start (see callback.Token). The key was
// read before anything started (see handleRun).
func (rn *runner) approvalHash(i, n int, start time.Time) string {
	return callback.Hash(callback.Token(rn.key, rn.ref.ID, i, n, runstate.Ms(start)))
}

// run performs one attempt of step i, held by held, of run (as known),
// started at start: a task's simulation, an http step's call, or the start
// of a wait.
//
// here holds the outputs of steps that succeeded in this invocation and
// are not committed yet (see runstate.Sched.OutputsHere); prep what an
// http step's templates read, fetched before its claim or fence.
func (rn *runner) run(ctx context.Context, i int, held runstate.Slot, run runstate.State, start time.Time, in TaskInput, here map[int]json.RawMessage, prep prepared) attempt {
	step := rn.plan[i]
	switch step.Type {
	case workflow.TypeWait:
		return attempt{wait: true, until: start.Add(seconds(step.Config.Seconds))}
	case workflow.TypeApproval:
		a := attempt{wait: true, callback: rn.approvalHash(i, held.Attempt, start)}
		if t := step.Config.TimeoutSeconds; t > 0 {
			a.until = start.Add(seconds(t))
		}
		return a
	case workflow.TypeHTTP:
		return rn.call(ctx, i, held, run, here, prep)
	}
	return attempt{err: rn.e.cfg.Task.Run(ctx, in)}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// expired is the outcome of waiting step i, held by w, whose deadline
// came at now: a wait completes, an approval fails for good.
func (rn *runner) expired(i int, w runstate.Slot, now time.Time) runstate.Outcome {
	o := runstate.Outcome{Step: i, Held: w, Start: w.Start, End: now}
	if rn.plan[i].Type != workflow.TypeApproval {
		return o
	}
	o.Err = runstate.Permanent(fmt.Errorf("approval timed out: no decision within %v", w.End.Sub(w.Start)))
	o.Callback = rn.approvalHash(i, w.Attempt, w.Start)
	return o
}

// call makes http step i's request: it reserves the order if the step
// moves it, reads what its templates need, fills them in and calls out.
// Secrets are redacted from its output and error.
func (rn *runner) call(ctx context.Context, i int, held runstate.Slot, run runstate.State, here map[int]json.RawMessage, prep prepared) attempt {
	e, step := rn.e, rn.plan[i]
	if e.cfg.HTTP == nil {
		return attempt{err: runstate.Permanent(errors.New("http steps are not configured on this runner"))}
	}
	if runstate.ReservesOrder(rn.plan, i, run.OrderID) {
		a := status.Actions[step.Config.Action]
		err := e.cfg.Store.ReserveOrderIfFree(ctx, store.Reservation{
			OrderID: run.OrderID, RunID: run.ID, StepID: step.ID, Gen: run.Gen, From: a.From,
			At: e.cfg.Now(), Until: held.End,
		})
		var refused *store.OrderRefusedError
		switch {
		case errors.Is(err, store.ErrNotLive):
			return attempt{err: fmt.Errorf("%s not called: %w", a.Name, runstate.ErrNotStarted)}
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
	tc := template.Context{RunID: run.ID, OrderID: run.OrderID, Redactor: red, Secret: prep.secret}
	if needs := step.Needs; needs.Input || len(needs.Steps) > 0 {
		tc.Input = prep.input
		tc.Outputs = map[string]json.RawMessage{}
		for _, j := range rn.plan.Indexes(needs.Steps) {
			if out, ok := here[j]; ok {
				tc.Outputs[rn.plan[j].ID] = out
			} else {
				tc.Outputs[rn.plan[j].ID] = prep.outputs[j]
			}
		}
	}
	req, err := render(step, tc)
	if err != nil {
		return attempt{err: redacted(red, err)}
	}
	req.IdempotencyKey = IdempotencyKey(run.ID, step.ID, run.OrderID, step.Config.Action, prep.inputGen)
	req.Redact = func(body []byte) string {
		if json.Valid(body) {
			return string(red.RedactJSON(body)) // its strings decoded first
		}
		return red.Redact(string(body))
	}
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
	return attempt{output: out, readsInput: step.Needs.Input, inputGen: prep.inputGen}
}

// prepared is what an http step's templates read, fetched before the
// claim or the fence that covers its start, so that nothing is requested
// between those and the step's call: the run's input and the outputs of
// the steps it reads that are committed (outputs never change once
// committed, and an input belongs to its generation, which the claim or
// the fence checks), and its secrets (or why one could not be read: that
// fails the attempt, naming the secret).
type prepared struct {
	input    json.RawMessage
	inputGen int // the generation the input was given in
	outputs  map[int]json.RawMessage
	secrets  map[string]string
	missing  map[string]error
}

func (p prepared) secret(name string) (string, error) {
	if err := p.missing[name]; err != nil {
		return "", err
	}
	v, ok := p.secrets[name]
	if !ok {
		return "", fmt.Errorf("secret %s was not read before the step started", name)
	}
	return v, nil
}

// prepare fetches what the http steps among steps will read, for those
// not prepared yet. A storage error is the runner's: nothing has started.
func (rn *runner) prepare(ctx context.Context, steps []int) error {
	run := rn.s.Run()
	for _, i := range steps {
		step := rn.plan[i]
		if _, done := rn.prep[i]; done || step.Type != workflow.TypeHTTP {
			continue
		}
		p := prepared{secrets: map[string]string{}, missing: map[string]error{}, outputs: map[int]json.RawMessage{}}
		for _, name := range step.Needs.Secrets {
			if rn.e.cfg.Secrets == nil {
				p.missing[name] = errors.New("no secrets are configured on this runner")
				continue
			}
			v, err := rn.e.cfg.Secrets.Get(ctx, name)
			if err != nil {
				p.missing[name] = err
				continue
			}
			p.secrets[name] = v
		}
		var stored []int // the outputs read that are committed, as known
		for _, j := range rn.plan.Indexes(step.Needs.Steps) {
			if run.Knows(j) && run.Steps[j].Status == status.StepCompleted {
				stored = append(stored, j)
			}
		}
		if step.Needs.Input || len(stored) > 0 {
			data, err := rn.e.cfg.Store.LoadData(ctx, run.ID, run.Gen, step.Needs.Input, stored)
			if err != nil {
				return err
			}
			p.input, p.outputs = data.InputAt(run.Gen), data.Outputs
			if step.Needs.Input {
				p.inputGen = data.InputGenAt(run.Gen)
			}
		}
		rn.prep[i] = p
	}
	return nil
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
	url, err := template.RenderURL(c.URL, tc)
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
