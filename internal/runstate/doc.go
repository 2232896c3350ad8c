// Package runstate is the step engine's state model and its decisions, with
// no AWS in it.
//
// A run's state is one compact slot per step (see Slot), stored in the
// run's header item and, for runs of more than HeaderSlots steps, in chunk
// items of ChunkSlots steps each, so that every item the engine writes
// stays under 1 KB. Every item carries the run's generation and whether it
// is live, so a reader may read only some of them (State.Known). Every
// write to a slot is a compare-and-swap on that step's own old state;
// run-level writes (end, cancel, retry) are conditioned on the run's
// generation, which a retry raises.
//
// The functions here decide, from a run as read, what to do next: Deliver
// (what a runner does with its messages), Sched (the order of one runner's
// claims, starts, commits and sends), BuildCommits (the transactions that
// record finished attempts), Sweep (what the sweeper does with a live
// run), Cancel and Retry (the API's run-level writes), and Reported (the
// statuses the API shows, including the skipped and cancelled steps that
// are never stored). Each rule has one home: Readiness says whether a step
// can start, RetriesLeft whether a failed attempt is retried. Each new step
// state is checked against the transition table in package status. Package
// store turns the decisions into conditional DynamoDB writes; DECISIONS.md
// ("Step engine") gives the argument for each invariant.
package runstate
