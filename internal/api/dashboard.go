package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/id"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/workflow"
)

// This file holds the routes the dashboard needs beyond the original API:
// who the caller is, the dead-letter queue's depth, workflows shared by
// identical definitions, run lists with progress, run statistics, and
// paged order history. See README's API section.

// Limits of GET /runs/stats and of an order's history.
const (
	DefaultStatsWindow = 100
	MaxStatsWindow     = 500
	OrderHistoryInline = 100 // history entries GET /orders/{id} carries
)

type meBody struct {
	Role    auth.Role `json:"role"`
	TokenID string    `json:"token_id,omitempty"`
	Name    string    `json:"name,omitempty"`
	Auth    bool      `json:"auth"`
}

// me tells the caller its role, so the dashboard can leave out what the
// role may not do.
func (s *server) me(w http.ResponseWriter, r *http.Request) {
	if s.Auth == nil {
		writeJSON(w, http.StatusOK, meBody{Role: auth.Operator})
		return
	}
	// authorize has accepted the credentials; read them again for the
	// name and role.
	tok, err := s.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, meBody{Role: tok.Role, TokenID: tok.ID, Name: tok.Name, Auth: true})
}

func (s *server) dlqDepth(w http.ResponseWriter, r *http.Request) {
	n, err := s.Redriver.Depth(r.Context())
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"depth": n})
}

// createOrReuseWorkflow stores a new workflow (201), or answers 200 with
// the existing workflow whose normalized definition is identical.
func (s *server) createOrReuseWorkflow(w http.ResponseWriter, r *http.Request) {
	def, err := decodeWorkflow(r.Body)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	wf := store.Workflow{ID: s.IDs.New("wf"), Name: def.Name, Definition: def, CreatedAt: s.Now().UTC()}
	wf, existed, err := s.Store.FindOrCreateWorkflow(r.Context(), wf)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	writeJSON(w, code, wf)
}

// stalled reports whether a run that has not ended has shown no progress
// for longer than recovery should take: its longest step plus the lease
// margin and the sweeper's grace. Time a step spends waiting for a
// scheduled retry does not count.
func (s *server) stalled(st status.Run, progressAt time.Time, longest time.Duration, nextAttempt *time.Time, now time.Time) bool {
	if st.Terminal() {
		return false
	}
	since := progressAt
	if nextAttempt != nil && nextAttempt.After(since) {
		since = *nextAttempt
	}
	return now.Sub(since) > longest+s.LeaseMargin+s.SweepGrace
}

type runItem struct {
	store.RunSummary
	Stalled bool `json:"stalled"`
}

func (s *server) listRunSummaries(w http.ResponseWriter, r *http.Request) {
	p, err := page(r, "run")
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	f, err := runFilter(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	sums, next, err := s.Store.ListRunSummaries(r.Context(), f, p, s.Retry.Ceiling)
	now := s.Now()
	items := make([]runItem, len(sums))
	for i, sum := range sums {
		items[i] = runItem{RunSummary: sum, Stalled: s.stalled(sum.Status, sum.ProgressAt, sum.LongestStep, sum.NextAttemptAt, now)}
	}
	writeList(w, r, s, items, next, err)
}

// runFilter reads ?status= and ?workflow_id=.
func runFilter(r *http.Request) (store.RunFilter, error) {
	var f store.RunFilter
	q := r.URL.Query()
	if v := q.Get("status"); v != "" {
		f.Status = status.Run(v)
		if !f.Status.Valid() {
			return f, badRequest("status", fmt.Sprintf("status must be one of %v", status.Runs))
		}
	}
	if v := q.Get("workflow_id"); v != "" {
		if !id.Valid("wf", v) {
			return f, badRequest("workflow_id", "workflow_id is not a workflow id")
		}
		f.WorkflowID = v
	}
	return f, nil
}

type stepView struct {
	store.Step
	Config workflow.Config `json:"config"`
	// NextAttemptAt is when a step waiting for a retry may run next.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

type runView struct {
	store.Run
	ProgressAt time.Time  `json:"progress_at"`
	Stalled    bool       `json:"stalled"`
	Steps      []stepView `json:"steps"`
}

func (s *server) getRunView(w http.ResponseWriter, r *http.Request) {
	d, ok := s.loadRun(w, r)
	if !ok {
		return
	}
	v := runView{Run: d.Run, ProgressAt: store.ProgressAt(d), Steps: make([]stepView, len(d.Steps))}
	var latest *time.Time
	for i, st := range d.Steps {
		// The table does not record a retry's delay: NextAttemptAt is the
		// latest the retry can come (see store.NextAttemptAt).
		next := store.NextAttemptAt(st, s.Retry.Ceiling)
		v.Steps[i] = stepView{Step: st, Config: st.Config, NextAttemptAt: next}
		if next != nil && (latest == nil || next.After(*latest)) {
			latest = next
		}
	}
	v.Stalled = s.stalled(d.Status, v.ProgressAt, store.LongestStep(d), latest, s.Now())
	writeJSON(w, http.StatusOK, v)
}

type statsBody struct {
	Window        int                `json:"window"`
	Counts        map[status.Run]int `json:"counts"`
	SuccessRate   *float64           `json:"success_rate"`
	DurationP50MS *int64             `json:"duration_p50_ms"`
	DurationP95MS *int64             `json:"duration_p95_ms"`
}

// runStats summarizes the latest runs, of all workflows or of one.
func (s *server) runStats(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, DefaultStatsWindow, MaxStatsWindow)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	f, err := runFilter(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if f.Status != "" {
		writeError(w, r, s.Logger, badRequest("status", "status is not a filter of run statistics"))
		return
	}
	var runs []store.Run
	p := store.Page{}
	for len(runs) < limit {
		p.Limit = min(MaxLimit, limit-len(runs))
		page, next, err := s.Store.ListRuns(r.Context(), f, p)
		if err != nil {
			writeError(w, r, s.Logger, err)
			return
		}
		runs = append(runs, page...)
		if next == "" {
			break
		}
		p.Cursor = next
	}
	writeJSON(w, http.StatusOK, summarizeRuns(runs))
}

// summarizeRuns counts runs by status; the success rate is over ended
// runs, and the durations (start to end) over completed runs, as
// nearest-rank percentiles.
func summarizeRuns(runs []store.Run) statsBody {
	b := statsBody{Window: len(runs), Counts: map[status.Run]int{}}
	for _, st := range status.Runs {
		b.Counts[st] = 0
	}
	var ms []int64
	for _, r := range runs {
		b.Counts[r.Status]++
		if r.Status == status.RunCompleted && r.StartedAt != nil && r.CompletedAt != nil {
			ms = append(ms, r.CompletedAt.Sub(*r.StartedAt).Milliseconds())
		}
	}
	if ended := b.Counts[status.RunCompleted] + b.Counts[status.RunFailed] + b.Counts[status.RunCancelled]; ended > 0 {
		rate := float64(b.Counts[status.RunCompleted]) / float64(ended)
		b.SuccessRate = &rate
	}
	if len(ms) > 0 {
		slices.Sort(ms)
		rank := func(p float64) *int64 {
			v := ms[int(math.Ceil(p*float64(len(ms))))-1]
			return &v
		}
		b.DurationP50MS, b.DurationP95MS = rank(0.50), rank(0.95)
	}
	return b
}

// limitParam reads ?limit=, an integer from 1 to most.
func limitParam(r *http.Request, def, most int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, badRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", most))
	}
	return n, nil
}

type orderView struct {
	store.Order
	// HistoryNext is the cursor of GET /orders/{id}/history for the
	// entries after the first OrderHistoryInline, or null.
	HistoryNext *string `json:"history_next"`
}

func (s *server) getOrderView(w http.ResponseWriter, r *http.Request) {
	orderID, ok := s.orderID(w, r)
	if !ok {
		return
	}
	o, next, err := s.Store.GetOrderWithHistory(r.Context(), orderID, OrderHistoryInline)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	v := orderView{Order: o}
	if next != "" {
		v.HistoryNext = &next
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *server) orderHistory(w http.ResponseWriter, r *http.Request) {
	orderID, ok := s.orderID(w, r)
	if !ok {
		return
	}
	limit, err := limitParam(r, DefaultLimit, MaxLimit)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	entries, next, err := s.Store.ListOrderHistory(r.Context(), orderID, store.Page{Limit: limit, Cursor: r.URL.Query().Get("cursor")})
	if errors.Is(err, store.ErrBadCursor) {
		err = badRequest("cursor", "cursor is not valid for this list; use the URL from the Link header or history_next")
	}
	writeList(w, r, s, entries, next, err)
}

func (s *server) orderID(w http.ResponseWriter, r *http.Request) (string, bool) {
	orderID := r.PathValue("id")
	if !id.Valid("ord", orderID) {
		writeError(w, r, s.Logger, store.ErrNotFound)
		return "", false
	}
	return orderID, true
}
