package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// GetRun returns the run as the API shows it, with its steps, or
// ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (wire.RunDetail, error) {
	r, failures, data, err := s.ReadRunData(ctx, id, true)
	if err != nil {
		return wire.RunDetail{}, err
	}
	_, p, err := s.Plan(ctx, r.WorkflowID)
	if err != nil {
		return wire.RunDetail{}, fmt.Errorf("get run %s: %w", id, err)
	}
	d := RunView(r, p, failures, data, s.now())
	d.ExpiresAt = timePtr(data.Expires)
	return d, nil
}

func ptr[T any](v T) *T { return &v }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// runSummary is the API's view of r without its steps.
func runSummary(r runstate.State, p workflow.Plan, failures []runstate.Failure, now time.Time) wire.RunSummary {
	v := wire.RunSummary{
		ID: r.ID, WorkflowID: r.WorkflowID, WorkflowName: r.WorkflowName, Status: r.Reported(),
		StepCount: len(r.Steps), CreatedAt: r.CreatedAt, Retries: r.Retries, RetriedAt: timePtr(r.RetriedAt),
		Generation: r.Gen, ProgressAt: r.ProgressAt(), StepStatuses: make([]status.StepStatus, len(r.Steps)),
	}
	if r.OrderID != "" {
		v.OrderID = ptr(r.OrderID)
	}
	if r.Status.Terminal() {
		v.CompletedAt = timePtr(r.EndedAt)
	}
	var started time.Time
	first := func(t time.Time) {
		if !t.IsZero() && (started.IsZero() || t.Before(started)) {
			started = t
		}
	}
	for i, s := range r.Steps {
		v.StepStatuses[i] = r.StepReported(p, i, now)
		if s.Status == status.StepCompleted {
			v.StepsCompleted++
		}
		first(s.Start)
		if r.Live() && s.Status == status.StepPending && !s.Due.IsZero() && (v.RetryDueAt == nil || s.Due.After(*v.RetryDueAt)) {
			v.RetryDueAt = ptr(s.Due)
		}
	}
	for _, f := range failures {
		first(f.Start)
		if f.End.After(v.ProgressAt) {
			v.ProgressAt = f.End
		}
	}
	v.StartedAt = timePtr(started)
	return v
}

// DetailDataBudget bounds the bytes of outputs and inputs in a run detail
// (see RunView): with 100 steps' slots and attempts it stays well under an
// API Lambda's 6 MB answer.
const DetailDataBudget = 1 << 20

// RunView is the API's view of run r of plan p, with the records of its
// failed attempts, at now. A step's attempts are those of the current and
// the previous generation, oldest first.
func RunView(r runstate.State, p workflow.Plan, failures []runstate.Failure, data RunData, now time.Time) wire.RunDetail {
	d := wire.RunDetail{
		RunSummary: runSummary(r, p, failures, now), Steps: make([]wire.StepDetail, len(r.Steps)),
		Input: data.InputAt(r.Gen), Inputs: make([]wire.RunInput, 0, len(data.Inputs)),
	}
	// The data a detail carries is bounded (an API Lambda answers at most
	// 6 MB): the current input always, then outputs in step order and
	// earlier inputs while they fit; what does not is marked omitted.
	budget := DetailDataBudget - len(d.Input)
	fits := func(v []byte) bool {
		if len(v) > budget {
			return false
		}
		budget -= len(v)
		return true
	}
	for _, in := range data.Inputs {
		ri := wire.RunInput{Generation: in.Gen, Input: in.Input, SetAt: in.SetAt}
		if in.Gen != data.InputGenAt(r.Gen) && !fits(in.Input) {
			ri.Input, ri.Omitted = nil, true
		}
		d.Inputs = append(d.Inputs, ri)
	}
	byStep := map[int][]runstate.Failure{}
	for _, f := range failures {
		if f.Gen >= r.Gen-1 {
			byStep[f.Step] = append(byStep[f.Step], f)
		}
	}
	for i, s := range r.Steps {
		ps := p[i]
		v := wire.StepDetail{
			ID: r.ID + ":" + ps.ID, StepID: ps.ID, StepIndex: i, Type: ps.Type, Status: d.StepStatuses[i],
			RetryCount: s.Attempt, MaxRetries: ps.Config.MaxRetries, DependsOn: ps.DependsOn, Config: ps.Config,
			Attempts: []wire.Attempt{},
		}
		fs := byStep[i]
		slices.SortFunc(fs, func(a, b runstate.Failure) int {
			if a.Gen != b.Gen {
				return a.Gen - b.Gen
			}
			return a.Attempt - b.Attempt
		})
		for _, f := range fs {
			v.Attempts = append(v.Attempts, wire.Attempt{Generation: ptr(f.Gen), StartedAt: f.Start, EndedAt: f.End, Error: f.Error})
		}
		switch s.Status {
		case status.StepCompleted, status.StepFailed:
			if s.Status == status.StepCompleted {
				a := wire.Attempt{StartedAt: s.Start, EndedAt: s.End}
				if r.Gen == 0 || !s.Start.Before(r.RetriedAt) {
					a.Generation = ptr(r.Gen)
				}
				v.Attempts = append(v.Attempts, a)
				if out := data.Outputs[i]; fits(out) {
					v.Output = out
				} else {
					v.OutputOmitted = true
				}
				if g, ok := data.InputGens[i]; ok {
					v.InputGeneration = ptr(g)
				}
			}
			v.CompletedAt = timePtr(s.End)
		case status.StepWaiting:
			v.AttemptStartedAt = timePtr(s.Start)
			v.WaitUntil = timePtr(s.End)
		case status.StepRunning:
			v.AttemptStartedAt = timePtr(s.Start)
		case status.StepPending:
			if r.Live() {
				v.NextAttemptAt = timePtr(s.Due)
			}
		}
		for n := range v.Attempts {
			v.Attempts[n].Number = n + 1
		}
		if len(v.Attempts) > 0 {
			v.StartedAt = ptr(v.Attempts[0].StartedAt)
		} else if s.Status == status.StepRunning || s.Status == status.StepWaiting {
			v.StartedAt = ptr(s.Start)
		}
		if s.Status != status.StepCompleted && len(fs) > 0 && fs[len(fs)-1].Gen == r.Gen {
			v.ErrorMessage = ptr(fs[len(fs)-1].Error)
		}
		d.Steps[i] = v
	}
	return d
}

// RunFilter narrows ListRuns. Empty fields do not filter.
type RunFilter struct {
	Status     status.RunStatus
	WorkflowID string
}

// RunPage is one page of runs.
type RunPage struct {
	Runs []wire.RunSummary
	// Next is the cursor of the next page ("" on the last).
	Next string
	// Unreadable lists runs of the page whose items could not be decoded:
	// they are left out, so that one bad run never breaks a list.
	Unreadable []Unreadable
}

// Unreadable is a run that could not be read, and why.
type Unreadable struct {
	RunID string
	Err   error
}

// ListRuns returns runs newest first, with their progress and their order's
// status, and the cursor of the next page. Pending and running runs come
// from the by_active index; other statuses are filtered from all runs (or
// the workflow's), reading at most maxExamined index entries per page. A
// run whose items cannot be decoded is left out and named in Unreadable.
func (s *Store) ListRuns(ctx context.Context, f RunFilter, p Page) (RunPage, error) {
	q := listQuery{index: indexByKind, base: kindRun}
	switch {
	case f.Status == status.RunPending || f.Status == status.RunRunning:
		q.index, q.base = indexActive, activeValue
	case f.WorkflowID != "":
		q.index, q.base = indexByWorkflow, f.WorkflowID
	}
	now := s.now()
	var page RunPage
	next, err := s.list(ctx, q, p, func(header map[string]types.AttributeValue) (bool, error) {
		runID := sAttr(header, attrID)
		if f.WorkflowID != "" && sAttr(header, attrWorkflowID) != f.WorkflowID {
			return false, nil
		}
		r, err := s.withChunks(ctx, runID, header)
		if errors.Is(err, errUnreadable) {
			page.Unreadable = append(page.Unreadable, Unreadable{RunID: runID, Err: err})
			return false, nil
		}
		if err != nil {
			return false, err
		}
		_, plan, err := s.Plan(ctx, r.WorkflowID)
		if err != nil {
			return false, err
		}
		v := runSummary(r, plan, nil, now)
		v.ExpiresAt = timePtr(expiresAt(header))
		if f.Status != "" && v.Status != f.Status {
			return false, nil
		}
		page.Runs = append(page.Runs, v)
		return true, nil
	})
	if err != nil {
		return RunPage{}, fmt.Errorf("list runs: %w", err)
	}
	page.Next = next
	if len(page.Runs) > p.Limit {
		page.Runs = page.Runs[:p.Limit]
	}
	if err := s.addOrderStatus(ctx, page.Runs); err != nil {
		return RunPage{}, fmt.Errorf("list runs: %w", err)
	}
	return page, nil
}

// withChunks decodes a run from its header, reading its chunks if it has
// any.
func (s *Store) withChunks(ctx context.Context, runID string, header map[string]types.AttributeValue) (runstate.State, error) {
	n, err := nAttr(header, "step_count")
	if err != nil {
		return runstate.State{}, fmt.Errorf("run %s: %w: %w", runID, errUnreadable, err)
	}
	items := map[int]map[string]types.AttributeValue{0: header}
	var keys []map[string]types.AttributeValue
	for k := 1; k < runstate.Items(n); k++ {
		keys = append(keys, runItemKey(runID, k))
	}
	if len(keys) > 0 {
		got, err := s.batchGet(ctx, keys, false)
		if err != nil {
			return runstate.State{}, err
		}
		for k := 1; k < runstate.Items(n); k++ {
			if it, ok := got[itemKey(runItemKey(runID, k))]; ok {
				items[k] = it
			}
		}
	}
	r, err := decodeWhole(runID, items)
	if errors.Is(err, errTorn) {
		// The header came from an earlier read: read the run afresh.
		r, _, err = s.ReadRun(ctx, runID, false)
	}
	return r, err
}

// addOrderStatus fills in the status of the listed runs' orders with one
// BatchGetItem.
func (s *Store) addOrderStatus(ctx context.Context, runs []wire.RunSummary) error {
	seen := map[string]bool{}
	var keys []map[string]types.AttributeValue
	for _, r := range runs {
		if r.OrderID != nil && !seen[*r.OrderID] {
			seen[*r.OrderID] = true
			keys = append(keys, key(orderKey(*r.OrderID)))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	items, err := s.batchGet(ctx, keys, false)
	if err != nil {
		return err
	}
	for i, r := range runs {
		if r.OrderID == nil {
			continue
		}
		if it, ok := items[itemKey(key(orderKey(*r.OrderID)))]; ok {
			runs[i].OrderStatus = ptr(status.OrderStatus(sAttr(it, attrStatus)))
		}
	}
	return nil
}
