package sweeper_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"stepflow/internal/id"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

var (
	ids = id.NewGenerator(nil, nil)
	t0  = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
)

type bundle struct {
	t     *testing.T
	store *store.Store
	sqs   *sqs.Client
	url   string
	sw    *sweeper.Sweeper
	now   time.Time
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{t: t, sqs: testenv.SQS(t), now: t0}
	b.store = testenv.Store(t, store.WithClock(func() time.Time { return b.now }))
	b.url = testenv.Queue(t, b.sqs, queue.Settings{VisibilityTimeout: 30 * time.Second}).URL
	b.sw = &sweeper.Sweeper{Store: b.store, Queue: &queue.SQS{Client: b.sqs, URL: b.url}, Grace: time.Minute,
		Now: func() time.Time { return b.now }}
	return b
}

// run stores a workflow of the given steps ("id" or "id:parent,...") and
// a run of it created now (the bundle's clock).
func (b *bundle) run(steps ...string) (runstate.State, workflow.Plan) {
	b.t.Helper()
	def := workflow.Definition{Name: "w"}
	for _, s := range steps {
		st := workflow.Step{ID: s, Type: "task", DependsOn: []string{}, Config: workflow.Config{MaxRetries: 1}}
		if id, parents, ok := cut(s); ok {
			st.ID, st.DependsOn = id, parents
		}
		def.Steps = append(def.Steps, st)
	}
	w := wire.Workflow{ID: ids.New("wf"), Name: "w", Definition: def, CreatedAt: t0}
	ctx := context.Background()
	if err := b.store.CreateWorkflowIfAbsent(ctx, w); err != nil {
		b.t.Fatal(err)
	}
	p, err := workflow.NewPlan(def)
	if err != nil {
		b.t.Fatal(err)
	}
	r := runstate.New(ids.New("run"), w.ID, w.Name, "", p, b.now)
	if err := b.store.CreateRunIfAbsent(ctx, r, nil); err != nil {
		b.t.Fatal(err)
	}
	return r, p
}

func cut(s string) (string, []string, bool) {
	for i := range s {
		if s[i] == ':' {
			var parents []string
			start := i + 1
			for j := start; j <= len(s); j++ {
				if j == len(s) || s[j] == ',' {
					parents = append(parents, s[start:j])
					start = j + 1
				}
			}
			return s[:i], parents, true
		}
	}
	return s, nil, false
}

// commit claims and completes steps of r at at, as a runner would, and
// returns the run as it then is.
func (b *bundle) commit(r runstate.State, p workflow.Plan, at time.Time, steps ...int) runstate.State {
	b.t.Helper()
	ctx := context.Background()
	c, leases := runstate.NewClaim(r, p, steps, runstate.LeaseTerms{Token: "tok", Margin: time.Minute}, at)
	if err := b.store.ClaimIfLive(ctx, c); err != nil {
		b.t.Fatal(err)
	}
	var outs []runstate.Outcome
	for _, l := range leases {
		outs = append(outs, runstate.Outcome{Step: l.Step, Held: l.Held, Start: at, End: at})
	}
	done := runstate.BuildCommit(r.Apply(c.Swaps), p, "", outs, retry.Default(func() float64 { return 0 }), at)
	if err := b.store.CommitIfHeld(ctx, done, ids.New("cmt")); err != nil {
		b.t.Fatal(err)
	}
	after, _, err := b.store.ReadRun(ctx, r.ID, true)
	if err != nil {
		b.t.Fatal(err)
	}
	return after
}

// sent receives the messages the sweep sent, as "step/attempt".
func (b *bundle) sent() []string {
	b.t.Helper()
	out, err := b.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.url), MaxNumberOfMessages: 10})
	if err != nil {
		b.t.Fatal(err)
	}
	var got []string
	for _, m := range out.Messages {
		msg, err := queue.Decode(aws.ToString(m.Body))
		if err != nil {
			b.t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d/%d", msg.StepIndex, msg.Attempt))
	}
	slices.Sort(got)
	return got
}

func (b *bundle) sweep() sweeper.Report {
	b.t.Helper()
	rep, err := b.sw.Sweep(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return rep
}

// TestSweepEndsARunWhoseStepsAllCompleted: two runners committed the two
// sinks of a run at once, and both died before either read the run again
// to end it. One sweep ends it, and it leaves the active index.
func TestSweepEndsARunWhoseStepsAllCompleted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r, p := b.run("x", "y")
	c, _ := runstate.NewClaim(r, p, []int{0, 1}, runstate.LeaseTerms{Token: "tok", Margin: time.Minute}, t0)
	if err := b.store.ClaimIfLive(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// Each runner commits its own step on the state it read (both
	// running), so neither commit ends the run.
	held := r.Apply(c.Swaps)
	for _, i := range []int{0, 1} {
		out := runstate.Outcome{Step: i, Held: held.Steps[i], Start: t0, End: t0}
		done := runstate.BuildCommit(held, p, "", []runstate.Outcome{out}, retry.Default(func() float64 { return 0 }), t0)
		if done.End != "" {
			t.Fatalf("commit of step %d ends the run", i)
		}
		if err := b.store.CommitIfHeld(context.Background(), done, ids.New("cmt")); err != nil {
			t.Fatal(err)
		}
	}
	if rep := b.sweep(); rep.Runs != 1 || rep.Finished != 1 || rep.Requeued != 0 {
		t.Fatalf("sweep = %+v", rep)
	}
	d, _ := b.store.GetRun(context.Background(), r.ID)
	if d.Status != status.RunCompleted {
		t.Fatalf("run %s", d.Status)
	}
	if rep := b.sweep(); rep.Runs != 0 {
		t.Fatalf("second sweep saw %d live runs", rep.Runs)
	}
}

// TestSweepResendsWhatIsStalled: a running step whose lease expired and a
// ready step waiting past the grace period get messages; a step under a live
// lease, a step not ready, and a ready step within the grace period do not.
func TestSweepResendsWhatIsStalled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// a completed long ago; b ready since then (stalled); c not ready;
	// d claimed with a lease that expired; e claimed, lease live.
	r, p := b.run("a", "b:a", "c:b", "d", "e")
	r = b.commit(r, p, t0, 0)
	ctx := context.Background()
	claim := func(r runstate.State, at time.Time, step int) runstate.State {
		c, _ := runstate.NewClaim(r, p, []int{step}, runstate.LeaseTerms{Token: "tok", Margin: time.Minute}, at)
		if err := b.store.ClaimIfLive(ctx, c); err != nil {
			t.Fatal(err)
		}
		return r.Apply(c.Swaps)
	}
	r = claim(r, t0, 3)
	b.now = t0.Add(5 * time.Minute)
	claim(r, b.now, 4)
	if rep := b.sweep(); rep.Requeued != 2 || rep.Finished != 0 {
		t.Fatalf("sweep = %+v", rep)
	}
	if got := b.sent(); fmt.Sprint(got) != "[1/0 3/0]" {
		t.Fatalf("re-sent %v, want b's and d's messages", got)
	}
	// A fresh run within the grace period is left alone, and so are the
	// two steps just re-sent (their messages may still be queued).
	b.run("x")
	if rep := b.sweep(); rep.Requeued != 0 || rep.Deferred != 2 {
		t.Fatalf("the new run was swept within its grace period, or a message re-sent again at once: %+v", rep)
	}
}

// TestSweepStartsARunNeverStarted: the API stored a run and died before
// sending its first messages; after the grace period the sweeper sends
// them.
func TestSweepStartsARunNeverStarted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run("a", "b", "c:a,b")
	b.now = t0.Add(30 * time.Second)
	if rep := b.sweep(); rep.Requeued != 0 {
		t.Fatalf("swept within the grace period: %+v", rep)
	}
	b.now = t0.Add(2 * time.Minute)
	if rep := b.sweep(); rep.Requeued != 2 {
		t.Fatalf("sweep = %+v", rep)
	}
	if got := b.sent(); fmt.Sprint(got) != "[0/0 1/0]" {
		t.Fatalf("sent %v, want the two roots", got)
	}
}

// TestSweepFailsARunThatCannotProgress: a live run with a failed step (a
// state the engine never writes, since a step's failure fails its run in
// the same transaction) is failed rather than left running.
func TestSweepFailsARunThatCannotProgress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	def := workflow.Definition{Name: "w", Steps: []workflow.Step{
		{ID: "a", Type: "task", DependsOn: []string{}}, {ID: "b", Type: "task", DependsOn: []string{"a"}}}}
	w := wire.Workflow{ID: ids.New("wf"), Name: "w", Definition: def, CreatedAt: t0}
	ctx := context.Background()
	if err := b.store.CreateWorkflowIfAbsent(ctx, w); err != nil {
		t.Fatal(err)
	}
	p, _ := workflow.NewPlan(def)
	r := runstate.New(ids.New("run"), w.ID, w.Name, "", p, t0)
	r.Steps[0] = runstate.Slot{Status: status.StepFailed, Start: t0, End: t0}
	if err := b.store.CreateRunIfAbsent(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	if rep := b.sweep(); rep.Finished != 1 {
		t.Fatalf("sweep = %+v", rep)
	}
	d, _ := b.store.GetRun(ctx, r.ID)
	if d.Status != status.RunFailed || d.Steps[1].Status != status.StepSkipped {
		t.Fatalf("run %s, b %s", d.Status, d.Steps[1].Status)
	}
}

// TestSweepKeepsGoingPastABadRun: a run the sweeper cannot read does not
// stop the pass; its error comes back with the others swept.
func TestSweepKeepsGoingPastABadRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good, _ := b.run("a")
	broken := &failingReads{Store: b.store, bad: ids.New("run")}
	bad := runstate.New(broken.bad, good.WorkflowID, "w", "", workflow.Plan{{}}, t0)
	if err := b.store.CreateRunIfAbsent(context.Background(), bad, nil); err != nil {
		t.Fatal(err)
	}
	b.sw.Store = broken
	b.now = t0.Add(2 * time.Minute)
	rep, err := b.sw.Sweep(context.Background())
	if !errors.Is(err, errUnreadable) || rep.Runs != 2 || rep.Requeued != 1 {
		t.Fatalf("sweep = %+v, %v", rep, err)
	}
}

var errUnreadable = errors.New("unreadable")

// failingReads fails reads of one run (a store fault the emulator cannot
// produce on demand).
type failingReads struct {
	*store.Store
	bad string
}

func (f *failingReads) ReadRuns(ctx context.Context, ids []string) ([]store.RunRead, error) {
	reads, err := f.Store.ReadRuns(ctx, ids)
	for i := range reads {
		if reads[i].ID == f.bad {
			reads[i].Run, reads[i].Err = runstate.State{}, errUnreadable
		}
	}
	return reads, err
}

// TestSweepHoldsBackResendsOfAStepThatDidNotMove: under a queue backlog
// the message the sweeper sent is still queued at its next pass, so while
// the step stays as it was, re-sends wait Grace, then twice that, and so
// on; a step that moved (claimed, then its runner died) is re-sent at once.
func TestSweepHoldsBackResendsOfAStepThatDidNotMove(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r, p := b.run("a")
	for _, tt := range []struct {
		at             time.Duration
		sent, deferred int
	}{
		{30 * time.Second, 0, 0},  // within the grace period
		{2 * time.Minute, 1, 0},   // stalled: the first re-send
		{150 * time.Second, 0, 1}, // still queued, maybe: held back
		{3 * time.Minute, 1, 0},   // a wait (Grace) later
		{270 * time.Second, 0, 1}, // the next wait is twice as long
		{5 * time.Minute, 1, 0},
	} {
		b.now = t0.Add(tt.at)
		rep := b.sweep()
		if rep.Requeued != tt.sent || rep.Deferred != tt.deferred {
			t.Fatalf("at %v: sweep %+v, want %d sent and %d held back", tt.at, rep, tt.sent, tt.deferred)
		}
		if got := b.sent(); len(got) != tt.sent {
			t.Fatalf("at %v: %v in the queue", tt.at, got)
		}
	}
	// A runner takes the step and dies: its lease ends, and the step is
	// re-sent at once, though the last re-send for it was just now.
	c, _ := runstate.NewClaim(r, p, []int{0}, runstate.LeaseTerms{Token: "tok", Margin: 10 * time.Second}, b.now)
	if err := b.store.ClaimIfLive(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	b.now = b.now.Add(20 * time.Second)
	if rep := b.sweep(); rep.Requeued != 1 || rep.Deferred != 0 {
		t.Fatalf("after the lease ended: %+v", rep)
	}
	if got := b.sent(); fmt.Sprint(got) != "[0/0]" {
		t.Fatalf("sent %v", got)
	}
}

// TestSweepLeavesTheCursorToThePassHoldingIt: a pass that finds another
// holding the cursor does nothing; once that pass's lease has ended (it
// died), the next pass sweeps.
func TestSweepLeavesTheCursorToThePassHoldingIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run("a")
	if _, _, err := b.store.TakeSweepIfFree(context.Background(), t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	b.now = t0.Add(59 * time.Second)
	if rep := b.sweep(); !rep.Busy || rep.Runs != 0 {
		t.Fatalf("sweep while another holds the cursor: %+v", rep)
	}
	b.now = t0.Add(time.Minute)
	if rep := b.sweep(); rep.Busy || rep.Runs != 1 || !rep.Cycle {
		t.Fatalf("sweep after the holder's lease ended: %+v", rep)
	}
}

// vclock is a virtual clock: the sweeper reads it, the test and the
// timed store move it.
type vclock struct{ ns atomic.Int64 }

func (c *vclock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *vclock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *vclock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// timedStore makes sweeping cost virtual time: reading n runs takes
// n·perRun/workers, as for workers sweeping at once, each perRun a run.
// It records when each run was visited (read).
type timedStore struct {
	*store.Store
	clock   *vclock
	perRun  time.Duration
	workers int

	mu     sync.Mutex
	visits map[string][]time.Time
}

func (s *timedStore) ReadRuns(ctx context.Context, ids []string) ([]store.RunRead, error) {
	at := s.clock.Now()
	s.mu.Lock()
	for _, id := range ids {
		s.visits[id] = append(s.visits[id], at)
	}
	s.mu.Unlock()
	s.clock.advance(time.Duration(len(ids)) * s.perRun / time.Duration(s.workers))
	return s.Store.ReadRuns(ctx, ids)
}

// nothingSent is a queue the test expects no message on.
type nothingSent struct{ t *testing.T }

func (q nothingSent) Send(_ context.Context, msgs []queue.Message) error {
	q.t.Errorf("sent %d messages", len(msgs))
	return nil
}

// TestSweepVisitsEveryRunWithinTheBound: with more active runs than one
// pass covers, passes every P resume from the stored cursor, each stops
// within its budget, every run is visited once per cycle, and no run goes
// longer than Bound between visits (nor from the start to its first).
func TestSweepVisitsEveryRunWithinTheBound(t *testing.T) {
	t.Parallel()
	const (
		active = 90
		shards = 3
		batch  = 5
		perRun = time.Second
		budget = 20 * time.Second
		period = time.Minute
	)
	db := testenv.DynamoDB(t)
	st := store.New(db, testenv.Table(t, db), store.WithShards(shards))
	ctx := context.Background()
	def := workflow.Definition{Name: "w", Steps: []workflow.Step{{ID: "a", Type: "task", DependsOn: []string{}}}}
	w := wire.Workflow{ID: ids.New("wf"), Name: "w", Definition: def, CreatedAt: t0}
	if err := st.CreateWorkflowIfAbsent(ctx, w); err != nil {
		t.Fatal(err)
	}
	p, _ := workflow.NewPlan(def)
	var runs []string
	for range active {
		r := runstate.New(ids.New("run"), w.ID, w.Name, "", p, t0)
		if err := st.CreateRunIfAbsent(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r.ID)
	}
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			// The cases share the runs; each starts a cycle of its own.
			start := t0.Add(time.Duration(workers) * time.Hour)
			if c, l, err := st.TakeSweepIfFree(ctx, start, start); err != nil {
				t.Fatal(err)
			} else if err := st.ReleaseSweepIfHeld(ctx, l, store.SweepCursor{Cycles: c.Cycles}); err != nil {
				t.Fatal(err)
			}
			clock := &vclock{}
			ts := &timedStore{Store: st, clock: clock, perRun: perRun, workers: workers, visits: map[string][]time.Time{}}
			sw := &sweeper.Sweeper{Store: ts, Queue: nothingSent{t}, Grace: 24 * time.Hour,
				Workers: workers, Budget: budget, Batch: batch, Now: clock.Now}
			bound := sweeper.Bound(active, workers, batch, perRun, budget, period)
			perPass := workers * int(budget/perRun)
			cyclePasses := (active + perPass - 1) / perPass
			if cyclePasses < 2 {
				t.Fatalf("one pass covers all %d runs: the test tests nothing", active)
			}
			passes := 3*cyclePasses + 1
			var end time.Time
			cycles, cycleRuns := 0, 0
			for j := range passes {
				at := start.Add(time.Duration(j) * period)
				clock.set(at)
				rep, err := sw.Sweep(ctx)
				if err != nil || rep.Busy {
					t.Fatalf("pass %d: %+v, %v", j, rep, err)
				}
				end = clock.Now()
				if took := end.Sub(at); took > budget+batch*perRun {
					t.Errorf("pass %d took %v: past its budget (%v) and the page under way", j, took, budget)
				}
				if !rep.Cycle && rep.Runs < perPass {
					t.Errorf("pass %d swept %d runs and did not end a cycle: fewer than W·⌊B/t⌋ = %d", j, rep.Runs, perPass)
				}
				if j == 0 && rep.Cycle {
					t.Errorf("the first pass ended a cycle: %+v", rep)
				}
				if rep.Cycle {
					cycles++
					cycleRuns = rep.CycleRuns
					if rep.CyclePasses > cyclePasses {
						t.Errorf("a cycle took %d passes, more than L = %d", rep.CyclePasses, cyclePasses)
					}
				}
			}
			if cycles < 2 || cycleRuns != active {
				t.Fatalf("%d cycles ended, the last over %d runs; want at least 2, over %d", cycles, cycleRuns, active)
			}
			var longest time.Duration
			for _, id := range runs {
				v := ts.visits[id]
				if len(v) < cycles || len(v) > cycles+1 {
					t.Errorf("run %s visited %d times in %d cycles", id, len(v), cycles)
				}
				gaps := []time.Duration{v[0].Sub(start), end.Sub(v[len(v)-1])}
				for i := 1; i < len(v); i++ {
					gaps = append(gaps, v[i].Sub(v[i-1]))
				}
				for _, g := range gaps {
					longest = max(longest, g)
				}
			}
			t.Logf("%d runs, %d workers: %d passes a cycle; longest gap between visits %v, bound %v", active, workers, cyclePasses, longest, bound)
			if longest > bound {
				t.Errorf("a run went %v between visits: more than the bound %v", longest, bound)
			}
		})
	}
}
