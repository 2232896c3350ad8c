package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/devstack"
	"stepflow/internal/retry"
)

func dev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the API")
	table := fs.String("table", envOr("STEPFLOW_TABLE", "stepflow"), "DynamoDB table name")
	origins := fs.String("cors-origins", os.Getenv("STEPFLOW_CORS_ORIGINS"), "comma-separated extra origins allowed by CORS")
	hosts := fs.String("allowed-hosts", os.Getenv("STEPFLOW_ALLOWED_HOSTS"), "comma-separated host names the server answers besides loopback names (and IP addresses when --addr is not loopback)")
	jsonLogs := fs.Bool("json-logs", false, "log JSON instead of text")
	concurrency := fs.Int("concurrency", 4, "step batches processed at once (the event source mapping's maximum concurrency)")
	batch := fs.Int("batch-size", 10, "messages per batch, 1 to 10")
	visibility := fs.Duration("visibility-timeout", 30*time.Second, "work queue visibility timeout")
	retryBase := fs.Duration("retry-base", time.Second, "retry backoff base")
	retryCap := fs.Duration("retry-cap", time.Minute, "retry backoff cap (at most 15m)")
	leaseMargin := fs.Duration("lease-margin", 30*time.Second, "added to a step's duration to form its lease; a runner silent longer is presumed dead")
	runsPerMinute := fs.Int("runs-per-minute", 120, "runs each caller may start per minute")
	maxReceive := fs.Int("max-receive-count", 5, "receives before a message goes to the dead-letter queue")
	sweepEvery := fs.Duration("sweep-interval", 30*time.Second, "how often the sweeper runs")
	sweepGrace := fs.Duration("sweep-grace", time.Minute, "how long a ready step may wait for its message before the sweeper resends it")
	noAutoSignIn := fs.Bool("no-auto-signin", false, "do not sign the dashboard in by itself; it asks for a token")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	policy := retry.Policy{Base: *retryBase, Cap: *retryCap, Rand: rand.Float64}
	if err := policy.Validate(); err != nil {
		fmt.Fprintf(stderr, "stepflow dev: %v\n", err)
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	st, err := devstack.Start(ctx, devstack.Config{
		Addr: *addr, Table: *table, ExtraOrigins: api.SplitOrigins(*origins), AllowedHosts: splitList(*hosts), Logger: log,
		Concurrency: *concurrency, BatchSize: *batch, VisibilityTimeout: *visibility, Retry: &policy,
		MaxReceiveCount: *maxReceive, SweepInterval: *sweepEvery, SweepGrace: *sweepGrace, LeaseMargin: *leaseMargin,
		RunsPerMinute: *runsPerMinute, NoAutoSignIn: *noAutoSignIn,
	})
	if err != nil {
		fmt.Fprintf(stderr, "stepflow dev: %v\n", err)
		return 1
	}
	printStarted(stdout, st, *table)
	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping...")
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "stepflow dev: stop: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Stopped.")
	return 0
}

// printStarted tells the user where everything is and gives the lines to
// paste into another shell: the CLI's settings, a curl call, and how to
// make more tokens for this stack's table.
func printStarted(w io.Writer, st *devstack.Stack, table string) {
	signIn := "paste the token below on the sign-in page"
	if st.AutoSignIn {
		signIn = "signs in by itself on this machine"
	}
	note := ""
	if st.Embedded {
		note = "  (embedded kumo emulator: in memory, data is lost on exit)\n"
	}
	fmt.Fprintf(w, `Stepflow is running.
  Dashboard: %s/ (%s)
  API:       %s
  DynamoDB:  %s (table %s)
  SQS:       %s
  DLQ:       %s
%s  Token:     %s (operator, valid 24h)

In another shell:
  export STEPFLOW_API=%s
  export STEPFLOW_TOKEN=%s
  stepflow runs
  curl -H "Authorization: Bearer $STEPFLOW_TOKEN" "$STEPFLOW_API/runs"

More tokens for this stack (the table is on the local DynamoDB endpoint):
  AWS_ENDPOINT_URL_DYNAMODB=%s stepflow token create --token-table %s --name NAME --role reader
Press Ctrl-C to stop.
`, st.URL, signIn, st.URL, st.DynamoDB, table, onEndpoint(st.QueueURL, st.SQS), onEndpoint(st.DLQURL, st.SQS),
		note, st.Token, st.URL, st.Token, st.DynamoDB, shellQuote(st.TokenTable))
}

// onEndpoint moves a queue URL onto the endpoint that serves it. Emulators
// name queues http://localhost:4566/... whatever their real address; SQS
// finds a queue by the URL's path, so the moved URL works with any client.
func onEndpoint(queueURL, endpoint string) string {
	q, err := url.Parse(queueURL)
	if err != nil {
		return queueURL
	}
	e, err := url.Parse(endpoint)
	if err != nil || e.Host == "" {
		return queueURL
	}
	q.Scheme, q.Host = e.Scheme, e.Host
	return q.String()
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
