// Command sweeper is the sweeper Lambda, run by an EventBridge schedule.
// Configuration: STEPFLOW_TABLE, STEPFLOW_QUEUE_URL (required),
// STEPFLOW_SWEEP_GRACE and STEPFLOW_RETRY_CAP (Go durations, default 1m).
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
	grace, errGrace := envconfig.Duration("STEPFLOW_SWEEP_GRACE", time.Minute)
	retryCap, errCap := envconfig.Duration("STEPFLOW_RETRY_CAP", time.Minute)
	if err := errors.Join(errGrace, errCap); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	sw := &sweeper.Sweeper{
		Store:    store.New(awsclient.DynamoDB(cfg, ""), table),
		Queue:    &queue.SQS{Client: awsclient.SQS(cfg, ""), URL: queueURL},
		Grace:    grace,
		RetryCap: retryCap,
		Logger:   log,
	}
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) (sweeper.Report, error) {
		return sw.Sweep(ctx)
	})
}
