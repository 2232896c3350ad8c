// Command infra is Stepflow's AWS CDK app. Build the Lambdas first
// (make build), then synthesize or deploy with the CDK CLI (make synth,
// make deploy). STEPFLOW_DELETION_PROTECTION=false lets the table be
// deleted with the stack.
package main

import (
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	NewStepflowStack(app, "Stepflow", &StackProps{
		StackProps: awscdk.StackProps{Env: &awscdk.Environment{
			Account: envPtr("CDK_DEFAULT_ACCOUNT"),
			Region:  envPtr("CDK_DEFAULT_REGION"),
		}},
		AssetDir:           "../build",
		FrontendDir:        "../frontend",
		DeletionProtection: os.Getenv("STEPFLOW_DELETION_PROTECTION") != "false",
	})
	app.Synth(nil)
}

func envPtr(name string) *string {
	if v := os.Getenv(name); v != "" {
		return jsii.String(v)
	}
	return nil
}
