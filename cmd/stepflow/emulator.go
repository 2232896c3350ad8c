package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"stepflow/internal/devstack"
)

// emulatorCmd runs the kumo AWS emulator as a process of its own, so that
// data outlives a "stepflow dev" process pointed at it with
// AWS_ENDPOINT_URL. Data is kept in memory until the emulator stops. Like
// the embedded one, it answers only loopback host names and no browser.
func emulatorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	emu, err := devstack.StartEmulator()
	if err != nil {
		fmt.Fprintf(stderr, "stepflow emulator: %v\n", err)
		return 1
	}
	defer emu.Close()
	fmt.Fprintf(stdout, "AWS endpoint: %s\nUse it with: AWS_ENDPOINT_URL=%s go run ./cmd/stepflow dev\n", emu.URL, emu.URL)
	<-ctx.Done()
	return 0
}
