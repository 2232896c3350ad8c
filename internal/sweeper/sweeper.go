// Package sweeper finds work a crash left behind and sets it moving again.
// It reads the runs that are not terminal from the store's active-run index
// (never a table Scan) and, for each:
//
//   - finishes a run whose steps are all terminal (completed if they all
//     completed, else failed), and fails a run that has a failed step,
//     skipping its steps that never started (a crash in the middle of
//     failing a run);
//   - re-enqueues a running step whose lease has expired (its runner died;
//     the next runner takes the lease over);
//   - re-enqueues a pending step that has been ready for longer than Grace
//     with nothing running it (a crash between commit and send, between a
//     failed attempt and its retry message, or a run created but never
//     started).
//
// Every action is an idempotent enqueue or a conditional write, so the
// sweeper is safe to run concurrently with runners and with itself; at
// worst a step gets a duplicate message, which runners drop.
package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
)

// Store is what the sweeper needs from storage.
type Store interface {
	ListActiveRuns(ctx context.Context, p store.Page) ([]string, string, error)
	GetRun(ctx context.Context, id string) (store.RunDetail, error)
	EndRunAsRead(ctx context.Context, d store.RunDetail, to status.Run, now time.Time) error
	SettleStep(ctx context.Context, runID string, index int, to status.Step, now time.Time) error
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
	Grace time.Duration
	// RetryCap is the longest retry backoff; a step waiting for a retry is
	// not considered stalled before its backoff could have ended.
	RetryCap time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Report counts what one sweep did.
type Report struct {
	Runs, Finished, Requeued int
}

// Sweep makes one pass over the active runs. A run it cannot handle does
// not stop the pass: the errors are joined and returned at the end.
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
	capDelay := s.RetryCap
	if capDelay == 0 {
		capDelay = retry.MaxCap
	}
	cursor := ""
	var errs []error
	for {
		ids, next, err := s.Store.ListActiveRuns(ctx, store.Page{Limit: 100, Cursor: cursor})
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		for _, id := range ids {
			rep.Runs++
			if err := s.sweepRun(ctx, log, id, now().UTC(), capDelay, &rep); err != nil {
				log.WarnContext(ctx, "sweep of a run failed", "run_id", id, "error", err)
				errs = append(errs, err)
			}
		}
		if next == "" || ctx.Err() != nil {
			return rep, errors.Join(errs...)
		}
		cursor = next
	}
}

func (s *Sweeper) sweepRun(ctx context.Context, log *slog.Logger, id string, now time.Time, capDelay time.Duration, rep *Report) error {
	d, err := s.Store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status.Terminal() {
		return nil
	}
	log = log.With("run_id", id)
	allTerminal, anyFailed, stepFailed := true, false, false
	completedAt := map[string]time.Time{}
	for _, st := range d.Steps {
		allTerminal = allTerminal && st.Status.Terminal()
		anyFailed = anyFailed || (st.Status.Terminal() && st.Status != status.StepCompleted)
		stepFailed = stepFailed || st.Status == status.StepFailed
		if st.Status == status.StepCompleted && st.CompletedAt != nil {
			completedAt[st.StepID] = *st.CompletedAt
		}
	}
	if stepFailed && !allTerminal {
		// The runner died while failing the run: finish its work. Steps
		// still running are left to finish.
		for _, st := range d.Steps {
			if st.Status == status.StepPending {
				if err := s.Store.SettleStep(ctx, id, st.StepIndex, status.StepSkipped, now); err != nil {
					return err
				}
			}
		}
		if err := s.Store.EndRunAsRead(ctx, d, status.RunFailed, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		log.InfoContext(ctx, "sweeper failed run with a failed step")
		rep.Finished++
		return nil
	}
	if allTerminal {
		to := status.RunCompleted
		if anyFailed {
			to = status.RunFailed
		}
		if err := s.Store.EndRunAsRead(ctx, d, to, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		log.InfoContext(ctx, "sweeper finished run", "status", to)
		rep.Finished++
		return nil
	}
	var msgs []queue.Message
	for _, st := range d.Steps {
		switch st.Status {
		case status.StepRunning:
			if st.LeaseUntil != nil && st.LeaseUntil.Before(now) {
				msgs = append(msgs, queue.Message{RunID: id, StepIndex: st.StepIndex, Attempt: st.RetryCount, SentAt: now})
				log.InfoContext(ctx, "sweeper re-enqueued step with expired lease", "step_id", st.StepID)
			}
		case status.StepPending:
			since, ok := readySince(d, st, completedAt, capDelay)
			if ok && now.Sub(since) > s.Grace {
				msgs = append(msgs, queue.Message{RunID: id, StepIndex: st.StepIndex, Attempt: st.RetryCount, SentAt: now})
				log.InfoContext(ctx, "sweeper re-enqueued stalled step", "step_id", st.StepID)
			}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := s.Queue.Send(ctx, msgs); err != nil {
		return fmt.Errorf("sweep run %s: %w", id, err)
	}
	rep.Requeued += len(msgs)
	return nil
}

// readySince returns when a pending step became ready to run, or false if
// a dependency has not completed.
func readySince(d store.RunDetail, st store.Step, completedAt map[string]time.Time, capDelay time.Duration) (time.Time, bool) {
	since := d.CreatedAt
	if d.RetriedAt != nil && d.RetriedAt.After(since) {
		since = *d.RetriedAt
	}
	for _, dep := range st.DependsOn {
		t, ok := completedAt[dep]
		if !ok {
			return time.Time{}, false
		}
		if t.After(since) {
			since = t
		}
	}
	if n := len(st.Attempts); n > 0 {
		// Waiting for a retry: its message may be delayed up to the cap.
		if t := st.Attempts[n-1].EndedAt.Add(capDelay); t.After(since) {
			since = t
		}
	}
	return since, true
}
