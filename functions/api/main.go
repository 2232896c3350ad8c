// Command api is the API Lambda: API Gateway HTTP API events in, the
// Stepflow HTTP API out. Configuration: STEPFLOW_TABLE and
// STEPFLOW_QUEUE_URL (required), STEPFLOW_DLQ_URL (enables POST /redrive),
// STEPFLOW_CORS_ORIGINS (comma-separated), STEPFLOW_RUNS_PER_MINUTE (runs a
// caller may start per minute, default 60). Every route but GET /healthz
// requires a token (see stepflow token create).
package main

import (
	"context"
	"log/slog"
	"os"
	"strconv"

	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/queue"
	"stepflow/internal/redrive"
	"stepflow/internal/store"
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
	sq := awsclient.SQS(cfg, "")
	var redriver api.Redriver
	if dlq := os.Getenv("STEPFLOW_DLQ_URL"); dlq != "" {
		redriver = redrive.Queues{Client: sq, DLQURL: dlq, QueueURL: queueURL}
	}
	runsPerMinute, err := strconv.Atoi(envOr("STEPFLOW_RUNS_PER_MINUTE", "60"))
	if err != nil || runsPerMinute < 1 {
		log.Error("STEPFLOW_RUNS_PER_MINUTE must be a positive integer")
		os.Exit(1)
	}
	st := store.New(awsclient.DynamoDB(cfg, ""), table)
	h := api.New(api.Config{
		Store:          st,
		Auth:           auth.Authenticator{Tokens: st},
		Limiter:        st,
		RunsPerMinute:  runsPerMinute,
		Starter:        engine.Starter{Queue: &queue.SQS{Client: sq, URL: queueURL}},
		Redriver:       redriver,
		Logger:         log,
		AllowedOrigins: api.SplitOrigins(os.Getenv("STEPFLOW_CORS_ORIGINS")),
	})
	lambda.Start(api.Lambda(h))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
