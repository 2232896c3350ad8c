package demoservice_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/demoservice"
)

// server is a Service behind an httptest.Server.
type server struct {
	t   *testing.T
	svc *demoservice.Service
	url string
}

func serve(t *testing.T, cfg demoservice.Config) *server {
	t.Helper()
	return serveService(t, demoservice.New(cfg))
}

func serveService(t *testing.T, svc *demoservice.Service) *server {
	t.Helper()
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return &server{t: t, svc: svc, url: srv.URL}
}

type response struct {
	status int
	header http.Header
	body   string
}

// field returns a top-level field of a JSON answer, numbers as written.
func (r response) field(t *testing.T, name string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer is not a JSON object (%v): %s", err, r.body)
	}
	return m[name]
}

func (r response) replayed() bool { return r.header.Get(demoservice.ReplayHeader) == "true" }

// do sends a request; headers are name, value pairs.
func (s *server) do(ctx context.Context, method, path, body string, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		return response{}, fmt.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}, nil
}

func (s *server) request(method, path, body string, headers ...string) response {
	s.t.Helper()
	r, err := s.do(context.Background(), method, path, body, headers...)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// post sends a JSON body with an Idempotency-Key.
func (s *server) post(path, key, body string) response {
	s.t.Helper()
	return s.request("POST", path, body, "Content-Type", "application/json", demoservice.KeyHeader, key)
}

// pay makes a payment and returns its ID.
func (s *server) pay(key, orderID string) string {
	s.t.Helper()
	r := s.post("/payments", key, `{"order_id":"`+orderID+`","amount":10}`)
	if r.status != http.StatusCreated {
		s.t.Fatalf("payment: %d %s", r.status, r.body)
	}
	return r.field(s.t, "payment_id").(string)
}

func TestCreate(t *testing.T) {
	s := serve(t, demoservice.Config{Now: func() time.Time { return time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC) }})
	pay := s.pay("setup", "o1")
	tests := []struct {
		name, path, body string
		status           int
		idField, prefix  string
		want             map[string]any // fields of the answer
		get              string         // the path to read it back, if any
	}{
		{"payment", "/payments", `{"order_id":"o1","amount":12.5}`, 201, "payment_id", "pay_",
			map[string]any{"order_id": "o1", "amount": json.Number("12.50"), "currency": "EUR", "status": "captured", "created_at": "2026-05-04T12:00:00Z"}, "/payments/"},
		{"payment in another currency", "/payments", `{"order_id":"o2","amount":7,"currency":"USD"}`, 201, "payment_id", "pay_",
			map[string]any{"order_id": "o2", "amount": json.Number("7.00"), "currency": "USD"}, "/payments/"},
		{"amount kept exact", "/payments", `{"order_id":"o3","amount":999999999999999.99}`, 201, "payment_id", "pay_",
			map[string]any{"amount": json.Number("999999999999999.99")}, "/payments/"},
		{"shipment", "/shipments", `{"order_id":"o1","payment_id":"` + pay + `","address":"1 Main St"}`, 201, "shipment_id", "shp_",
			map[string]any{"order_id": "o1", "payment_id": pay, "address": "1 Main St", "status": "label_created", "created_at": "2026-05-04T12:00:00Z"}, "/shipments/"},
		{"shipment without address", "/shipments", `{"order_id":"o1","payment_id":"` + pay + `"}`, 201, "shipment_id", "shp_",
			map[string]any{"order_id": "o1", "address": nil}, "/shipments/"},
		{"notification", "/notifications", `{"order_id":"o1","message":"shipped"}`, 202, "notification_id", "ntf_",
			map[string]any{"order_id": "o1", "message": "shipped", "status": "queued"}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.post(tt.path, fmt.Sprintf("create-%d", i), tt.body)
			if r.status != tt.status || r.replayed() {
				t.Fatalf("%d (replayed %v), want %d: %s", r.status, r.replayed(), tt.status, r.body)
			}
			id, _ := r.field(t, tt.idField).(string)
			if !strings.HasPrefix(id, tt.prefix) || len(id) <= len(tt.prefix) {
				t.Errorf("%s = %q, want %s<random>", tt.idField, id, tt.prefix)
			}
			for name, want := range tt.want {
				if got := r.field(t, name); got != want {
					t.Errorf("%s = %#v, want %#v", name, got, want)
				}
			}
			if tt.get == "" {
				return
			}
			if g := s.request("GET", tt.get+id, ""); g.status != 200 || g.body != r.body {
				t.Errorf("GET %s: %d %s, want 200 %s", tt.get+id, g.status, g.body, r.body)
			}
		})
	}
	if tr := s.post("/shipments", "tracking", `{"order_id":"o1","payment_id":"`+pay+`"}`).field(t, "tracking"); tr == "" || tr == nil {
		t.Errorf("tracking = %v", tr)
	}
}

func TestRefusals(t *testing.T) {
	// FailRate 1: a request that gets past validation fails, so every
	// status below shows that validation comes before injection.
	svc := demoservice.New(demoservice.Config{FailRate: 1, Rand: func() float64 { return 0 }})
	s := serveService(t, svc)
	paid := demoservice.New(demoservice.Config{})
	p := serveService(t, paid)
	pay := p.pay("setup", "o1")
	ct := "application/json"
	tests := []struct {
		name        string
		srv         *server
		method      string
		path, body  string
		key, ctype  string
		status      int
		field, says string
	}{
		{"no key", s, "POST", "/payments", `{"order_id":"o1","amount":1}`, "", ct, 400, "Idempotency-Key", "Idempotency-Key header is required"},
		{"key too long", s, "POST", "/payments", `{"order_id":"o1","amount":1}`, strings.Repeat("k", demoservice.MaxKeyLen+1), ct, 400, "Idempotency-Key", "longer than"},
		{"no content type", s, "POST", "/payments", `{"order_id":"o1","amount":1}`, "k", "", 415, "", "application/json"},
		{"text body", s, "POST", "/notifications", `{"order_id":"o1","message":"hi"}`, "k", "text/plain", 415, "", "application/json"},
		{"body too large", s, "POST", "/notifications", `{"order_id":"o1","message":"` + strings.Repeat("x", demoservice.MaxBodyBytes) + `"}`, "k", ct, 413, "", "larger than 65536"},
		{"empty body", s, "POST", "/payments", ``, "k", ct, 400, "", "JSON object"},
		{"bad JSON", s, "POST", "/payments", `{"order_id":"o1",`, "k", ct, 400, "", "not valid JSON"},
		{"not an object", s, "POST", "/payments", `["o1"]`, "k", ct, 400, "", "JSON object"},
		{"two objects", s, "POST", "/payments", `{"order_id":"o1","amount":1}{}`, "k", ct, 400, "", "nothing after it"},
		{"unknown field", s, "POST", "/payments", `{"order_id":"o1","amount":1,"tip":2}`, "k", ct, 400, "tip", `unknown field "tip"`},
		{"duplicate field", s, "POST", "/payments", `{"order_id":"o1","amount":-1,"amount":2}`, "k", ct, 400, "amount", `duplicate field "amount"`},
		{"missing order", s, "POST", "/payments", `{"amount":1}`, "k", ct, 400, "order_id", "order_id is required"},
		{"null order", s, "POST", "/payments", `{"order_id":null,"amount":1}`, "k", ct, 400, "order_id", "order_id is required"},
		{"blank order", s, "POST", "/payments", `{"order_id":" ","amount":1}`, "k", ct, 400, "order_id", "order_id must not be empty"},
		{"order not a string", s, "POST", "/payments", `{"order_id":5,"amount":1}`, "k", ct, 400, "order_id", "order_id must be a string"},
		{"missing amount", s, "POST", "/payments", `{"order_id":"o1"}`, "k", ct, 400, "amount", "amount is required"},
		{"amount as a string", s, "POST", "/payments", `{"order_id":"o1","amount":"12"}`, "k", ct, 400, "amount", "amount must be a number"},
		{"zero amount", s, "POST", "/payments", `{"order_id":"o1","amount":0.00}`, "k", ct, 400, "amount", "amount must be positive"},
		{"negative amount", s, "POST", "/payments", `{"order_id":"o1","amount":-5}`, "k", ct, 400, "amount", "amount must be positive"},
		{"three decimals", s, "POST", "/payments", `{"order_id":"o1","amount":1.005}`, "k", ct, 400, "amount", "at most 2 decimals"},
		{"exponent", s, "POST", "/payments", `{"order_id":"o1","amount":1e2}`, "k", ct, 400, "amount", "at most 2 decimals"},
		{"bad currency", s, "POST", "/payments", `{"order_id":"o1","amount":1,"currency":"eur"}`, "k", ct, 400, "currency", "ISO 4217"},
		{"shipment without payment", s, "POST", "/shipments", `{"order_id":"o1"}`, "k", ct, 400, "payment_id", "payment_id is required"},
		{"address not a string", s, "POST", "/shipments", `{"order_id":"o1","payment_id":"p","address":[]}`, "k", ct, 400, "address", "address must be a string"},
		{"notification without message", s, "POST", "/notifications", `{"order_id":"o1"}`, "k", ct, 400, "message", "message is required"},
		{"unknown payment", s, "POST", "/shipments", `{"order_id":"o1","payment_id":"pay_nope"}`, "k", ct, 422, "payment_id", "names no payment"},
		{"another order's payment", p, "POST", "/shipments", `{"order_id":"o2","payment_id":"` + pay + `"}`, "k", ct, 422, "payment_id", "another order"},
		{"unknown route", s, "GET", "/refunds", ``, "", "", 404, "", "no route"},
		{"unknown payment id", s, "GET", "/payments/pay_nope", ``, "", "", 404, "", `no payment "pay_nope"`},
		{"unknown shipment id", s, "GET", "/shipments/shp_nope", ``, "", "", 404, "", `no shipment "shp_nope"`},
		{"GET a collection", s, "GET", "/payments", ``, "", "", 405, "", "use POST"},
		{"POST to an item", s, "POST", "/shipments/shp_1", `{}`, "k", ct, 405, "", "use GET"},
		{"POST stats", s, "POST", "/stats", `{}`, "k", ct, 405, "", "use GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.key != "" {
				h = append(h, demoservice.KeyHeader, tt.key)
			}
			if tt.ctype != "" {
				h = append(h, "Content-Type", tt.ctype)
			}
			r := tt.srv.request(tt.method, tt.path, tt.body, h...)
			if r.status != tt.status {
				t.Fatalf("%d, want %d: %s", r.status, tt.status, r.body)
			}
			if msg, _ := r.field(t, "error").(string); !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not say %q", msg, tt.says)
			}
			if field, _ := r.field(t, "field").(string); field != tt.field {
				t.Errorf("field %q, want %q", field, tt.field)
			}
			if r.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if st := svc.Stats(); st.Payments+st.Shipments+st.Notifications+st.InjectedFailures+st.Replays != 0 {
		t.Errorf("refusals did something: %+v", st)
	}
	// A refusal records no key: the key then works for a valid request.
	r := p.post("/shipments", "k", `{"order_id":"o1","payment_id":"`+pay+`"}`)
	if r.status != 201 || r.replayed() {
		t.Errorf("valid request after refusals with its key: %d (replayed %v) %s", r.status, r.replayed(), r.body)
	}
}

func TestContentTypeWithCharset(t *testing.T) {
	s := serve(t, demoservice.Config{})
	r := s.request("POST", "/payments", `{"order_id":"o1","amount":1}`, "Content-Type", "application/json; charset=utf-8", demoservice.KeyHeader, "k")
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestReplay(t *testing.T) {
	s := serve(t, demoservice.Config{})
	pay := s.pay("setup", "o1")
	tests := []struct {
		path, first, again string // again means the same as first, written otherwise
		stat               func(demoservice.OrderStats) int
	}{
		{"/payments", `{"order_id":"o1","amount":12.5}`, `{ "currency": "EUR", "amount": 12.50, "order_id": "o1" }`,
			func(o demoservice.OrderStats) int { return o.Payments }},
		{"/shipments", `{"order_id":"o1","payment_id":"` + pay + `"}`, `{"payment_id":"` + pay + `","order_id":"o1","address":null}`,
			func(o demoservice.OrderStats) int { return o.Shipments }},
		{"/notifications", `{"order_id":"o1","message":"hi"}`, `{"message":"hi","order_id":"o1"}`,
			func(o demoservice.OrderStats) int { return o.Notifications }},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := s.svc.Stats()
			key := "replay" + tt.path
			first := s.post(tt.path, key, tt.first)
			if first.replayed() {
				t.Fatal("first answer marked as a replay")
			}
			for _, body := range []string{tt.first, tt.again} {
				r := s.post(tt.path, key, body)
				if r.status != first.status || r.body != first.body || !r.replayed() {
					t.Errorf("repeat of %s: %d %s (replayed %v), want %d %s (replayed)", body, r.status, r.body, r.replayed(), first.status, first.body)
				}
			}
			after := s.svc.Stats()
			if made := tt.stat(after.ByOrder["o1"]) - tt.stat(before.ByOrder["o1"]); made != 1 {
				t.Errorf("made %d, want 1", made)
			}
			if n := after.Replays - before.Replays; n != 2 {
				t.Errorf("replays %d, want 2", n)
			}
		})
	}
}

func TestKeyUsedWithAnotherRequest(t *testing.T) {
	s := serve(t, demoservice.Config{})
	first := s.post("/payments", "k1", `{"order_id":"o1","amount":10}`)
	if first.status != 201 {
		t.Fatalf("%d %s", first.status, first.body)
	}
	tests := []struct{ name, path, body string }{
		{"another amount", "/payments", `{"order_id":"o1","amount":11}`},
		{"another order", "/payments", `{"order_id":"o2","amount":10}`},
		{"another currency", "/payments", `{"order_id":"o1","amount":10,"currency":"USD"}`},
		{"another path", "/notifications", `{"order_id":"o1","message":"hi"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.post(tt.path, "k1", tt.body)
			if msg, _ := r.field(t, "error").(string); r.status != 422 || !strings.Contains(msg, "the key was used with another request") || r.replayed() {
				t.Errorf("%d %s (replayed %v), want 422", r.status, r.body, r.replayed())
			}
		})
	}
	if st := s.svc.Stats(); st.Payments != 1 || st.Notifications != 0 || st.Replays != 0 {
		t.Errorf("stats %+v, want one payment", st)
	}
}

// TestConcurrentRepeatsWaitForTheFirstAnswer: requests that arrive while
// the first one with their key is being answered wait for it and replay
// it; one payment is made.
func TestConcurrentRepeatsWaitForTheFirstAnswer(t *testing.T) {
	const n = 20
	svc := demoservice.New(demoservice.Config{SlowRate: 1, Delay: time.Hour})
	release := make(chan struct{})
	demoservice.SetSleep(svc, func(ctx context.Context, _ time.Duration) { <-release })
	s := serveService(t, svc)
	answers := make([]response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], errs[i] = s.do(context.Background(), "POST", "/payments", `{"order_id":"o1","amount":10}`,
				"Content-Type", "application/json", demoservice.KeyHeader, "same")
		})
	}
	// The first request sleeps until released; wait (on no clock) until
	// the other n-1 wait for it.
	for demoservice.Waiting(svc) < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	replays := 0
	for i, r := range answers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.status != 201 || r.body != answers[0].body {
			t.Errorf("answer %d: %d %s, want 201 %s", i, r.status, r.body, answers[0].body)
		}
		if r.replayed() {
			replays++
		}
	}
	st := svc.Stats()
	if replays != n-1 || st.Payments != 1 || st.Replays != n-1 || st.ByOrder["o1"].Payments != 1 {
		t.Errorf("%d replayed answers, stats %+v; want one payment and %d replays", replays, st, n-1)
	}
}

// TestConcurrentKeys: many keys, each sent by several goroutines at once,
// make one payment each.
func TestConcurrentKeys(t *testing.T) {
	const keys, senders = 10, 5
	s := serve(t, demoservice.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, keys*senders)
	for k := range keys {
		for range senders {
			wg.Go(func() {
				r, err := s.do(context.Background(), "POST", "/payments", fmt.Sprintf(`{"order_id":"o%d","amount":10}`, k),
					"Content-Type", "application/json", demoservice.KeyHeader, fmt.Sprint("key-", k))
				if err == nil && r.status != 201 {
					err = fmt.Errorf("%d %s", r.status, r.body)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.svc.Stats()
	if st.Payments != keys || st.Replays != keys*(senders-1) || len(st.ByOrder) != keys {
		t.Fatalf("stats %+v, want %d payments", st, keys)
	}
	for order, o := range st.ByOrder {
		if o.Payments != 1 {
			t.Errorf("order %s: %d payments", order, o.Payments)
		}
	}
}

// sequence returns a Rand that yields vs in turn (then 0.99).
func sequence(vs ...float64) func() float64 {
	return func() float64 {
		if len(vs) == 0 {
			return 0.99
		}
		v := vs[0]
		vs = vs[1:]
		return v
	}
}

func TestInjectedFailureRecordsNothing(t *testing.T) {
	s := serve(t, demoservice.Config{FailRate: 0.5, Rand: sequence(0.1, 0.1, 0.7)})
	for i, want := range []int{500, 500} {
		r := s.post("/payments", "k", `{"order_id":"o1","amount":10}`)
		if r.status != want || r.body != `{"error":"injected failure"}`+"\n" || r.replayed() {
			t.Fatalf("attempt %d: %d %s (replayed %v), want the injected failure", i+1, r.status, r.body, r.replayed())
		}
	}
	if st := s.svc.Stats(); st.Payments != 0 || st.InjectedFailures != 2 || len(st.ByOrder) != 0 {
		t.Fatalf("after failures: %+v", st)
	}
	ok := s.post("/payments", "k", `{"order_id":"o1","amount":10}`)
	if ok.status != 201 || ok.replayed() {
		t.Fatalf("retry: %d %s (replayed %v), want 201", ok.status, ok.body, ok.replayed())
	}
	// A replay is not failed: it does nothing.
	if r := s.post("/payments", "k", `{"order_id":"o1","amount":10}`); r.status != 201 || r.body != ok.body || !r.replayed() {
		t.Fatalf("repeat: %d %s, want the replay of %s", r.status, r.body, ok.body)
	}
	if st := s.svc.Stats(); st.Payments != 1 || st.Requests != 4 || st.Replays != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSlowAnswerEndsWithTheRequest: a slow answer stops waiting when its
// request's context ends. The payment was made and its key recorded, so
// the caller's retry gets it, and a repeat whose own request ends while
// waiting is answered 503.
func TestSlowAnswerEndsWithTheRequest(t *testing.T) {
	s := serve(t, demoservice.Config{SlowRate: 1, Delay: time.Hour})
	body := `{"order_id":"o1","amount":10}`
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := s.do(ctx, "POST", "/payments", body, "Content-Type", "application/json", demoservice.KeyHeader, "slow")
		gaveUp <- err
	}()
	for s.svc.Stats().Payments == 0 {
		time.Sleep(time.Millisecond)
	}

	// A repeat whose request has ended while the first is still asleep.
	ended, stop := context.WithCancel(context.Background())
	stop()
	req := httptest.NewRequestWithContext(ended, "POST", "/payments", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(demoservice.KeyHeader, "slow")
	rec := httptest.NewRecorder()
	s.svc.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("repeat with an ended request: %d %s, want 503", rec.Code, rec.Body)
	}

	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	// Served only once the slow answer stopped waiting; an hour otherwise.
	r := s.post("/payments", "slow", body)
	if r.status != 201 || !r.replayed() {
		t.Fatalf("retry: %d %s (replayed %v), want the replayed payment", r.status, r.body, r.replayed())
	}
	if st := s.svc.Stats(); st.Payments != 1 || st.Replays != 1 {
		t.Fatalf("stats %+v, want one payment and one replay", st)
	}
}

func TestStatsByOrder(t *testing.T) {
	s := serve(t, demoservice.Config{})
	steps := []struct{ path, key, body string }{
		{"/payments", "o1-charge", `{"order_id":"o1","amount":10}`},
		{"/payments", "o2-charge", `{"order_id":"o2","amount":20}`},
		{"/notifications", "o1-notify-1", `{"order_id":"o1","message":"paid"}`},
		{"/notifications", "o1-notify-2", `{"order_id":"o1","message":"shipped"}`},
		{"/notifications", "o3-notify", `{"order_id":"o3","message":"hello"}`},
	}
	for _, st := range steps {
		for range 2 { // every step delivered twice
			if r := s.post(st.path, st.key, st.body); r.status >= 300 {
				t.Fatalf("%s: %d %s", st.key, r.status, r.body)
			}
		}
	}
	pay := s.post("/payments", "o1-charge", `{"order_id":"o1","amount":10}`).field(t, "payment_id").(string)
	for range 2 {
		if r := s.post("/shipments", "o1-ship", `{"order_id":"o1","payment_id":"`+pay+`"}`); r.status != 201 {
			t.Fatalf("ship: %d %s", r.status, r.body)
		}
	}
	want := demoservice.Stats{
		Payments: 2, Shipments: 1, Notifications: 3, Requests: 13, Replays: 7,
		ByOrder: map[string]demoservice.OrderStats{
			"o1": {Payments: 1, Shipments: 1, Notifications: 2},
			"o2": {Payments: 1},
			"o3": {Notifications: 1},
		},
	}
	if got := s.svc.Stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	r := s.request("GET", "/stats", "")
	var got demoservice.Stats
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || r.status != 200 || !reflect.DeepEqual(got, want) {
		t.Errorf("GET /stats: %d %s (%v), want %+v", r.status, r.body, err, want)
	}
	for _, name := range []string{`"payments"`, `"shipments"`, `"notifications"`, `"requests"`, `"replays"`, `"injected_failures"`, `"by_order"`} {
		if !strings.Contains(r.body, name) {
			t.Errorf("GET /stats has no %s: %s", name, r.body)
		}
	}
}
