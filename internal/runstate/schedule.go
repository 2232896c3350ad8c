package runstate

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/workflow"
)

// Sched decides, for one runner's work on one run in one invocation, what
// to do next: which steps to claim or start, when the attempts that ended
// are committed, what to send and what to read. It does no I/O: a thin
// loop (package engine) performs each Action and reports back with the
// methods named for what happened. It is not safe for concurrent use.
//
// Its rules, each the place an invariant of DECISIONS.md ("Why it holds")
// is kept:
//   - A step starts either right after a claim of it landed (a
//     compare-and-swap from its pending slot, which also proves the run
//     live in its generation), or in the same invocation as a parent that
//     succeeded here and is not committed yet, right after a fence read
//     shows the run live in the generation known. Such a step is held by
//     its pending slot: it is not ready in storage while that parent is
//     uncommitted, and the commit that completes its last parent claims it
//     (Slot.Inline). So a step that ran or runs here is never claimable by
//     anyone else, however the commits are split.
//   - An attempt's outcome is committed at most Window after it ended
//     (sooner when nothing else runs), whatever its siblings do, and what
//     follows it (its retry's message, its dependents) is decided as soon
//     as the commit landed.
//   - Nothing starts once a fence, a read or a commit has shown the run
//     ended or in another generation; attempts already running finish and
//     commit their own result.
type Sched struct {
	plan  workflow.Plan
	cfg   SchedConfig
	terms LeaseTerms

	run   State
	order status.OrderStatus

	// held: steps this runner runs or ran and has not committed, by the
	// slot it holds each by (see Lease).
	held     map[int]Slot
	running  map[int]time.Time // when each attempt running here started
	ended    []Outcome
	firstEnd time.Time // when the oldest uncommitted outcome ended
	// queue: steps to start here, in order; learnt: when the runner learnt
	// that the parent that made a queued step ready had succeeded.
	queue  []int
	learnt map[int]time.Time
	// deferred: ready here but not started (out of budget or parallelism)
	// while a parent was still uncommitted: sent once it is committed.
	deferred map[int]bool
	// orderRead: order actions whose check failed on what was known, and
	// for which the order was read again before they start (once).
	orderRead map[int]bool
	sends     []NextAttempt
	need      []int
	fenced    bool
	stopped   bool
	endRun    bool
	refused   bool // storage refused a commit as invalid once
}

// SchedConfig configures a Sched.
type SchedConfig struct {
	// Parallelism is how many attempts run at once.
	Parallelism int
	// Window is how long an ended attempt may wait to be committed with
	// others that end soon after it.
	Window time.Duration
	// Budget is how much step time from Began the invocation spends on
	// steps started in it after their parents (inline); Deadline, if set,
	// is when the invocation must be done, and no inline step starts that
	// would end later than half the lease margin before it.
	Budget          time.Duration
	Began, Deadline time.Time
	Policy          retry.Policy
	// MaxSteps and MaxBytes bound the outcomes of one commit transaction
	// (see CommitInput); Hop is the longest delay of one message.
	MaxSteps, MaxBytes int
	Hop                time.Duration
}

// ActionKind names what a runner does next.
type ActionKind int

// The actions, in the order Next considers them.
const (
	// ActRead: read Items (see ItemOf) and report them with Read.
	ActRead ActionKind = iota + 1
	// ActCommit: write Commits, in order, reporting each with Landed.
	ActCommit
	// ActSend: send Sends' messages, then call Sent.
	ActSend
	// ActEnd: end the run as completed (End), then call EndLanded.
	ActEnd
	// ActClaim: claim Steps (NewClaim), then report with Claimed or
	// ClaimRefused.
	ActClaim
	// ActFence: read the run's generation and liveness, report with
	// Fenced; Steps are the steps it is for (to start next).
	ActFence
	// ActStart: start Steps (held by their pending slots), then call
	// Started.
	ActStart
	// ActWait: wait until an attempt ends (report with Ended) or Until
	// (zero: no time limit).
	ActWait
	// ActDone: nothing is left to do.
	ActDone
)

// Action is what a runner does next.
type Action struct {
	Kind  ActionKind
	Items []int
	Steps []int
	Until time.Time
}

// NewSched returns a Sched for run r (as read, with its order's status),
// to claim and run steps (each claimable in r) with terms.
func NewSched(p workflow.Plan, r State, order status.OrderStatus, cfg SchedConfig, terms LeaseTerms, steps []int) *Sched {
	s := &Sched{
		plan: p, cfg: cfg, terms: terms, run: r, order: order,
		held: map[int]Slot{}, running: map[int]time.Time{}, learnt: map[int]time.Time{}, deferred: map[int]bool{},
		orderRead: map[int]bool{},
	}
	if s.cfg.Parallelism < 1 {
		s.cfg.Parallelism = 1
	}
	// Claim no more than can run at once: every claimed step starts at
	// once, so its lease covers it. The rest are sent (a duplicate of a
	// message already sent is harmless).
	for n, i := range steps {
		if n < s.cfg.Parallelism {
			s.queue = append(s.queue, i)
		} else {
			s.sends = append(s.sends, NextAttempt{Step: i, Attempt: r.Steps[i].Attempt})
		}
	}
	return s
}

// Run returns the run as the runner knows it.
func (s *Sched) Run() State { return s.run }

// Order returns the run's order status as the runner knows it.
func (s *Sched) Order() status.OrderStatus { return s.order }

// Sends returns the messages to send: next attempts (delayed to Due) and
// steps to run elsewhere.
func (s *Sched) Sends() []NextAttempt { return s.sends }

// Learnt returns when the runner learnt that the parent that made step i
// ready here succeeded (zero for a step claimed from a message).
func (s *Sched) Learnt(i int) time.Time { return s.learnt[i] }

// Held returns the slot the runner holds step i by.
func (s *Sched) Held(i int) Slot { return s.held[i] }

// Running reports how many attempts run.
func (s *Sched) Running() int { return len(s.running) }

// Next returns what to do next at now.
func (s *Sched) Next(now time.Time) Action {
	a := s.next(now)
	if a.Kind != ActStart {
		// A fence covers only the starts that follow it at once: after
		// anything else (a commit, a claim, a wait), the next inline
		// start needs a fence of its own.
		s.fenced = false
	}
	return a
}

func (s *Sched) next(now time.Time) Action {
	claims, inline := s.startable(now)
	windowOver := len(s.ended) > 0 && !now.Before(s.firstEnd.Add(s.cfg.Window))
	if len(s.need) > 0 && !windowOver {
		return Action{Kind: ActRead, Items: slices.Clone(s.need)}
	}
	if len(s.ended) > 0 && s.commitDue(now, len(claims)+len(inline) > 0) {
		if items := s.commitItemsUnknown(); len(items) > 0 {
			s.need = items
			return Action{Kind: ActRead, Items: items}
		}
		return Action{Kind: ActCommit}
	}
	if len(s.need) > 0 {
		return Action{Kind: ActRead, Items: slices.Clone(s.need)}
	}
	if len(s.sends) > 0 {
		return Action{Kind: ActSend}
	}
	if s.endRun {
		return Action{Kind: ActEnd}
	}
	if len(claims) > 0 {
		return Action{Kind: ActClaim, Steps: claims}
	}
	if len(inline) > 0 {
		if !s.fenced {
			return Action{Kind: ActFence, Steps: inline}
		}
		return Action{Kind: ActStart, Steps: inline}
	}
	if len(s.running) > 0 || len(s.ended) > 0 {
		var until time.Time
		if len(s.ended) > 0 {
			until = s.firstEnd.Add(s.cfg.Window)
		}
		return Action{Kind: ActWait, Until: until}
	}
	return Action{Kind: ActDone}
}

// commitDue reports whether the ended outcomes are committed now: the
// window of the oldest has passed, or nothing may start, or nothing starts
// and nothing running is expected to end within the window (nothing else
// can join the commit soon).
func (s *Sched) commitDue(now time.Time, starting bool) bool {
	deadline := s.firstEnd.Add(s.cfg.Window)
	switch {
	case s.stopped, !now.Before(deadline):
		return true
	case starting:
		return false // what starts now may end soon and join the commit
	}
	// Wait only for attempts expected to end before the window does: a
	// step's configured duration says when (a step of unknown duration
	// may end any time).
	for i, start := range s.running {
		d := StepDuration(s.plan, i)
		if d <= 0 || start.Add(d).Before(deadline) {
			return false
		}
	}
	return true
}

// commitItemsUnknown returns the items a commit needs and the runner has
// not read: those holding its outcomes' slots and their parents'.
func (s *Sched) commitItemsUnknown() []int {
	var out []int
	for _, o := range s.ended {
		for _, i := range append([]int{o.Step}, s.plan[o.Step].Parents...) {
			if !s.run.Knows(i) {
				out = appendItem(out, ItemOf(i))
			}
		}
	}
	slices.Sort(out)
	return out
}

// startable walks the queue and returns the steps to claim and the steps
// to start inline now; it drops from the queue what can no longer start
// here and moves what does not fit to the messages to send.
func (s *Sched) startable(now time.Time) (claims, inline []int) {
	if !s.run.Live() {
		s.queue = nil
		return nil, nil
	}
	if s.stopped {
		// Nothing starts here any more: what is ready in storage is
		// sent, what is not read yet is read first, the rest is left to
		// the commits that make it ready.
		var keep []int
		for _, i := range s.queue {
			if _, mine := s.held[i]; mine {
				continue
			}
			switch s.run.Readiness(s.plan, i, now) {
			case ReadyNow:
				s.sends = append(s.sends, NextAttempt{Step: i, Attempt: s.run.Steps[i].Attempt})
			case Unread:
				s.needSteps(append([]int{i}, s.plan[i].Parents...))
				keep = append(keep, i)
			}
		}
		s.queue = keep
		return nil, nil
	}
	free := s.cfg.Parallelism - len(s.running)
	var keep []int
	for _, i := range s.queue {
		if _, mine := s.held[i]; mine {
			continue
		}
		if free <= 0 {
			keep = append(keep, i)
			continue
		}
		inl, claim := s.inlineReady(i, now), Claimable(s.run, s.plan, i, now)
		if (inl || claim) && s.orderDoubt(i, now) {
			// Read the order again before deciding on a refusal: what
			// the runner knew of it may be older than the slots (a read
			// of several items is not isolated). Nothing is requested
			// between a claim or a fence and the starts that follow it.
			s.orderRead[i] = true
			s.needSteps([]int{i})
			s.need = appendItem(s.need, ItemOf(i))
			slices.Sort(s.need)
			keep = append(keep, i)
			continue
		}
		switch {
		case inl:
			if !s.fits(now, i) {
				s.deferred[i] = true
				continue
			}
			inline = append(inline, i)
			keep = append(keep, i) // until Started
			free--
		case claim:
			if s.learnt[i] != (time.Time{}) && !s.fits(now, i) {
				// A dependent, ready in storage, that does not fit:
				// its message goes to the queue.
				s.sends = append(s.sends, NextAttempt{Step: i, Attempt: s.run.Steps[i].Attempt})
				continue
			}
			claims = append(claims, i)
			keep = append(keep, i) // until Claimed or ClaimRefused
			free--
		case s.run.Readiness(s.plan, i, now) == Unread:
			s.needSteps(append([]int{i}, s.plan[i].Parents...))
			keep = append(keep, i)
		case s.readPending(i):
			keep = append(keep, i) // decided once a parent is read again
		}
	}
	s.queue = keep
	return claims, inline
}

// orderDoubt reports whether order action i fails its check on what is
// known and the order was not read again for it yet.
func (s *Sched) orderDoubt(i int, now time.Time) bool {
	return !s.orderRead[i] && !ReservesOrder(s.plan, i, s.run.OrderID) && s.OrderCheck(i, now) != nil
}

// readPending reports whether an item holding a parent of step i is to be
// read.
func (s *Sched) readPending(i int) bool {
	for _, parent := range s.plan[i].Parents {
		if slices.Contains(s.need, ItemOf(parent)) {
			return true
		}
	}
	return false
}

// inlineReady reports whether step i can start inline at now: pending and
// due as known, with every parent completed as known or succeeded here,
// and at least one parent succeeded here and not committed yet (so that i
// is not ready in storage: nobody else can claim it).
func (s *Sched) inlineReady(i int, now time.Time) bool {
	if !s.run.Knows(i) {
		return false
	}
	slot := s.run.Steps[i]
	if slot.Status != status.StepPending || slot.Due.After(now) || ReservesOrder(s.plan, i, s.run.OrderID) {
		return false
	}
	mine := false
	for _, parent := range s.plan[i].Parents {
		switch {
		case s.succeededHere(parent):
			mine = true
		case !s.run.Knows(parent) || s.run.Steps[parent].Status != status.StepCompleted:
			return false
		}
	}
	return mine
}

// OutputsHere returns the outputs of those of steps that succeeded in this
// invocation and are not committed yet (a step started inline reads them
// here: storage has them only once committed).
func (s *Sched) OutputsHere(steps []int) map[int]json.RawMessage {
	out := map[int]json.RawMessage{}
	for _, o := range s.ended {
		if o.Err == nil && !o.Wait && slices.Contains(steps, o.Step) {
			out[o.Step] = o.Output
		}
	}
	return out
}

// succeededHere reports whether step i succeeded in this invocation and is
// not committed yet.
func (s *Sched) succeededHere(i int) bool {
	for _, o := range s.ended {
		if o.Step == i {
			// A wait that ended was held by nobody: another runner may
			// have ended it too, so what follows it waits for the commit
			// (its claim then decides who runs it).
			return o.Err == nil && !o.Wait && o.Held.Status != status.StepWaiting
		}
	}
	return false
}

// ReservesOrder reports whether step i of a run on order orderID reserves
// the order before it calls out: an http step whose order action moves the
// order. Such a step never starts in the same invocation as a parent
// before that parent's commit (its reservation needs the order where the
// commits leave it): it is claimed once its parents are committed.
func ReservesOrder(p workflow.Plan, i int, orderID string) bool {
	a, ok := status.Actions[p[i].Config.Action]
	return orderID != "" && ok && a.ChangesStatus() && p[i].Type == workflow.TypeHTTP
}

// fits reports whether step i, started at now, ends within the inline
// budget and well before the invocation's deadline.
func (s *Sched) fits(now time.Time, i int) bool {
	d := StepDuration(s.plan, i)
	if now.Sub(s.cfg.Began)+d > s.cfg.Budget {
		return false
	}
	return s.cfg.Deadline.IsZero() || !now.Add(d+s.terms.Margin/2).After(s.cfg.Deadline)
}

func (s *Sched) needSteps(steps []int) {
	for _, i := range steps {
		if !s.run.Knows(i) {
			s.need = appendItem(s.need, ItemOf(i))
		}
	}
	slices.Sort(s.need)
}

// Read merges a fresh read of some of the run's items. A read that shows
// the run in another generation replaces what was known (and nothing more
// starts here); one that shows it ended stops new starts.
func (s *Sched) Read(fresh State, order status.OrderStatus) {
	var still []int // items still to read: those this read did not cover
	for _, k := range s.need {
		if lo, hi := ItemSteps(k, len(fresh.Steps)); lo < hi && !fresh.Knows(lo) {
			still = append(still, k)
		}
	}
	s.need = still
	if order != "" {
		s.order = order
		s.run.OrderHold = fresh.OrderHold
	}
	if fresh.Gen != s.run.Gen {
		s.run = fresh
		s.stopped = true
		return
	}
	merged := s.run.Apply(nil)
	if merged.Known == nil {
		merged.Known = make([]bool, len(merged.Steps))
		for i := range merged.Known {
			merged.Known[i] = true
		}
	}
	for i := range fresh.Steps {
		if fresh.Knows(i) {
			merged.Steps[i], merged.Known[i] = fresh.Steps[i], true
		}
	}
	if !slices.Contains(merged.Known, false) {
		merged.Known = nil
	}
	if fresh.CreatedAt != (time.Time{}) { // the header was read
		merged.Status, merged.EndedAt, merged.Retries, merged.RetriedAt = fresh.Status, fresh.EndedAt, fresh.Retries, fresh.RetriedAt
		merged.CreatedAt, merged.WorkflowName = fresh.CreatedAt, fresh.WorkflowName
	}
	if !fresh.Live() && merged.Live() {
		merged.Status = fresh.Status
	}
	s.run = merged
	if !s.run.Live() {
		s.stopped, s.endRun = true, false
	}
	if s.endRun && !s.run.AllCompleted() {
		s.endRun = false
	}
	s.checkEnd(false)
}

// Fenced reports a fence read: the run's generation and whether it is
// live. Inline starts go ahead only when it is live in the generation
// known.
func (s *Sched) Fenced(gen int, live bool) {
	switch {
	case gen != s.run.Gen:
		// Retried since it was read: learn the new generation before
		// committing what ended (its slots may have been kept).
		s.stopped = true
		s.need = appendItem(s.need, 0)
	case !live:
		s.stopped = true
		s.run.Status = ""
	default:
		s.fenced = true
	}
}

// Claimed reports claims that landed: their steps start now.
func (s *Sched) Claimed(leases []Lease) {
	var swaps []Swap
	for _, l := range leases {
		swaps = append(swaps, Swap{Step: l.Step, Old: s.run.Steps[l.Step], New: l.Held})
		s.held[l.Step], s.running[l.Step] = l.Held, l.Held.Start
		s.queue = slices.DeleteFunc(s.queue, func(i int) bool { return i == l.Step })
	}
	s.run = s.run.Apply(swaps)
}

// ClaimRefused reports a claim that did not land (another runner took a
// step first, or the run changed): the run was read again (Read), and
// the steps that are no longer claimable are dropped.
func (s *Sched) ClaimRefused(steps []int, now time.Time) {
	s.queue = slices.DeleteFunc(s.queue, func(i int) bool {
		return slices.Contains(steps, i) && !Claimable(s.run, s.plan, i, now)
	})
}

// Started reports that the inline steps started at now, held by their
// pending slots.
func (s *Sched) Started(steps []int, now time.Time) {
	s.fenced = false
	for _, i := range steps {
		s.held[i], s.running[i] = s.run.Steps[i], now
		s.queue = slices.DeleteFunc(s.queue, func(q int) bool { return q == i })
	}
}

// Ended reports a finished attempt, learnt at learnt. A success makes the
// step's pending dependents candidates to start here.
func (s *Sched) Ended(o Outcome, learnt time.Time) {
	delete(s.running, o.Step)
	if errors.Is(o.Err, ErrNotStarted) {
		// It did not start: the run ended or moved on before its effect
		// (see ErrNotStarted). Nothing is committed; its lease runs out.
		delete(s.held, o.Step)
		s.stopped = true
		return
	}
	o.Held = s.held[o.Step]
	if len(s.ended) == 0 {
		s.firstEnd = o.End
	}
	s.ended = append(s.ended, o)
	if o.Err != nil {
		if !RetriesLeft(s.plan, o.Step, o.Held.Attempt) || errors.Is(o.Err, ErrPermanent) {
			s.stopped = true // the run will fail: start nothing more
		}
		return
	}
	if o.Wait || o.Held.Status == status.StepWaiting {
		// A wait begun: its dependents start when it ends. A wait ended:
		// they are claimed after its commit (see succeededHere).
		return
	}
	for _, c := range s.plan[o.Step].Dependents {
		if _, mine := s.held[c]; mine || slices.Contains(s.queue, c) {
			continue
		}
		// A dependent whose slot (or a parent's) was not read is queued
		// too: startable reads what it needs and decides then.
		if s.inlineReady(c, learnt) || !s.run.Knows(c) || s.run.Readiness(s.plan, c, learnt) == Unread {
			s.queue = append(s.queue, c)
			s.learnt[c] = learnt
		}
	}
}

// Resolve reports the end of a waiting step's wait (its deadline came, or
// a decision was taken), as outcome o held by the waiting slot as known: it
// is committed like an attempt that ended, and a success makes its
// dependents candidates to start here.
func (s *Sched) Resolve(o Outcome, learnt time.Time) {
	s.held[o.Step] = s.run.Steps[o.Step]
	s.Ended(o, learnt)
}

// StorageRefused reports that storage refused a commit as invalid. The
// first time, the attempts it held fail for good (a retry of the same
// write cannot succeed) and are committed so; it returns false when it
// had already happened, and the run must be failed instead.
func (s *Sched) StorageRefused(err error) bool {
	if s.refused {
		return false
	}
	s.refused = true
	for n := range s.ended {
		s.ended[n].Err = storageErr{err}
	}
	s.stopped = true
	return true
}

type storageErr struct{ err error }

func (e storageErr) Error() string { return ErrStorage.Error() + ": " + e.err.Error() }
func (e storageErr) Unwrap() error { return ErrStorage }

// Commits returns the transactions that commit the ended attempts at now,
// to be written in order; each that lands is reported with Landed. A
// commit with no swaps is reported without being written.
func (s *Sched) Commits(now time.Time) []Commit {
	var running []Lease
	for i := range s.running {
		if h := s.held[i]; h.Status == status.StepPending {
			running = append(running, Lease{Step: i, Held: h})
		}
	}
	slices.SortFunc(running, func(a, b Lease) int { return a.Step - b.Step })
	outcomes := slices.Clone(s.ended)
	for n := range outcomes {
		outcomes[n].Held = s.held[outcomes[n].Step]
	}
	return BuildCommits(CommitInput{
		Run: s.run, Plan: s.plan, Order: s.order, Outcomes: outcomes, Running: running,
		Policy: s.cfg.Policy, Terms: s.terms, Now: now, MaxSteps: s.cfg.MaxSteps, MaxBytes: s.cfg.MaxBytes, Hop: s.cfg.Hop,
	})
}

// Landed reports a commit that is in storage, and decides what follows
// it: the next attempts of failed steps are sent; dependents of the
// completed steps that are ready are started here (claimed, or sent when
// they do not fit); what may have been completed by other runners is read
// again; and the run is ended once every step completed.
func (s *Sched) Landed(c Commit) {
	s.run = s.run.Apply(c.Swaps)
	if c.End != "" {
		s.run.Status, s.run.EndedAt = c.End, c.At
		s.stopped = true
	}
	if c.Order != nil {
		s.order = c.Order.To
	}
	settled := map[int]bool{}
	for _, i := range c.Dropped {
		settled[i] = true
	}
	for _, sw := range c.Swaps {
		if sw.New.Status == status.StepRunning {
			s.held[sw.Step] = sw.New // claimed in the commit: still ours
			continue
		}
		settled[sw.Step] = true
	}
	var kept []Outcome
	for _, o := range s.ended {
		if settled[o.Step] {
			delete(s.held, o.Step)
			continue
		}
		kept = append(kept, o)
	}
	s.ended = kept
	if len(kept) > 0 {
		s.firstEnd = kept[0].End
	}
	for i := range settled {
		if _, running := s.running[i]; !running {
			delete(s.held, i)
		}
	}
	if s.run.Live() {
		s.sends = append(s.sends, c.Retries...)
	}
	s.followUp(c.Committed())
}

// followUp decides what follows the completion of steps done, from the run
// as known.
func (s *Sched) followUp(done []int) {
	if !s.run.Live() {
		return
	}
	now := time.Time{} // readiness regardless of retry due times: those have messages
	for _, x := range done {
		for _, d := range s.plan[x].Dependents {
			if _, mine := s.held[d]; mine || slices.Contains(s.queue, d) {
				continue
			}
			switch s.run.Readiness(s.plan, d, now) {
			case ReadyNow:
				if s.deferred[d] || s.stopped {
					delete(s.deferred, d)
					s.sends = append(s.sends, NextAttempt{Step: d, Attempt: s.run.Steps[d].Attempt})
				} else {
					s.queue = append(s.queue, d)
					if s.learnt[d].IsZero() {
						s.learnt[d] = s.run.Steps[x].End
					}
				}
			case Unread:
				s.queue = append(s.queue, d) // startable reads it, then decides
				if s.learnt[d].IsZero() {
					s.learnt[d] = s.run.Steps[x].End
				}
			case NotReady:
				if s.run.Steps[d].Status != status.StepPending {
					continue
				}
				// A parent that is not completed as known, and that
				// another runner may have completed since: read it, then
				// decide about d again.
				stale := false
				for _, parent := range s.plan[d].Parents {
					ps := s.run.Steps[parent]
					if _, mine := s.held[parent]; !mine && (ps.Status == status.StepRunning || ps.Status == status.StepPending) {
						s.need = appendItem(s.need, ItemOf(parent))
						stale = true
					}
				}
				slices.Sort(s.need)
				if stale {
					s.queue = append(s.queue, d)
				}
			}
		}
	}
	// Deferred steps whose parents are all committed now are ready in
	// storage: they are sent.
	for d := range s.deferred {
		if s.run.Readiness(s.plan, d, now) == ReadyNow {
			delete(s.deferred, d)
			s.sends = append(s.sends, NextAttempt{Step: d, Attempt: s.run.Steps[d].Attempt})
		}
	}
	slices.SortFunc(s.sends, func(a, b NextAttempt) int { return a.Step - b.Step })
	sink := false
	for _, x := range done {
		sink = sink || len(s.plan[x].Dependents) == 0
	}
	s.checkEnd(sink)
}

// checkEnd decides whether the run may be complete. When every step is
// known completed, the run is ended. When reread is set (a commit of this
// runner just completed a step with no dependents, so the run may be
// complete now), the slots that are not known completed, and that other
// runners may have completed since they were read, are read again; the
// runner's own uncommitted steps are not (it ends the run after it commits
// them).
func (s *Sched) checkEnd(reread bool) {
	if !s.run.Live() || len(s.held) > 0 {
		return
	}
	var stale []int
	for i, slot := range s.run.Steps {
		switch {
		case !s.run.Knows(i):
			stale = append(stale, i)
		case slot.Status == status.StepFailed:
			return
		case slot.Status != status.StepCompleted:
			stale = append(stale, i)
		}
	}
	if len(stale) == 0 {
		s.endRun = true
		return
	}
	if !reread {
		return
	}
	for _, i := range stale {
		s.need = appendItem(s.need, ItemOf(i))
	}
	slices.Sort(s.need)
}

// Sent reports that the messages of Sends were sent.
func (s *Sched) Sent() { s.sends = nil }

// EndLanded reports that the run's end was written (or that another
// writer ended it first).
func (s *Sched) EndLanded() {
	s.endRun, s.stopped = false, true
}

// Fail reports that the runner gives up on the run's attempts (its commits
// kept failing): it starts nothing more and forgets what ended.
func (s *Sched) Fail() {
	s.stopped, s.ended, s.sends, s.endRun, s.need = true, nil, nil, false, nil
}

// OrderCheck returns the error order action step i fails with if it starts
// now: the order, as this runner knows it after its own successful actions
// not committed yet, is not in the status the action needs. Such a step
// fails at once without running its task (and is retried later if it has
// retries left, by when the order may have moved): a task is not run for
// an effect its commit would refuse.
func (s *Sched) OrderCheck(i int, now time.Time) error {
	a, ok := status.Actions[s.plan[i].Config.Action]
	if s.run.OrderID == "" || !ok {
		return nil
	}
	if a.ChangesStatus() && s.run.OrderHold.HeldAgainst(s.run.ID, now) {
		return &HoldError{Action: a.Name, Hold: s.run.OrderHold}
	}
	order := s.order
	ended := slices.Clone(s.ended)
	slices.SortFunc(ended, func(a, b Outcome) int { return a.Step - b.Step })
	for _, o := range ended {
		if b, ok := status.Actions[s.plan[o.Step].Config.Action]; ok && o.Err == nil && !o.Wait && b.ChangesStatus() && b.Check(order) == nil {
			order = b.To
		}
	}
	return orderRefusal(a.Check(order))
}
