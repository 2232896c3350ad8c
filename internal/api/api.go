package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/id"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
)

// MaxBodyBytes is the largest request body accepted (256 KiB).
const MaxBodyBytes = 256 << 10

// Paging limits for list endpoints.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Store is what the API needs from storage. Implementations return errors
// wrapping store.ErrNotFound, store.ErrConflict and store.ErrOrderNotFound
// for the conditions they name, and are safe for concurrent use.
type Store interface {
	CreateWorkflowIfAbsent(ctx context.Context, w wire.Workflow) error
	GetWorkflow(ctx context.Context, id string) (wire.Workflow, error)
	ListWorkflows(ctx context.Context, p store.Page) ([]wire.WorkflowSummary, string, error)
	// Plan returns a workflow and its plan (cached: workflows never change).
	Plan(ctx context.Context, workflowID string) (wire.Workflow, workflow.Plan, error)
	// CreateRunIfAbsent stores a new run with its input (nil: none).
	CreateRunIfAbsent(ctx context.Context, r runstate.State, input json.RawMessage) error
	GetRun(ctx context.Context, id string) (wire.RunDetail, error)
	ReadRun(ctx context.Context, id string, consistent bool) (runstate.State, []runstate.Failure, error)
	// ListRuns leaves out runs it cannot read, and names them.
	ListRuns(ctx context.Context, f store.RunFilter, p store.Page) (store.RunPage, error)
	// EndRunIfRunning and RetryRunIfEnded return ErrConflict when the run
	// changed since it was read (a write whose answer was lost but that
	// landed succeeds).
	EndRunIfRunning(ctx context.Context, e runstate.End) error
	RetryRunIfEnded(ctx context.Context, rs runstate.Reset) error
	CreateOrderIfAbsent(ctx context.Context, o wire.Order) error
	GetOrder(ctx context.Context, id string) (wire.Order, error)
	OrderHistory(ctx context.Context, orderID string, p store.Page) ([]wire.HistoryEntry, string, error)
	ListOrders(ctx context.Context, p store.Page) ([]wire.OrderSummary, string, error)
	// FindOrCreateWorkflow stores w, or returns the existing workflow
	// with an identical definition and true.
	FindOrCreateWorkflow(ctx context.Context, w wire.Workflow) (wire.Workflow, bool, error)
	// LoadRun reads a whole run and its order's status, consistently.
	LoadRun(ctx context.Context, ref store.RunRef) (runstate.State, status.OrderStatus, error)
	// CommitIfHeld writes a decision on a waiting approval (see
	// runstate.Commit).
	CommitIfHeld(ctx context.Context, c runstate.Commit, token string) error
	// CallbackFor names the waiting approval of a callback token's hash,
	// or returns ErrNotFound.
	CallbackFor(ctx context.Context, hash string) (store.Callback, error)
	// CallbackKey is the key callback tokens are derived from.
	CallbackKey(ctx context.Context) ([]byte, error)
	// LoadData reads a run's input and some of its steps' outputs.
	LoadData(ctx context.Context, runID string, gen int, input bool, steps []int) (store.RunData, error)
}

// Authenticator authenticates a request's Authorization header; its errors
// (auth.ErrMissing, ErrMalformed, ErrUnknown, ErrExpired, ErrRevoked) are
// 401s, anything else a 500.
type Authenticator interface {
	Authenticate(ctx context.Context, header string) (auth.Token, error)
}

// RunLimiter counts run starts per caller; ErrRateLimited means the caller
// reached limit starts this minute.
type RunLimiter interface {
	CountRunStartIfUnderLimit(ctx context.Context, caller string, limit int, now time.Time) error
}

// Redriver moves dead-lettered step messages back to the work queue, and
// tells how many messages the dead-letter queue holds (approximately,
// visible and in flight).
type Redriver interface {
	Redrive(ctx context.Context) (int, error)
	Depth(ctx context.Context) (int, error)
}

// RunStarter enqueues the steps of a new or retried run that can start. It
// is called after the run is stored; an error is logged and left to the
// sweeper.
type RunStarter interface {
	Start(ctx context.Context, r runstate.State, p workflow.Plan) error
}

// Config configures the API.
type Config struct {
	Store    Store
	Starter  RunStarter // optional
	Redriver Redriver   // optional; without it POST /redrive and GET /dlq are 404
	// Auth, if set, is required on every route but GET /healthz: readers
	// may GET, operators may also POST. Without it the API is open.
	Auth Authenticator
	// Limiter and RunsPerMinute cap the runs each caller starts (or
	// retries) per minute; 0 means no cap. CallbacksPerMinute caps the
	// POST /callbacks/{token} requests from one source address (default
	// DefaultCallbacksPerMinute), so that tokens cannot be guessed.
	Limiter            RunLimiter
	RunsPerMinute      int
	CallbacksPerMinute int
	Logger             *slog.Logger
	// AllowedOrigins are the origins allowed by CORS, such as
	// "https://d123.cloudfront.net". "*" allows any origin.
	AllowedOrigins []string
	// LeaseMargin and SweepGrace are the step runner's and the sweeper's
	// settings (default 30s and 1m): a run that has not ended and shows no
	// progress for longer than its longest step plus LeaseMargin plus
	// SweepGrace, outside retry backoffs, is reported as stalled.
	LeaseMargin, SweepGrace time.Duration
	// Now and IDs default to time.Now and a crypto-random generator.
	Now func() time.Time
	IDs *id.Generator
}

type server struct {
	Config
	mux *http.ServeMux
}

// New returns the API handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDs == nil {
		cfg.IDs = id.NewGenerator(cfg.Now, nil)
	}
	if cfg.LeaseMargin == 0 {
		cfg.LeaseMargin = 30 * time.Second
	}
	if cfg.SweepGrace == 0 {
		cfg.SweepGrace = time.Minute
	}
	if cfg.CallbacksPerMinute == 0 {
		cfg.CallbacksPerMinute = DefaultCallbacksPerMinute
	}
	s := &server{Config: cfg, mux: http.NewServeMux()}
	s.routes()
	var h http.Handler = http.HandlerFunc(s.serve)
	h = requireJSON(cfg.Logger, h)
	if cfg.Auth != nil {
		h = s.authorize(h)
	}
	h = http.MaxBytesHandler(h, MaxBodyBytes)
	h = cors(cfg.AllowedOrigins, h)
	return logRequests(cfg.Logger, h)
}

func (s *server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /me", s.me)
	s.mux.HandleFunc("POST /workflows", s.createOrReuseWorkflow)
	s.mux.HandleFunc("GET /workflows", s.listWorkflows)
	s.mux.HandleFunc("GET /workflows/{id}", s.getWorkflow)
	s.mux.HandleFunc("POST /workflows/{id}/runs", s.createRun)
	s.mux.HandleFunc("GET /runs", s.listRuns)
	s.mux.HandleFunc("GET /runs/stats", s.runStats)
	s.mux.HandleFunc("GET /runs/{id}", s.getRun)
	s.mux.HandleFunc("POST /runs/{id}/cancel", s.cancelRun)
	s.mux.HandleFunc("POST /runs/{id}/retry", s.retryRun)
	s.mux.HandleFunc("GET /runs/{id}/steps/{step}/output", s.stepOutput)
	s.mux.HandleFunc("POST /runs/{id}/steps/{step}/complete", s.completeStep)
	s.mux.HandleFunc("POST /runs/{id}/steps/{step}/fail", s.failStep)
	s.mux.HandleFunc("POST /callbacks/{token}", s.callback)
	if s.Redriver != nil {
		s.mux.HandleFunc("POST /redrive", s.redrive)
		s.mux.HandleFunc("GET /dlq", s.dlqDepth)
	}
	s.mux.HandleFunc("POST /orders", s.createOrder)
	s.mux.HandleFunc("GET /orders", s.listOrders)
	s.mux.HandleFunc("GET /orders/{id}", s.getOrder)
	s.mux.HandleFunc("GET /orders/{id}/history", s.orderHistory)
}

// serve routes a request, answering unknown routes (404) and wrong methods
// (405) with the same JSON error body as every other error.
func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		rec := &headerRecorder{header: http.Header{}}
		s.mux.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, r, s.Logger, &httpError{status: http.StatusMethodNotAllowed, msg: "method " + r.Method + " is not allowed on " + r.URL.Path})
		case http.StatusNotFound:
			writeError(w, r, s.Logger, &httpError{status: http.StatusNotFound, msg: "no route " + r.URL.Path})
		default: // a redirect to the cleaned path
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
		}
		return
	}
	s.mux.ServeHTTP(w, r)
}

// headerRecorder captures the status and headers of the mux's built-in
// 404, 405 and redirect responses, discarding their plain-text bodies.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.code = code }

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type callerKey struct{}

// roleKey holds the caller's role (absent when the API is open).
type roleKey struct{}

// operator reports whether the request's caller may write: an operator, or
// anyone when the API is open.
func (s *server) operator(r *http.Request) bool {
	if s.Auth == nil {
		return true
	}
	role, _ := r.Context().Value(roleKey{}).(auth.Role)
	return role == auth.Operator
}

// authorize requires valid credentials with a role that allows the
// request's method, on every route but GET /healthz.
func (s *server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/callbacks/") && r.Method == http.MethodPost {
			next.ServeHTTP(w, r) // the token in the path is the credential
			return
		}
		tok, err := s.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		switch {
		case errors.Is(err, auth.ErrMissing), errors.Is(err, auth.ErrMalformed), errors.Is(err, auth.ErrUnknown),
			errors.Is(err, auth.ErrExpired), errors.Is(err, auth.ErrRevoked):
			w.Header().Set("WWW-Authenticate", `Bearer realm="stepflow"`)
			writeError(w, r, s.Logger, &httpError{status: http.StatusUnauthorized, msg: "authentication required: " + err.Error()})
			return
		case err != nil:
			writeError(w, r, s.Logger, err)
			return
		case !tok.Role.Allows(r.Method):
			writeError(w, r, s.Logger, &httpError{status: http.StatusForbidden,
				msg: fmt.Sprintf("a %s token may only read; this needs an operator token", tok.Role)})
			return
		}
		ctx := context.WithValue(r.Context(), callerKey{}, tok.ID)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, roleKey{}, tok.Role)))
	})
}

// limitRunStart enforces the per-caller cap on run starts; it writes the
// error and returns false when the request must stop.
func (s *server) limitRunStart(w http.ResponseWriter, r *http.Request) bool {
	caller, _ := r.Context().Value(callerKey{}).(string)
	if s.Limiter == nil || s.RunsPerMinute <= 0 || caller == "" {
		return true
	}
	return s.allow(w, r, caller, s.RunsPerMinute, fmt.Sprintf("at most %d runs may be started per minute per caller", s.RunsPerMinute))
}

// allow counts one request against key's allowance of limit a minute; past
// it, it writes a 429 saying msg, with Retry-After at the next minute, and
// returns false, as it does after writing any other error.
func (s *server) allow(w http.ResponseWriter, r *http.Request, key string, limit int, msg string) bool {
	now := s.Now()
	err := s.Limiter.CountRunStartIfUnderLimit(r.Context(), key, limit, now)
	if errors.Is(err, store.ErrRateLimited) {
		wait := now.Truncate(time.Minute).Add(time.Minute).Sub(now)
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		writeError(w, r, s.Logger, &httpError{status: http.StatusTooManyRequests, msg: msg})
		return false
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return false
	}
	return true
}
