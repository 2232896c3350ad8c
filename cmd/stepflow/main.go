// Command stepflow is Stepflow's command-line tool. "stepflow dev" runs the
// whole stack locally; see README for the other commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage: stepflow <command> [flags]

Commands:
  dev         run the whole stack locally (dashboard and API on 127.0.0.1:8080)
  run         submit a workflow file and start a run (--input JSON; --watch shows live progress)
  runs        list recent runs
  run-status  show one run and its steps
  cancel      cancel a pending or running run: stepflow cancel RUN
  retry       run a failed or cancelled run again: its failed and unstarted steps (--input JSON: a new input)
  approve     complete a waiting approval step: stepflow approve RUN STEP [--output JSON]
  reject      fail a waiting approval step: stepflow reject RUN STEP --error TEXT
  redrive     move dead-lettered step messages back to the work queue
  token       create, list or revoke API tokens (stepflow token create --name NAME --role operator)
  emulator  run the kumo AWS emulator as its own process
  bench     measure the step engine on a local endpoint
  demo-services  serve demo payment, shipment and notification services for "http" steps (127.0.0.1:8090)

Run "stepflow <command> -h" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "dev":
		return dev(ctx, args[1:], stdout, stderr)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "runs":
		return runsCmd(ctx, args[1:], stdout, stderr)
	case "run-status":
		return runStatusCmd(ctx, args[1:], stdout, stderr)
	case "cancel":
		return cancelCmd(ctx, args[1:], stdout, stderr)
	case "retry":
		return retryCmd(ctx, args[1:], stdout, stderr)
	case "approve":
		return approveCmd(ctx, args[1:], stdout, stderr)
	case "reject":
		return rejectCmd(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCmd(ctx, args[1:], stdout, stderr)
	case "redrive":
		return redriveCmd(ctx, args[1:], stdout, stderr)
	case "emulator":
		return emulatorCmd(ctx, args[1:], stdout, stderr)
	case "demo-services":
		return demoServicesCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "stepflow: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
