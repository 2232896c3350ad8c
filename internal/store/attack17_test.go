package store_test

// Issue 17's adversarial review, storage limits: what kumo accepts and
// DynamoDB refuses (run with tools/dynamodb-local/run.sh go test
// ./internal/store/ -run Attack17).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// bigOutput is a JSON output of n bytes.
func bigOutput(n int, tag string) json.RawMessage {
	head := `{"tag":"` + tag + `","pad":"`
	return json.RawMessage(head + strings.Repeat("x", n-len(head)-2) + `"}`)
}

// TestAttack17HoldsLargestCommitFitsDynamoDB: the largest commit the engine
// builds by count (30 outcomes, engine.maxStepsPerCommit), every one with
// a 64 KiB output (engine.MaxOutputBytes), is under DynamoDB's 4 MB per
// transaction even without the split by bytes; the removal of reservation
// attributes that do not exist is accepted. Twice that many outputs in one
// transaction is refused by DynamoDB as invalid (kumo takes it: the split
// by bytes, engine.maxCommitBytes, is what keeps commits legal).
func TestAttack17HoldsLargestCommitFitsDynamoDB(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	commitOf := func(n int) error {
		var steps []string
		for i := range n {
			steps = append(steps, fmt.Sprintf("s%02d", i))
		}
		w := newWorkflow(fmt.Sprintf("big-%d", n), steps...)
		p := mustPlan(t, w)
		r := createRun(t, s, w, "")
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		// Claims are at most 16 (Parallelism) per write; claim in parts.
		running := r
		var leases []runstate.Lease
		for lo := 0; lo < n; lo += 16 {
			var ls []runstate.Lease
			running, ls = claim(t, s, running, p, all[lo:min(n, lo+16)]...)
			leases = append(leases, ls...)
		}
		outs := outcomes(leases, nil)
		for i := range outs {
			outs[i].Output = bigOutput(64<<10, fmt.Sprint(i))
		}
		cs := runstate.BuildCommits(runstate.CommitInput{Run: running, Plan: p, Outcomes: outs, Policy: policy, Now: now, MaxSteps: n})
		if len(cs) != 1 {
			t.Fatalf("%d commits", len(cs))
		}
		err := s.CommitIfHeld(ctx, cs[0], ids.New("cmt"))
		if err == nil {
			d, gerr := s.GetRun(ctx, r.ID)
			data, lerr := s.LoadData(ctx, r.ID, 0, false, []int{n - 1})
			if gerr != nil || lerr != nil || d.Status != status.RunCompleted || len(data.Outputs[n-1]) != 64<<10 {
				t.Fatalf("run after a commit of %d outputs: %v %v %v", n, d.Status, gerr, lerr)
			}
		}
		return err
	}
	if err := commitOf(30); err != nil {
		t.Fatalf("30 outputs of 64 KiB in one commit: %v", err)
	}
	err := commitOf(64)
	t.Logf("64 outputs of 64 KiB (4 MiB) in one commit: %v", err)
	if err != nil && !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a commit over DynamoDB's 4 MB is %v, want ErrInvalid (a permanent refusal, not a retry forever)", err)
	}
}

// TestAttack17HoldsReservationReadBack: a reservation whose every answer
// is lost is read back and found the caller's own; another run is refused
// naming the holder; once the holder's time is over, another run takes it.
func TestAttack17HoldsReservationReadBack(t *testing.T) {
	t.Parallel()
	db, lose := testenv.LosingDynamoDB(t)
	table := testenv.Table(t, db)
	s := store.New(db, table)
	ctx := context.Background()
	o := newOrder(t, s)
	w := newWorkflow("validate", "v@validate_order")
	r := createRun(t, s, w, o.ID)
	running, leases := claim(t, s, r, mustPlan(t, w), 0)
	c := runstate.BuildCommit(running, mustPlan(t, w), status.OrderPending, outcomes(leases, nil), policy, now)
	if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
		t.Fatal(err)
	}
	charge := newWorkflow("charge", "c@charge_payment")
	runA, runB := createRun(t, s, charge, o.ID), createRun(t, s, charge, o.ID)
	res := store.Reservation{OrderID: o.ID, RunID: runA.ID, StepID: "charge", From: status.OrderValidated, At: now, Until: now.Add(time.Minute)}
	lose.Lose("TransactWriteItems", 3, nil)
	if err := s.ReserveOrderIfFree(ctx, res); err != nil {
		t.Fatalf("a reservation whose answers were all lost: %v", err)
	}
	other := res
	other.RunID = runB.ID
	var refused *store.OrderRefusedError
	if err := s.ReserveOrderIfFree(ctx, other); !errors.As(err, &refused) || refused.HeldBy != runA.ID {
		t.Fatalf("another run while the first holds it: %v", err)
	}
	other.At = now.Add(2 * time.Minute)
	other.Until = other.At.Add(time.Minute)
	if err := s.ReserveOrderIfFree(ctx, other); err != nil {
		t.Fatalf("another run once the first's time is over: %v", err)
	}
}

// TestAttack17FailsRunDetailOverLambdaPayloadLimit: a run may have 100
// steps and each step's output may be 64 KiB, and GET /runs/{id} returns
// every output inline (store.GetRun -> wire.RunDetail.Steps[].Output), as
// well as every generation's input (up to 64 KiB each, one per retry with
// an input, with no bound on retries). 100 outputs of 64 KiB make a 6.5 MB
// body: over Lambda's 6 MB response limit, so on AWS the API Lambda fails
// and API Gateway answers 502 for that run's detail (the dashboard's run
// page, stepflow run-status and --watch included); kumo, DynamoDB Local and
// the local server have no such limit.
//
// Fix: bound the detail (leave outputs and inputs over a size out and
// serve them from GET /runs/{id}/steps/{step}/output and
// /runs/{id}/inputs/{gen}), or bound a run's total output size at
// POST /workflows time.
func TestAttack17FixedRunDetailOverLambdaPayloadLimit(t *testing.T) {
	t.Parallel()
	s, ctx := testenv.Store(t), context.Background()
	var steps []string
	for i := range 100 {
		steps = append(steps, fmt.Sprintf("s%02d", i))
	}
	w := newWorkflow("wide-outputs", steps...)
	p := mustPlan(t, w)
	r := createRun(t, s, w, "")
	running := r
	var leases []runstate.Lease
	all := make([]int, 100)
	for i := range all {
		all[i] = i
	}
	for lo := 0; lo < 100; lo += 16 {
		var ls []runstate.Lease
		running, ls = claim(t, s, running, p, all[lo:min(100, lo+16)]...)
		leases = append(leases, ls...)
	}
	outs := outcomes(leases, nil)
	for i := range outs {
		outs[i].Output = bigOutput(64<<10, fmt.Sprint(i))
	}
	for _, c := range runstate.BuildCommits(runstate.CommitInput{Run: running, Plan: p, Outcomes: outs, Policy: policy, Now: now, MaxSteps: 30, MaxBytes: 1 << 20}) {
		if err := s.CommitIfHeld(ctx, c, ids.New("cmt")); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.GetRun(ctx, r.ID)
	if err != nil || d.Status != status.RunCompleted {
		t.Fatalf("run %v: %v", d.Status, err)
	}
	body, _ := json.Marshal(d)
	const lambdaLimit = 6 << 20
	t.Logf("GET /runs/%s: %d bytes", r.ID, len(body))
	if len(body) > lambdaLimit {
		t.Fatalf("the run detail is %.2f MiB, over Lambda's 6 MiB response payload: GET /runs/{id} cannot be served on AWS", float64(len(body))/(1<<20))
	}
}
