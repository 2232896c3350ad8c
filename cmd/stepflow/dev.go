package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"stepflow/internal/api"
	"stepflow/internal/devstack"
)

func dev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address of the API")
	table := fs.String("table", envOr("STEPFLOW_TABLE", "stepflow"), "DynamoDB table name")
	origins := fs.String("cors-origins", os.Getenv("STEPFLOW_CORS_ORIGINS"), "comma-separated extra origins allowed by CORS")
	jsonLogs := fs.Bool("json-logs", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	st, err := devstack.Start(ctx, devstack.Config{
		Addr: *addr, Table: *table, ExtraOrigins: api.SplitOrigins(*origins), Logger: log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "stepflow dev: %v\n", err)
		return 1
	}
	where := "embedded kumo emulator (in memory; data is lost on exit)"
	if !st.Embedded {
		where = "external endpoint"
	}
	fmt.Fprintf(stdout, "Stepflow is running.\n  API:          %s\n  AWS endpoint: %s (%s)\n  Table:        %s\nPress Ctrl-C to stop.\n",
		st.URL, st.Endpoint, where, *table)
	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping...")
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "stepflow dev: stop: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Stopped.")
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
