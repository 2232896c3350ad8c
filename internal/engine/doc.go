// Package engine runs workflow steps. Each SQS message asks for one attempt
// of one step; Handle takes the step's lease with a conditional write, runs
// the task, and commits the result, the order effect and the counters that
// decide which dependents are ready in one DynamoDB transaction guarded by
// an idempotency record. Duplicated, stale and concurrent messages are
// harmless: every write is conditional on the state the runner read.
//
// HandleSQS adapts Handle to Lambda's SQS event source with partial batch
// failures; package poller feeds it locally.
package engine
