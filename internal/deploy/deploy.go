// Package deploy holds the figures of the AWS deployment that code outside
// infra/ needs too: the bench prices Lambda time at the memory the stack
// gives each function and runs the sweeper on the stack's schedule. The CDK
// app (infra/, its own module with replace stepflow => ../) builds the stack
// from these constants, so each figure is stated once.
package deploy

import "time"

// Memory of the Lambdas the bench prices, in MB.
const (
	StepRunnerMemoryMB = 256
	APIMemoryMB        = 256
	SweeperMemoryMB    = 256
)

// SweepInterval is how often EventBridge invokes the sweeper.
const SweepInterval = time.Minute
