package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"stepflow/internal/id"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
)

// Store is what the engine needs from storage. Conditional writes fail with
// errors wrapping store.ErrConflict; CommitStep may also return
// store.ErrAlreadyCommitted or a *store.CommitConflict.
type Store interface {
	GetRun(ctx context.Context, id string) (store.RunDetail, error)
	GetOrder(ctx context.Context, id string) (store.Order, error)
	StartRun(ctx context.Context, runID string, now time.Time) error
	MarkRunning(ctx context.Context, runID string, index, attempt int, token string, now, leaseUntil time.Time) error
	CommitStep(ctx context.Context, c store.Commit) error
	RetryStep(ctx context.Context, f store.FailedAttempt) error
	FailStep(ctx context.Context, f store.FailedAttempt) error
	SettleStep(ctx context.Context, runID string, index int, to status.Step, now time.Time) error
	FailRun(ctx context.Context, runID string, now time.Time) error
}

// Queue sends step messages. A failed Send may have sent some messages.
type Queue interface {
	Send(ctx context.Context, msgs []queue.Message) error
}

// Visibility changes how long a received message stays hidden.
type Visibility interface {
	Extend(ctx context.Context, receipt string, d time.Duration) error
}

// Delivery is a received message and its receipt handle.
type Delivery struct {
	queue.Message
	Receipt string
}

// ErrBusy means another runner holds a live lease on the step: the message
// should be retried later, not dropped.
var ErrBusy = errors.New("step is running elsewhere")

// ErrCrashed is returned when a configured crash point fires: the runner
// behaves as if its process died there (see Config.Crash).
var ErrCrashed = errors.New("injected crash")

// CrashPoint names a place in Handle where a test can make the runner die.
type CrashPoint string

// The crash points, in the order a message meets them.
const (
	AfterReceive     CrashPoint = "after-receive"
	AfterMarkRunning CrashPoint = "after-mark-running"
	AfterTask        CrashPoint = "after-task-before-commit"
	AfterCommit      CrashPoint = "after-commit-before-enqueue"
	AfterEnqueue     CrashPoint = "after-enqueue-before-delete"
)

// CrashPoints lists every crash point.
var CrashPoints = []CrashPoint{AfterReceive, AfterMarkRunning, AfterTask, AfterCommit, AfterEnqueue}

// Config configures an Engine.
type Config struct {
	Store  Store
	Queue  Queue
	Task   Task
	Retry  retry.Policy
	Logger *slog.Logger
	// LeaseMargin is added to a step's duration to form its lease (default
	// 30s): a runner silent for longer is presumed dead.
	LeaseMargin time.Duration
	Now         func() time.Time
	IDs         *id.Generator
	// OnStart, if set, is called as each attempt starts, with its message.
	OnStart func(m queue.Message, at time.Time)
	// OnCommit, if set, is called after each successful commit.
	OnCommit func(runID string, index int)
	// Visibility, if set, lets the runner keep a message hidden while its
	// step's lease lasts, when the lease is longer than QueueVisibility
	// (the queue's visibility timeout), and hide a duplicate until the
	// holder's lease expires.
	Visibility      Visibility
	QueueVisibility time.Duration
	// Crash, if set, is asked at each crash point whether the runner dies
	// there. Handle then returns ErrCrashed at once, abandoning its work,
	// and HandleSQS fails the whole batch, as a dead Lambda would.
	Crash func(p CrashPoint, m queue.Message) bool
}

// Engine runs steps. It is safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Queue == nil || cfg.Task == nil {
		return nil, errors.New("engine: Store, Queue and Task are required")
	}
	if err := cfg.Retry.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LeaseMargin == 0 {
		cfg.LeaseMargin = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDs == nil {
		cfg.IDs = id.NewGenerator(cfg.Now, nil)
	}
	return &Engine{cfg: cfg, log: cfg.Logger}, nil
}

// StartRun enqueues every pending step of the run whose dependencies have
// all completed: the roots of a new run, or where a retried run resumes.
func (e *Engine) StartRun(ctx context.Context, run store.RunDetail) error {
	return Starter{Queue: e.cfg.Queue, Now: e.cfg.Now}.StartRun(ctx, run)
}

// Starter starts runs: it enqueues every pending step whose dependencies
// have all completed (for a new run, the steps with no dependencies). A new
// run becomes running when its first step starts. The API uses it without
// the rest of the engine.
type Starter struct {
	Queue Queue
	Now   func() time.Time
}

// StartRun implements api.RunStarter.
func (s Starter) StartRun(ctx context.Context, run store.RunDetail) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var msgs []queue.Message
	for _, st := range run.Steps {
		if st.Status == status.StepPending && ready(run, st) {
			msgs = append(msgs, queue.Message{RunID: run.ID, StepIndex: st.StepIndex, Attempt: st.RetryCount, SentAt: now().UTC()})
		}
	}
	if err := s.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("start run %s: %w", run.ID, err)
	}
	return nil
}

// maxCommitTries bounds re-reads after a join or run counter moved under us;
// each conflict means a sibling committed, so progress is guaranteed.
const maxCommitTries = 20

func (e *Engine) crash(p CrashPoint, m queue.Message) bool {
	return e.cfg.Crash != nil && e.cfg.Crash(p, m)
}

// Handle processes one step message. It returns nil when the message is
// done with (processed, duplicate or stale) and an error when it should be
// delivered again later.
func (e *Engine) Handle(ctx context.Context, d Delivery) error {
	m := d.Message
	if e.crash(AfterReceive, m) {
		return ErrCrashed
	}
	log := e.log.With("run_id", m.RunID, "step_index", m.StepIndex, "attempt", m.Attempt)
	run, err := e.cfg.Store.GetRun(ctx, m.RunID)
	if errors.Is(err, store.ErrNotFound) {
		log.WarnContext(ctx, "message for unknown run dropped")
		return nil
	}
	if err != nil {
		return err
	}
	if m.StepIndex >= len(run.Steps) {
		log.WarnContext(ctx, "message for unknown step dropped")
		return nil
	}
	st := run.Steps[m.StepIndex]
	log = log.With("step_id", st.StepID)
	now := e.cfg.Now().UTC()
	switch {
	case st.Status == status.StepCompleted:
		// A duplicate, or a redelivery after a crash between commit and
		// enqueue: make sure the ready dependents have their messages.
		return e.enqueueReady(ctx, run, st.Dependents, now)
	case st.Status.Terminal():
		return nil
	case run.Status.Terminal():
		if st.Status == status.StepPending && run.Status != status.RunCompleted {
			to := status.StepSkipped
			if run.Status == status.RunCancelled {
				to = status.StepCancelled
			}
			return e.cfg.Store.SettleStep(ctx, run.ID, st.StepIndex, to, now)
		}
		return nil
	case st.RetryCount != m.Attempt:
		log.DebugContext(ctx, "stale message dropped", "retry_count", st.RetryCount)
		return nil
	case !ready(run, st):
		return nil // the last parent to commit enqueues it
	case st.Status == status.StepRunning && st.LeaseUntil != nil && st.LeaseUntil.After(now):
		// Come back when the holder's lease ends, in case it died.
		if e.cfg.Visibility != nil && d.Receipt != "" {
			if err := e.cfg.Visibility.Extend(ctx, d.Receipt, st.LeaseUntil.Sub(now)+time.Second); err != nil {
				log.DebugContext(ctx, "could not hide the duplicate until the lease ends", "error", err)
			}
		}
		return ErrBusy
	}

	if run.Status == status.RunPending {
		if err := e.cfg.Store.StartRun(ctx, run.ID, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		run.Status = status.RunRunning
	}
	token := e.cfg.IDs.New("lease")
	lease := time.Duration(st.Config.DurationSeconds*float64(time.Second)) + e.cfg.LeaseMargin
	if err := e.cfg.Store.MarkRunning(ctx, run.ID, st.StepIndex, st.RetryCount, token, now, now.Add(lease)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			log.DebugContext(ctx, "lost the race to start the step")
			return nil
		}
		return err
	}
	if e.cfg.Visibility != nil && d.Receipt != "" && lease > e.cfg.QueueVisibility {
		// The message must stay hidden while the lease lasts, or it would
		// come back mid-attempt and count towards the DLQ.
		if err := e.cfg.Visibility.Extend(ctx, d.Receipt, lease+time.Second); err != nil {
			log.WarnContext(ctx, "could not extend message visibility", "error", err)
		}
	}
	if e.crash(AfterMarkRunning, m) {
		return ErrCrashed
	}
	if e.cfg.OnStart != nil {
		e.cfg.OnStart(m, now)
	}
	log.InfoContext(ctx, "step started")
	taskErr := e.cfg.Task.Run(ctx, TaskInput{RunID: run.ID, StepID: st.StepID, Index: st.StepIndex, Attempt: st.RetryCount, Config: st.Config})
	if taskErr != nil && ctx.Err() != nil {
		// Our own deadline, not the task's failure: leave the lease to
		// expire and the message to come back.
		return taskErr
	}
	if e.crash(AfterTask, m) {
		return ErrCrashed
	}
	if taskErr == nil {
		taskErr = e.commit(ctx, log, run, st, token, now, m)
		if taskErr == nil {
			return nil
		}
		var pre *status.ErrPrecondition
		if !errors.As(taskErr, &pre) {
			return taskErr // ErrCrashed, or a storage error: try again later
		}
	}
	return e.failAttempt(ctx, log, run, st, token, now, taskErr.Error())
}

// ready reports whether every dependency of st has completed.
func ready(run store.RunDetail, st store.Step) bool {
	for _, dep := range st.DependsOn {
		for _, other := range run.Steps {
			if other.StepID == dep && other.Status != status.StepCompleted {
				return false
			}
		}
	}
	return true
}

// commit records a successful attempt and enqueues the dependents it made
// ready. A *status.ErrPrecondition means the order was not in the status
// the action needs; the caller fails the attempt.
func (e *Engine) commit(ctx context.Context, log *slog.Logger, run store.RunDetail, st store.Step, token string, started time.Time, m queue.Message) error {
	for try := 0; ; try++ {
		now := e.cfg.Now().UTC()
		c := store.Commit{RunID: run.ID, Index: st.StepIndex, Attempt: st.RetryCount, Token: token, Started: started, Now: now, Attempts: st.Attempts}
		if action, ok := status.Actions[st.Config.Action]; ok && run.OrderID != nil {
			o, err := e.cfg.Store.GetOrder(ctx, *run.OrderID)
			if err != nil {
				return err
			}
			if err := action.Check(o.Status); err != nil {
				return err
			}
			c.Order = &store.OrderChange{OrderID: o.ID, Version: o.Version, To: action.To, History: append(o.History, store.HistoryEntry{
				At: now, Event: action.Name, From: action.From, To: action.To, RunID: run.ID, StepID: st.StepID,
			})}
		}
		var readyNow []int
		for _, d := range st.Dependents {
			child := run.Steps[d]
			if len(child.DependsOn) == 1 {
				readyNow = append(readyNow, d)
				continue
			}
			c.Joins = append(c.Joins, store.JoinUpdate{Index: d, From: child.DepsRemaining})
			if child.DepsRemaining == 1 {
				readyNow = append(readyNow, d)
			}
		}
		if len(st.Dependents) == 0 && run.Status == status.RunRunning {
			n := run.SinksRemaining
			c.SinksFrom = &n
		}

		err := e.cfg.Store.CommitStep(ctx, c)
		var cc *store.CommitConflict
		switch {
		case err == nil:
			if c.SinksFrom != nil && *c.SinksFrom == 1 {
				log.InfoContext(ctx, "run completed")
			}
			log.InfoContext(ctx, "step completed")
			if e.cfg.OnCommit != nil {
				e.cfg.OnCommit(run.ID, st.StepIndex)
			}
			if e.crash(AfterCommit, m) {
				return ErrCrashed
			}
			if run.Status != status.RunRunning {
				return nil // the run ended meanwhile: start nothing new
			}
			if err := e.send(ctx, run.ID, readyNow, e.cfg.Now().UTC()); err != nil {
				return err
			}
			if e.crash(AfterEnqueue, m) {
				return ErrCrashed
			}
			return nil
		case errors.Is(err, store.ErrAlreadyCommitted):
			log.InfoContext(ctx, "step was already committed")
			return nil
		case errors.As(err, &cc) && cc.Item == "step":
			log.WarnContext(ctx, "lease lost before commit; another attempt owns the step")
			return nil
		case errors.As(err, &cc) && (cc.Item == "order" || cc.Item == "join" || cc.Item == "run"):
			// Another writer moved the order or a sibling committed first:
			// re-read and try again (the order's precondition is checked
			// again on the next pass).
		default:
			return err
		}
		if try >= maxCommitTries {
			return fmt.Errorf("commit step %s/%d: still conflicting after %d tries", run.ID, st.StepIndex, try+1)
		}
		if run, err = e.cfg.Store.GetRun(ctx, run.ID); err != nil {
			return err
		}
		if s := run.Steps[st.StepIndex]; s.Status != status.StepRunning || s.LeaseToken != token {
			return nil // someone else finished or took over the step
		}
	}
}

// failAttempt ends a failed attempt: back to pending with a delayed retry
// message while retries remain; else the step fails, every step that has
// not started is skipped, and the run fails. Attempts already running in
// other branches finish and commit their own result and order effect, but
// start nothing new.
func (e *Engine) failAttempt(ctx context.Context, log *slog.Logger, run store.RunDetail, st store.Step, token string, started time.Time, msg string) error {
	now := e.cfg.Now().UTC()
	f := store.FailedAttempt{RunID: run.ID, Index: st.StepIndex, Attempt: st.RetryCount, Token: token, Error: msg, Started: started, Now: now, Attempts: st.Attempts}
	if st.RetryCount < st.MaxRetries {
		if err := e.cfg.Store.RetryStep(ctx, f); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil
			}
			return err
		}
		delay := e.cfg.Retry.Delay(st.RetryCount + 1)
		log.InfoContext(ctx, "step attempt failed; retrying", "error", msg, "delay", delay.String())
		return e.cfg.Queue.Send(ctx, []queue.Message{{RunID: run.ID, StepIndex: st.StepIndex, Attempt: st.RetryCount + 1, SentAt: now, Delay: delay}})
	}
	if err := e.cfg.Store.FailStep(ctx, f); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	// Skip what has not started before failing the run, so a reader never
	// sees a failed run with steps still waiting. A crash in between
	// leaves a running run with only terminal steps, which the sweeper
	// finishes.
	for _, other := range run.Steps {
		if other.Status == status.StepPending && other.StepIndex != st.StepIndex {
			if err := e.cfg.Store.SettleStep(ctx, run.ID, other.StepIndex, status.StepSkipped, now); err != nil {
				return err
			}
		}
	}
	if err := e.cfg.Store.FailRun(ctx, run.ID, now); err != nil {
		return err
	}
	log.WarnContext(ctx, "step failed; run failed", "error", msg)
	return nil
}

// enqueueReady sends messages for those of the given dependents that are
// pending and have every dependency completed. Sending one twice is safe.
func (e *Engine) enqueueReady(ctx context.Context, run store.RunDetail, dependents []int, now time.Time) error {
	if run.Status.Terminal() {
		return nil
	}
	var idx []int
	for _, d := range dependents {
		child := run.Steps[d]
		if child.Status == status.StepPending && ready(run, child) {
			idx = append(idx, d)
		}
	}
	return e.send(ctx, run.ID, idx, now)
}

func (e *Engine) send(ctx context.Context, runID string, indices []int, now time.Time) error {
	if len(indices) == 0 {
		return nil
	}
	msgs := make([]queue.Message, len(indices))
	for i, d := range indices {
		msgs[i] = queue.Message{RunID: runID, StepIndex: d, SentAt: now}
	}
	return e.cfg.Queue.Send(ctx, msgs)
}
