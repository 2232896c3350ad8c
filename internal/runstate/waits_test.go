package runstate

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// typed builds a plan of steps "id=type[:parent,parent]" in dependency
// order; a wait waits a minute.
func typed(t *testing.T, specs ...string) workflow.Plan {
	t.Helper()
	def := workflow.Definition{Name: "typed"}
	for _, spec := range specs {
		id, typ, _ := strings.Cut(spec, "=")
		st := workflow.Step{ID: id, Type: typ, DependsOn: []string{}}
		if typ2, parents, ok := strings.Cut(typ, ":"); ok {
			st.Type, st.DependsOn = typ2, strings.Split(parents, ",")
		}
		switch st.Type {
		case workflow.TypeWait:
			st.Config.Seconds = 60
		case workflow.TypeHTTP:
			st.Config.URL, st.Config.TimeoutSeconds = "https://svc.example/", 10
		}
		def.Steps = append(def.Steps, st)
	}
	p, err := workflow.NewPlan(def)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommitWaits(t *testing.T) {
	t.Parallel()
	held := Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	waiting := func(until time.Time) Slot { return Slot{Status: status.StepWaiting, Start: t0, End: until} }
	in := func(r State, p workflow.Plan, os ...Outcome) []Commit {
		return BuildCommits(CommitInput{Run: r, Plan: p, Outcomes: os, Policy: policy, Now: t0, MaxSteps: 40, Hop: 15 * time.Minute})
	}
	t.Run("a wait begins: the step waits with its deadline and one message comes at it", func(t *testing.T) {
		p := typed(t, "w=wait", "x=task:w")
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{held, Pending0}}
		cs := in(r, p, Outcome{Step: 0, Held: held, Start: t0, End: t0, Wait: true, Until: t0.Add(time.Minute)})
		if len(cs) != 1 {
			t.Fatalf("commits = %+v", cs)
		}
		c := cs[0]
		if got := c.Swaps[0].New; got != waiting(t0.Add(time.Minute)) {
			t.Fatalf("slot = %+v", got)
		}
		if len(c.Done) != 0 || c.End != "" || len(c.Waits) != 1 || !slices.Equal(c.Retries, []NextAttempt{{Step: 0, Due: t0.Add(time.Minute)}}) {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("a wait longer than a hop is woken at the hop", func(t *testing.T) {
		p := typed(t, "w=wait")
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{held}}
		c := in(r, p, Outcome{Step: 0, Held: held, Start: t0, End: t0, Wait: true, Until: t0.Add(24 * time.Hour)})[0]
		if !slices.Equal(c.Retries, []NextAttempt{{Step: 0, Due: t0.Add(15 * time.Minute)}}) {
			t.Fatalf("retries = %+v", c.Retries)
		}
	})
	t.Run("an approval with no timeout sends nothing and stores its callback", func(t *testing.T) {
		p := typed(t, "a=approval")
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{held}}
		c := in(r, p, Outcome{Step: 0, Held: held, Start: t0, End: t0, Wait: true, Callback: "h1"})[0]
		if len(c.Retries) != 0 || len(c.Waits) != 1 || c.Waits[0].Callback != "h1" || !c.Waits[0].Until.IsZero() {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("the end of a wait completes the step and the run", func(t *testing.T) {
		p := typed(t, "w=wait")
		w := waiting(t0)
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{w}}
		c := in(r, p, Outcome{Step: 0, Held: w, Start: t0, End: t0})[0]
		if c.Swaps[0].New.Status != status.StepCompleted || c.End != status.RunCompleted || len(c.Done) != 1 {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("an approval completed with an output stores it and deletes its callback", func(t *testing.T) {
		p := typed(t, "a=approval", "b=task:a")
		w := waiting(time.Time{})
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{w, Pending0}}
		c := in(r, p, Outcome{Step: 0, Held: w, Start: t0, End: t0, Output: json.RawMessage(`{"ok":true}`), Callback: "h1"})[0]
		if c.Swaps[0].New.Status != status.StepCompleted || string(c.Done[0].Output) != `{"ok":true}` || !slices.Equal(c.Resolved, []string{"h1"}) || c.End != "" {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("an approval refused or timed out fails the step and the run", func(t *testing.T) {
		p := typed(t, "a=approval", "b=task:a")
		w := waiting(t0)
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{w, Pending0}}
		c := in(r, p, Outcome{Step: 0, Held: w, Start: t0, End: t0, Err: errors.New("approval timed out"), Callback: "h1"})[0]
		if c.Swaps[0].New.Status != status.StepFailed || c.End != status.RunFailed || len(c.Failures) != 1 || !slices.Equal(c.Resolved, []string{"h1"}) {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("a wait whose slot changed since it was read is dropped", func(t *testing.T) {
		p := typed(t, "w=wait")
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{{Status: status.StepCompleted, Start: t0, End: t0}}}
		if c := in(r, p, Outcome{Step: 0, Held: waiting(t0), Start: t0, End: t0})[0]; len(c.Swaps) != 0 || !slices.Equal(c.Dropped, []int{0}) {
			t.Fatalf("commit = %+v", c)
		}
	})
}

func TestCommitRetryAfterIsAFloor(t *testing.T) {
	t.Parallel()
	p := plan(t, "a/3")
	held := Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{held}}
	pol := policy
	pol.Base, pol.Rand = 10*time.Second, func() float64 { return 0.95 } // 9.5s, truncated to 9s
	for _, tt := range []struct {
		after, want time.Duration
	}{
		{0, 9 * time.Second},
		{time.Second, 9 * time.Second},
		{90 * time.Second, 90 * time.Second},
	} {
		c := BuildCommit(r, p, "", []Outcome{{Step: 0, Held: held, Start: t0, End: t0, Err: errors.New("503"), RetryAfter: tt.after}}, pol, t0)
		if got := c.Retries[0].Due.Sub(t0); got != tt.want {
			t.Errorf("Retry-After %v: next attempt after %v, want %v", tt.after, got, tt.want)
		}
	}
}

// TestCommitSplitBySize: outputs decide where a commit splits, not only
// the count of outcomes, and a step run inline is claimed in every part
// that leaves its parents completed.
func TestCommitSplitBySize(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b", "c", "d:a")
	held := Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{held, held, held, Pending0}}
	big := json.RawMessage(`"` + strings.Repeat("x", 60<<10) + `"`)
	outcomes := []Outcome{
		{Step: 0, Held: held, Start: t0, End: t0, Output: big},
		{Step: 1, Held: held, Start: t0, End: t0, Output: big},
		{Step: 2, Held: held, Start: t0, End: t0, Output: big},
	}
	cs := BuildCommits(CommitInput{
		Run: r, Plan: p, Outcomes: outcomes, Running: []Lease{{Step: 3, Held: Pending0}},
		Policy: policy, Terms: LeaseTerms{Token: "mine", Margin: time.Minute}, Now: t0, MaxSteps: 40, MaxBytes: 130 << 10,
	})
	if len(cs) != 2 || len(cs[0].Done) != 2 || len(cs[1].Done) != 1 {
		t.Fatalf("want 2 commits of 2 and 1 outputs, got %d: %+v", len(cs), cs)
	}
	// d's only parent, a, completes in the first part: d is claimed there.
	if cl := cs[0].Claimed(); len(cl) != 1 || cl[0].Step != 3 {
		t.Fatalf("first part claims %+v", cl)
	}
	// One output larger than the bound goes alone.
	huge := json.RawMessage(`"` + strings.Repeat("x", 200<<10) + `"`)
	cs = BuildCommits(CommitInput{
		Run: r, Plan: p, Outcomes: []Outcome{{Step: 0, Held: held, Start: t0, End: t0, Output: huge}, outcomes[1]},
		Policy: policy, Now: t0, MaxSteps: 40, MaxBytes: 130 << 10,
	})
	if len(cs) != 2 {
		t.Fatalf("want the large output alone, got %d commits", len(cs))
	}
}

func TestDeliverWaits(t *testing.T) {
	t.Parallel()
	p := typed(t, "root=task", "w=wait:root", "x=task:w")
	done := Slot{Status: status.StepCompleted, Start: t0, End: t0}
	future := Slot{Status: status.StepWaiting, Start: t0, End: t0.Add(time.Hour)}
	due := Slot{Status: status.StepWaiting, Start: t0, End: t0.Add(-time.Second)}
	tests := []struct {
		name   string
		slot   Slot
		msg    int
		expire []int
		later  map[int]time.Time
	}{
		{"a message before the deadline is replaced by a later one", future, 1, nil, map[int]time.Time{0: t0.Add(time.Hour)}},
		{"a message at the deadline ends the wait", due, 1, []int{1}, map[int]time.Time{}},
		{"a parent's message finds a wait whose message was lost", due, 0, []int{1}, map[int]time.Time{}},
		{"a parent's message leaves a wait to its own messages", future, 0, nil, map[int]time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{done, tt.slot, Pending0}}
			d := Deliver(r, p, []Message{{Step: tt.msg}}, t0)
			if !slices.Equal(d.Expire, tt.expire) || len(d.Claim) != 0 || len(d.Later) != len(tt.later) || d.Later[0] != tt.later[0] {
				t.Fatalf("delivery = %+v", d)
			}
		})
	}
	t.Run("an approval with no deadline is left to its decision", func(t *testing.T) {
		p := typed(t, "a=approval")
		r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{{Status: status.StepWaiting, Start: t0}}}
		if d := Deliver(r, p, []Message{{Step: 0}}, t0.Add(1000*time.Hour)); len(d.Expire)+len(d.Later)+len(d.Claim)+len(d.Wait) != 0 {
			t.Fatalf("delivery = %+v", d)
		}
	})
}

func TestSweepWaits(t *testing.T) {
	t.Parallel()
	p := typed(t, "w=wait", "a=approval")
	grace := time.Minute
	for _, tt := range []struct {
		name    string
		w       Slot
		enqueue int
	}{
		{"a wait to come is progress", Slot{Status: status.StepWaiting, Start: t0, End: t0.Add(time.Hour)}, 0},
		{"a wait just over is left to its message", Slot{Status: status.StepWaiting, Start: t0, End: t0.Add(-time.Second)}, 0},
		{"a wait over for longer than grace lost its message", Slot{Status: status.StepWaiting, Start: t0, End: t0.Add(-2 * time.Minute)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{tt.w, {Status: status.StepWaiting, Start: t0}}}
			d := Sweep(r, p, t0, grace)
			if d.End != nil || len(d.Enqueue) != tt.enqueue {
				t.Fatalf("sweep = %+v", d)
			}
		})
	}
}

func TestWaitingStepsOfAnEndedRun(t *testing.T) {
	t.Parallel()
	p := typed(t, "a=approval")
	w := Slot{Status: status.StepWaiting, Start: t0}
	for st, want := range map[status.RunStatus]status.StepStatus{
		status.RunRunning: status.StepWaiting, status.RunCancelled: status.StepCancelled, status.RunFailed: status.StepSkipped,
	} {
		r := State{ID: "run_1", Status: st, Steps: []Slot{w}}
		if got := r.StepReported(p, 0, t0); got != want {
			t.Errorf("%s run: waiting step reported %s, want %s", st, got, want)
		}
	}
	// A retry starts the wait again.
	rs, err := Retry(State{ID: "run_1", Status: status.RunCancelled, Steps: []Slot{w}}, t0)
	if err != nil || rs.Swaps[0].New != Pending0 {
		t.Fatalf("retry = %+v, %v", rs, err)
	}
	// A waiting step's deadline is not progress.
	r := State{ID: "run_1", Status: status.RunRunning, CreatedAt: t0, Steps: []Slot{{Status: status.StepWaiting, Start: t0, End: t0.Add(time.Hour)}}}
	if got := r.ProgressAt(); !got.Equal(t0) {
		t.Errorf("progress at %v, want %v", got, t0)
	}
}

// TestSchedResolve: a wait's end found by a message is committed first,
// and only then are its dependents claimed: a waiting slot is held by
// nobody, so another runner may be ending the same wait (see
// TestAttack17FailsResolvedWaitStartsDependentInline).
func TestSchedResolve(t *testing.T) {
	t.Parallel()
	p := typed(t, "w=wait", "x=task:w")
	w := Slot{Status: status.StepWaiting, Start: t0, End: t0}
	r := State{ID: "run_1", Status: status.RunRunning, Steps: []Slot{w, Pending0}}
	s := NewSched(p, r, "", SchedConfig{Parallelism: 4, Window: 100 * time.Millisecond, Budget: time.Second, Began: t0, Policy: policy, MaxSteps: 40}, LeaseTerms{Token: "t", Margin: time.Minute}, nil)
	s.Resolve(Outcome{Step: 0, Start: t0, End: t0}, t0)
	if a := s.Next(t0); a.Kind != ActCommit {
		t.Fatalf("next = %+v, want the wait's end committed before anything starts", a)
	}
	cs := s.Commits(t0)
	if len(cs) != 1 || len(cs[0].Done) != 1 || cs[0].End != "" || len(cs[0].Claimed()) != 0 {
		t.Fatalf("commits = %+v", cs)
	}
	s.Landed(cs[0])
	if a := s.Next(t0); a.Kind != ActClaim || !slices.Equal(a.Steps, []int{1}) {
		t.Fatalf("next = %+v, want x claimed", a)
	}
}

// TestOrderRefusalPastItsStatusIsPermanent: an order action on an order
// that has moved past the status it needs fails at once (orders only move
// forward); on one that has not reached it yet, it is retried.
func TestOrderRefusalPastItsStatusIsPermanent(t *testing.T) {
	t.Parallel()
	p := plan(t, "c@charge_payment/3")
	held := Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	for order, wantEnd := range map[status.OrderStatus]status.RunStatus{
		status.OrderPending: "", status.OrderShipped: status.RunFailed, status.OrderCharged: status.RunFailed,
	} {
		r := State{ID: "run_1", OrderID: "ord_1", Status: status.RunRunning, Steps: []Slot{held}}
		c := BuildCommit(r, p, order, []Outcome{{Step: 0, Held: held, Start: t0, End: t0}}, policy, t0)
		if c.End != wantEnd || len(c.Failures) != 1 {
			t.Errorf("order %s: commit ends the run %q, want %q (%+v)", order, c.End, wantEnd, c)
		}
	}
}
