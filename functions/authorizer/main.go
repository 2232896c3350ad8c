// Command authorizer is the API Gateway Lambda authorizer: it checks the
// bearer token (authentication only) before a request reaches the API. The
// API Lambda checks the token again and enforces its role, with the same
// code that runs locally.
// Configuration: STEPFLOW_TOKEN_TABLE (it reads nothing else).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/envconfig"
	"stepflow/internal/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, err := envconfig.Required("STEPFLOW_TOKEN_TABLE")
	if err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	tokens := store.NewTokens(awsclient.DynamoDB(cfg, ""), env[0])
	lambda.Start(auth.LambdaAuthorizer(auth.Authenticator{Tokens: tokens}, log))
}
