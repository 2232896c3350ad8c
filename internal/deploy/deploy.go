// Package deploy holds the figures of the AWS deployment that code outside
// infra/ needs too: the bench prices Lambda time at the memory the stack
// gives each function and runs the sweeper on the stack's schedule, and
// the functions read the settings the stack gives them under the names
// here. The CDK app (infra/, its own module with replace stepflow => ../)
// builds the stack from these constants, so each figure is stated once.
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

// Environment variables the stack sets on the step runner.
const (
	// EnvHTTPAllow holds the stack parameter HttpAllowList: the
	// comma-separated entries of the http steps' allow-list (see
	// httpstep.Policy; "*" admits any public host). Empty: http steps may
	// call nothing.
	EnvHTTPAllow = "STEPFLOW_HTTP_ALLOW"
	// EnvSecretsPrefix holds the SSM parameter path under which the step
	// runner reads {{secrets.NAME}} (see SecretsPrefix); the runner's IAM
	// policy allows ssm:GetParameter under it and nowhere else.
	EnvSecretsPrefix = "STEPFLOW_SECRETS_PREFIX"
)

// SecretsPrefix is the path of a stack's secrets in SSM Parameter Store:
// the secret NAME of stack Stepflow is the SecureString parameter
// /stepflow/Stepflow/secrets/NAME.
func SecretsPrefix(stackName string) string {
	return "/stepflow/" + stackName + "/secrets/"
}
