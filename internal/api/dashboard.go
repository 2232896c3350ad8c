package api

import (
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
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// This file holds the routes the dashboard needs beyond the original API:
// who the caller is, the dead-letter queue's depth, workflows shared by
// identical definitions, run lists marked stalled, and run statistics. See
// README's API section.

// Limits of GET /runs/stats.
const (
	DefaultStatsWindow = 100
	MaxStatsWindow     = 500
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
	wf := wire.Workflow{ID: s.IDs.New("wf"), Name: def.Name, Definition: def, CreatedAt: s.Now().UTC()}
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
func (s *server) stalled(r wire.RunSummary, p workflow.Plan, now time.Time) bool {
	if r.Status.Terminal() {
		return false
	}
	active := 0 // steps running, or pending with every parent completed
	for i, st := range r.StepStatuses {
		switch {
		case st == status.StepRunning:
			active++
		case st == status.StepPending && i < len(p):
			ready := true
			for _, parent := range p[i].Parents {
				ready = ready && parent < len(r.StepStatuses) && r.StepStatuses[parent] == status.StepCompleted
			}
			if ready {
				active++
			}
		}
	}
	if active == 0 && slices.Contains(r.StepStatuses, status.StepWaiting) {
		// Only waiting steps: their wait's messages, or a decision, move
		// them (and the sweeper replaces a lost message). A waiting step
		// beside a pending or running one hides nothing: the rule below
		// applies.
		return false
	}
	longest := time.Duration(p.MaxDuration() * float64(time.Second))
	since := r.ProgressAt
	if r.RetryDueAt != nil && r.RetryDueAt.After(since) {
		since = *r.RetryDueAt
	}
	return now.Sub(since) > longest+s.LeaseMargin+s.SweepGrace
}

// listRuns lists runs newest first, each marked stalled or not (the
// longest step comes from the workflow's cached plan).
func (s *server) listRuns(w http.ResponseWriter, r *http.Request) {
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
	pg, err := s.Store.ListRuns(r.Context(), f, p)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	runs := pg.Runs
	now := s.Now()
	for i := range runs {
		if runs[i].Status.Terminal() {
			continue
		}
		_, plan, err := s.Store.Plan(r.Context(), runs[i].WorkflowID)
		if err != nil {
			s.Logger.ErrorContext(r.Context(), "workflow of a listed run cannot be read; not marked stalled", "run_id", runs[i].ID, "error", err)
			continue
		}
		runs[i].Stalled = s.stalled(runs[i], plan, now)
	}
	s.noteUnreadable(w, r, pg.Unreadable)
	writeList(w, r, s, runs, pg.Next, nil)
}

// UnreadableHeader counts the runs a list or statistics left out because
// their items cannot be read (each is also logged with its run_id).
const UnreadableHeader = "Stepflow-Unreadable-Runs"

// noteUnreadable logs runs a list left out, and counts them in a header.
func (s *server) noteUnreadable(w http.ResponseWriter, r *http.Request, runs []store.Unreadable) {
	if len(runs) == 0 {
		return
	}
	for _, u := range runs {
		s.Logger.ErrorContext(r.Context(), "run cannot be read; left out of the list", "run_id", u.RunID, "error", u.Err)
	}
	w.Header().Set(UnreadableHeader, strconv.Itoa(len(runs)))
}

// runFilter reads ?status= and ?workflow_id=.
func runFilter(r *http.Request) (store.RunFilter, error) {
	var f store.RunFilter
	q := r.URL.Query()
	if v := q.Get("status"); v != "" {
		f.Status = status.RunStatus(v)
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

type statsBody struct {
	Window        int                      `json:"window"`
	Counts        map[status.RunStatus]int `json:"counts"`
	SuccessRate   *float64                 `json:"success_rate"`
	DurationP50MS *int64                   `json:"duration_p50_ms"`
	DurationP95MS *int64                   `json:"duration_p95_ms"`
	// Unreadable counts runs left out because their items cannot be read.
	Unreadable int `json:"unreadable"`
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
	var runs []wire.RunSummary
	var unreadable []store.Unreadable
	p := store.Page{}
	for len(runs) < limit {
		p.Limit = min(MaxLimit, limit-len(runs))
		pg, err := s.Store.ListRuns(r.Context(), f, p)
		if err != nil {
			writeError(w, r, s.Logger, err)
			return
		}
		runs = append(runs, pg.Runs...)
		unreadable = append(unreadable, pg.Unreadable...)
		if pg.Next == "" {
			break
		}
		p.Cursor = pg.Next
	}
	s.noteUnreadable(w, r, unreadable)
	b := summarizeRuns(runs)
	b.Unreadable = len(unreadable)
	writeJSON(w, http.StatusOK, b)
}

// summarizeRuns counts runs by status; the success rate is over ended
// runs, and the durations (start to end) over completed runs, as
// nearest-rank percentiles.
func summarizeRuns(runs []wire.RunSummary) statsBody {
	b := statsBody{Window: len(runs), Counts: map[status.RunStatus]int{}}
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
