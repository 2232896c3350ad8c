// Package sweeper finds work a crash left behind and sets it moving again.
// It walks the runs that are live (the store's sparse, sharded by_active
// index, never a table Scan), reads them a page at a time, and acts on what
// the pure runstate.Sweep decides:
//
//   - a run whose steps all completed is ended;
//   - a running step whose lease expired (its runner died) gets a new
//     message, and the next runner takes its lease over;
//   - a pending step that has been ready (and past its retry's due time)
//     for longer than Grace gets a new message (its message was lost, or
//     the run was stored but never started).
//
// # Passes and cycles
//
// A pass (one Sweep, one Lambda invocation) takes the store's sweep cursor
// on a lease, so overlapping passes never sweep the same runs: the second
// finds the cursor held and does nothing. Workers take pages of the shards
// in turn, each listing a page and then sweeping it, until every shard has
// been swept to its end or the time budget is spent; after that no page
// starts, the pages under way finish, and the cursor is released where
// the pass stopped (it is also saved as the pass goes, so a pass that dies
// loses little). A cycle is the walk of every shard from its oldest run to
// its newest; it takes as many passes as it needs, and a pass that ends a
// cycle stops there, so no pass visits a run twice.
//
// The longest time between two visits of an active run is Bound: with A
// active runs, W workers, a per-run sweep time t (a worker's wall time per
// run, its share of listing included), a budget B and passes every P (B
// plus the 10 s a pass may hold the cursor past it below P, so that every
// pass finds the cursor free), one pass sweeps at least C = W·⌊B/t⌋ runs,
// a cycle takes at most L = ⌈A/C⌉ passes, and a run is visited again at
// most (2L−1)·P + B + b·t later (b runs a page: the page under way when
// the budget ends). The 2L−1 is the worst case, of a run visited at the
// start of one cycle and at the end of the next; when passes cover about
// the same each time it is about L·P.
//
// # Re-sends back off
//
// Under a queue backlog a step's message is still queued when the sweeper
// next sees the step stalled. So the sweeper keeps a mark per run of the
// re-sends it made for each step state (the generation and the slot), and
// re-sends for the same state only after Resend.Wait of the last: Grace,
// then doubling, up to Resend.Max. Anything that happens to the step (a
// claim, a takeover, a failed attempt, a retry) is a new state, whose first
// re-send is not held back. The mark is written, on the condition that it
// is unchanged since read, before the messages are sent: two sweepers never
// both re-send for one state, and a send that fails is tried again one wait
// later.
//
// It never writes a step's state; its writes end runs, conditioned on the
// generation it read, and replace its own cursor and marks conditionally,
// so it is safe to run concurrently with runners, with the API's cancel and
// retry, and with itself. At worst a step gets a duplicate message, which
// runners drop.
package sweeper
