package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"stepflow/internal/bench"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	diamonds := fs.Int("diamonds", 200, "diamond runs (4 steps each)")
	orders := fs.Int("orders", 200, "order-processing runs (4 steps each)")
	conc := fs.Int("concurrency", 4, "step batches in flight")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rep, err := bench.Run(ctx, bench.Config{Diamonds: *diamonds, Orders: *orders, Concurrency: *conc, Timeout: *timeout})
	if err != nil {
		fmt.Fprintf(stderr, "stepflow bench: %v\n", err)
		return 1
	}
	rep.Print(stdout)
	return 0
}
