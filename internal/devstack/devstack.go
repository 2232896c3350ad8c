// Package devstack runs Stepflow locally: the same API handler and step
// engine the Lambdas use, with a poller standing in for Lambda's SQS event
// source mapping, and the dashboard at /. Each service (DynamoDB, SQS) uses its endpoint from
// AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL; any service without one
// uses the kumo emulator embedded in the process. Missing tables and queues
// are created and existing data is left alone, so a restart against a
// persistent endpoint resumes where it stopped.
//
// The stack is for this machine, and web pages on other sites must not
// reach it by DNS rebinding (a name of theirs pointed at 127.0.0.1). Its
// server answers only requests whose Host header is a loopback name
// (localhost, *.localhost, 127.0.0.1, [::1], any port; see package
// loopback) and refuses others with 421 before any handler runs. Bound to a
// non-loopback address on purpose (Addr "0.0.0.0:8080", to be reached from
// a VM or another machine), it also answers any IP address as the Host,
// which cannot be rebound, and the names in AllowedHosts: a name it is
// reached by, such as "devbox.lan", must be listed. The embedded emulator
// checks no credentials, so it is held tighter (Emulator): loopback names
// only, whatever Addr is, and no request from a web browser at all.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"stepflow/frontend"
	"stepflow/internal/api"
	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/id"
	"stepflow/internal/loopback"
	"stepflow/internal/poller"
	"stepflow/internal/queue"
	"stepflow/internal/ratelimit"
	"stepflow/internal/redrive"
	"stepflow/internal/retry"
	"stepflow/internal/secrets"
	"stepflow/internal/store"
	"stepflow/internal/sweeper"
)

// Config configures the local stack. Zero values select the defaults.
type Config struct {
	// Addr is the listen address of the API, such as "127.0.0.1:8080".
	Addr string
	// Table and Queue name the DynamoDB table and the SQS work queue.
	Table, Queue string
	// TokenTable names the table of API tokens (default Table + "-tokens").
	TokenTable string
	// Endpoint, if set, is used for every service (tests use this);
	// otherwise see the package comment.
	Endpoint string
	// ExtraOrigins are CORS origins allowed besides the stack's own.
	ExtraOrigins []string
	// AllowedHosts are host names the server answers besides loopback
	// names (and, on a non-loopback address, IP addresses); see the package
	// comment.
	AllowedHosts []string
	// Concurrency and BatchSize configure the step runner's poller.
	Concurrency, BatchSize int
	// VisibilityTimeout of the work queue (default 30s).
	VisibilityTimeout time.Duration
	// Retry is the step retry policy (default retry.Default).
	Retry *retry.Policy
	// MaxReceiveCount sends a message to the dead-letter queue after this
	// many receives (default 5).
	MaxReceiveCount int
	// SweepInterval is how often the sweeper runs (default 30s); SweepGrace
	// is how long a ready step may wait for its message (default 1m).
	SweepInterval, SweepGrace time.Duration
	// LeaseMargin is added to a step's duration to form its lease
	// (default 30s).
	LeaseMargin time.Duration
	// RunsPerMinute caps the runs each caller starts per minute (default
	// 120).
	RunsPerMinute int
	// NoAutoSignIn keeps the local token out of the dashboard's
	// config.json even on a loopback address.
	NoAutoSignIn bool
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// how long the local server waits on a client: for its headers, for the
	// whole request, for the handler and response, and between requests on
	// a keep-alive connection (defaults 5s, 30s, 60s and 2m).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Task runs task steps (default engine.Simulated).
	Task engine.Task
	// HTTP makes http steps' requests (default: an httpstep.Client under
	// httpstep.LocalPolicy, which lets steps call services on this
	// machine); Secrets resolves their {{secrets.NAME}} (default: the
	// STEPFLOW_SECRET_<NAME> environment variables).
	HTTP    engine.HTTPClient
	Secrets engine.Secrets
	// Hop is the longest delay of one step message (default 15m, SQS's
	// limit): a longer wait is a chain of messages.
	Hop    time.Duration
	Logger *slog.Logger
}

// Stack is a running local stack.
type Stack struct {
	// URL is the API's base URL.
	URL string
	// DynamoDB and SQS are the endpoints in use; Embedded tells whether
	// the in-process emulator serves at least one of them.
	DynamoDB, SQS string
	Embedded      bool
	QueueURL      string
	DLQURL        string
	// TokenTable is the table of API tokens in use.
	TokenTable string
	// Token is an operator token created at start for local use.
	Token string
	// AutoSignIn tells whether the dashboard signs in with Token by itself.
	AutoSignIn bool

	srv        *http.Server
	done       chan error
	closeOnce  sync.Once
	closeErr   error
	stopPoller context.CancelFunc
	pollerDone sync.WaitGroup
	closers    []func()
}

// Start starts the stack and returns once the API is listening and the
// runner is polling.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Queue == "" {
		cfg.Queue = cfg.Table + "-steps"
	}
	if cfg.TokenTable == "" {
		cfg.TokenTable = cfg.Table + "-tokens"
	}
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.MaxReceiveCount == 0 {
		cfg.MaxReceiveCount = queue.DefaultMaxReceiveCount
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.SweepGrace == 0 {
		cfg.SweepGrace = time.Minute
	}
	if cfg.LeaseMargin == 0 {
		cfg.LeaseMargin = 30 * time.Second
	}
	if cfg.RunsPerMinute == 0 {
		cfg.RunsPerMinute = 120
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	st := &Stack{DynamoDB: cfg.Endpoint, SQS: cfg.Endpoint, TokenTable: cfg.TokenTable}
	defer func() {
		if err != nil {
			st.closeAll()
		}
	}()
	if st.DynamoDB == "" {
		st.DynamoDB = awsclient.EnvEndpoint("DYNAMODB")
	}
	if st.SQS == "" {
		st.SQS = awsclient.EnvEndpoint("SQS")
	}
	if st.DynamoDB == "" || st.SQS == "" {
		emu, err := StartEmulator()
		if err != nil {
			return nil, err
		}
		st.closers = append(st.closers, func() { _ = emu.Close() })
		st.Embedded = true
		if st.DynamoDB == "" {
			st.DynamoDB = emu.URL
		}
		if st.SQS == "" {
			st.SQS = emu.URL
		}
	}
	awsCfg, err := awsclient.Load(ctx, true)
	if err != nil {
		return nil, err
	}
	db := awsclient.DynamoDB(awsCfg, st.DynamoDB)
	if err := store.EnsureTable(ctx, db, cfg.Table); err != nil {
		return nil, fmt.Errorf("prepare table on %s: %w", st.DynamoDB, err)
	}
	if err := store.EnsureTokenTable(ctx, db, cfg.TokenTable); err != nil {
		return nil, fmt.Errorf("prepare token table on %s: %w", st.DynamoDB, err)
	}
	tokens := store.NewTokens(db, cfg.TokenTable)
	sq := awsclient.SQS(awsCfg, st.SQS)
	qs, err := queue.EnsureQueues(ctx, sq, cfg.Queue, queue.Settings{VisibilityTimeout: cfg.VisibilityTimeout, MaxReceiveCount: cfg.MaxReceiveCount})
	if err != nil {
		return nil, fmt.Errorf("prepare queue on %s: %w", st.SQS, err)
	}
	st.QueueURL, st.DLQURL = qs.URL, qs.DLQURL

	storeOpts, err := store.EnvOptions()
	if err != nil {
		return nil, err
	}
	sto := store.New(db, cfg.Table, storeOpts...)
	policy := retry.Default(rand.Float64)
	if cfg.Retry != nil {
		policy = *cfg.Retry
	}
	task := cfg.Task
	if task == nil {
		task = engine.Simulated{Rand: rand.Float64}
	}
	work := &queue.SQS{Client: sq, URL: st.QueueURL}
	if cfg.HTTP == nil {
		cfg.HTTP = httpstep.New(httpstep.LocalPolicy())
	}
	if cfg.Secrets == nil {
		cfg.Secrets = secrets.Env{}
	}
	eng, err := engine.New(engine.Config{
		Store: sto, Queue: work, Task: task, HTTP: cfg.HTTP, Secrets: cfg.Secrets, Hop: cfg.Hop,
		Retry: policy, Logger: cfg.Logger,
		Visibility: work, QueueVisibility: cfg.VisibilityTimeout, LeaseMargin: cfg.LeaseMargin,
	})
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	st.URL = "http://" + ln.Addr().String()
	origins := append([]string{st.URL}, cfg.ExtraOrigins...)
	if _, port, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		origins = append(origins, "http://localhost:"+port)
	}
	// The same authentication as on AWS: a fresh operator token for this
	// session, valid for a day.
	tok, cred, err := auth.New(id.NewGenerator(nil, nil), "stepflow dev", auth.Operator, time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := tokens.PutTokenIfAbsent(ctx, tok); err != nil {
		return nil, fmt.Errorf("store the local token: %w", err)
	}
	st.Token = cred
	h := api.New(api.Config{
		Store: sto, Starter: engine.Starter{Queue: work}, Logger: cfg.Logger, AllowedOrigins: origins,
		Redriver: redrive.Queues{Client: sq, DLQURL: st.DLQURL, QueueURL: st.QueueURL},
		Auth:     auth.Authenticator{Tokens: tokens}, Limiter: &ratelimit.Blocks{Counter: sto}, RunsPerMinute: cfg.RunsPerMinute,
		LeaseMargin: cfg.LeaseMargin, SweepGrace: cfg.SweepGrace,
	})
	dashCfg := frontend.Config{}
	if ip := ln.Addr().(*net.TCPAddr).IP; ip.IsLoopback() && !cfg.NoAutoSignIn {
		// Only processes on this machine can reach a loopback address, and
		// they could read the printed token anyway.
		dashCfg.Token, st.AutoSignIn = cred, true
	}
	dash := frontend.Handler(dashCfg)
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && frontend.Serves(r.URL.Path) {
			dash.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	hosts := loopback.Hosts{Names: cfg.AllowedHosts}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		// Bound to a public or an unspecified address on purpose: it is
		// reached by one of its addresses, which cannot be rebound.
		hosts.IPs = true
	}
	st.srv = &http.Server{
		Handler:           loopback.Guard(hosts, root),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}
	st.done = make(chan error, 1)
	go func() { st.done <- st.srv.Serve(ln) }()

	pctx, cancel := context.WithCancel(context.Background())
	st.stopPoller = cancel
	st.pollerDone.Add(2)
	go func() {
		defer st.pollerDone.Done()
		poller.Run(pctx, poller.Config{
			Client: sq, QueueURL: st.QueueURL, Handler: eng.HandleSQS,
			BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency, Logger: cfg.Logger,
		})
	}()
	sw := &sweeper.Sweeper{Store: sto, Queue: work, Grace: cfg.SweepGrace, Logger: cfg.Logger}
	go func() {
		defer st.pollerDone.Done()
		t := time.NewTicker(cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				if rep, err := sw.Sweep(pctx); err != nil && pctx.Err() == nil {
					cfg.Logger.Warn("sweep failed", "error", err)
				} else if rep.Finished+rep.Requeued > 0 {
					cfg.Logger.Info("sweep", "active_runs", rep.Runs, "finished", rep.Finished, "requeued", rep.Requeued)
				}
			}
		}
	}()
	return st, nil
}

// Close stops accepting requests (letting those in flight finish for up to
// five seconds), stops polling and sweeping and waits for the batches in
// flight, then stops the embedded emulator. Calling it again does nothing.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		s.stopPoller()
		s.pollerDone.Wait()
		s.closeAll()
		s.closeErr = err
	})
	return s.closeErr
}

func (s *Stack) closeAll() {
	for _, c := range s.closers {
		c()
	}
}
