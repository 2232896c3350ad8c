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
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// Store is what the engine needs from storage. Each write is named for
// its precondition, which storage enforces: a refused write returns an
// error wrapping store.ErrConflict (naming the item that failed and why), a
// write DynamoDB refuses as invalid wraps store.ErrInvalid, and a write
// whose answer was lost but that landed succeeds (storage tells its own
// landed write from someone else's). Implementations are safe for
// concurrent use.
type Store interface {
	// Plan returns a workflow's plan (workflows never change).
	Plan(ctx context.Context, workflowID string) (wire.Workflow, workflow.Plan, error)
	// LoadItems reads some of a run's items (by number, 0 for the header)
	// and its order's status, consistently.
	LoadItems(ctx context.Context, ref store.RunRef, items []int) (runstate.State, status.OrderStatus, error)
	// Fence reads a run's generation and whether it is live, consistently.
	Fence(ctx context.Context, runID string) (gen int, live bool, err error)
	// ClaimIfLive claims all of c or nothing. After a lost answer it
	// returns store.ErrRunMoved if the claim landed but the run is no
	// longer live in c.Gen.
	ClaimIfLive(ctx context.Context, c runstate.Claim) error
	// ReleaseIfHeld gives back claims (see runstate.Release).
	ReleaseIfHeld(ctx context.Context, runID string, swaps []runstate.Swap) error
	CommitIfHeld(ctx context.Context, c runstate.Commit, token string) error
	EndRunIfRunning(ctx context.Context, e runstate.End) error
	// LoadData reads a run's input and its steps' outputs, for an http
	// step's templates.
	LoadData(ctx context.Context, runID string, gen int, input bool, steps []int) (store.RunData, error)
	// ReserveOrderIfFree reserves an order for an http step that moves it
	// (see store.ReserveOrderIfFree).
	ReserveOrderIfFree(ctx context.Context, r store.Reservation) error
	// ReleaseOrderIfHeld ends a run's reservation of an order early.
	ReleaseOrderIfHeld(ctx context.Context, orderID, runID string) error
	// CallbackKey is the key approvals' callback tokens are derived from.
	CallbackKey(ctx context.Context) ([]byte, error)
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

// ErrBusy means the message's step runs under another runner's live lease,
// or waits for its retry's due time: the message should come back later,
// not be dropped.
var ErrBusy = errors.New("step is running elsewhere or not due yet")

// ErrCrashed is returned when a configured crash point fires: the runner
// behaves as if its process died there (see Config.Crash).
var ErrCrashed = errors.New("injected crash")

// CrashPoint names a place where a test can make the runner die.
type CrashPoint string

// The crash points, in the order a message meets them.
const (
	AfterReceive CrashPoint = "after-receive"
	AfterClaim   CrashPoint = "after-claim"
	AfterTask    CrashPoint = "after-task-before-commit"
	AfterCommit  CrashPoint = "after-commit-before-enqueue"
	AfterEnqueue CrashPoint = "after-enqueue-before-delete"
)

// CrashPoints lists every crash point.
var CrashPoints = []CrashPoint{AfterReceive, AfterClaim, AfterTask, AfterCommit, AfterEnqueue}

// Defaults of Config.
const (
	DefaultLeaseMargin  = 30 * time.Second
	DefaultInlineBudget = 2 * time.Second
	DefaultParallelism  = 16
	// DefaultCommitWindow is how long an ended attempt may wait for
	// others ending soon after it, to share its commit.
	DefaultCommitWindow = 100 * time.Millisecond
	// MaxCommitWindow bounds CommitWindow: an outcome is committed within
	// one storage round trip of this.
	MaxCommitWindow = 100 * time.Millisecond
	// maxStepsPerCommit keeps a commit within DynamoDB's 100 items per
	// transaction: per step at most a history entry, an output or a
	// callback, and a failure's record, with at most 7 run items and the
	// order; maxCommitBytes keeps it well within its 4 MB (outputs are at
	// most 64 KiB each).
	maxStepsPerCommit = 30
	maxCommitBytes    = 1 << 20
	// maxConflicts bounds the claims and commits one invocation rebuilds
	// after a conflict; every conflict means another writer made progress.
	maxConflicts = 64
)

// Config configures an Engine.
type Config struct {
	Store Store
	Queue Queue
	// Task runs task steps (the simulation); HTTP makes http steps'
	// requests and Secrets resolves their secrets (without them, http
	// steps fail).
	Task    Task
	HTTP    HTTPClient
	Secrets Secrets
	// Hop is the longest delay of one message: a wait longer than that is
	// a chain of messages (default and at most runstate.DefaultHop, SQS's
	// 15 minutes).
	Hop    time.Duration
	Retry  retry.Policy
	Logger *slog.Logger
	// LeaseMargin is added to a step's duration to form its lease (default
	// 30s): a runner silent for longer is presumed dead.
	LeaseMargin time.Duration
	// InlineBudget is the most step time one invocation spends on a run's
	// dependents before handing the rest to the queue (default 2s; at most
	// half of LeaseMargin, so the claims' leases cover the dependents run
	// under them).
	InlineBudget time.Duration
	// Parallelism is how many steps of one invocation run at once
	// (default 16).
	Parallelism int
	// CommitWindow is how long an attempt that ended waits for others
	// ending soon after it to share its commit (default and at most
	// MaxCommitWindow; negative: none).
	CommitWindow time.Duration
	Now          func() time.Time
	// After, if set, returns a channel that receives once the Now clock
	// reaches t (default: a real timer). Tests on a fake clock advance it.
	After func(t time.Time) <-chan time.Time
	// Yield, if set, is called in a loop while a runner waits for an
	// attempt to end, instead of blocking: a test's scheduler takes its
	// turn there.
	Yield func(ctx context.Context)
	// Go, if set, runs an attempt (default: go f()). A test that replays
	// schedules exactly runs attempts on the runner's own goroutine.
	Go func(f func())
	// IDs makes lease and commit tokens (default: crypto-random).
	IDs *id.Generator
	// OnStart, if set, is called as each attempt starts (before its task
	// runs, on the runner's goroutine), with the message it answers and
	// the attempt's input and the time on the Now clock (not rounded). For a step
	// run after its parent in the same invocation the message's SentAt is
	// when the runner learnt that the parent succeeded.
	OnStart func(in TaskInput, m queue.Message, at time.Time)
	// OnCommit, if set, is called after each committed step, with the
	// attempt's end and the time the commit landed (Now clock).
	OnCommit func(runID string, index int, ended, landed time.Time)
	// Visibility, if set, keeps a message hidden while its step's lease
	// lasts (when the lease is longer than QueueVisibility, the queue's
	// visibility timeout), and hides a busy message until its step's
	// lease ends.
	Visibility      Visibility
	QueueVisibility time.Duration
	// Crash, if set, is asked at each crash point whether the runner dies
	// there. The run's handling then returns ErrCrashed at once,
	// abandoning its work, and HandleSQS fails the whole batch, as a dead
	// Lambda would.
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
		cfg.LeaseMargin = DefaultLeaseMargin
	}
	if cfg.InlineBudget == 0 {
		cfg.InlineBudget = min(DefaultInlineBudget, cfg.LeaseMargin/2)
	}
	if cfg.InlineBudget > cfg.LeaseMargin/2 {
		return nil, fmt.Errorf("engine: inline budget %v exceeds half the lease margin %v", cfg.InlineBudget, cfg.LeaseMargin)
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = DefaultParallelism
	}
	switch {
	case cfg.CommitWindow == 0:
		cfg.CommitWindow = DefaultCommitWindow
	case cfg.CommitWindow < 0:
		cfg.CommitWindow = 0
	case cfg.CommitWindow > MaxCommitWindow:
		return nil, fmt.Errorf("engine: commit window %v exceeds %v", cfg.CommitWindow, MaxCommitWindow)
	}
	switch {
	case cfg.Hop == 0:
		cfg.Hop = runstate.DefaultHop
	case cfg.Hop < time.Second || cfg.Hop > runstate.DefaultHop:
		return nil, fmt.Errorf("engine: hop %v is not between 1s and %v", cfg.Hop, runstate.DefaultHop)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Go == nil {
		cfg.Go = func(f func()) { go f() }
	}
	if cfg.After == nil {
		now := cfg.Now
		cfg.After = func(t time.Time) <-chan time.Time { return time.After(t.Sub(now())) }
	}
	if cfg.IDs == nil {
		cfg.IDs = id.NewGenerator(cfg.Now, nil)
	}
	return &Engine{cfg: cfg, log: cfg.Logger}, nil
}

func (e *Engine) now() time.Time { return runstate.Ms(e.cfg.Now()) }

// Start enqueues the steps of run r that can start, on the engine's queue
// (it implements api.RunStarter).
func (e *Engine) Start(ctx context.Context, r runstate.State, p workflow.Plan) error {
	return Starter{Queue: e.cfg.Queue, Now: e.cfg.Now}.Start(ctx, r, p)
}

// Starter enqueues the steps of a run that can start: a new run's roots, or
// where a retried run resumes. The API uses it without the rest of the
// engine.
type Starter struct {
	Queue Queue
	Now   func() time.Time
}

// Start implements api.RunStarter.
func (s Starter) Start(ctx context.Context, r runstate.State, p workflow.Plan) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	at := now()
	var msgs []queue.Message
	for _, i := range runstate.Roots(r, p, at) {
		msgs = append(msgs, queue.For(r, i, r.Steps[i].Attempt, at))
	}
	if err := s.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("start run %s: %w", r.ID, err)
	}
	return nil
}
