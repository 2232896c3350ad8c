package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"stepflow/internal/bench"
	"stepflow/internal/deploy"
	"stepflow/internal/store"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	diamonds := fs.Int("diamonds", 200, "diamond runs (4 steps each) per pass")
	orders := fs.Int("orders", 200, "order-processing runs (4 steps each) per pass")
	conc := fs.Int("concurrency", 4, "step batches in flight (trickle passes: twice as many pollers of one message each)")
	latency := fs.Duration("latency", 5*time.Millisecond, "delay added to every AWS call of the latency-bound passes")
	stepSeconds := fs.Float64("step-seconds", 0.5, "step duration of the pass that prices a second of step duration")
	shapeSteps := fs.Int("shape-steps", 100, "steps of each scale shape (0: skip the scale section)")
	shapeTimeout := fs.Duration("shape-timeout", time.Minute, "give up on a scale shape after")
	sweep := fs.Duration("sweep-interval", deploy.SweepInterval, "sweeper schedule")
	shards := fs.Int("shards", store.DefaultShards, fmt.Sprintf("index shard count of the stores (1 to %d)", store.MaxShards))
	timeout := fs.Duration("timeout", 10*time.Minute, "give up on a pass of the main workload after")
	asJSON := fs.Bool("json", false, "write one JSON object instead of the report")
	verbose := fs.Bool("v", false, "log each pass to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *latency <= 0 {
		fmt.Fprintln(stderr, "stepflow bench: --latency must be positive")
		return 2
	}
	if *shapeSteps == 0 {
		*shapeSteps = -1
	} else if *shapeSteps < 4 || *shapeSteps > 100 {
		fmt.Fprintln(stderr, "stepflow bench: --shape-steps must be 0 or 4 to 100")
		return 2
	}
	if *shards < 1 || *shards > store.MaxShards {
		fmt.Fprintf(stderr, "stepflow bench: --shards must be 1 to %d\n", store.MaxShards)
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	rep, err := bench.Run(ctx, bench.Config{
		Diamonds: *diamonds, Orders: *orders, Concurrency: *conc, Latency: *latency, StepSeconds: *stepSeconds,
		ShapeSteps: *shapeSteps, ShapeTimeout: *shapeTimeout, Shards: *shards, SweepInterval: *sweep, Timeout: *timeout, Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "stepflow bench: %v\n", err)
		return 1
	}
	if *asJSON {
		if err := rep.JSON(stdout); err != nil {
			fmt.Fprintf(stderr, "stepflow bench: %v\n", err)
			return 1
		}
		return 0
	}
	rep.Print(stdout)
	return 0
}
