package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"stepflow/internal/queue"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// Runs is what the sweeper reads and writes of runs. Implementations must
// be safe for concurrent use: workers call them at once.
type Runs interface {
	// Shards is the number of by_active shards. ListActiveRuns returns
	// the IDs of one shard's running runs after p.Cursor, oldest first,
	// and the cursor of the next page ("" after the last).
	Shards() int
	ListActiveRuns(ctx context.Context, shard int, p store.Page) ([]string, string, error)
	// ReadRuns reads runs whole, eventually consistently (everything the
	// sweeper does is conditional or idempotent), in the order asked; a
	// run that is gone has ErrNotFound, one that cannot be decoded an
	// error store.IsUnreadable accepts.
	ReadRuns(ctx context.Context, ids []string) ([]store.RunRead, error)
	Plan(ctx context.Context, workflowID string) (wire.Workflow, workflow.Plan, error)
	// EndRunIfRunning returns store.ErrConflict if the run moved since
	// it was read.
	EndRunIfRunning(ctx context.Context, e runstate.End) error
}

// Marks stores the sweeper's record of its re-sends (see Backoff).
type Marks interface {
	// ReadResendMarks reads the marks of the runs named, eventually
	// consistently.
	ReadResendMarks(ctx context.Context, runIDs []string) (map[string]store.ResendMarks, error)
	// ReplaceResendMarksIfUnchanged returns the marks as written, or
	// store.ErrConflict if another sweeper wrote the run's marks since
	// read.
	ReplaceResendMarksIfUnchanged(ctx context.Context, runID string, read store.ResendMarks, steps map[int]store.ResendMark, expires time.Time) (store.ResendMarks, error)
}

// Cursor stores where the sweep cycle stands, leased to one pass at a
// time.
type Cursor interface {
	// TakeSweepIfFree returns store.ErrConflict if another pass holds
	// the cursor at now.
	TakeSweepIfFree(ctx context.Context, now, until time.Time) (store.SweepCursor, store.SweepLease, error)
	// SaveSweepIfHeld and ReleaseSweepIfHeld return store.ErrConflict if
	// the lease ended and another pass took the cursor.
	SaveSweepIfHeld(ctx context.Context, l store.SweepLease, c store.SweepCursor) error
	ReleaseSweepIfHeld(ctx context.Context, l store.SweepLease, c store.SweepCursor) error
}

// Store is what the sweeper needs from storage.
type Store interface {
	Runs
	Marks
	Cursor
}

var _ Store = (*store.Store)(nil)

// Queue sends step messages.
type Queue interface {
	Send(ctx context.Context, msgs []queue.Message) error
}

// Defaults of the Sweeper's settings.
const (
	DefaultWorkers = 8
	DefaultBudget  = 45 * time.Second
	DefaultBatch   = 100
)

const (
	// reserve is how long before its context's deadline a pass stops
	// starting pages, whatever its budget: the pages under way finish and
	// the cursor is released before the Lambda times out.
	reserve = 10 * time.Second
	// leaseSlack is how long past its budget a pass holds the cursor:
	// time for the pages under way and the release. A pass that dies
	// holds it no longer, so its budget plus this must stay below the
	// period, or the next pass finds it held.
	leaseSlack = 10 * time.Second
	// saveEvery is how often a pass saves the cursor as it goes.
	saveEvery = 10 * time.Second
)

// Sweeper recovers stalled runs. Its zero value is not usable; set Store,
// Queue and Grace. It is safe for concurrent use, and so are sweepers on
// other hosts: a pass that finds another holding the cursor does nothing.
type Sweeper struct {
	Store Store
	Queue Queue
	// Grace is how long a ready step may wait for its message before the
	// sweeper sends another. Set it above the time a message normally takes
	// to arrive (queue delay plus the runner's poll).
	Grace time.Duration
	// Resend spaces re-sends for a step that stays stalled. Zero fields
	// take First = Grace and Max = DefaultResendMax; a zero Grace with a
	// zero First re-sends on every pass.
	Resend Backoff
	// Workers is how many pages are swept at once (DefaultWorkers).
	Workers int
	// Budget is how long a pass starts new pages (DefaultBudget); it
	// starts none later than 10 s before its context's deadline either.
	Budget time.Duration
	// Batch is how many runs a page holds (DefaultBatch, at most 100).
	Batch  int
	Now    func() time.Time
	Logger *slog.Logger
}

// Report says what one pass did.
type Report struct {
	// Runs counts the runs the pass visited (read and decided on).
	Runs, Finished, Requeued int
	// Unreadable counts runs whose items could not be decoded: each is
	// logged and skipped, and the sweep goes on.
	Unreadable int
	// Deferred counts re-sends held back because one for the same step
	// state was sent less than a Backoff wait ago (it may still be
	// queued).
	Deferred int
	// Busy: another pass held the cursor, and this one did nothing.
	Busy bool
	// Shards is the number of by_active shards; Laps counts those this
	// pass swept to their end.
	Shards, Laps int
	// OutOfTime: the budget ran out before the cycle ended.
	OutOfTime bool
	// Cycle: this pass ended a cycle (every active run was visited since
	// the cycle began); the next pass starts another from each shard's
	// oldest run. Cycles counts the cycles ended so far, CycleRuns and
	// CyclePasses what the current (or just ended) cycle swept in how
	// many passes.
	Cycle                          bool
	Cycles, CycleRuns, CyclePasses int
	// Elapsed is the pass's time, by the Sweeper's clock.
	Elapsed time.Duration
}

func (r *Report) add(o Report) {
	r.Runs += o.Runs
	r.Finished += o.Finished
	r.Requeued += o.Requeued
	r.Unreadable += o.Unreadable
	r.Deferred += o.Deferred
}

func (s *Sweeper) clock() func() time.Time {
	if s.Now != nil {
		return s.Now
	}
	return time.Now
}

func (s *Sweeper) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Sweeper) backoff() Backoff {
	b := s.Resend
	if b.First <= 0 {
		b.First = s.Grace
	}
	if b.Max <= 0 {
		b.Max = DefaultResendMax
	}
	b.Max = max(b.Max, b.First)
	return b
}

// budget is how long a pass may start pages.
func (s *Sweeper) budget(ctx context.Context) time.Duration {
	b := s.Budget
	if b <= 0 {
		b = DefaultBudget
	}
	if d, ok := ctx.Deadline(); ok {
		b = min(b, time.Until(d)-reserve)
	}
	return max(b, 0)
}

// Sweep makes one pass: it takes the cursor, sweeps pages of the shards
// from where the cycle stands until the cycle ends or the budget is spent,
// and releases the cursor where it stopped. A run or page it cannot handle
// does not stop the pass: the errors are joined and returned at the end.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	now, log := s.clock(), s.logger()
	start := now()
	budget := s.budget(ctx)
	shards := s.Store.Shards()
	stored, lease, err := s.Store.TakeSweepIfFree(ctx, start, start.Add(budget+leaseSlack))
	if errors.Is(err, store.ErrConflict) {
		log.InfoContext(ctx, "another sweep holds the cursor; this one does nothing")
		return Report{Shards: shards, Busy: true}, nil
	}
	if err != nil {
		return Report{Shards: shards}, fmt.Errorf("sweep: %w", err)
	}
	cur := resume(stored, shards, start)
	if len(stored.After) > 0 && len(stored.After) != shards {
		log.WarnContext(ctx, "the shard count changed; the sweep cycle starts over", "was", len(stored.After), "shards", shards)
	}
	r := &passRun{s: s, log: log, lease: lease, start: cur, began: start, rep: Report{Shards: shards}, lastSave: start}
	r.pass = newPass(cur)
	batch := s.Batch
	if batch <= 0 || batch > DefaultBatch {
		batch = DefaultBatch
	}
	r.pass.list = func(ctx context.Context, shard int, after string) ([]string, string, error) {
		ids, next, err := s.Store.ListActiveRuns(ctx, shard, store.Page{Limit: batch, Cursor: after})
		if err != nil {
			return nil, "", fmt.Errorf("sweep shard %d: %w", shard, err)
		}
		return ids, next, nil
	}
	deadline := start.Add(budget)
	r.pass.timeUp = func() bool { return !now().Before(deadline) }
	workers := s.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Wait()
	return r.finish(ctx)
}

// resume returns the cursor a pass starts from: c as stored, or a new
// cycle's if c was saved for another shard count (IDs hash to other shards
// then) or never.
func resume(c store.SweepCursor, shards int, now time.Time) store.SweepCursor {
	if len(c.After) != shards {
		c = store.SweepCursor{After: make([]string, shards), Done: make([]bool, shards), Cycles: c.Cycles}
	}
	if c.Began.IsZero() {
		c.Began = now
	}
	return c
}

// conclude returns the cursor a pass leaves, given where its shards stand
// (c) and whether every shard's lap of the cycle has ended: then a new
// cycle, from each shard's oldest run, begins with the next pass.
func conclude(c store.SweepCursor, cycleEnded bool) store.SweepCursor {
	c.Passes++
	if !cycleEnded {
		return c
	}
	n := len(c.After)
	return store.SweepCursor{After: make([]string, n), Done: make([]bool, n), Cycles: c.Cycles + 1}
}

// passRun is the state of one Sweep while its workers run.
type passRun struct {
	s     *Sweeper
	log   *slog.Logger
	lease store.SweepLease
	start store.SweepCursor // the cursor the pass started from
	began time.Time
	pass  *pass

	mu       sync.Mutex // guards what follows
	rep      Report
	errs     []error
	lastSave time.Time
	saving   bool
}

// work sweeps pages until the pass has none left to start.
func (r *passRun) work(ctx context.Context) {
	for {
		pg, ok := r.pass.next(ctx)
		if !ok {
			return
		}
		got, swept, err := r.s.sweepPage(ctx, r.log, pg.ids)
		r.pass.done(pg, swept)
		r.mu.Lock()
		r.rep.add(got)
		if err != nil {
			r.errs = append(r.errs, err)
		}
		r.mu.Unlock()
		r.save(ctx)
	}
}

// progress is the cursor as it stands, with this pass's runs counted. The
// caller holds r.mu.
func (r *passRun) progress() store.SweepCursor {
	c := r.pass.cursor(r.start)
	c.Runs += r.rep.Runs
	return c
}

// save saves the cursor if the last save is saveEvery old and no other
// worker is saving. A save refused because the lease ended stops the
// pass: another pass has the cursor.
func (r *passRun) save(ctx context.Context) {
	now := r.s.clock()()
	r.mu.Lock()
	if r.saving || now.Sub(r.lastSave) < saveEvery {
		r.mu.Unlock()
		return
	}
	r.saving, r.lastSave = true, now
	c := r.progress()
	r.mu.Unlock()
	err := r.s.Store.SaveSweepIfHeld(ctx, r.lease, c)
	if errors.Is(err, store.ErrConflict) {
		r.pass.stop(fmt.Errorf("sweep: the cursor's lease ended and another pass took it: %w", err))
	} else if err != nil {
		r.log.WarnContext(ctx, "saving the sweep cursor failed", "error", err)
	}
	r.mu.Lock()
	r.saving = false
	r.mu.Unlock()
}

// finish releases the cursor where the pass left it, and reports.
func (r *passRun) finish(ctx context.Context) (Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	var cycleEnded bool
	rep.Laps, cycleEnded = r.pass.laps()
	rep.OutOfTime = r.pass.ranOutOfTime()
	left := r.progress()
	rep.Cycle, rep.CycleRuns, rep.CyclePasses = cycleEnded, left.Runs, left.Passes+1
	if cycleEnded {
		r.log.InfoContext(ctx, "sweep cycle ended", "cycle_runs", rep.CycleRuns, "cycle_passes", rep.CyclePasses,
			"cycle_seconds", r.s.clock()().Sub(left.Began).Seconds())
	}
	left = conclude(left, cycleEnded)
	rep.Cycles = left.Cycles
	errs := append(r.errs, r.pass.err())
	if err := r.s.Store.ReleaseSweepIfHeld(context.WithoutCancel(ctx), r.lease, left); err != nil {
		errs = append(errs, fmt.Errorf("sweep: this pass's progress since its last save is lost: %w", err))
	}
	rep.Elapsed = r.s.clock()().Sub(r.began)
	r.log.InfoContext(ctx, "sweep pass", "runs", rep.Runs, "finished", rep.Finished, "requeued", rep.Requeued,
		"deferred", rep.Deferred, "unreadable", rep.Unreadable, "laps", rep.Laps, "shards", rep.Shards,
		"out_of_time", rep.OutOfTime, "cycle_ended", rep.Cycle, "cycle_runs", rep.CycleRuns, "cycle_passes", rep.CyclePasses,
		"seconds", rep.Elapsed.Seconds())
	return rep, errors.Join(errs...)
}

// sweepPage reads the runs of one page and acts on what runstate.Sweep
// decides for each: it ends runs, and re-sends what is stalled (see
// resend). swept is false when the page could not be read at all; err
// joins the errors of single runs, which do not stop the page.
func (s *Sweeper) sweepPage(ctx context.Context, log *slog.Logger, ids []string) (rep Report, swept bool, err error) {
	now := s.clock()() // before the read: what was stalled then still is
	reads, err := s.Store.ReadRuns(ctx, ids)
	if err != nil {
		return rep, false, fmt.Errorf("sweep: %w", err)
	}
	var stalled []stalledRun
	var errs []error
	for _, rd := range reads {
		rep.Runs++
		switch {
		case errors.Is(rd.Err, store.ErrNotFound):
			continue // the index runs ahead of the read
		case store.IsUnreadable(rd.Err):
			rep.Unreadable++
			log.ErrorContext(ctx, "run cannot be read; skipped", "run_id", rd.ID, "error", rd.Err)
			continue
		case rd.Err != nil:
			log.WarnContext(ctx, "sweep of a run failed", "run_id", rd.ID, "error", rd.Err)
			errs = append(errs, rd.Err)
			continue
		}
		_, plan, err := s.Store.Plan(ctx, rd.Run.WorkflowID)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep run %s: %w", rd.ID, err))
			continue
		}
		d := runstate.Sweep(rd.Run, plan, now, s.Grace)
		switch {
		case d.End != nil:
			if err := s.end(ctx, log.With("run_id", rd.ID), *d.End, &rep); err != nil {
				errs = append(errs, err)
			}
		case len(d.Enqueue) > 0:
			stalled = append(stalled, stalledRun{run: rd.Run, plan: plan, msgs: d.Enqueue})
		}
	}
	if len(stalled) > 0 {
		if err := s.resend(ctx, log, stalled, now, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, true, errors.Join(errs...)
}

func (s *Sweeper) end(ctx context.Context, log *slog.Logger, e runstate.End, rep *Report) error {
	switch err := s.Store.EndRunIfRunning(ctx, e); {
	case errors.Is(err, store.ErrConflict):
		// Someone else ended or retried it since the read.
	case err != nil:
		log.WarnContext(ctx, "sweep of a run failed", "error", err)
		return err
	default:
		rep.Finished++
		if e.To == status.RunCompleted {
			log.InfoContext(ctx, "sweeper ended a completed run")
		} else {
			log.ErrorContext(ctx, "sweeper failed a run in which no step could make progress")
		}
	}
	return nil
}

// stalledRun is a run with steps runstate.Sweep would send messages for.
type stalledRun struct {
	run  runstate.State
	plan workflow.Plan
	msgs []runstate.Message
}

// resend sends the messages of the stalled runs of one page that are due
// (see Backoff.resends): it reads the runs' marks, replaces each mark that
// has a re-send due (a run whose mark another sweeper replaced since is
// left to it), then sends the messages of all the runs together.
func (s *Sweeper) resend(ctx context.Context, log *slog.Logger, stalled []stalledRun, now time.Time, rep *Report) error {
	b := s.backoff()
	if b.First <= 0 {
		// No wait between re-sends: marks would change nothing.
		var msgs []queue.Message
		for _, st := range stalled {
			for _, m := range st.msgs {
				msgs = append(msgs, queue.For(st.run, m.Step, m.Attempt, now))
			}
		}
		return s.send(ctx, log, stalled, msgs, nil, rep)
	}
	ids := make([]string, len(stalled))
	for i, st := range stalled {
		ids[i] = st.run.ID
	}
	marks, err := s.Store.ReadResendMarks(ctx, ids)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var errs []error
	var msgs []queue.Message
	sends := map[string]map[int]store.ResendMark{}
	type written struct{ read, wrote store.ResendMarks }
	undo := map[string]written{}
	for _, st := range stalled {
		read := marks[st.run.ID]
		due, next, held := b.resends(st.run, st.msgs, read.Steps, now)
		rep.Deferred += held
		if len(due) == 0 {
			continue
		}
		wrote, err := s.Store.ReplaceResendMarksIfUnchanged(ctx, st.run.ID, read, next, now.Add(b.keep()))
		switch {
		case errors.Is(err, store.ErrConflict):
			continue // another sweeper re-sent them
		case err != nil:
			errs = append(errs, err)
			continue
		}
		for _, m := range due {
			msgs = append(msgs, queue.For(st.run, m.Step, m.Attempt, now))
		}
		sends[st.run.ID] = next
		undo[st.run.ID] = written{read, wrote}
	}
	if err := s.send(ctx, log, stalled, msgs, sends, rep); err != nil {
		errs = append(errs, err)
		// The marks say these were re-sent, and may not have been (a
		// batch that failed, or one after it): put back what was read,
		// if the marks are still these, so that the next pass re-sends
		// them when due as if this one had not tried. A batch that did
		// go out is then sent again: a duplicate, which runners drop.
		for id, w := range undo {
			if _, err := s.Store.ReplaceResendMarksIfUnchanged(ctx, id, w.wrote, w.read.Steps, now.Add(b.keep())); err != nil && !errors.Is(err, store.ErrConflict) {
				errs = append(errs, fmt.Errorf("sweep: put back the re-send marks of run %s: %w", id, err))
			}
		}
	}
	return errors.Join(errs...)
}

// send sends msgs and logs each; marks, if set, are the marks written.
func (s *Sweeper) send(ctx context.Context, log *slog.Logger, stalled []stalledRun, msgs []queue.Message, marks map[string]map[int]store.ResendMark, rep *Report) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("sweep: send %d messages: %w", len(msgs), err)
	}
	rep.Requeued += len(msgs)
	plans := make(map[string]workflow.Plan, len(stalled))
	for _, st := range stalled {
		plans[st.run.ID] = st.plan
	}
	for _, m := range msgs {
		attrs := []any{"run_id", m.RunID, "step_id", plans[m.RunID][m.StepIndex].ID, "attempt", m.Attempt}
		if mk, ok := marks[m.RunID][m.StepIndex]; ok {
			attrs = append(attrs, "sends", mk.Sends)
		}
		log.InfoContext(ctx, "sweeper re-sent a step's message", attrs...)
	}
	return nil
}
