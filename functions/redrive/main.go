// Command redrive is the redrive Lambda, invoked on demand: it moves the
// dead-letter queue's messages back to the work queue and returns
// {"moved": n}. Configuration: STEPFLOW_QUEUE_URL, STEPFLOW_DLQ_URL.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"stepflow/internal/awsclient"
	"stepflow/internal/envconfig"
	"stepflow/internal/redrive"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	env, err := envconfig.Required("STEPFLOW_QUEUE_URL", "STEPFLOW_DLQ_URL")
	if err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	q := redrive.Queues{Client: awsclient.SQS(cfg, ""), QueueURL: env[0], DLQURL: env[1]}
	lambda.Start(func(ctx context.Context) (map[string]int, error) {
		n, err := q.Redrive(ctx)
		log.InfoContext(ctx, "redrive", "moved", n, "error", err)
		return map[string]int{"moved": n}, err
	})
}
