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
		{Status: status.StepRunning, Attempt: 2, Token: "abcd2345", Start: t0, End: t0.Add(time.Minute), Inline: true},
		{Status: status.StepCompleted, Attempt: 1, Start: t0, End: t0.Add(time.Second)},
		{Status: status.StepFailed, Start: t0, End: t0},
		{Status: status.StepWaiting, Attempt: 1, Start: t0, End: t0.Add(365 * 24 * time.Hour)},
		{Status: status.StepWaiting, Start: t0}, // an approval with no timeout
	} {
		enc := s.Encode()
		got, err := ParseSlot(enc)
		if err != nil || got != s {
			t.Errorf("%+v -> %q -> %+v, %v", s, enc, got, err)
		}
		if len(enc) > 33 {
			t.Errorf("slot %q is longer than the 33 bytes the layout assumes", enc)
		}
	}
	for _, bad := range []string{"", "X1", "P", "Px", "P1:zz", "P1:1:2:3", "R0:tok:1", "R0::1:2", "R0:tok:1:2:x", "C0:1", "F0:1:2:3", "C-1:1:2", "W0:1", "W0:-:1", "W0:1:2:3"} {
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
	two := plan(t, "a", "b")
	five := plan(t, "a", "b", "c", "d", "e")
	three := plan(t, "a", "b", "c")
	tests := []struct {
		name string
		p    workflow.Plan
		r    State
		want status.RunStatus
		each []status.StepStatus
	}{
		{"new run is pending", two, run(t, status.RunRunning, "P0", "P0"), status.RunPending, []status.StepStatus{"pending", "pending"}},
		{"started run is running", two, run(t, status.RunRunning, live, "P0"), status.RunRunning, []status.StepStatus{"running", "pending"}},
		{"a failed attempt is progress", two, run(t, status.RunRunning, "P1:"+ms(time.Second)+":"+ms(-time.Hour), "P0"), status.RunRunning, []status.StepStatus{"pending", "pending"}},
		{"failed run skips what never ran", five, run(t, status.RunFailed, done, "F0:1:2", "P0", live, expired), status.RunFailed,
			[]status.StepStatus{"completed", "failed", "skipped", "running", "skipped"}},
		{"cancelled run", three, run(t, status.RunCancelled, done, "P0", expired), status.RunCancelled, []status.StepStatus{"completed", "cancelled", "cancelled"}},
		// A child of an attempt still running may have been started right
		// after it, on a read made before the cancel: pending until then.
		{"cancelled with a parent still running", plan(t, "a", "b:a", "c"), run(t, status.RunCancelled, live, "P0", "P0"), status.RunCancelled,
			[]status.StepStatus{"running", "pending", "cancelled"}},
		{"cancelled with a parent's lease expired", plan(t, "a", "b:a"), run(t, status.RunCancelled, expired, "P0"), status.RunCancelled,
			[]status.StepStatus{"cancelled", "cancelled"}},
	}
	for _, tt := range tests {
		if got := tt.r.Reported(); got != tt.want {
			t.Errorf("%s: Reported = %s, want %s", tt.name, got, tt.want)
		}
		for i, want := range tt.each {
			if got := tt.r.StepReported(tt.p, i, t0); got != want {
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

func TestItemsFor(t *testing.T) {
	t.Parallel()
	var specs []string
	for i := range 30 {
		if i == 0 {
			specs = append(specs, "s0")
		} else {
			specs = append(specs, fmt.Sprintf("s%d:s%d", i, i-1))
		}
	}
	chain := plan(t, specs...)
	tests := []struct {
		steps []int
		items []int
	}{
		{[]int{3}, []int{0}},     // its parent and dependent share the header
		{[]int{9}, []int{0, 1}},  // its dependent is the first of chunk 1
		{[]int{10}, []int{0, 1}}, // its parent is the last of the header
		{[]int{15}, []int{1}},    // all in chunk 1
		{[]int{26}, []int{1, 2}}, // chunk 2 holds it; its parent is in chunk 1
		{[]int{29}, []int{2}},
		{[]int{15, 28}, []int{1, 2}},
		{[]int{99}, nil}, // not a step
	}
	for _, tt := range tests {
		if got := ItemsFor(chain, tt.steps); !slices.Equal(got, tt.items) {
			t.Errorf("ItemsFor(%v) = %v, want %v", tt.steps, got, tt.items)
		}
	}
}

// TestReadiness is the one rule for "ready to start".
func TestReadiness(t *testing.T) {
	t.Parallel()
	p := plan(t, "a", "b:a", "c:a,b")
	done := "C0:1:2"
	tests := []struct {
		name  string
		r     State
		step  int
		known []bool
		want  Readiness
	}{
		{"a root is ready", run(t, status.RunRunning, "P0", "P0", "P0"), 0, nil, ReadyNow},
		{"a parent pending", run(t, status.RunRunning, "P0", "P0", "P0"), 1, nil, NotReady},
		{"every parent completed", run(t, status.RunRunning, done, done, "P0"), 2, nil, ReadyNow},
		{"one of two parents completed", run(t, status.RunRunning, done, "R0:t:1:2", "P0"), 2, nil, NotReady},
		{"a retry not due", run(t, status.RunRunning, "P1:"+ms(time.Second)+":"+ms(0), "P0", "P0"), 0, nil, ReadyLater},
		{"a retry due", run(t, status.RunRunning, "P1:"+ms(0)+":"+ms(-time.Second), "P0", "P0"), 0, nil, ReadyNow},
		{"running is not ready", run(t, status.RunRunning, "R0:t:1:2", "P0", "P0"), 0, nil, NotReady},
		{"its slot unread", run(t, status.RunRunning, "P0", "P0", "P0"), 1, []bool{true, false, true}, Unread},
		{"a parent unread", run(t, status.RunRunning, "P0", done, "P0"), 2, []bool{false, true, true}, Unread},
		{"a parent known pending decides, unread ones aside", run(t, status.RunRunning, "P0", "P0", "P0"), 2, []bool{false, true, true}, NotReady},
	}
	for _, tt := range tests {
		tt.r.Known = tt.known
		if got := tt.r.Readiness(p, tt.step, t0); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if !RetriesLeft(plan(t, "a/2"), 0, 1) || RetriesLeft(plan(t, "a/2"), 0, 2) {
		t.Error("RetriesLeft: 2 retries allow attempts 0, 1 and 2")
	}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	diamond := plan(t, "a", "b:a", "c:a", "d:b,c")
	done := "C0:" + ms(-time.Minute) + ":" + ms(-time.Second)
	live, expired := "R0:tok:"+ms(-time.Minute)+":"+ms(time.Minute), "R0:tok:"+ms(-time.Minute)+":"+ms(-time.Second)
	inlineLive, inlineExpired := live+":i", expired+":i"
	tests := []struct {
		name  string
		r     State
		msgs  []Message
		claim []int
		wait  map[int]time.Duration
	}{
		{"root of a new run", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, []int{0}, nil},
		{"duplicates claim once", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}, {Step: 0, Attempt: 0}}, []int{0}, nil},
		{"a step not ready is left to its last parent", run(t, status.RunRunning, done, "P0", live, "P0"), []Message{{Step: 3, Attempt: 0}}, nil, nil},
		{"a completed step's message claims its ready dependents", run(t, status.RunRunning, done, "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, []int{1, 2}, nil},
		{"dependents with messages of their own are left alone", run(t, status.RunRunning, done, live, "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, []int{2}, nil},
		{"the walk goes down through completed steps", run(t, status.RunRunning, done, done, done, "P0"), []Message{{Step: 0, Attempt: 0}}, []int{3}, nil},
		{"a step claimed in its parent's commit is watched", run(t, status.RunRunning, done, inlineLive, "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, []int{2}, map[int]time.Duration{0: time.Minute}},
		{"and taken over once its lease expired", run(t, status.RunRunning, done, inlineExpired, done, "P0"), []Message{{Step: 0, Attempt: 0}}, []int{1}, nil},
		{"a retry of a step run inline: wait for it (its message may be lost)", run(t, status.RunRunning, done, "P1:"+ms(5*time.Second)+":"+ms(-time.Hour), done, "P0"), []Message{{Step: 0, Attempt: 0}}, nil, map[int]time.Duration{0: 5 * time.Second}},
		{"live lease: come back when it ends", run(t, status.RunRunning, live, "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, nil, map[int]time.Duration{0: time.Minute}},
		{"expired lease is taken over", run(t, status.RunRunning, expired, "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, []int{0}, nil},
		{"retry before its due time waits", run(t, status.RunRunning, "P1:"+ms(5*time.Second)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 1}}, nil, map[int]time.Duration{0: 5 * time.Second}},
		{"retry at its due time", run(t, status.RunRunning, "P1:"+ms(0)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 1}}, []int{0}, nil},
		{"an earlier attempt's message serves the due retry (its own send was lost)", run(t, status.RunRunning, "P2:"+ms(0)+":"+ms(-time.Hour), "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 1}}, []int{0}, nil},
		{"ended run: nothing starts", run(t, status.RunCancelled, "P0", "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, nil, nil},
		{"failed step: dropped", run(t, status.RunRunning, "F0:1:2", "P0", "P0", "P0"), []Message{{Step: 0, Attempt: 0}}, nil, nil},
		{"unknown step: dropped", run(t, status.RunRunning, "P0", "P0", "P0", "P0"), []Message{{Step: 7, Attempt: 0}}, nil, nil},
	}
	for _, tt := range tests {
		d := Deliver(tt.r, diamond, tt.msgs, t0)
		if !slices.Equal(d.Claim, tt.claim) || len(d.Need) != 0 {
			t.Errorf("%s: claim %v need %v, want %v", tt.name, d.Claim, d.Need, tt.claim)
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

// TestDeliverReadsOnlyWhatItNeeds: a runner reads the items of a message's
// step, its parents and its dependents; the walk down asks for more only
// when it reaches a slot it did not read.
func TestDeliverReadsOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	var specs []string
	for i := range 30 {
		if i == 0 {
			specs = append(specs, "s0")
		} else {
			specs = append(specs, fmt.Sprintf("s%d:s%d", i, i-1))
		}
	}
	chain := plan(t, specs...)
	vs := make([]string, 30)
	for i := range vs {
		vs[i] = "P0"
	}
	for i := range 12 {
		vs[i] = "C0:1:2"
	}
	r := run(t, status.RunRunning, vs...)
	known := make([]bool, 30)
	for i := HeaderSlots; i < HeaderSlots+ChunkSlots; i++ {
		known[i] = true // chunk 1 only
	}
	r.Known = known
	if d := Deliver(r, chain, []Message{{Step: 12, Attempt: 0}}, t0); !slices.Equal(d.Claim, []int{12}) {
		t.Fatalf("step 12 from chunk 1 alone: %+v", d)
	}
	// A redelivered message of step 9 (in the header) needs the header.
	if d := Deliver(r, chain, []Message{{Step: 9, Attempt: 0}}, t0); !slices.Equal(d.Need, []int{0}) || d.Claim != nil {
		t.Fatalf("step 9: %+v", d)
	}
	// Step 11's message walks to 12 and claims it.
	if d := Deliver(r, chain, []Message{{Step: 11, Attempt: 0}}, t0); !slices.Equal(d.Claim, []int{12}) {
		t.Fatalf("step 11: %+v", d)
	}
}

func TestClaimLease(t *testing.T) {
	t.Parallel()
	p := plan(t, "short", "long")
	p[0].Config.DurationSeconds, p[1].Config.DurationSeconds = 2.5, 60
	r := run(t, status.RunRunning, "P0", "P0")
	terms := LeaseTerms{Token: "tok12345", Margin: 30 * time.Second}
	c, leases := NewClaim(r, p, []int{0, 1}, terms, t0.Add(123456*time.Microsecond))
	if c.Gen != 3 || len(c.Swaps) != 2 || c.Swaps[0].Old != Pending0 {
		t.Fatalf("claim = %+v", c)
	}
	start := t0.Add(123 * time.Millisecond)
	// Each step commits when it ends: its lease is its own duration plus
	// the margin, whatever its siblings take.
	for n, want := range []time.Time{start.Add(32500 * time.Millisecond), start.Add(90 * time.Second)} {
		held := leases[n].Held
		if held.Status != status.StepRunning || held.Token != "tok12345" || !held.Start.Equal(start) || !held.End.Equal(want) || held.Inline {
			t.Errorf("lease of step %d: %+v, want until %v", n, held, want)
		}
		if c.Swaps[n].New != held {
			t.Errorf("step %d: the claim writes %+v, the lease holds %+v", n, c.Swaps[n].New, held)
		}
	}
	back := Release(c, c.Gen)
	if back[0].Old != leases[0].Held || back[0].New != Pending0 {
		t.Errorf("release = %+v", back)
	}
	// Released into a run a retry moved on: pending with no attempts, as
	// the retry would have left it, whatever the claim took it from.
	retried := run(t, status.RunRunning, "P1:"+ms(0)+":"+ms(-time.Second), "P0")
	c, _ = NewClaim(retried, p, []int{0}, terms, t0)
	if back := Release(c, c.Gen+1); back[0].New != Pending0 {
		t.Errorf("release into the next generation: %+v", back[0].New)
	}
	if back := Release(c, c.Gen); back[0].New != retried.Steps[0] {
		t.Errorf("release in the same generation: %+v", back[0].New)
	}
	// A completed step is never claimed: the transition table forbids it.
	defer func() {
		if recover() == nil {
			t.Error("claiming a completed step did not panic")
		}
	}()
	NewClaim(run(t, status.RunRunning, "C0:1:2", "P0"), p, []int{0}, terms, t0)
}

var policy = retry.Policy{Base: time.Second, Cap: time.Minute, Rand: func() float64 { return 0.5 }}

func TestBuildCommit(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	held := func(int) Slot {
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
	t.Run("a permanent error fails at once, retries left or not", func(t *testing.T) {
		p := plan(t, "a/5")
		r := run(t, status.RunRunning, heldSlot)
		for _, err := range []error{fmt.Errorf("commit: %w", ErrStorage), fmt.Errorf("HTTP 404: %w", ErrPermanent)} {
			o := ok(0, held(0))
			o.Err = err
			if c := BuildCommit(r, p, "", []Outcome{o}, policy, t0); c.End != status.RunFailed || len(c.Retries) != 0 {
				t.Fatalf("%v: commit = %+v", err, c)
			}
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
	t.Run("an attempt finishing after its run ended commits in its generation only", func(t *testing.T) {
		p := plan(t, "a")
		r := run(t, status.RunCancelled, heldSlot)
		if c := BuildCommit(r, p, "", []Outcome{ok(0, held(0))}, policy, t0); len(c.Done) != 1 || c.End != "" || !c.SameGen {
			t.Fatalf("commit = %+v", c)
		}
	})
	t.Run("a slot not read is never committed", func(t *testing.T) {
		p := plan(t, "a", "b:a")
		r := run(t, status.RunRunning, heldSlot, "P0")
		r.Known = []bool{false, true}
		if c := BuildCommit(r, p, "", []Outcome{ok(0, held(0))}, policy, t0); len(c.Swaps) != 0 {
			t.Fatalf("commit = %+v", c)
		}
	})
}

// TestBuildCommitsClaimInlineSteps: a step running in the same invocation
// as its parent (held by its pending slot) is claimed by the commit that
// completes its last parent, and a commit split in several transactions
// never leaves such a step ready in storage between them (section 3 of
// issue 16: a duplicate message ran those steps again).
func TestBuildCommitsClaimInlineSteps(t *testing.T) {
	t.Parallel()
	terms := LeaseTerms{Token: "mine", Margin: 30 * time.Second}
	ok := func(i int, h Slot) Outcome { return Outcome{Step: i, Held: h, Start: t0, End: t0} }
	t.Run("a running dependent is claimed with its parent's commit", func(t *testing.T) {
		p := plan(t, "a", "b:a", "c:b")
		h := Slot{Status: status.StepRunning, Token: "mine", Start: t0, End: t0.Add(time.Minute)}
		r := run(t, status.RunRunning, h.Encode(), "P0", "P0")
		cs := BuildCommits(CommitInput{Run: r, Plan: p, Outcomes: []Outcome{ok(0, h)}, Running: []Lease{{Step: 1, Held: Pending0}},
			Policy: policy, Terms: terms, Now: t0, MaxSteps: 40})
		if len(cs) != 1 {
			t.Fatalf("%d commits", len(cs))
		}
		claims := cs[0].Claimed()
		if len(claims) != 1 || claims[0].Step != 1 || !claims[0].Held.Inline || claims[0].Held.Token != "mine" {
			t.Fatalf("claims = %+v", claims)
		}
		if cs[0].End != "" {
			t.Fatalf("the run ended with b running: %+v", cs[0])
		}
	})
	t.Run("splits keep every step run here out of others' reach", func(t *testing.T) {
		specs := []string{"root"}
		for i := range 60 {
			specs = append(specs, fmt.Sprintf("c%02d:root", i))
		}
		for i := range 10 {
			specs = append(specs, fmt.Sprintf("g%02d:c%02d", i, 50+i))
		}
		p := plan(t, specs...)
		vs := make([]string, len(p))
		h := Slot{Status: status.StepRunning, Token: "mine", Start: t0, End: t0.Add(time.Minute)}
		vs[0] = h.Encode()
		for i := 1; i < len(vs); i++ {
			vs[i] = "P0"
		}
		r := run(t, status.RunRunning, vs...)
		outs := []Outcome{ok(0, h)}
		for i := 1; i <= 60; i++ {
			outs = append(outs, ok(i, Pending0))
		}
		var running []Lease
		for i := 61; i < len(p); i++ {
			running = append(running, Lease{Step: i, Held: Pending0}) // the grandchildren still run
		}
		cs := BuildCommits(CommitInput{Run: r, Plan: p, Outcomes: outs, Running: running, Policy: policy, Terms: terms, Now: t0, MaxSteps: 40})
		if len(cs) != 2 {
			t.Fatalf("%d transactions, want 2", len(cs))
		}
		mine := map[int]bool{}
		for i := 1; i < len(p); i++ {
			mine[i] = true
		}
		state := r
		for n, c := range cs {
			state = state.Apply(c.Swaps)
			for i := range mine {
				if state.Steps[i].Status == status.StepPending && state.Readiness(p, i, t0) == ReadyNow {
					t.Errorf("after transaction %d, step %s ran here and is ready for anyone", n, p[i].ID)
				}
			}
		}
		for i := 1; i <= 60; i++ {
			if state.Steps[i].Status != status.StepCompleted {
				t.Errorf("step %s is %s after the commits", p[i].ID, state.Steps[i].Status)
			}
		}
		for i := 61; i < len(p); i++ {
			if s := state.Steps[i]; s.Status != status.StepRunning || !s.Inline {
				t.Errorf("grandchild %s is %+v after the commits", p[i].ID, s)
			}
		}
	})
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
		{"expired lease: re-sent", run(t, status.RunRunning, "R2:tok:"+ms(-time.Hour)+":"+ms(-time.Second), "P0"), "", []Message{{Step: 0, Attempt: 2}}},
		{"live lease: left alone", run(t, status.RunRunning, "R0:tok:"+ms(-time.Hour)+":"+ms(time.Second), "P0"), "", nil},
		{"ready past grace: re-sent", run(t, status.RunRunning, done, "P0"), "", []Message{{Step: 1, Attempt: 0}}},
		{"ready within grace: left alone", run(t, status.RunRunning, recent, "P0"), "", nil},
		{"a retry due within grace: left alone", run(t, status.RunRunning, done, "P1:"+ms(-30*time.Second)+":"+ms(-time.Hour)), "", nil},
		{"a retry not due yet: progress, left alone", run(t, status.RunRunning, done, "P1:"+ms(time.Hour)+":"+ms(-time.Hour)), "", nil},
		{"a retry long past due: re-sent", run(t, status.RunRunning, done, "P1:"+ms(-2*time.Minute)+":"+ms(-time.Hour)), "", []Message{{Step: 1, Attempt: 1}}},
		{"never started, past grace: roots re-sent", run(t, status.RunRunning, "P0", "P0"), "", []Message{{Step: 0, Attempt: 0}}},
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
	var reset, kept []int
	for _, s := range rs.Swaps {
		switch {
		case s.New == s.Old:
			kept = append(kept, s.Step)
		case s.New == Pending0:
			reset = append(reset, s.Step)
		default:
			t.Errorf("step %d reset to %+v", s.Step, s.New)
		}
	}
	// Failed, pending and expired steps start again; a still-leased step
	// and one that never started are kept, on the condition that they are
	// still as read (a late commit of either makes the retry read again);
	// a completed step is left alone.
	if !slices.Equal(reset, []int{1, 2, 4}) || !slices.Equal(kept, []int{3, 5}) || rs.Gen != 3 || rs.From != status.RunFailed {
		t.Fatalf("reset %v kept %v, %+v", reset, kept, rs)
	}
	after := rs.Applied(r)
	if after.Gen != 4 || !after.Live() || after.Retries != 1 {
		t.Fatalf("after retry: %+v", after)
	}
	p := plan(t, "a", "b", "c", "d", "e", "f:a")
	if roots := Roots(after, p, t0); !slices.Equal(roots, []int{1, 2, 4, 5}) {
		t.Fatalf("roots after retry: %v", roots)
	}
	partial := r
	partial.Known = []bool{true, false, true, true, true, true}
	if _, err := Retry(partial, t0); err == nil {
		t.Fatal("a retry decided on a partial read")
	}
}
