package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/status"
)

// This file holds what the dashboard needs beyond the engine's reads:
// workflows shared by identical definitions, run summaries for lists, and
// paged order history. The methods are written simply over the current
// table layout; a layout that stores per-run counters, retry times and one
// item per history entry can implement the same methods cheaply.

// ErrBadCursor: a paging cursor that this list never handed out.
var ErrBadCursor = errors.New("bad cursor")

func defKey(hash string) (pk, sk string) { return "WFDEF#" + hash, "WFDEF" }

// FindOrCreateWorkflow stores w unless a workflow with an identical
// definition (after normalization, name included) exists; then it returns
// that one and true. Identical definitions are found by a hash item
// (WFDEF#<sha256 of the definition's JSON>) written with a conditional put
// before the workflow itself, so two concurrent calls agree on one
// workflow. A hash item whose workflow is missing (its writer crashed
// between the two puts, or is between them now) is completed with this
// definition under the hash item's workflow ID.
func (s *Store) FindOrCreateWorkflow(ctx context.Context, w Workflow) (Workflow, bool, error) {
	def, err := json.Marshal(w.Definition)
	if err != nil {
		return w, false, fmt.Errorf("encode definition: %w", err)
	}
	sum := sha256.Sum256(def)
	hash := hex.EncodeToString(sum[:])
	pk, sk := defKey(hash)
	err = s.putNew(ctx, map[string]types.AttributeValue{
		attrPK: str(pk), attrSK: str(sk), "workflow_id": str(w.ID),
	}, "definition hash "+hash)
	if err == nil {
		return w, false, s.CreateWorkflow(ctx, w)
	}
	if !errors.Is(err, ErrConflict) {
		return w, false, err
	}
	item, err := s.get(ctx, defKey, hash)
	if err != nil {
		return w, false, fmt.Errorf("get definition hash %s: %w", hash, err)
	}
	idAttr, _ := item["workflow_id"].(*types.AttributeValueMemberS)
	if idAttr == nil {
		return w, false, fmt.Errorf("definition hash %s has no workflow_id", hash)
	}
	found, err := s.GetWorkflow(ctx, idAttr.Value)
	if err == nil {
		return found, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return w, false, err
	}
	w.ID = idAttr.Value
	if err := s.CreateWorkflow(ctx, w); errors.Is(err, ErrConflict) {
		// Its first writer finished in the meantime.
		found, err := s.GetWorkflow(ctx, w.ID)
		return found, err == nil, err
	} else if err != nil {
		return w, false, err
	}
	return w, false, nil
}

// Backoff is the longest a step waits before its next attempt after
// failures failed attempts (retry.Policy.Ceiling).
type Backoff func(failures int) time.Duration

// NextAttemptAt returns when a pending step that is waiting for a retry
// may run next, or nil if it is not waiting for one. The table does not
// record the delay a retry was given, so this is the latest it can be: the
// failed attempt's end plus the longest backoff after that many failures.
func NextAttemptAt(st Step, backoff Backoff) *time.Time {
	n := len(st.Attempts)
	if st.Status != status.StepPending || st.RetryCount == 0 || n == 0 || st.Attempts[n-1].Error == "" {
		return nil
	}
	t := st.Attempts[n-1].EndedAt.Add(backoff(st.RetryCount))
	return &t
}

// ProgressAt is the last time the run visibly moved: the latest of its
// creation, its last retry, and every attempt's start and end.
func ProgressAt(d RunDetail) time.Time {
	at := d.CreatedAt
	later := func(t time.Time) {
		if t.After(at) {
			at = t
		}
	}
	if d.RetriedAt != nil {
		later(*d.RetriedAt)
	}
	for _, st := range d.Steps {
		if st.AttemptStartedAt != nil {
			later(*st.AttemptStartedAt)
		}
		for _, a := range st.Attempts {
			later(a.StartedAt)
			later(a.EndedAt)
		}
	}
	return at.UTC()
}

// LongestStep is the longest configured duration of the run's steps.
func LongestStep(d RunDetail) time.Duration {
	var longest time.Duration
	for _, st := range d.Steps {
		longest = max(longest, time.Duration(st.Config.DurationSeconds*float64(time.Second)))
	}
	return longest
}

// RunSummary is a run as the dashboard lists it: the run and what its
// steps and order add up to.
type RunSummary struct {
	Run
	StepsCompleted int           `json:"steps_completed"`
	StepStatuses   []status.Step `json:"step_statuses"` // in step_index order
	OrderStatus    *status.Order `json:"order_status"`
	ProgressAt     time.Time     `json:"progress_at"`
	// LongestStep is the longest configured step duration; NextAttemptAt
	// the latest time a step waiting for a retry may run (nil if none
	// waits). Both feed the API's stalled flag.
	LongestStep   time.Duration `json:"-"`
	NextAttemptAt *time.Time    `json:"-"`
}

// Summarize derives a run's summary from its detail.
func Summarize(d RunDetail, order *status.Order, backoff Backoff) RunSummary {
	sum := RunSummary{Run: d.Run, StepStatuses: make([]status.Step, len(d.Steps)), OrderStatus: order,
		ProgressAt: ProgressAt(d), LongestStep: LongestStep(d)}
	for i, st := range d.Steps {
		sum.StepStatuses[i] = st.Status
		if st.Status == status.StepCompleted {
			sum.StepsCompleted++
		}
		if t := NextAttemptAt(st, backoff); t != nil && (sum.NextAttemptAt == nil || t.After(*sum.NextAttemptAt)) {
			sum.NextAttemptAt = t
		}
	}
	return sum
}

// ListRunSummaries is ListRuns with each run's summary. Over the current
// layout it reads every listed run's partition and order (a few at a
// time); a layout with counters on the run item would not need to.
func (s *Store) ListRunSummaries(ctx context.Context, f RunFilter, p Page, backoff Backoff) ([]RunSummary, string, error) {
	runs, next, err := s.ListRuns(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]RunSummary, len(runs))
	errs := make([]error, len(runs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = s.runSummary(ctx, r, backoff)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, "", fmt.Errorf("list run summaries: %w", err)
	}
	return out, next, nil
}

func (s *Store) runSummary(ctx context.Context, r Run, backoff Backoff) (RunSummary, error) {
	d, err := s.GetRun(ctx, r.ID)
	if err != nil {
		return RunSummary{}, err
	}
	var order *status.Order
	if d.OrderID != nil {
		o, err := s.GetOrder(ctx, *d.OrderID)
		if err != nil {
			return RunSummary{}, err
		}
		order = &o.Status
	}
	return Summarize(d, order, backoff), nil
}

// GetOrderWithHistory returns the order with at most limit history
// entries, oldest first, and the cursor of the entries after them ("" if
// there are none).
func (s *Store) GetOrderWithHistory(ctx context.Context, id string, limit int) (Order, string, error) {
	o, err := s.GetOrder(ctx, id)
	if err != nil {
		return o, "", err
	}
	var next string
	o.History, next, err = pageHistory(o.History, Page{Limit: limit})
	return o, next, err
}

// ListOrderHistory returns one page of an order's history, oldest first,
// and the next page's cursor. A cursor this list did not hand out is
// ErrBadCursor.
func (s *Store) ListOrderHistory(ctx context.Context, id string, p Page) ([]HistoryEntry, string, error) {
	o, err := s.GetOrder(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return pageHistory(o.History, p)
}

// pageHistory cuts one page out of a whole history; the cursor is the
// position of the page's first entry.
func pageHistory(h []HistoryEntry, p Page) ([]HistoryEntry, string, error) {
	from := 0
	if p.Cursor != "" {
		n, err := strconv.Atoi(p.Cursor)
		if err != nil || n < 1 || n > len(h) || strconv.Itoa(n) != p.Cursor {
			return nil, "", ErrBadCursor
		}
		from = n
	}
	to := min(len(h), from+p.Limit)
	next := ""
	if to < len(h) {
		next = strconv.Itoa(to)
	}
	return h[from:to], next, nil
}
