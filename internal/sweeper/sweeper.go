// Package sweeper finds work a crash left behind and sets it moving again.
// It pages through the runs that are live (the store's sparse by_active
// index, never a table Scan), reads each, and acts on what the pure
// runstate.Sweep decides:
//
//   - a run whose steps all completed is ended;
//   - a running step whose lease expired (its runner died) gets a new
//     message, and the next runner takes its lease over;
//   - a pending step that has been ready (and past its retry's due time)
//     for longer than Grace gets a new message (its message was lost, or
//     the run was stored but never started).
//
// It never writes a step's state; its only writes end runs, conditioned on
// the generation it read, so it is safe to run concurrently with runners,
// with the API's cancel and retry, and with itself. At worst a step gets a
// duplicate message, which runners drop.
package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"stepflow/internal/queue"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// Store is what the sweeper needs from storage.
type Store interface {
	Shards() int
	ListActiveRuns(ctx context.Context, shard int, p store.Page) ([]string, string, error)
	// ReadRun reads a run; the sweeper reads eventually consistently,
	// since everything it does is conditional or idempotent.
	ReadRun(ctx context.Context, id string, consistent bool) (runstate.State, []runstate.Failure, error)
	Plan(ctx context.Context, workflowID string) (wire.Workflow, workflow.Plan, error)
	EndRunIfRunning(ctx context.Context, e runstate.End) error
}

// Queue sends step messages.
type Queue interface {
	Send(ctx context.Context, msgs []queue.Message) error
}

// Sweeper recovers stalled runs. Its zero value is not usable; set Store,
// Queue and Grace.
type Sweeper struct {
	Store Store
	Queue Queue
	// Grace is how long a ready step may wait for its message before the
	// sweeper sends another. Set it above the time a message normally takes
	// to arrive (queue delay plus the runner's poll).
	Grace  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Report counts what one sweep did.
type Report struct {
	Runs, Finished, Requeued int
	// Unreadable counts runs whose items could not be decoded: each is
	// logged and skipped, and the sweep goes on.
	Unreadable int
}

// pageSize is how many live runs one index page holds.
const pageSize = 100

// Sweep makes one pass over the live runs. A run it cannot handle does not
// stop the pass: the errors are joined and returned at the end.
func (s *Sweeper) Sweep(ctx context.Context) (Report, error) {
	var rep Report
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for shard := range s.Store.Shards() {
		if err := s.sweepShard(ctx, log, shard, now, &rep); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Sweeper) sweepShard(ctx context.Context, log *slog.Logger, shard int, now func() time.Time, rep *Report) error {
	cursor := ""
	var errs []error
	for {
		ids, next, err := s.Store.ListActiveRuns(ctx, shard, store.Page{Limit: pageSize, Cursor: cursor})
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, id := range ids {
			rep.Runs++
			err := s.sweepRun(ctx, log.With("run_id", id), id, now(), rep)
			switch {
			case store.IsUnreadable(err):
				rep.Unreadable++
				log.ErrorContext(ctx, "run cannot be read; skipped", "run_id", id, "error", err)
			case err != nil:
				log.WarnContext(ctx, "sweep of a run failed", "run_id", id, "error", err)
				errs = append(errs, err)
			}
		}
		if next == "" || ctx.Err() != nil {
			return errors.Join(errs...)
		}
		cursor = next
	}
}

func (s *Sweeper) sweepRun(ctx context.Context, log *slog.Logger, id string, now time.Time, rep *Report) error {
	r, _, err := s.Store.ReadRun(ctx, id, false)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the index runs ahead of the read
	}
	if err != nil {
		return err
	}
	_, plan, err := s.Store.Plan(ctx, r.WorkflowID)
	if err != nil {
		return fmt.Errorf("sweep run %s: %w", id, err)
	}
	d := runstate.Sweep(r, plan, now, s.Grace)
	if d.End != nil {
		switch err := s.Store.EndRunIfRunning(ctx, *d.End); {
		case errors.Is(err, store.ErrConflict):
			// Someone else ended or retried it since the read.
		case err != nil:
			return err
		default:
			rep.Finished++
			if d.End.To == status.RunCompleted {
				log.InfoContext(ctx, "sweeper ended a completed run")
			} else {
				log.ErrorContext(ctx, "sweeper failed a run in which no step could make progress")
			}
		}
		return nil
	}
	if len(d.Enqueue) == 0 {
		return nil
	}
	msgs := make([]queue.Message, len(d.Enqueue))
	for i, m := range d.Enqueue {
		msgs[i] = queue.For(r, m.Step, m.Attempt, now)
		log.InfoContext(ctx, "sweeper re-sent a step's message", "step_id", plan[m.Step].ID, "attempt", m.Attempt)
	}
	if err := s.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("sweep run %s: %w", id, err)
	}
	rep.Requeued += len(msgs)
	return nil
}
