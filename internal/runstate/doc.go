// Package runstate is the step engine's state model, with no AWS in it.
//
// A run's state is one compact slot per step (see Step), stored in the run's
// header item and, for runs of more than HeaderSlots steps, in chunk items of
// ChunkSlots steps each, so that every item the engine writes stays under
// 1 KB. Every write to a slot is a compare-and-swap on that step's own old
// state; run-level writes (end, cancel, retry) are conditioned on the run's
// generation, which a retry raises.
//
// The functions here decide, from a run as read, what to write next:
// Deliver (what a runner does with its messages), BuildCommit (the one
// transaction that records a group of finished attempts), Sweep (what the
// sweeper does with a live run), Cancel and Retry (the API's run-level
// writes), and Reported (the statuses the API shows, including the skipped
// and cancelled steps that are never stored). Each new step state is checked
// against the transition table in package status. Package store turns the
// decisions into conditional DynamoDB writes; DECISIONS.md ("Step engine
// (second design)") gives the argument for each invariant.
package runstate
