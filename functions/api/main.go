// Command api is the API Lambda: API Gateway HTTP API events in, the
// Stepflow HTTP API out. Configuration: STEPFLOW_TABLE (required) and
// STEPFLOW_CORS_ORIGINS (comma-separated).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	table := os.Getenv("STEPFLOW_TABLE")
	if table == "" {
		log.Error("STEPFLOW_TABLE is not set")
		os.Exit(1)
	}
	cfg, err := awsclient.Load(context.TODO(), "")
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	h := api.New(api.Config{
		Store:          store.New(awsclient.DynamoDB(cfg, awsclient.Local("")), table),
		Logger:         log,
		AllowedOrigins: api.SplitOrigins(os.Getenv("STEPFLOW_CORS_ORIGINS")),
	})
	lambda.Start(api.Lambda(h))
}
