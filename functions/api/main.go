// Command api is the API Lambda: API Gateway HTTP API events in, the
// Stepflow HTTP API out. Configuration: STEPFLOW_TABLE,
// STEPFLOW_TOKEN_TABLE (read only) and STEPFLOW_QUEUE_URL (required), STEPFLOW_DLQ_URL (enables POST /redrive),
// STEPFLOW_CORS_ORIGINS (comma-separated; unset on AWS, where API Gateway
// does CORS), STEPFLOW_RUNS_PER_MINUTE (runs a caller may start per minute,
// default 60), STEPFLOW_INDEX_SHARDS and STEPFLOW_RETENTION_DAYS (see
// store.EnvOptions). Every route but GET /healthz and POST /callbacks/{token}
// requires a token (see stepflow token create).
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/envconfig"
	"stepflow/internal/queue"
	"stepflow/internal/ratelimit"
	"stepflow/internal/redrive"
	"stepflow/internal/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, errEnv := envconfig.Required("STEPFLOW_TABLE", "STEPFLOW_TOKEN_TABLE", "STEPFLOW_QUEUE_URL")
	runsPerMinute, errRuns := envconfig.Int("STEPFLOW_RUNS_PER_MINUTE", 60)
	storeOpts, errStore := store.EnvOptions()
	if err := errors.Join(errEnv, errRuns, errStore); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	table, tokenTable, queueURL := env[0], env[1], env[2]
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	sq := awsclient.SQS(cfg, "")
	var redriver api.Redriver
	if dlq := os.Getenv("STEPFLOW_DLQ_URL"); dlq != "" {
		redriver = redrive.Queues{Client: sq, DLQURL: dlq, QueueURL: queueURL}
	}
	db := awsclient.DynamoDB(cfg, "")
	st := store.New(db, table, storeOpts...)
	h := api.New(api.Config{
		Store:          st,
		Auth:           auth.Authenticator{Tokens: store.NewTokens(db, tokenTable)},
		Limiter:        &ratelimit.Blocks{Counter: st},
		RunsPerMinute:  runsPerMinute,
		Starter:        engine.Starter{Queue: &queue.SQS{Client: sq, URL: queueURL}},
		Redriver:       redriver,
		Logger:         log,
		AllowedOrigins: api.SplitOrigins(os.Getenv("STEPFLOW_CORS_ORIGINS")),
	})
	lambda.Start(api.Lambda(h))
}
