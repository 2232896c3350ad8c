// Package engine runs workflow steps from SQS messages. A message names a
// step of a run; the runner reads only the run items its decision needs
// (the step's, its parents' and its dependents'), decides with the pure
// runstate.Deliver what the message asks for, and hands the rest to a
// runstate.Sched, whose actions a thin loop performs: claims (a
// compare-and-swap of a step's slot, conditioned on the run being live in
// its generation), fence reads before steps started in the same invocation
// as their parents, task starts, commits, sends and the run's end.
//
// Each attempt's outcome is committed as soon as it ends, within the
// commit window (Config.CommitWindow, at most 100 ms) plus one storage round
// trip, whatever its siblings do: one TransactWriteItems holds the slot
// swaps (each conditioned on the slot the runner holds), a conditional
// commit record per step (for an order action, the order's history entry),
// the order's status change and, when it finishes the run, the run's end.
// A step started in the same invocation as its parent is claimed in the
// commit that completes its last parent, so it is never claimable by
// anyone else. Storage tells a write whose answer was lost from someone
// else's (package store), so a runner never mistakes its own landed write
// for a collision.
//
// Duplicated, stale and concurrent messages are harmless: every write is
// conditional on the state the runner read. DECISIONS.md ("Step engine")
// gives the argument for each invariant. HandleSQS adapts the engine to
// Lambda's SQS event source with partial batch failures; package poller
// feeds it locally.
package engine
