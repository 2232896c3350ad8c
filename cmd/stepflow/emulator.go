package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/sivchari/kumo"
)

// emulatorCmd runs the kumo AWS emulator as a process of its own, so that
// data outlives a "stepflow dev" process pointed at it with
// AWS_ENDPOINT_URL. Data is kept in memory until the emulator stops.
func emulatorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv := kumo.NewServer()
	defer srv.Close()
	fmt.Fprintf(stdout, "AWS endpoint: %s\nUse it with: AWS_ENDPOINT_URL=%s go run ./cmd/stepflow dev\n", srv.URL, srv.URL)
	<-ctx.Done()
	return 0
}
