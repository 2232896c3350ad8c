package runstate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// plan builds a plan from specs "id[:parent,parent][@action][/retries]", in
// an order that is already a dependency order, with zero durations.
func plan(t *testing.T, specs ...string) workflow.Plan {
	t.Helper()
	var def workflow.Definition
	def.Name = "test"
	for _, spec := range specs {
		st := workflow.Step{ID: spec, Type: "task", DependsOn: []string{}, Config: workflow.Config{MaxRetries: 0}}
		if rest, retries, ok := strings.Cut(st.ID, "/"); ok {
			st.ID = rest
			fmt.Sscan(retries, &st.Config.MaxRetries)
		}
		if rest, action, ok := strings.Cut(st.ID, "@"); ok {
			st.ID, st.Config.Action = rest, action
		}
		if id, parents, ok := strings.Cut(st.ID, ":"); ok {
			st.ID, st.DependsOn = id, strings.Split(parents, ",")
		}
		def.Steps = append(def.Steps, st)
	}
	p, err := workflow.NewPlan(def)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// slots builds steps from slot strings.
func slots(t *testing.T, vs ...string) []Slot {
	t.Helper()
	out := make([]Slot, len(vs))
	for i, v := range vs {
		s, err := ParseSlot(v)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func run(t *testing.T, st status.RunStatus, vs ...string) State {
	t.Helper()
	return State{ID: "run_1", Status: st, Gen: 3, CreatedAt: t0.Add(-time.Hour), Steps: slots(t, vs...)}
}

func ms(d time.Duration) string { return t36(t0.Add(d)) }

func TestSlotRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []Slot{
		Pending0,
		{Status: status.StepPending, Attempt: 3, Due: t0.Add(time.Second), End: t0},
		{Status: status.StepRunning, Attempt: 10, Token: "abcd2345", Start: t0, End: t0.Add(time.Minute)},
		{Status: status.StepCompleted, Attempt: 1, Start: t0, End: t0.Add(time.Second)},
		{Status: status.StepFailed, Start: t0, End: t0},
	} {
		enc := s.Encode()
		got, err := ParseSlot(enc)
		if err != nil || got != s {
			t.Errorf("%+v -> %q -> %+v, %v", s, enc, got, err)
		}
		if len(enc) > 30 {
			t.Errorf("slot %q is longer than the 30 bytes the layout assumes", enc)
		}
	}
	for _, bad := range []string{"", "X1", "P", "Px", "P1:zz", "P1:1:2:3", "R0:tok:1", "R0::1:2", "C0:1", "F0:1:2:3", "C-1:1:2"} {
		if _, err := ParseSlot(bad); err == nil {
			t.Errorf("ParseSlot(%q) accepted", bad)
		}
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	tests := []struct{ n, items int }{{1, 1}, {10, 1}, {11, 2}, {26, 2}, {27, 3}, {100, 7}}
	for _, tt := range tests {
		if got := Items(tt.n); got != tt.items {
			t.Errorf("Items(%d) = %d, want %d", tt.n, got, tt.items)
		}
		// Every step is in exactly the item ItemSteps says.
		seen := 0
		for k := range Items(tt.n) {
			lo, hi := ItemSteps(k, tt.n)
			for i := lo; i < hi; i++ {
				if ItemOf(i) != k {
					t.Errorf("n=%d: step %d in item %d by ItemSteps, %d by ItemOf", tt.n, i, k, ItemOf(i))
				}
				seen++
			}
		}
		if seen != tt.n {
			t.Errorf("n=%d: items hold %d steps", tt.n, seen)
		}
	}
}

func TestReported(t *testing.T) {
	t.Parallel()
	live, expired := "R0:tok:"+ms(-time.Minute)+":"+ms(time.Minute), "R0:tok:"+ms(-time.Minute)+":"+ms(-time.Second)
	done := "C0:" + ms(-time.Minute) + ":" + ms(-time.Second)
	tests := []struct {
		name string
		r    State
		want status.RunStatus
		each []status.StepStatus
	}{
		{"new run is pending", run(t, status.RunRunning, "P0", "P0"), status.RunPending, []status.StepStatus{"pending", "pending"}},
		{"started run is running", run(t, status.RunRunning, live, "P0"), status.RunRunning, []status.StepStatus{"running", "pending"}},
		{"a failed attempt is progress", run(t, status.RunRunning, "P1:"+ms(time.Second)+":"+ms(-time.Hour), "P0"), status.RunRunning, []status.StepStatus{"pending", "pending"}},
		{"failed run skips what never ran", run(t, status.RunFailed, done, "F0:1:2", "P0", live, expired), status.RunFailed,
			[]status.StepStatus{"completed", "failed", "skipped", "running", "skipped"}},
		{"cancelled run", run(t, status.RunCancelled, done, "P0", expired), status.RunCancelled, []status.StepStatus{"completed", "cancelled", "cancelled"}},
	}
	for _, tt := range tests {
		if got := tt.r.Reported(); got != tt.want {
			t.Errorf("%s: Reported = %s, want %s", tt.name, got, tt.want)
		}
		for i, want := range tt.each {
			if got := tt.r.StepReported(i, t0); got != want {
				t.Errorf("%s: step %d = %s, want %s", tt.name, i, got, want)
			}
		}
	}
	retried := run(t, status.RunRunning, "P0")
	retried.Retries = 1
	if retried.Reported() != status.RunRunning {
		t.Error("a retried run waiting for its first step is reported pending")
	}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	diamond := plan(t, "a", "b:a", "c:a", "d:b,c")
	done := "C0:" + ms(-time.Minute) + ":" + ms(-time.Second)
	live, expired := "R0:tok:"+ms(-time.Minute)+":"+ms(time.Minute), "R0:tok:"+ms(-time.Minute)+":"+ms(-time.Second)
	tests := []struct {
		name  string
		r     State
		msgs  []Message
		claim []int
		wait  map[int]time.Duration
	}{
		{"root of a new run", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{0, 0}}, []int{0}, nil},
		{"duplicates claim once", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{0, 0}, {0, 0}}, []int{0}, nil},
		{"a step not ready is left to its last parent", run(t, status.RunRunning, done, "P0", live, "P0"), []Message{{3, 0}}, nil, nil},
		{"a completed step's message claims its ready dependents", run(t, status.RunRunning, done, "P0", "P0", "P0"), []Message{{0, 0}}, []int{1, 2}, nil},
		{"a completed step's dependents that already run are left alone", run(t, status.RunRunning, done, live, "P0", "P0"), []Message{{0, 0}}, []int{2}, nil},
		{"live lease: come back when it ends", run(t, status.RunRunning, live, "P0", "P0", "P0"), []Message{{0, 0}}, nil, map[int]time.Duration{0: time.Minute}},
		{"expired lease is taken over", run(t, status.RunRunning, expired, "P0", "P0", "P0"), []Message{{0, 0}}, []int{0}, nil},
		{"retry before its due time waits", run(t, status.RunRunning, "P1:"+ms(5*time.Second)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{0, 1}}, nil, map[int]time.Duration{0: 5 * time.Second}},
		{"retry at its due time", run(t, status.RunRunning, "P1:"+ms(0)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{0, 1}}, []int{0}, nil},
		{"an earlier attempt's message serves the due retry (its own send was lost)", run(t, status.RunRunning, "P2:"+ms(0)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{0, 1}}, []int{0}, nil},
		{"an earlier attempt's message waits for the retry's due time", run(t, status.RunRunning, "P1:"+ms(5*time.Second)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{0, 0}}, nil, map[int]time.Duration{0: 5 * time.Second}},
		{"ended run: nothing starts", run(t, status.RunCancelled, "P0", "P0", "P0", "P0"), []Message{{0, 0}}, nil, nil},
		{"failed step: dropped", run(t, status.RunRunning, "F0:1:2", "P0", "P0", "P0"), []Message{{0, 0}}, nil, nil},
		{"unknown step: dropped", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{7, 0}}, nil, nil},
	}
	for _, tt := range tests {
		d := Deliver(tt.r, diamond, tt.msgs, t0)
		if !slices.Equal(d.Claim, tt.claim) {
			t.Errorf("%s: claim %v, want %v", tt.name, d.Claim, tt.claim)
		}
		if len(d.Wait) != len(tt.wait) {
			t.Errorf("%s: wait %v, want %v", tt.name, d.Wait, tt.wait)
		}
		for mi, dur := range tt.wait {
			if !d.Wait[mi].Equal(t0.Add(dur)) {
				t.Errorf("%s: message %d waits until %v, want %v", tt.name, mi, d.Wait[mi], t0.Add(dur))
			}
		}
	}
}

func TestClaimLease(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a")
	p[0].Config.DurationSeconds = 2.5
	r := run(t, status.RunRunning, "P0", "P0")
	c, leases := NewClaim(r, p, []int{0}, "tok12345", t0.Add(123456*time.Microsecond), 30*time.Second)
	if c.Gen != 3 || len(c.Swaps) != 1 || c.Swaps[0].Old != Pending0 {
		t.Fatalf("claim = %+v", c)
	}
	held := leases[0].Held
	want := Slot{Status: status.StepRunning, Token: "tok12345", Start: t0.Add(123 * time.Millisecond), End: t0.Add(123*time.Millisecond + 32500*time.Millisecond)}
	if held != want || c.Swaps[0].New != held {
		t.Fatalf("lease %+v, want %+v", held, want)
	}
	// Steps claimed together are committed together: a short one's lease
	// lasts as long as the longest sibling's.
	p2 := plan(t, "short", "long")
	p2[0].Config.DurationSeconds, p2[1].Config.DurationSeconds = 0.1, 60
	_, leases = NewClaim(run(t, status.RunRunning, "P0", "P0"), p2, []int{0, 1}, "tok", t0, 30*time.Second)
	for _, l := range leases {
		if l.Held.End != t0.Add(90*time.Second) {
			t.Errorf("step %d's lease ends at %v, want the long sibling's %v", l.Step, l.Held.End, t0.Add(90*time.Second))
		}
	}
	// A completed step is never claimed: the transition table forbids it.
	defer func() {
		if recover() == nil {
			t.Error("claiming a completed step did not panic")
		}
	}()
	NewClaim(run(t, status.RunRunning, "C0:1:2", "P0"), p, []int{0}, "tok", t0, 0)
}

var policy = retry.Policy{Base: time.Second, Cap: time.Minute, Rand: func() float64 { return 0.5 }}

func TestBuildCommit(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	held := func(i int) Slot {
		return Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	}
	ok := func(i int, h Slot) Outcome { return Outcome{Step: i, Held: h, Start: t0, End: t0.Add(time.Second)} }
	bad := func(i int, h Slot) Outcome { o := ok(i, h); o.Err = boom; return o }
	order := plan(t, "v@validate_order", "c:v@charge_payment/2", "s:c@ship_order", "n:s@send_notification")
	heldSlot := held(0).Encode()

	t.Run("a chain run in one invocation completes the run and moves the order", func(t *testing.T) {
		r := run(t, status.RunRunning, heldSlot, "P0", "P0", "P0")
		r.OrderID = "ord_1"
		c := BuildCommit(r, order, status.OrderPending, []Outcome{ok(3, Pending0), ok(0, held(0)), ok(1, Pending0), ok(2, Pending0)}, policy, t0)
		if c.End != status.RunCompleted || len(c.Done) != 4 || len(c.Dropped) != 0 {
			t.Fatalf("commit = %+v", c)
		}
		if c.Order == nil || c.Order.From != status.OrderPending || c.Order.To != status.OrderShipped {
			t.Fatalf("order change = %+v", c.Order)
		}
		var events []string
		for _, d := range c.Done {
			events = append(events, d.History.Event)
		}
		if got := strings.Join(events, ","); got != "validate_order,charge_payment,ship_order,send_notification" {
			t.Fatalf("history in commit order: %s", got)
		}
	})
	t.Run("a precondition failure fails the attempt and drops what depends on it", func(t *testing.T) {
		r := run(t, status.RunRunning, "C0:1:2", heldSlot, "P0", "P0")
		r.OrderID = "ord_1"
		c := BuildCommit(r, order, status.OrderPending, []Outcome{ok(1, held(1)), ok(2, Pending0)}, policy, t0)
		if len(c.Done) != 0 || c.Order != nil || !slices.Equal(c.Dropped, []int{2}) {
			t.Fatalf("commit = %+v", c)
		}
		if len(c.Failures) != 1 || !strings.Contains(c.Failures[0].Error, "needs an order in status validated") {
			t.Fatalf("failures = %+v", c.Failures)
		}
		// charge has 2 retries: back to pending, due after the backoff.
		if s := c.Swaps[0].New; s.Status != status.StepPending || s.Attempt != 1 || !s.Due.Equal(t0) || len(c.Retries) != 1 {
			t.Fatalf("swap %+v, retries %+v", s, c.Retries)
		}
	})
	t.Run("the last failure fails the step and the run in the same commit", func(t *testing.T) {
		p := plan(t, "a", "b", "c:a")
		r := run(t, status.RunRunning, heldSlot, heldSlot, "P0")
		c := BuildCommit(r, p, "", []Outcome{bad(0, held(0)), ok(1, held(1))}, policy, t0)
		if c.End != status.RunFailed || c.Swaps[0].New.Status != status.StepFailed || c.Swaps[1].New.Status != status.StepCompleted {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("storage refusal is final", func(t *testing.T) {
		p := plan(t, "a/5")
		r := run(t, status.RunRunning, heldSlot)
		o := ok(0, held(0))
		o.Err = fmt.Errorf("commit: %w", ErrStorage)
		if c := BuildCommit(r, p, "", []Outcome{o}, policy, t0); c.End != status.RunFailed {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("a lost lease is dropped with everything after it", func(t *testing.T) {
		p := plan(t, "a", "b:a")
		other := Slot{Status: status.StepRunning, Token: "other", Start: t0, End: t0.Add(time.Minute)}
		r := run(t, status.RunRunning, other.Encode(), "P0")
		c := BuildCommit(r, p, "", []Outcome{ok(0, held(0)), ok(1, Pending0)}, policy, t0)
		if len(c.Swaps) != 0 || !slices.Equal(c.Dropped, []int{0, 1}) || c.End != "" {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("an attempt finishing after its run ended commits but ends nothing", func(t *testing.T) {
		p := plan(t, "a")
		r := run(t, status.RunCancelled, heldSlot)
		if c := BuildCommit(r, p, "", []Outcome{ok(0, held(0))}, policy, t0); len(c.Done) != 1 || c.End != "" {
			t.Fatalf("commit = %+v", c)
		}
	})
}

// committed applies a commit to r, as a runner does once it landed.
func committed(r State, c Commit) State {
	out := r.Apply(c.Swaps)
	if c.End != "" {
		out.Status = c.End
	}
	return out
}

func TestFollowUp(t *testing.T) {
	t.Parallel()
	diamond := plan(t, "a", "b:a", "c:a", "d:b,c")
	h := Slot{Status: status.StepRunning, Token: "tok", Start: t0, End: t0.Add(time.Minute)}
	hs := h.Encode()
	ok := func(i int) Outcome { return Outcome{Step: i, Held: h, Start: t0, End: t0} }
	// b commits while c still runs elsewhere: d waits for c, which may have
	// finished meanwhile, so the runner reads again.
	r := run(t, status.RunRunning, "C0:1:2", hs, hs, "P0")
	c := BuildCommit(r, diamond, "", []Outcome{ok(1)}, policy, t0)
	if ready, reread := FollowUp(committed(r, c), diamond, c.Committed(), t0); len(ready) != 0 || !reread {
		t.Fatalf("after b: %v, %v", ready, reread)
	}
	// The fresh read shows c completed: d is ready.
	fresh := run(t, status.RunRunning, "C0:1:2", "C0:1:2", "C0:1:2", "P0")
	if ready, complete := Next(fresh, diamond, []int{1}, t0); !slices.Equal(ready, []int{3}) || complete {
		t.Fatalf("next = %v, %v", ready, complete)
	}
	// a commits alone: b and c are ready, nothing to re-read.
	r = run(t, status.RunRunning, hs, "P0", "P0", "P0")
	c = BuildCommit(r, diamond, "", []Outcome{ok(0)}, policy, t0)
	if ready, reread := FollowUp(committed(r, c), diamond, c.Committed(), t0); !slices.Equal(ready, []int{1, 2}) || reread {
		t.Fatalf("after a: %v, %v", ready, reread)
	}
	// A parallel sink commits while the other runs elsewhere.
	par := plan(t, "x", "y")
	r = run(t, status.RunRunning, hs, hs)
	c = BuildCommit(r, par, "", []Outcome{ok(0)}, policy, t0)
	if _, reread := FollowUp(committed(r, c), par, c.Committed(), t0); !reread {
		t.Fatal("a sink's commit with other steps unfinished does not re-read")
	}
	if _, complete := Next(run(t, status.RunRunning, "C0:1:2", "C0:1:2"), par, []int{0}, t0); !complete {
		t.Fatal("Next did not see the run complete")
	}
	// The last step's commit completes the run itself: nothing follows.
	r = run(t, status.RunRunning, "C0:1:2", hs)
	c = BuildCommit(r, par, "", []Outcome{ok(1)}, policy, t0)
	if ready, reread := FollowUp(committed(r, c), par, c.Committed(), t0); c.End != status.RunCompleted || reread || ready != nil {
		t.Fatalf("last commit: end %q, %v, %v", c.End, ready, reread)
	}
}

func TestSweep(t *testing.T) {
	t.Parallel()
	chain := plan(t, "a", "b:a")
	grace := time.Minute
	done := "C0:" + ms(-2*time.Hour) + ":" + ms(-2*time.Hour)
	recent := "C0:" + ms(-time.Hour) + ":" + ms(-30*time.Second)
	tests := []struct {
		name    string
		r       State
		end     status.RunStatus
		enqueue []Message
	}{
		{"all completed: ended", run(t, status.RunRunning, done, done), status.RunCompleted, nil},
		{"expired lease: re-sent", run(t, status.RunRunning, "R2:tok:"+ms(-time.Hour)+":"+ms(-time.Second), "P0"), "", []Message{{0, 2}}},
		{"live lease: left alone", run(t, status.RunRunning, "R0:tok:"+ms(-time.Hour)+":"+ms(time.Second), "P0"), "", nil},
		{"ready past grace: re-sent", run(t, status.RunRunning, done, "P0"), "", []Message{{1, 0}}},
		{"ready within grace: left alone", run(t, status.RunRunning, recent, "P0"), "", nil},
		{"a retry due within grace: left alone", run(t, status.RunRunning, done, "P1:"+ms(-30*time.Second)+":"+ms(-time.Hour)), "", nil},
		{"a retry long past due: re-sent", run(t, status.RunRunning, done, "P1:"+ms(-2*time.Minute)+":"+ms(-time.Hour)), "", []Message{{1, 1}}},
		{"never started, past grace: roots re-sent", run(t, status.RunRunning, "P0", "P0"), "", []Message{{0, 0}}},
		{"no step can progress: failed", run(t, status.RunRunning, "F0:1:2", "P0"), status.RunFailed, nil},
		{"ended runs are not swept", run(t, status.RunFailed, "F0:1:2", "P0"), "", nil},
	}
	for _, tt := range tests {
		d := Sweep(tt.r, chain, t0, grace)
		var end status.RunStatus
		if d.End != nil {
			end = d.End.To
			if d.End.Gen != tt.r.Gen {
				t.Errorf("%s: end conditioned on gen %d, read %d", tt.name, d.End.Gen, tt.r.Gen)
			}
		}
		if end != tt.end || !slices.Equal(d.Enqueue, tt.enqueue) {
			t.Errorf("%s: end %q enqueue %v, want %q %v", tt.name, end, d.Enqueue, tt.end, tt.enqueue)
		}
	}
}

func TestCancelAndRetry(t *testing.T) {
	t.Parallel()
	live := "R0:tok:" + ms(-time.Minute) + ":" + ms(time.Minute)
	expired := "R0:tok:" + ms(-time.Minute) + ":" + ms(-time.Second)
	if _, err := Cancel(run(t, status.RunCompleted, "C0:1:2"), t0); !errors.Is(err, ErrNotLive) {
		t.Fatalf("cancel of a completed run: %v", err)
	}
	e, err := Cancel(run(t, status.RunRunning, "P0"), t0)
	if err != nil || e.To != status.RunCancelled || e.Gen != 3 {
		t.Fatalf("cancel = %+v, %v", e, err)
	}
	if _, err := Retry(run(t, status.RunRunning, "P0"), t0); !errors.Is(err, ErrNotRetryable) {
		t.Fatalf("retry of a running run: %v", err)
	}
	r := run(t, status.RunFailed, "C0:1:2", "F2:1:2", "P1:"+ms(time.Second)+":"+ms(-time.Hour), live, expired, "P0")
	rs, err := Retry(r, t0)
	if err != nil {
		t.Fatal(err)
	}
	var reset []int
	for _, s := range rs.Swaps {
		reset = append(reset, s.Step)
		if s.New != Pending0 {
			t.Errorf("step %d reset to %+v", s.Step, s.New)
		}
	}
	// Completed and still-leased steps keep their state; P0 needs no write.
	if !slices.Equal(reset, []int{1, 2, 4}) || rs.Gen != 3 || rs.From != status.RunFailed {
		t.Fatalf("reset %v, %+v", reset, rs)
	}
	after := rs.Applied(r)
	if after.Gen != 4 || !after.Live() || after.Retries != 1 {
		t.Fatalf("after retry: %+v", after)
	}
	p := plan(t, "a", "b", "c", "d", "e", "f:a")
	if roots := Roots(after, p, t0); !slices.Equal(roots, []int{1, 2, 4, 5}) {
		t.Fatalf("roots after retry: %v", roots)
	}
}
