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
// should be delivered again later (ErrBusy when its step runs elsewhere or
// waits for its retry).
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
// returns, for each, nil when it is done with or the error to report. It
// reads only the items the messages' steps need (their own, their parents'
// and their dependents'), and more only when the decision asks for them.
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
	ref := store.RunRef{ID: m.RunID, WorkflowID: m.WorkflowID, OrderID: m.OrderID, Steps: len(plan)}
	msgs := make([]runstate.Message, len(ds))
	steps := make([]int, len(ds))
	for i, d := range ds {
		msgs[i] = runstate.Message{Step: d.StepIndex, Attempt: d.Attempt, Gen: d.Gen}
		steps[i] = d.StepIndex
	}
	items := runstate.ItemsFor(plan, steps)
	if len(items) == 0 {
		log.WarnContext(ctx, "message for a step the workflow does not have dropped", "step_index", m.StepIndex)
		return errs
	}
	var r runstate.State
	var order status.OrderStatus
	var dec runstate.Delivery
	now := e.now()
	for range runstate.Items(len(plan)) + 1 {
		r, order, err = e.cfg.Store.LoadItems(ctx, ref, items)
		if errors.Is(err, store.ErrNotFound) {
			log.WarnContext(ctx, "message for an unknown run dropped")
			return errs
		}
		if err != nil {
			return fail(err)
		}
		now = e.now()
		dec = runstate.Deliver(r, plan, msgs, now)
		if len(dec.Need) == 0 {
			break
		}
		for _, k := range dec.Need {
			if !slices.Contains(items, k) {
				items = append(items, k)
			}
		}
		slices.Sort(items)
	}
	for mi, until := range dec.Wait {
		e.hide(ctx, log, ds[mi], until.Sub(now)+time.Second)
		errs[mi] = ErrBusy
	}
	if len(dec.Later) > 0 {
		// Waits still to end: the next message of each chain, and this
		// one is done.
		var next []queue.Message
		var idx []int
		for mi, until := range dec.Later {
			m := queue.For(r, ds[mi].StepIndex, r.Steps[ds[mi].StepIndex].Attempt, now)
			due := now.Add(e.cfg.Hop)
			if until.Before(due) {
				due = until
			}
			m.Delay = e.delay(due, now)
			next, idx = append(next, m), append(idx, mi)
		}
		if err := e.cfg.Queue.Send(ctx, next); err != nil {
			for _, mi := range idx {
				errs[mi] = fmt.Errorf("send the next message of a wait: %w", err)
			}
		}
	}
	if len(dec.Claim) == 0 && len(dec.Expire) == 0 {
		return errs
	}
	rn := &runner{
		e: e, log: log, ds: ds, plan: plan, ref: ref,
		terms:   runstate.LeaseTerms{Token: e.cfg.IDs.Token(8), Margin: e.cfg.LeaseMargin},
		results: make(chan result, e.cfg.Parallelism),
		prep:    map[int]prepared{},
	}
	cfg := runstate.SchedConfig{
		Parallelism: e.cfg.Parallelism, Window: e.cfg.CommitWindow, Budget: e.cfg.InlineBudget,
		Began: now, Policy: e.cfg.Retry, MaxSteps: maxStepsPerCommit, MaxBytes: maxCommitBytes, Hop: e.cfg.Hop,
	}
	if deadline, ok := ctx.Deadline(); ok {
		cfg.Deadline = deadline
	}
	if plan.Has(workflow.TypeApproval) {
		// The key approvals' callback tokens are derived from, read before
		// anything starts: a request between a claim and its starts, or a
		// failure of it failing an approval, is not wanted (it is cached
		// once read).
		if rn.key, err = e.cfg.Store.CallbackKey(ctx); err != nil {
			return fail(fmt.Errorf("callback key: %w", err))
		}
	}
	rn.s = runstate.NewSched(plan, r, order, cfg, rn.terms, dec.Claim)
	for _, i := range dec.Expire {
		rn.s.Resolve(rn.expired(i, r.Steps[i], now), now)
	}
	if err := rn.loop(ctx); err != nil {
		if !errors.Is(err, ErrCrashed) {
			log.WarnContext(ctx, "run handling failed; its messages will come back", "error", err)
		}
		return fail(err)
	}
	return errs
}

// runner performs, for one invocation's work on one run, the actions its
// scheduler (runstate.Sched) decides: reads, fences, claims, task starts,
// commits, sends and the run's end. All the deciding is in the scheduler.
type runner struct {
	e     *Engine
	log   *slog.Logger
	ds    []Delivery
	plan  workflow.Plan
	ref   store.RunRef
	terms runstate.LeaseTerms
	s     *runstate.Sched
	// key is the callback key, read when the plan has approvals.
	key []byte
	// prep is what http steps about to start read (see prepare).
	prep map[int]prepared

	results chan result
	running int
	// hiddenUntil is how long the invocation's messages are hidden, as
	// extended to cover its leases.
	hiddenUntil time.Time
	conflicts   int
}

type result struct {
	o runstate.Outcome
	// learnt is when the runner learnt the outcome (full clock resolution).
	learnt time.Time
}

// loop performs the scheduler's actions until it has nothing left to do.
// On an error it starts nothing more and waits for the attempts running
// (an attempt is never cut short), then returns the error; their leases
// expire and their messages come back. An injected crash returns at once,
// as a dead process would.
func (rn *runner) loop(ctx context.Context) error {
	var failed error
	for {
		if failed != nil && rn.running == 0 {
			return failed
		}
		if err := ctx.Err(); err != nil && failed == nil {
			// Our own deadline, not the steps' failure: leave the
			// leases to expire and the messages to come back.
			failed = err
			rn.s.Fail()
		}
		act := rn.s.Next(rn.e.now())
		if failed != nil {
			act = runstate.Action{Kind: runstate.ActWait}
		}
		var err error
		switch act.Kind {
		case runstate.ActRead:
			err = rn.read(ctx, act.Items)
		case runstate.ActFence:
			// What the steps about to start read is fetched first: the
			// fence is the last request before they start.
			if err = rn.prepare(ctx, act.Steps); err != nil {
				break
			}
			var gen int
			var live bool
			if gen, live, err = rn.e.cfg.Store.Fence(ctx, rn.ref.ID); err == nil {
				rn.s.Fenced(gen, live)
			}
		case runstate.ActClaim:
			err = rn.claim(ctx, act.Steps)
		case runstate.ActStart:
			rn.s.Started(act.Steps, rn.e.now())
			for _, i := range act.Steps {
				rn.launch(ctx, i)
			}
		case runstate.ActCommit:
			err = rn.commit(ctx)
		case runstate.ActSend:
			err = rn.send(ctx)
		case runstate.ActEnd:
			err = rn.end(ctx)
		case runstate.ActWait:
			rn.wait(ctx, act.Until)
		case runstate.ActDone:
			return nil
		}
		switch {
		case errors.Is(err, ErrCrashed):
			return err
		case err != nil && failed == nil:
			failed = err
			rn.s.Fail()
		}
	}
}

// read reads items of the run and hands them to the scheduler.
func (rn *runner) read(ctx context.Context, items []int) error {
	fresh, order, err := rn.e.cfg.Store.LoadItems(ctx, rn.ref, items)
	if err != nil {
		return err
	}
	rn.s.Read(fresh, order)
	return nil
}

// claim claims steps with one conditional write, and starts them.
func (rn *runner) claim(ctx context.Context, steps []int) error {
	e := rn.e
	// What the steps read is fetched first: the claim is the last request
	// before they start.
	if err := rn.prepare(ctx, steps); err != nil {
		return err
	}
	now := e.now()
	c, leases := runstate.NewClaim(rn.s.Run(), rn.plan, steps, rn.terms, now)
	err := e.cfg.Store.ClaimIfLive(ctx, c)
	switch {
	case err == nil:
		rn.s.Claimed(leases)
		if e.crash(AfterClaim, rn.ds) {
			return ErrCrashed
		}
		// Start at once: no request between the claim that proved the
		// run live and the starts, so that a cancel acknowledged after
		// the claim finds the steps running, never about to start.
		for _, l := range leases {
			rn.launch(ctx, l.Step)
		}
		rn.keepHidden(ctx, leases)
		return nil
	case errors.Is(err, store.ErrRunMoved):
		// The claim landed while its answer was lost, and the run was
		// cancelled or retried before the runner read it back: the steps
		// do not start. Give the slots back, so that a cancelled run
		// shows them cancelled and a retried one runs them.
		rn.log.InfoContext(ctx, "claim landed after the run ended or was retried; releasing it", "steps", steps)
		gen := c.Gen
		var moved *store.RunMovedError
		if errors.As(err, &moved) {
			gen = moved.Gen
		}
		if rerr := e.cfg.Store.ReleaseIfHeld(ctx, rn.ref.ID, runstate.Release(c, gen)); rerr != nil {
			rn.log.WarnContext(ctx, "could not release a claim; its lease will expire", "error", rerr)
		}
		if err := rn.read(ctx, runstate.ItemsFor(rn.plan, steps)); err != nil {
			return err
		}
		if r := rn.s.Run(); r.Live() {
			// Retried: the released steps are ready in the new generation.
			var msgs []queue.Message
			for _, i := range steps {
				if runstate.Claimable(r, rn.plan, i, now) {
					msgs = append(msgs, queue.For(r, i, r.Steps[i].Attempt, now))
				}
			}
			if len(msgs) > 0 {
				return e.cfg.Queue.Send(ctx, msgs)
			}
		}
		return nil
	case errors.Is(err, store.ErrConflict):
		// Another runner took a step first, or the run changed: read
		// again, and claim what is still claimable. Each conflict means
		// another writer made progress; past a bound, give up (the
		// messages come back).
		if rn.conflicts++; rn.conflicts > maxConflicts {
			return fmt.Errorf("%d conflicting writes in one invocation: %w", rn.conflicts, err)
		}
		rn.log.DebugContext(ctx, "claim refused; reading again", "error", err)
		if err := rn.read(ctx, runstate.ItemsFor(rn.plan, steps)); err != nil {
			return err
		}
		rn.s.ClaimRefused(steps, e.now())
		return nil
	}
	return err
}

// launch starts step i's attempt in the background; its outcome comes back
// through rn.results.
func (rn *runner) launch(ctx context.Context, i int) {
	e := rn.e
	held := rn.s.Held(i)
	run := rn.s.Run()
	rn.running++
	msg := rn.ds[0].Message
	if learnt := rn.s.Learnt(i); !learnt.IsZero() {
		msg = queue.For(run, i, held.Attempt, learnt)
	} else {
		for _, d := range rn.ds {
			if d.StepIndex == i {
				msg = d.Message
			}
		}
	}
	in := TaskInput{
		RunID: run.ID, StepID: rn.plan[i].ID, Index: i, Attempt: held.Attempt, Generation: run.Gen,
		Config: rn.plan[i].Config,
	}
	var err error
	if !runstate.ReservesOrder(rn.plan, i, run.OrderID) {
		// (The scheduler read the order again before a refusal. A step
		// that reserves the order checks it there, atomically, and
		// learns which run moved it.)
		err = rn.s.OrderCheck(i, e.now())
	}
	if err != nil {
		// The order is not where the action needs it: the attempt fails
		// at once, and its task does not run.
		now := e.cfg.Now()
		rn.results <- result{o: runstate.Outcome{Step: i, Start: now, End: now, Err: err}, learnt: now}
		return
	}
	start := e.cfg.Now()
	if e.cfg.OnStart != nil {
		e.cfg.OnStart(in, msg, start)
	}
	here := rn.s.OutputsHere(rn.plan.Indexes(rn.plan[i].Needs.Steps))
	if _, ok := rn.prep[i]; !ok && rn.plan[i].Type == workflow.TypeHTTP {
		// Not fetched before its claim or fence (never expected): fetch
		// now rather than fail the step.
		rn.log.WarnContext(ctx, "http step's data fetched after its start", "step_id", rn.plan[i].ID)
		if err := rn.prepare(ctx, []int{i}); err != nil {
			now := e.cfg.Now()
			rn.results <- result{o: runstate.Outcome{Step: i, Start: now, End: now, Err: err}, learnt: now}
			return
		}
	}
	prep := rn.prep[i]
	delete(rn.prep, i) // a later attempt fetches again
	e.cfg.Go(func() {
		a := rn.run(ctx, i, held, run, start, in, here, prep)
		end := e.cfg.Now()
		rn.results <- result{o: runstate.Outcome{
			Step: i, Start: start, End: end, Err: a.err, Output: a.output, RetryAfter: a.retryAfter,
			Wait: a.wait, Until: a.until, Callback: a.callback, ReadsInput: a.readsInput, InputGen: a.inputGen,
		}, learnt: end}
	})
}

// wait waits for an attempt to end, or until until (if set).
func (rn *runner) wait(ctx context.Context, until time.Time) {
	if rn.drain() {
		return // attempts that ended come first, all of them
	}
	if y := rn.e.cfg.Yield; y != nil {
		// Cooperative: let the test's scheduler run others until an
		// attempt ends or the time comes.
		for !rn.drain() && (rn.running > 0 || !until.IsZero()) {
			if !until.IsZero() && !rn.e.now().Before(until) {
				return
			}
			y(ctx)
		}
		return
	}
	var timer <-chan time.Time
	if !until.IsZero() {
		timer = rn.e.cfg.After(until)
	}
	if rn.running == 0 && timer == nil {
		return
	}
	done := ctx.Done()
	if ctx.Err() != nil {
		done = nil // attempts watch ctx and end soon: wait for them
	}
	select {
	case res := <-rn.results:
		rn.running--
		rn.s.Ended(res.o, res.learnt)
		rn.drain()
	case <-timer:
	case <-done:
	}
}

// drain hands the scheduler every outcome that has come in, so that
// attempts ending together are decided about together (one fence for
// their dependents, one commit), and reports whether there was any.
func (rn *runner) drain() bool {
	got := false
	for {
		select {
		case res := <-rn.results:
			rn.running--
			rn.s.Ended(res.o, res.learnt)
			got = true
		default:
			return got
		}
	}
}

// commit writes what the scheduler commits now, transaction by transaction.
func (rn *runner) commit(ctx context.Context) error {
	e := rn.e
	if e.crash(AfterTask, rn.ds) {
		return ErrCrashed
	}
	now := e.now()
	commits := rn.s.Commits(now)
	for _, c := range commits {
		if len(c.Refused) > 0 {
			// The order refuses a successful action as the runner knows
			// it: read the order again before committing a failure.
			if err := rn.read(ctx, runstate.ItemsFor(rn.plan, c.Refused)); err != nil {
				return err
			}
			commits = rn.s.Commits(now)
			break
		}
	}
	for _, c := range commits {
		err := e.cfg.Store.CommitIfHeld(ctx, c, e.cfg.IDs.New("cmt"))
		switch {
		case err == nil:
			rn.landed(ctx, c)
			if e.crash(AfterCommit, rn.ds) {
				return ErrCrashed
			}
			continue
		case errors.Is(err, store.ErrInvalid):
			if rn.s.StorageRefused(err) {
				rn.log.ErrorContext(ctx, "storage refused the commit; failing its steps", "error", err)
				return nil // rebuilt with the attempts failed for good
			}
			rn.log.ErrorContext(ctx, "storage refused the failure too; failing the run", "error", err)
			if end, ferr := runstate.Fail(rn.s.Run(), now); ferr == nil {
				if eerr := e.cfg.Store.EndRunIfRunning(ctx, end); eerr != nil && !errors.Is(eerr, store.ErrConflict) {
					return errors.Join(err, eerr)
				}
			}
			rn.s.Fail()
			return nil
		case errors.Is(err, store.ErrConflict):
			if rn.conflicts++; rn.conflicts > maxConflicts {
				return err
			}
			// The run changed (a lease lost, the run cancelled or
			// retried, the order moved by another run): read again; the
			// next commit is rebuilt on what is there now.
			rn.log.DebugContext(ctx, "commit refused; rebuilding", "error", err)
			return rn.read(ctx, rn.commitItems(c))
		default:
			return err
		}
	}
	return nil
}

// commitItems are the items to read again after commit c was refused.
func (rn *runner) commitItems(c runstate.Commit) []int {
	var steps []int
	for _, sw := range c.Swaps {
		steps = append(steps, sw.Step)
	}
	items := runstate.ItemsFor(rn.plan, steps)
	if !slices.Contains(items, 0) {
		items = append([]int{0}, items...)
	}
	return items
}

// landed tells the scheduler that commit c is in storage, and logs it: one
// line per commit (the steps it completed, the run's end), one per failed
// attempt.
func (rn *runner) landed(ctx context.Context, c runstate.Commit) {
	e := rn.e
	landedAt := e.cfg.Now()
	ends := map[int]time.Time{}
	for _, sw := range c.Swaps {
		if sw.New.Status == status.StepCompleted {
			ends[sw.Step] = sw.New.End
		}
	}
	rn.s.Landed(c)
	rn.keepHidden(ctx, c.Claimed())
	for _, sw := range c.Swaps {
		if sw.New.Status == status.StepFailed && runstate.ReservesOrder(rn.plan, sw.Step, c.OrderID) {
			// It failed for good holding the order: others need not wait
			// for its lease to end.
			if err := e.cfg.Store.ReleaseOrderIfHeld(ctx, c.OrderID, c.RunID); err != nil {
				rn.log.WarnContext(ctx, "could not release the order; its reservation lapses with the lease", "error", err)
			}
		}
	}
	for _, f := range c.Failures {
		rn.log.WarnContext(ctx, "step attempt failed", "step_id", rn.plan[f.Step].ID, "attempt", f.Attempt, "error", f.Error)
	}
	done := c.Committed()
	if len(done) == 0 && c.End == "" {
		return
	}
	ids := make([]string, len(done))
	for n, i := range done {
		ids[n] = rn.plan[i].ID
		if e.cfg.OnCommit != nil {
			e.cfg.OnCommit(rn.ref.ID, i, ends[i], landedAt)
		}
	}
	attrs := []any{"step_ids", ids}
	if c.End != "" {
		attrs = append(attrs, "run_status", c.End)
	}
	rn.log.InfoContext(ctx, "steps committed", attrs...)
}

// send sends the messages the scheduler decided: next attempts, delayed
// until due, and steps to run elsewhere.
func (rn *runner) send(ctx context.Context) error {
	e := rn.e
	now := e.now()
	run := rn.s.Run()
	var msgs []queue.Message
	for _, n := range rn.s.Sends() {
		m := queue.For(run, n.Step, n.Attempt, now)
		m.Delay = e.delay(n.Due, now)
		msgs = append(msgs, m)
	}
	if err := e.cfg.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("send step messages: %w", err)
	}
	rn.s.Sent()
	if e.crash(AfterEnqueue, rn.ds) {
		return ErrCrashed
	}
	return nil
}

// delay is the delay of a message due at due, sent at now: SQS delays in
// whole seconds, so it is rounded up (the message never arrives before it
// is due), and at most SQS's 15 minutes.
func (e *Engine) delay(due, now time.Time) time.Duration {
	return min(runstate.DefaultHop, max(0, due.Sub(now)+time.Second-1).Truncate(time.Second))
}

// end ends the run as completed; another writer ending it first is fine.
func (rn *runner) end(ctx context.Context) error {
	end, err := runstate.Complete(rn.s.Run(), rn.e.now())
	if err != nil {
		return err
	}
	switch err := rn.e.cfg.Store.EndRunIfRunning(ctx, end); {
	case err == nil:
		rn.log.InfoContext(ctx, "run ended", "status", status.RunCompleted)
	case !errors.Is(err, store.ErrConflict):
		return err
	}
	rn.s.EndLanded()
	return nil
}

// keepHidden keeps the invocation's messages hidden while its leases last,
// or they would come back mid-attempt and count towards the DLQ.
func (rn *runner) keepHidden(ctx context.Context, leases []runstate.Lease) {
	e := rn.e
	now := e.now()
	until := rn.hiddenUntil
	if until.IsZero() {
		until = now.Add(e.cfg.QueueVisibility)
	}
	longest := until
	for _, l := range leases {
		if l.Held.End.After(longest) {
			longest = l.Held.End
		}
	}
	if longest.After(until) {
		for _, d := range rn.ds {
			e.hide(ctx, rn.log, d, longest.Sub(now)+time.Second)
		}
		rn.hiddenUntil = longest
	} else if rn.hiddenUntil.IsZero() {
		rn.hiddenUntil = until
	}
}
