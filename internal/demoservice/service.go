package demoservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"sync"
	"time"
)

// Header names of the idempotency protocol.
const (
	// KeyHeader carries the caller's idempotency key. Every POST needs
	// one, the same on every retry of one request.
	KeyHeader = "Idempotency-Key"
	// ReplayHeader is "true" on an answer replayed for a repeated key.
	ReplayHeader = "Idempotent-Replay"
)

// Limits on a request.
const (
	MaxBodyBytes = 64 << 10 // a larger body is answered 413
	MaxKeyLen    = 255      // a longer Idempotency-Key is answered 400
)

// Config configures a Service. The zero value never fails and never
// answers late.
type Config struct {
	// FailRate is the share of requests, 0 to 1, answered 500 before
	// anything is done or recorded.
	FailRate float64
	// SlowRate is the share of the requests not failed, 0 to 1, whose
	// answer is sent only after Delay (or when the request's context ends,
	// if sooner). The work is done and recorded before the wait.
	SlowRate float64
	Delay    time.Duration
	// Rand returns a number in [0, 1); nil selects math/rand/v2's Float64.
	// It is called with the service's lock held, only for a request that
	// would do something: once to decide a failure, then once to decide
	// a slow answer if the request did not fail.
	Rand func() float64
	// Now stamps created_at; nil selects time.Now.
	Now func() time.Time
	// Logger gets a line for each POST's outcome; nil discards them.
	Logger *slog.Logger
}

// Service is the demo services as one http.Handler. It is safe for
// concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	sleep func(context.Context, time.Duration) // replaced by tests

	mu            sync.Mutex
	keys          map[string]*answer // by Idempotency-Key
	payments      map[string]Payment
	shipments     map[string]Shipment
	notifications map[string]Notification
	stats         Stats
	waiting       int // requests waiting for the first answer of their key
}

// answer is the first answer given for an idempotency key.
type answer struct {
	asked  string // the request: its path and normalized body
	status int
	body   []byte
	slow   bool          // sent only after Config.Delay
	done   chan struct{} // closed once the answer is sent, late if slow
}

// New returns a Service with no payments, shipments, notifications or
// recorded keys.
func New(cfg Config) *Service {
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:           cfg,
		log:           cfg.Logger,
		mux:           http.NewServeMux(),
		sleep:         sleep,
		keys:          map[string]*answer{},
		payments:      map[string]Payment{},
		shipments:     map[string]Shipment{},
		notifications: map[string]Notification{},
		stats:         Stats{ByOrder: map[string]OrderStats{}},
	}
	s.mux.HandleFunc("POST /payments", s.post(parsePayment))
	s.mux.HandleFunc("POST /shipments", s.post(parseShipment))
	s.mux.HandleFunc("POST /notifications", s.post(parseNotification))
	s.mux.HandleFunc("GET /payments/{id}", s.getPayment)
	s.mux.HandleFunc("GET /shipments/{id}", s.getShipment)
	s.mux.HandleFunc("GET /stats", s.getStats)
	for pattern, allow := range map[string]string{
		"/payments":       "POST",
		"/shipments":      "POST",
		"/notifications":  "POST",
		"/payments/{id}":  "GET, HEAD",
		"/shipments/{id}": "GET, HEAD",
		"/stats":          "GET, HEAD",
	} {
		s.mux.Handle(pattern, methodNotAllowed(allow))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return s
}

// ServeHTTP answers one request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Stats returns the service's counts so far.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByOrder = maps.Clone(s.stats.ByOrder)
	return st
}

// request is a valid POST body, normalized so that two bodies that mean
// the same encode to the same JSON. Its methods are called with s.mu held.
type request interface {
	// check refuses (422) what the service's state does not allow.
	check(s *Service) error
	// apply does what the request asks and returns the answer.
	apply(s *Service) (status int, v any)
}

// post returns the handler of a POST whose body parse reads.
func (s *Service) post(parse func(object) (request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Requests++
		s.mu.Unlock()
		log := s.log.With("path", r.URL.Path, "key", r.Header.Get(KeyHeader))
		key, req, err := readPost(w, r, parse)
		if err != nil {
			s.refuse(w, log, err)
			return
		}
		s.answer(w, r, log, key, r.URL.Path+" "+string(encode(req)), req)
	}
}

// readPost checks a POST's headers and reads its body.
func readPost(w http.ResponseWriter, r *http.Request, parse func(object) (request, error)) (string, request, error) {
	key := r.Header.Get(KeyHeader)
	if key == "" {
		return "", nil, &requestError{status: http.StatusBadRequest, field: KeyHeader,
			msg: "the Idempotency-Key header is required; send the same key on every retry of one request"}
	}
	if len(key) > MaxKeyLen {
		return "", nil, &requestError{status: http.StatusBadRequest, field: KeyHeader,
			msg: fmt.Sprintf("the Idempotency-Key header is longer than %d bytes", MaxKeyLen)}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "", nil, &requestError{status: http.StatusUnsupportedMediaType, msg: "Content-Type must be application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return "", nil, &requestError{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit)}
	}
	if err != nil {
		return "", nil, badRequest("", fmt.Sprintf("could not read the body: %v", err))
	}
	o, err := parseObject(body)
	if err != nil {
		return "", nil, err
	}
	req, err := parse(o)
	if err != nil {
		return "", nil, err
	}
	return key, req, nil
}

// answer does req once per key: the first request with key is checked
// and, unless a failure is injected, done and its answer recorded; a
// repeat waits for that answer and replays it. asked identifies req: a
// repeat asking something else is refused.
func (s *Service) answer(w http.ResponseWriter, r *http.Request, log *slog.Logger, key, asked string, req request) {
	a, replay, err := s.start(key, asked, req)
	switch {
	case err != nil:
		s.refuse(w, log, err)
	case replay:
		s.replay(w, r, log, a)
	default:
		log.Info("answered", "status", a.status, "slow", a.slow)
		if a.slow {
			s.sleep(r.Context(), s.cfg.Delay)
		}
		close(a.done)
		writeBody(w, a.status, a.body)
	}
}

// start returns the answer recorded for key, to replay, or else checks
// req, injects a failure or does req and records its answer.
func (s *Service) start(key, asked string, req request) (a *answer, replay bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, seen := s.keys[key]; seen {
		if a.asked != asked {
			return nil, false, &requestError{status: http.StatusUnprocessableEntity, field: KeyHeader,
				msg: "the key was used with another request; send a new key for a new request"}
		}
		return a, true, nil
	}
	if err := req.check(s); err != nil {
		return nil, false, err
	}
	if s.cfg.Rand() < s.cfg.FailRate {
		s.stats.InjectedFailures++
		return nil, false, &requestError{status: http.StatusInternalServerError, msg: "injected failure"}
	}
	slow := s.cfg.Rand() < s.cfg.SlowRate
	status, v := req.apply(s)
	a = &answer{asked: asked, status: status, body: encode(v), slow: slow, done: make(chan struct{})}
	s.keys[key] = a
	return a, false, nil
}

// replay sends first once it has been sent to its own request.
func (s *Service) replay(w http.ResponseWriter, r *http.Request, log *slog.Logger, first *answer) {
	s.mu.Lock()
	s.waiting++
	s.mu.Unlock()
	select {
	case <-first.done:
	case <-r.Context().Done():
	}
	sent := false
	s.mu.Lock()
	s.waiting--
	select {
	case <-first.done:
		sent = true
		s.stats.Replays++
	default:
	}
	s.mu.Unlock()
	if !sent {
		s.refuse(w, log, &requestError{status: http.StatusServiceUnavailable,
			msg: "the request ended while waiting for the first answer to its key"})
		return
	}
	log.Info("replayed", "status", first.status)
	w.Header().Set(ReplayHeader, "true")
	writeBody(w, first.status, first.body)
}

// refuse answers err: a *requestError as it says, anything else 500.
func (s *Service) refuse(w http.ResponseWriter, log *slog.Logger, err error) {
	var re *requestError
	if !errors.As(err, &re) {
		log.Error("request failed", "error", err)
		re = &requestError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	log.Info("refused", "status", re.status, "error", re.msg)
	writeError(w, re)
}

func (s *Service) getPayment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.payments[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("no payment %q", r.PathValue("id"))})
		return
	}
	writeBody(w, http.StatusOK, encode(p))
}

func (s *Service) getShipment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.shipments[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeError(w, &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("no shipment %q", r.PathValue("id"))})
		return
	}
	writeBody(w, http.StatusOK, encode(p))
}

func (s *Service) getStats(w http.ResponseWriter, _ *http.Request) {
	writeBody(w, http.StatusOK, encode(s.Stats()))
}

// tally counts one more thing made for an order; s.mu is held.
func (s *Service) tally(orderID string, add func(*OrderStats)) {
	o := s.stats.ByOrder[orderID]
	add(&o)
	s.stats.ByOrder[orderID] = o
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, &requestError{status: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)})
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// requestError is a refusal: the status, the message sent and, when one
// field or header is at fault, its name.
type requestError struct {
	status int
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, e *requestError) {
	writeBody(w, e.status, encode(errorBody{Error: e.msg, Field: e.field}))
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// encode is json.Marshal for the service's own types, which always
// encode.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("demoservice: encode %T: %v", v, err))
	}
	return append(b, '\n')
}
