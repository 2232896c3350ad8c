package main

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// redriveCmd asks a running Stepflow API to move dead-lettered messages
// back to the work queue.
func redriveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	n, err := api.connect().Redrive(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow redrive: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "moved %d message(s) from the dead-letter queue to the work queue\n", n)
	return 0
}
