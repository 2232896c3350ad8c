// Command sweeper is the sweeper Lambda, run by an EventBridge schedule.
// Configuration: STEPFLOW_TABLE, STEPFLOW_QUEUE_URL (required),
// STEPFLOW_SWEEP_GRACE and STEPFLOW_RETRY_CAP (Go durations, default 1m).
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/awsclient"
	"stepflow/internal/queue"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	table, queueURL := os.Getenv("STEPFLOW_TABLE"), os.Getenv("STEPFLOW_QUEUE_URL")
	if table == "" || queueURL == "" {
		log.Error("STEPFLOW_TABLE and STEPFLOW_QUEUE_URL must be set")
		os.Exit(1)
	}
	cfg, err := awsclient.Load(context.TODO(), awsclient.EnvEndpoint("DYNAMODB") != "")
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	sw := &sweeper.Sweeper{
		Store:    store.New(awsclient.DynamoDB(cfg, ""), table),
		Queue:    &queue.SQS{Client: awsclient.SQS(cfg, ""), URL: queueURL},
		Grace:    durationEnv("STEPFLOW_SWEEP_GRACE", time.Minute),
		RetryCap: durationEnv("STEPFLOW_RETRY_CAP", time.Minute),
		Logger:   log,
	}
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) (sweeper.Report, error) {
		return sw.Sweep(ctx)
	})
}

func durationEnv(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}
