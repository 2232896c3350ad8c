// Package devstack runs Stepflow locally: the same API handler the Lambda
// uses, against the embedded kumo emulator (zero setup) or against the
// endpoint in AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB (LocalStack,
// DynamoDB Local, a standalone kumo). It creates missing tables and leaves
// existing data alone, so a restart against a persistent endpoint resumes
// where it stopped.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sivchari/kumo"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/store"
)

// Config configures the local stack.
type Config struct {
	// Addr is the listen address of the API, such as "127.0.0.1:8080".
	Addr string
	// Table is the DynamoDB table name.
	Table string
	// Endpoint, if set, overrides the AWS endpoint (tests use this);
	// otherwise the standard variables apply, and with none set the
	// embedded emulator is started.
	Endpoint string
	// ExtraOrigins are CORS origins allowed besides the stack's own.
	ExtraOrigins []string
	Logger       *slog.Logger
}

// Stack is a running local stack.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// Endpoint is the AWS endpoint in use; Embedded tells whether it is the
	// in-process emulator.
	Endpoint string
	Embedded bool

	srv    *http.Server
	ln     net.Listener
	done   chan error
	closer func()
}

// Start starts the stack and returns once the API is listening.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st := &Stack{Endpoint: cfg.Endpoint, closer: func() {}}
	if st.Endpoint == "" && !awsclient.Local("") {
		emu := kumo.NewServer()
		st.Endpoint, st.Embedded, st.closer = emu.URL, true, emu.Close
	}
	awsCfg, err := awsclient.Load(ctx, st.Endpoint)
	if err != nil {
		st.closer()
		return nil, err
	}
	if st.Endpoint == "" {
		st.Endpoint = endpointFromEnv()
	}
	db := awsclient.DynamoDB(awsCfg, true)
	if err := store.EnsureTable(ctx, db, cfg.Table); err != nil {
		st.closer()
		return nil, fmt.Errorf("prepare table on %s: %w", st.Endpoint, err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		st.closer()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	st.ln = ln
	st.URL = "http://" + ln.Addr().String()
	origins := append([]string{st.URL}, cfg.ExtraOrigins...)
	if _, port, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		origins = append(origins, "http://localhost:"+port)
	}
	h := api.New(api.Config{
		Store:          store.New(db, cfg.Table),
		Logger:         cfg.Logger,
		AllowedOrigins: origins,
	})
	st.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	st.done = make(chan error, 1)
	go func() { st.done <- st.srv.Serve(ln) }()
	return st, nil
}

func endpointFromEnv() string {
	if e := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"); e != "" {
		return e
	}
	return os.Getenv("AWS_ENDPOINT_URL")
}

// Close stops the API, letting requests in flight finish for up to five
// seconds, then stops the embedded emulator if there is one.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	s.closer()
	return err
}
