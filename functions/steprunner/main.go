// Command steprunner is the step-runner Lambda: SQS batches of step
// messages in, partial batch failures out. Configuration: STEPFLOW_TABLE,
// STEPFLOW_QUEUE_URL (required); STEPFLOW_RETRY_BASE and STEPFLOW_RETRY_CAP
// (Go durations, default 1s and 1m); STEPFLOW_QUEUE_VISIBILITY, the work
// queue's visibility timeout (default 30s), above which the runner keeps a
// message hidden for its step's lease; STEPFLOW_HTTP_ALLOW, the hosts http
// steps may call (comma-separated, see httpstep.Policy; empty: none); and
// STEPFLOW_SECRETS_PREFIX, the Parameter Store path of {{secrets.NAME}}.
package main

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"stepflow/internal/awsclient"
	"stepflow/internal/deploy"
	"stepflow/internal/engine"
	"stepflow/internal/envconfig"
	"stepflow/internal/httpstep"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/secrets"
	"stepflow/internal/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	policy := retry.Default(rand.Float64)
	env, errEnv := envconfig.Required("STEPFLOW_TABLE", "STEPFLOW_QUEUE_URL", deploy.EnvSecretsPrefix)
	base, errBase := envconfig.Duration("STEPFLOW_RETRY_BASE", policy.Base)
	capDelay, errCap := envconfig.Duration("STEPFLOW_RETRY_CAP", policy.Cap)
	visibility, errVis := envconfig.Duration("STEPFLOW_QUEUE_VISIBILITY", 30*time.Second)
	allow := httpstep.Policy{Allow: httpstep.ParseAllowList(os.Getenv(deploy.EnvHTTPAllow))}
	storeOpts, errStore := store.EnvOptions()
	if err := errors.Join(errEnv, errBase, errCap, errVis, errStore, allow.Validate()); err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	policy.Base, policy.Cap = base, capDelay
	cfg, err := awsclient.FromEnv(context.TODO())
	if err != nil {
		log.Error("load aws config", "error", err)
		os.Exit(1)
	}
	sec, err := secrets.NewSSM(ssm.NewFromConfig(cfg), secrets.SSMConfig{Prefix: env[2]})
	if err != nil {
		log.Error("configure secrets", "error", err)
		os.Exit(1)
	}
	work := &queue.SQS{Client: awsclient.SQS(cfg, ""), URL: env[1]}
	eng, err := engine.New(engine.Config{
		Store:           store.New(awsclient.DynamoDB(cfg, ""), env[0], storeOpts...),
		Queue:           work,
		Task:            engine.Simulated{Rand: rand.Float64},
		HTTP:            httpstep.New(allow),
		Secrets:         sec,
		Retry:           policy,
		Logger:          log,
		Visibility:      work,
		QueueVisibility: visibility,
	})
	if err != nil {
		log.Error("configure engine", "error", err)
		os.Exit(1)
	}
	lambda.Start(eng.HandleSQS)
}
