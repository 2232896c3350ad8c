// Command sweeper is the sweeper Lambda, run by an EventBridge schedule.
// Configuration: STEPFLOW_TABLE, STEPFLOW_QUEUE_URL (required),
// STEPFLOW_SWEEP_GRACE (a Go duration, default 1m), STEPFLOW_SWEEP_WORKERS
// (default 8), STEPFLOW_SWEEP_BUDGET (a Go duration, default 45s; a pass
// also stops 10 s before the function's timeout), and the store's
// STEPFLOW_INDEX_SHARDS and STEPFLOW_RETENTION_DAYS (see store.EnvOptions).
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/awsclient"
	"stepflow/internal/envconfig"
	"stepflow/internal/queue"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, errEnv := envconfig.Required("STEPFLOW_TABLE", "STEPFLOW_QUEUE_URL")
	grace, errGrace := envconfig.Duration("STEPFLOW_SWEEP_GRACE", time.Minute)
	workers, errWorkers := envconfig.Int("STEPFLOW_SWEEP_WORKERS", sweeper.DefaultWorkers)
	budget, errBudget := envconfig.Duration("STEPFLOW_SWEEP_BUDGET", sweeper.DefaultBudget)
	storeOpts, errStore := store.EnvOptions()
	if err := errors.Join(errEnv, errGrace, errWorkers, errBudget, errStore); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	sw := &sweeper.Sweeper{
		Store:   store.New(awsclient.DynamoDB(cfg, ""), env[0], storeOpts...),
		Queue:   &queue.SQS{Client: awsclient.SQS(cfg, ""), URL: env[1]},
		Grace:   grace,
		Workers: workers,
		Budget:  budget,
		Logger:  log,
	}
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) (sweeper.Report, error) {
		return sw.Sweep(ctx)
	})
}
