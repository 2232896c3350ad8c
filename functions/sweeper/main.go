// Command sweeper is the sweeper Lambda, run by an EventBridge schedule.
// Configuration: STEPFLOW_TABLE, STEPFLOW_QUEUE_URL (required),
// STEPFLOW_SWEEP_GRACE (a Go duration, default 1m).
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
	if err := errors.Join(errEnv, errGrace); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	sw := &sweeper.Sweeper{
		Store:  store.New(awsclient.DynamoDB(cfg, ""), env[0]),
		Queue:  &queue.SQS{Client: awsclient.SQS(cfg, ""), URL: env[1]},
		Grace:  grace,
		Logger: log,
	}
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) (sweeper.Report, error) {
		return sw.Sweep(ctx)
	})
}
