package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"stepflow/internal/queue"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/workflow"
)

// Handle processes one message on its own. It returns nil when the message
// is done with (processed, a duplicate, or stale) and an error when it
// should be delivered again later (ErrBusy when its step runs elsewhere).
func (e *Engine) Handle(ctx context.Context, d Delivery) error {
	return e.handleRun(ctx, []Delivery{d})[0]
}

func (e *Engine) crash(p CrashPoint, ds []Delivery) bool {
	if e.cfg.Crash == nil {
		return false
	}
	for _, d := range ds {
		if e.cfg.Crash(p, d.Message) {
			return true
		}
	}
	return false
}

func (e *Engine) hide(ctx context.Context, log *slog.Logger, d Delivery, dur time.Duration) {
	if e.cfg.Visibility == nil || d.Receipt == "" {
		return
	}
	if err := e.cfg.Visibility.Extend(ctx, d.Receipt, dur); err != nil {
		log.WarnContext(ctx, "could not change message visibility", "step_index", d.StepIndex, "error", err)
	}
}

// handleRun processes the messages of one run that arrived together and
// returns, for each, nil when it is done with or the error to report.
func (e *Engine) handleRun(ctx context.Context, ds []Delivery) []error {
	errs := make([]error, len(ds))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if e.crash(AfterReceive, ds) {
		return fail(ErrCrashed)
	}
	m := ds[0].Message
	log := e.log.With("run_id", m.RunID)
	_, plan, err := e.cfg.Store.Plan(ctx, m.WorkflowID)
	if errors.Is(err, store.ErrNotFound) {
		log.WarnContext(ctx, "message for an unknown workflow dropped", "workflow_id", m.WorkflowID)
		return errs
	}
	if err != nil {
		return fail(err)
	}
	r, order, err := e.cfg.Store.LoadRun(ctx, m.RunID, len(plan), m.OrderID)
	if errors.Is(err, store.ErrNotFound) {
		log.WarnContext(ctx, "message for an unknown run dropped")
		return errs
	}
	if err != nil {
		return fail(err)
	}
	now := e.now()
	msgs := make([]runstate.Message, len(ds))
	for i, d := range ds {
		msgs[i] = runstate.Message{Step: d.StepIndex, Attempt: d.Attempt}
	}
	dec := runstate.Deliver(r, plan, msgs, now)
	for mi, until := range dec.Wait {
		e.hide(ctx, log, ds[mi], until.Sub(now)+time.Second)
		errs[mi] = ErrBusy
	}
	if len(dec.Claim) == 0 {
		return errs
	}
	rn := &runner{e: e, log: log, ds: ds, plan: plan, run: r, order: order, start: now}
	if err := rn.loop(ctx, dec.Claim); err != nil {
		if !errors.Is(err, ErrCrashed) {
			log.WarnContext(ctx, "run handling failed; its messages will come back", "error", err)
		}
		return fail(err)
	}
	return errs
}

// runner carries one invocation's work on one run: what it read, and what
// it has claimed and committed since.
type runner struct {
	e     *Engine
	log   *slog.Logger
	ds    []Delivery
	plan  workflow.Plan
	run   runstate.State
	order status.OrderStatus
	start time.Time
}

// loop claims steps, runs them and the dependents they make ready within
// the inline budget, commits, and follows up: claiming the next ready steps
// while time allows, else sending them to the queue.
func (rn *runner) loop(ctx context.Context, claim []int) error {
	e := rn.e
	for {
		leases, err := rn.claim(ctx, claim)
		if err != nil || len(leases) == 0 {
			return err
		}
		if e.crash(AfterClaim, rn.ds) {
			return ErrCrashed
		}
		outcomes := rn.execute(ctx, leases)
		if err := ctx.Err(); err != nil {
			// Our own deadline, not the steps' failure: leave the leases
			// to expire and the messages to come back.
			return err
		}
		if e.crash(AfterTask, rn.ds) {
			return ErrCrashed
		}
		done, retries, err := rn.commit(ctx, outcomes)
		if err != nil {
			return err
		}
		if e.crash(AfterCommit, rn.ds) {
			return ErrCrashed
		}
		next, err := rn.followUp(ctx, done)
		if err != nil {
			return err
		}
		now := e.now()
		var msgs []queue.Message
		for _, rt := range retries {
			m := queue.For(rn.run, rt.Step, rt.Attempt, now)
			// SQS delays in whole seconds: round up, so the message never
			// arrives before its due time.
			m.Delay = max(0, rt.Due.Sub(now)+time.Second-1).Truncate(time.Second)
			msgs = append(msgs, m)
		}
		inline := len(next) > 0 && rn.fits(ctx, now.Sub(rn.start), next...)
		if !inline {
			for _, i := range next {
				msgs = append(msgs, queue.For(rn.run, i, rn.run.Steps[i].Attempt, now))
			}
		}
		if len(msgs) > 0 {
			if err := e.cfg.Queue.Send(ctx, msgs); err != nil {
				return err
			}
		}
		if !inline {
			if e.crash(AfterEnqueue, rn.ds) {
				return ErrCrashed
			}
			return nil
		}
		claim = next
	}
}

// claim takes the steps that are still claimable, all at once (one
// conditional write). When the run changed since it was read, it reads it
// again and claims what is claimable then; another runner that took a step
// first wins it.
func (rn *runner) claim(ctx context.Context, steps []int) ([]runstate.Lease, error) {
	e := rn.e
	for try := 0; ; try++ {
		now := e.now()
		var want []int
		for _, i := range steps {
			if runstate.Claimable(rn.run, rn.plan, i, now) {
				want = append(want, i)
			}
		}
		if len(want) == 0 {
			return nil, nil
		}
		// Claim no more than can run at once: every claimed step starts
		// now, so its lease covers it. The rest go to the queue (a
		// duplicate of a message already sent is harmless).
		if len(want) > e.cfg.Parallelism {
			var rest []queue.Message
			for _, i := range want[e.cfg.Parallelism:] {
				rest = append(rest, queue.For(rn.run, i, rn.run.Steps[i].Attempt, now))
			}
			if err := e.cfg.Queue.Send(ctx, rest); err != nil {
				return nil, err
			}
			want = want[:e.cfg.Parallelism]
		}
		// The claimed steps commit together, after the longest of them
		// and the dependents run inline within the budget, which is at
		// most half the margin.
		c, leases := runstate.NewClaim(rn.run, rn.plan, want, e.cfg.IDs.Token(8), now, e.cfg.LeaseMargin)
		err := e.cfg.Store.ClaimSteps(ctx, c)
		if err == nil {
			rn.run = rn.run.Apply(c.Swaps)
			rn.keepHidden(ctx, leases, now)
			return leases, nil
		}
		// A conflict, or an answer that may have been lost: read again; if
		// the claim is there it landed.
		fresh, order, lerr := e.cfg.Store.LoadRun(ctx, rn.run.ID, len(rn.plan), rn.run.OrderID)
		if lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		rn.run, rn.order = fresh, order
		if sw := c.Swaps[0]; fresh.Steps[sw.Step] == sw.New {
			rn.keepHidden(ctx, leases, now)
			return leases, nil
		}
		if !errors.Is(err, store.ErrConflict) && try >= maxTries {
			return nil, err
		}
		if try >= maxTries {
			return nil, nil
		}
		rn.log.DebugContext(ctx, "claim refused; reading again", "error", err)
	}
}

// keepHidden keeps the messages hidden while the leases last, or they
// would come back mid-attempt and count towards the DLQ.
func (rn *runner) keepHidden(ctx context.Context, leases []runstate.Lease, now time.Time) {
	longest := time.Duration(0)
	for _, l := range leases {
		longest = max(longest, l.Held.End.Sub(now))
	}
	if longest > rn.e.cfg.QueueVisibility {
		for _, d := range rn.ds {
			rn.e.hide(ctx, rn.log, d, longest+time.Second)
		}
	}
}

// fits reports whether steps that would start after elapsed of inline work
// still fit the inline budget and the invocation's deadline.
func (rn *runner) fits(ctx context.Context, elapsed time.Duration, steps ...int) bool {
	e := rn.e
	longest := time.Duration(0)
	for _, i := range steps {
		longest = max(longest, runstate.StepDuration(rn.plan, i))
	}
	if elapsed+longest > e.cfg.InlineBudget {
		return false
	}
	if deadline, ok := ctx.Deadline(); ok && e.cfg.Now().Add(longest+e.cfg.LeaseMargin/2).After(deadline) {
		return false
	}
	return true
}

// job is a step attempt to run: a claimed step, or a dependent run inline.
type job struct {
	step int
	held runstate.Slot
	// after is when the runner learnt that the parent which made an inline
	// dependent ready had succeeded (full clock resolution, for OnStart).
	after time.Time
}

// execute runs the claimed steps and, as they succeed, the dependents they
// make ready, while those fit the inline budget. Right before starting such
// dependents it reads the run's header (a fence): if the run is no longer
// live in the generation read, nothing more starts. Attempts already
// running always finish.
func (rn *runner) execute(ctx context.Context, leases []runstate.Lease) []runstate.Outcome {
	e := rn.e
	results := make(chan runstate.Outcome)
	var waiting []job
	started := map[int]bool{}
	succeeded := map[int]bool{}
	var outcomes []runstate.Outcome
	running, stop := 0, false
	launch := func() {
		fenced := false
		for running < e.cfg.Parallelism && len(waiting) > 0 && !stop {
			j := waiting[0]
			if j.held.Status == status.StepPending {
				if !rn.fits(ctx, e.now().Sub(rn.start), j.step) {
					waiting = waiting[1:]
					continue // left pending; enqueued after the commit
				}
				// A fence per batch of starts, so that a cancel or retry
				// acknowledged before it stops every start after it.
				if !fenced {
					if !rn.fence(ctx) {
						stop = true
						return
					}
					fenced = true
				}
			}
			waiting = waiting[1:]
			running++
			order := rn.orderAfter(succeeded)
			go func() { results <- rn.attempt(ctx, j, order) }()
		}
	}
	for _, l := range leases {
		started[l.Step] = true
		waiting = append(waiting, job{step: l.Step, held: l.Held})
	}
	launch()
	for running > 0 {
		o := <-results
		learnt := e.cfg.Now()
		running--
		outcomes = append(outcomes, o)
		if o.Err != nil {
			if o.Held.Attempt >= rn.plan[o.Step].Config.MaxRetries {
				stop = true // the run will fail: start nothing more
			}
		} else {
			succeeded[o.Step] = true
			if !stop && ctx.Err() == nil {
				for _, c := range rn.inlineReady(ctx, o.Step, started, succeeded) {
					started[c] = true
					waiting = append(waiting, job{step: c, held: rn.run.Steps[c], after: learnt})
				}
			}
		}
		launch()
	}
	return outcomes
}

// inlineReady returns the dependents of step i that can start now in this
// invocation: pending and due, with every parent completed in storage or
// succeeded here, and within the budget.
func (rn *runner) inlineReady(ctx context.Context, i int, started, succeeded map[int]bool) []int {
	var out []int
	now := rn.e.now()
	for _, c := range rn.plan[i].Dependents {
		s := rn.run.Steps[c]
		if started[c] || s.Status != status.StepPending || s.Due.After(now) {
			continue
		}
		ready := true
		for _, p := range rn.plan[c].Parents {
			ready = ready && (rn.run.Steps[p].Status == status.StepCompleted || succeeded[p])
		}
		if ready && rn.fits(ctx, now.Sub(rn.start), c) {
			out = append(out, c)
		}
	}
	return out
}

// fence reports whether the run is still live in the generation read.
func (rn *runner) fence(ctx context.Context) bool {
	gen, live, err := rn.e.cfg.Store.Fence(ctx, rn.run.ID)
	if err != nil {
		rn.log.WarnContext(ctx, "fence read failed; starting nothing more", "error", err)
		return false
	}
	return live && gen == rn.run.Gen
}

// orderAfter is the order's status once the given steps' actions apply,
// in plan order, to the status read: what an action's precondition is
// checked against before it runs. The commit checks it again.
func (rn *runner) orderAfter(succeeded map[int]bool) status.OrderStatus {
	o := rn.order
	for i := range rn.plan {
		if a, ok := status.Actions[rn.plan[i].Config.Action]; succeeded[i] && ok && a.ChangesStatus() && a.Check(o) == nil {
			o = a.To
		}
	}
	return o
}

// attempt runs one attempt of a step. An order action whose precondition
// does not hold fails at once, without running.
func (rn *runner) attempt(ctx context.Context, j job, order status.OrderStatus) runstate.Outcome {
	e := rn.e
	ps := rn.plan[j.step]
	start := e.now()
	if e.cfg.OnStart != nil {
		m := queue.For(rn.run, j.step, j.held.Attempt, j.after)
		for _, d := range rn.ds {
			if d.StepIndex == j.step && j.after.IsZero() {
				m = d.Message
			}
		}
		e.cfg.OnStart(m, e.cfg.Now())
	}
	o := runstate.Outcome{Step: j.step, Held: j.held, Start: start}
	if a, ok := status.Actions[ps.Config.Action]; ok && rn.run.OrderID != "" {
		if err := a.Check(order); err != nil {
			o.End, o.Err = start, err
			return o
		}
	}
	rn.log.DebugContext(ctx, "step started", "step_id", ps.ID, "step_index", j.step, "attempt", j.held.Attempt)
	o.Err = e.cfg.Task.Run(ctx, TaskInput{
		RunID: rn.run.ID, StepID: ps.ID, Index: j.step, Attempt: j.held.Attempt, Generation: rn.run.Gen, Config: ps.Config,
	})
	o.End = e.now()
	if o.End.Before(start) {
		o.End = start
	}
	return o
}

// commit commits the outcomes in plan order, at most maxStepsPerCommit at a
// time, and returns the steps it completed and the retries to send.
func (rn *runner) commit(ctx context.Context, outcomes []runstate.Outcome) ([]int, []runstate.NextAttempt, error) {
	slices.SortFunc(outcomes, func(a, b runstate.Outcome) int { return a.Step - b.Step })
	var done []int
	var retries []runstate.NextAttempt
	for len(outcomes) > 0 {
		n := min(len(outcomes), maxStepsPerCommit)
		c, err := rn.commitBatch(ctx, outcomes[:n])
		if err != nil {
			return done, retries, err
		}
		done = append(done, c.Committed()...)
		retries = append(retries, c.Retries...)
		outcomes = outcomes[n:]
	}
	return done, retries, nil
}

// commitBatch builds and writes one commit. After a conflict it reads the
// run again and rebuilds: steps whose slot changed are dropped, an order
// moved by another run is checked again. A commit DynamoDB refuses as
// invalid can never succeed: its attempts then fail for good, and if even
// that is refused the run fails.
func (rn *runner) commitBatch(ctx context.Context, batch []runstate.Outcome) (runstate.Commit, error) {
	e := rn.e
	refused := false
	for try := 0; ; try++ {
		c := runstate.BuildCommit(rn.run, rn.plan, rn.order, batch, e.cfg.Retry, e.now())
		if len(c.Swaps) == 0 {
			return c, nil
		}
		err := e.cfg.Store.CommitGroup(ctx, c, e.cfg.IDs.New("cmt"))
		switch {
		case err == nil:
			rn.landed(ctx, c)
			return c, nil
		case errors.Is(err, store.ErrInvalid) && !refused:
			rn.log.ErrorContext(ctx, "storage refused the commit; failing its steps", "error", err)
			refused = true
			batch = slices.Clone(batch)
			for i := range batch {
				batch[i].Err = fmt.Errorf("%w: %v", runstate.ErrStorage, err)
			}
		case errors.Is(err, store.ErrInvalid):
			end, ferr := runstate.Fail(rn.run, e.now())
			if ferr != nil {
				return c, err
			}
			rn.log.ErrorContext(ctx, "storage refused the failure too; failing the run", "error", err)
			if eerr := e.cfg.Store.EndRun(ctx, end); eerr != nil && !errors.Is(eerr, store.ErrConflict) {
				return c, errors.Join(err, eerr)
			}
			return runstate.Commit{}, nil
		case try >= maxTries:
			return c, err
		default:
			// A conflict, or an answer that may have been lost: read the
			// run again. If the commit is there (a transaction lands
			// whole), it landed; else rebuild it on what is there now.
			fresh, order, lerr := e.cfg.Store.LoadRun(ctx, rn.run.ID, len(rn.plan), rn.run.OrderID)
			if lerr != nil {
				return c, errors.Join(err, lerr)
			}
			if sw := c.Swaps[0]; fresh.Steps[sw.Step] == sw.New {
				rn.landed(ctx, c)
				return c, nil
			}
			rn.run, rn.order = fresh, order
			rn.log.DebugContext(ctx, "commit refused; rebuilding", "error", err)
		}
	}
}

// landed records a commit that is in storage, and logs it: one line per
// commit (the steps it completed, the run's end), one per failed attempt.
func (rn *runner) landed(ctx context.Context, c runstate.Commit) {
	rn.run = rn.run.Apply(c.Swaps)
	if c.End != "" {
		rn.run.Status, rn.run.EndedAt = c.End, c.At
	}
	if c.Order != nil {
		rn.order = c.Order.To
	}
	for _, f := range c.Failures {
		rn.log.WarnContext(ctx, "step attempt failed", "step_id", rn.plan[f.Step].ID, "attempt", f.Attempt, "error", f.Error)
	}
	done := c.Committed()
	ids := make([]string, len(done))
	for n, i := range done {
		ids[n] = rn.plan[i].ID
		if rn.e.cfg.OnCommit != nil {
			rn.e.cfg.OnCommit(rn.run.ID, i)
		}
	}
	attrs := []any{"step_ids", ids}
	if c.End != "" {
		attrs = append(attrs, "run_status", c.End)
	}
	rn.log.InfoContext(ctx, "steps committed", attrs...)
}

// followUp returns the dependents of the steps done that can start now.
// When the run as this runner knows it may be stale (other runners may have
// completed siblings), it reads the run again first, and ends the run if
// every step has completed.
func (rn *runner) followUp(ctx context.Context, done []int) ([]int, error) {
	e := rn.e
	now := e.now()
	ready, reread := runstate.FollowUp(rn.run, rn.plan, done, now)
	if !reread {
		return ready, nil
	}
	fresh, order, err := e.cfg.Store.LoadRun(ctx, rn.run.ID, len(rn.plan), rn.run.OrderID)
	if err != nil {
		return nil, err
	}
	rn.run, rn.order = fresh, order
	ready, complete := runstate.Next(fresh, rn.plan, done, now)
	if complete {
		end := runstate.End{RunID: fresh.ID, Gen: fresh.Gen, Items: runstate.Items(len(fresh.Steps)), To: status.RunCompleted, At: now}
		switch err := e.cfg.Store.EndRun(ctx, end); {
		case err == nil:
			rn.log.InfoContext(ctx, "run ended", "status", status.RunCompleted)
		case !errors.Is(err, store.ErrConflict):
			return nil, err
		}
	}
	return ready, nil
}
