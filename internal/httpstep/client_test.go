package httpstep

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

const key = "run-1/charge/1"

// newServer starts a real HTTP server on 127.0.0.1 for the test.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// port is the port a test server listens on.
func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func call(u string) Request { return Request{URL: u, IdempotencyKey: key} }

// resolverFunc adapts a function to Resolver.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// hosts answers names from a table, like /etc/hosts, and counts lookups.
func hosts(table map[string]string, lookups *atomic.Int32) Resolver {
	return resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if lookups != nil {
			lookups.Add(1)
		}
		if a, ok := table[host]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	})
}

// dialLog is what a Client dialed.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// watchDials records every address c dials, and dials the addresses in
// route (made-up public ones) at the address they map to (a test server).
func watchDials(c *Client, route map[string]string) *dialLog {
	d := &dialLog{}
	dial := c.dial
	c.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		d.mu.Lock()
		d.addrs = append(d.addrs, address)
		d.mu.Unlock()
		if to, ok := route[address]; ok {
			address = to
		}
		return dial(ctx, network, address)
	}
	return d
}

// mustPermanent fails the test unless err is a permanent error holding want.
func mustPermanent(t *testing.T, err error, want string) {
	t.Helper()
	var re *RetryableError
	switch {
	case err == nil:
		t.Fatalf("no error, want a permanent one holding %q", want)
	case !errors.Is(err, ErrPermanent) || errors.As(err, &re):
		t.Fatalf("error %q (%T) is not permanent", err, err)
	case !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not hold %q", err, want)
	}
}

// mustRetryable returns err as a *RetryableError or fails the test.
func mustRetryable(t *testing.T, err error) *RetryableError {
	t.Helper()
	var re *RetryableError
	if !errors.As(err, &re) || errors.Is(err, ErrPermanent) {
		t.Fatalf("error %v (%T) is not retryable", err, err)
	}
	return re
}

func TestSuccessOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"json object", 200, `{"id":"ch_1","ok":true}`, `{"id":"ch_1","ok":true}`},
		{"json with white space", 201, " [1, 2]\n", `[1, 2]`},
		{"json string", 200, `"done"`, `"done"`},
		{"json number", 200, `42`, `42`},
		{"json null", 200, `null`, `null`},
		{"text", 200, "hello <world> & \"you\"\n", `{"status":200,"body":"hello <world> & \"you\"\n"}`},
		{"invalid json", 202, `{"a":`, `{"status":202,"body":"{\"a\":"}`},
		{"invalid utf-8", 200, "caf\xe9!", "{\"status\":200,\"body\":\"caf\uFFFD!\"}"},
		{"json string with invalid utf-8", 200, "\"caf\xe9\"", "{\"status\":200,\"body\":\"\\\"caf\uFFFD\\\"\"}"},
		{"empty", 200, "", `{"status":200,"body":""}`},
		{"no content", 204, "", `{"status":204,"body":""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			out, err := New(LocalPolicy()).Do(context.Background(), call(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("output %s, want %s", out, tt.want)
			}
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Errorf("output %q is not valid JSON", out)
			}
		})
	}
}

func TestOutputCap(t *testing.T) {
	t.Parallel()
	jsonOf := func(n int) string { return `"` + strings.Repeat("a", n-2) + `"` }
	tests := []struct {
		name     string
		body     string
		wantBody int // the length of the body in a text output; 0 for JSON
		ok       bool
	}{
		{"json of exactly 64 KiB", jsonOf(MaxOutputBytes), 0, true},
		{"text of exactly 64 KiB", strings.Repeat("x", MaxOutputBytes), MaxOutputBytes, true},
		{"json one byte over", jsonOf(MaxOutputBytes + 1), 0, false},
		{"text one byte over", strings.Repeat("x", MaxOutputBytes+1), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.body)
			})
			out, err := New(LocalPolicy()).Do(context.Background(), call(srv.URL))
			if !tt.ok {
				mustPermanent(t, err, "the response body is over 64 KiB")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantBody == 0 {
				if string(out) != tt.body {
					t.Errorf("output is %d bytes, want the %d-byte body", len(out), len(tt.body))
				}
				return
			}
			var wrapped struct{ Body string }
			if err := json.Unmarshal(out, &wrapped); err != nil || len(wrapped.Body) != tt.wantBody {
				t.Errorf("output body is %d bytes (%v), want %d", len(wrapped.Body), err, tt.wantBody)
			}
		})
	}
}

// TestOutputCapReadsNoFurther sends one byte over the cap and then holds
// the response open: reading past the cap would wait for the (generous)
// timeout instead of failing at once.
func TestOutputCapReadsNoFurther(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, MaxOutputBytes+1))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	r := call(srv.URL)
	r.Timeout = MaxTimeout
	_, err := New(LocalPolicy()).Do(context.Background(), r)
	mustPermanent(t, err, "the response body is over 64 KiB")
}

func TestRetryableStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		after      time.Duration
	}{
		{500, "", 0},
		{502, "", 0},
		{503, "7", 7 * time.Second},
		{503, "86400", MaxRetryAfter},
		{503, "-5", 0},
		{503, "soon", 0},
		{429, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{429, now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{408, "", 0},
		{599, "", 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.retryAfter), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, "upstream\nunavailable\n")
			})
			c := New(LocalPolicy(), WithClock(func() time.Time { return now }))
			_, err := c.Do(context.Background(), call(srv.URL))
			re := mustRetryable(t, err)
			if re.Status != tt.status || re.After != tt.after {
				t.Errorf("status %d after %v, want %d after %v", re.Status, re.After, tt.status, tt.after)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tt.status || se.Body != "upstream unavailable" {
				t.Errorf("status error %+v in %v", se, err)
			}
			want := (&StatusError{Status: tt.status, Body: "upstream unavailable"}).Error()
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not hold %q", err, want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{" 120 ", 2 * time.Minute},
		{"900", MaxRetryAfter},
		{"901", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"-1", 0},
		{"1.5", 0},
		{"later", 0},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second},
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute},
		{"Sun Mar  1 12:00:10 2026", 10 * time.Second},
		{"Sun, 01 Mar 2026 11:59:00 GMT", 0},
		{"Mon, 02 Mar 2026 12:00:00 GMT", MaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			if got := retryAfter(tt.value, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

// TestRetryThenSucceed: a 500 is retryable, and the caller's next attempt
// gets the output.
func TestRetryThenSucceed(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
	c := New(LocalPolicy())
	_, err := c.Do(context.Background(), call(srv.URL))
	if re := mustRetryable(t, err); re.Status != 500 {
		t.Fatalf("status %d, want 500", re.Status)
	}
	out, err := c.Do(context.Background(), call(srv.URL))
	if err != nil || string(out) != `{"ok":true}` {
		t.Fatalf("second attempt = %s, %v", out, err)
	}
}

func TestPermanentStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   string // the StatusError's Body
	}{
		{"400", 400, `{"error":"card declined"}`, `{"error":"card declined"}`},
		{"404 with newlines", 404, "not found\r\n\n\tpage /x\n", "not found page /x"},
		{"422 long", 422, "a" + strings.Repeat("é", 300), "a" + strings.Repeat("é", 127)},
		{"422 invalid utf-8", 422, "bad \xff byte", "bad \uFFFD byte"},
		{"401 empty", 401, "", ""},
		{"418", 418, "teapot", "teapot"},
		{"300 without a location: no body quoted", 300, "choose /a?token=x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := New(LocalPolicy()).Do(context.Background(), call(srv.URL+"/charge"))
			se := &StatusError{Status: tt.status, Body: tt.want}
			mustPermanent(t, err, "POST "+srv.URL+": "+se.Error()) // the path is never quoted
			if !errors.As(err, &se) || se.Body != tt.want {
				t.Fatalf("status error %+v, want body %q", se, tt.want)
			}
			if len(se.Body) > 256 || !utf8.ValidString(se.Body) {
				t.Errorf("body start is %d bytes, valid UTF-8 %v", len(se.Body), utf8.ValidString(se.Body))
			}
		})
	}
	t.Run("message", func(t *testing.T) {
		t.Parallel()
		se := &StatusError{Status: 400, Body: `{"error":"card declined"}`}
		if got, want := se.Error(), `HTTP 400 Bad Request: {"error":"card declined"}`; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler func(w http.ResponseWriter)
	}{
		{"no response", func(w http.ResponseWriter) {}},
		{"body stalls", func(w http.ResponseWriter) {
			io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				tt.handler(w)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			t.Cleanup(func() { close(release) })
			r := call(srv.URL)
			r.Timeout = 50 * time.Millisecond
			_, err := New(LocalPolicy()).Do(context.Background(), r)
			re := mustRetryable(t, err)
			if re.Status != 0 || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 50ms") {
				t.Errorf("error %v (status %d), want a timeout", err, re.Status)
			}
		})
	}
}

// TestCallerContextEnds: when the caller's context ends first, the error is
// the caller's, neither retryable nor permanent.
func TestCallerContextEnds(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	r := call(srv.URL)
	r.Timeout = MaxTimeout
	_, err := New(LocalPolicy()).Do(ctx, r)
	var re *RetryableError
	if !errors.Is(err, context.Canceled) || errors.As(err, &re) || errors.Is(err, ErrPermanent) {
		t.Fatalf("error %v (%T), want the caller's cancellation", err, err)
	}
}

func TestConnectionErrors(t *testing.T) {
	t.Parallel()
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/"
	}
	hangUp := func(t *testing.T) string {
		return newServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}).URL
	}
	tests := []struct {
		name     string
		url      func(t *testing.T) string
		resolver Resolver
	}{
		{"connection refused", closedPort, nil},
		{"connection closed without a response", hangUp, nil},
		{"no such host", func(*testing.T) string { return "http://nowhere.test/" }, hosts(nil, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []Option
			if tt.resolver != nil {
				opts = append(opts, WithResolver(tt.resolver))
			}
			_, err := New(LocalPolicy(), opts...).Do(context.Background(), call(tt.url(t)))
			if re := mustRetryable(t, err); re.Status != 0 || re.After != 0 {
				t.Errorf("status %d after %v, want 0 and 0", re.Status, re.After)
			}
		})
	}
}

// echo answers with what the request carried.
type echo struct {
	Method, Body                                           string
	UserAgent, ContentType, IdempotencyKey, Trace, Referer string
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	json.NewEncoder(w).Encode(echo{
		Method:         r.Method,
		Body:           string(body),
		UserAgent:      r.Header.Get("User-Agent"),
		ContentType:    r.Header.Get("Content-Type"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Trace:          r.Header.Get("X-Trace-Id"),
		Referer:        r.Header.Get("Referer"),
	})
}

func TestHeadersAndMethod(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	tests := []struct {
		name string
		req  Request
		want echo
	}{
		{"defaults", Request{}, echo{Method: "POST", UserAgent: UserAgent, IdempotencyKey: key}},
		{"json body", Request{Body: json.RawMessage(`{"amount":100}`)},
			echo{Method: "POST", Body: `{"amount":100}`, UserAgent: UserAgent, ContentType: "application/json", IdempotencyKey: key}},
		{"method in lower case", Request{Method: "get"}, echo{Method: "GET", UserAgent: UserAgent, IdempotencyKey: key}},
		{"put with a body", Request{Method: "PUT", Body: json.RawMessage(`[1]`)},
			echo{Method: "PUT", Body: `[1]`, UserAgent: UserAgent, ContentType: "application/json", IdempotencyKey: key}},
		{"caller headers override the defaults", Request{
			Body:    json.RawMessage(`{}`),
			Headers: map[string]string{"user-agent": "acme/2", "content-type": "application/vnd.acme+json", "x-trace-id": "t-1"},
		}, echo{Method: "POST", Body: `{}`, UserAgent: "acme/2", ContentType: "application/vnd.acme+json", IdempotencyKey: key, Trace: "t-1"}},
	}
	c := New(LocalPolicy())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.req
			r.URL, r.IdempotencyKey = srv.URL, key
			out, err := c.Do(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			var got echo
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("server saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHeaderNamesAreCanonical looks at the request as built: the server
// would canonicalise the names itself.
func TestHeaderNamesAreCanonical(t *testing.T) {
	t.Parallel()
	c := New(LocalPolicy())
	req, err := c.newRequest(context.Background(), Request{
		URL:            "http://127.0.0.1/",
		Body:           json.RawMessage(`{}`),
		Headers:        map[string]string{"x-trace-id": "t-1", "content-TYPE": "text/plain"},
		IdempotencyKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"X-Trace-Id": "t-1", "Content-Type": "text/plain", "User-Agent": UserAgent, "Idempotency-Key": key}
	if len(req.Header) != len(want) {
		t.Errorf("headers %v, want %v", req.Header, want)
	}
	for k, v := range want {
		if got := req.Header[k]; len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// TestRequestRejected: invalid requests fail permanently without calling
// anything.
func TestRequestRejected(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	tests := []struct {
		name string
		edit func(r *Request)
		want string
	}{
		{"empty idempotency key", func(r *Request) { r.IdempotencyKey = "" }, "idempotency key is empty"},
		{"idempotency key with a newline", func(r *Request) { r.IdempotencyKey = "a\nb" }, "control character"},
		{"Idempotency-Key header", func(r *Request) { r.Headers = map[string]string{"Idempotency-Key": "x"} }, "cannot be overridden"},
		{"idempotency-key header", func(r *Request) { r.Headers = map[string]string{"idempotency-key": "x"} }, "cannot be overridden"},
		{"IDEMPOTENCY-KEY header", func(r *Request) { r.Headers = map[string]string{"IDEMPOTENCY-KEY": "x"} }, "cannot be overridden"},
		{"ftp", func(r *Request) { r.URL = strings.Replace(r.URL, "http", "ftp", 1) }, "must be http or https"},
		{"file", func(r *Request) { r.URL = "file:///etc/passwd" }, "must be http or https"},
		{"no scheme", func(r *Request) { r.URL = "127.0.0.1/x" }, "must be http or https"},
		{"user and password", func(r *Request) { r.URL = strings.Replace(r.URL, "//", "//user:pass@", 1) }, "must not carry user info"},
		{"user", func(r *Request) { r.URL = strings.Replace(r.URL, "//", "//user@", 1) }, "must not carry user info"},
		{"no host", func(r *Request) { r.URL = "http:///x" }, "no host"},
		{"unparseable", func(r *Request) { r.URL = "http://exa mple.com/" }, "the url is not valid"},
		{"international name", func(r *Request) { r.URL = "http://bücher.example/" }, "not a valid host name"},
		{"negative timeout", func(r *Request) { r.Timeout = -time.Second }, "timeout"},
		{"timeout over the maximum", func(r *Request) { r.Timeout = MaxTimeout + time.Second }, "timeout"},
		{"body not json", func(r *Request) { r.Body = json.RawMessage(`{"a":`) }, "not valid JSON"},
		{"invalid method", func(r *Request) { r.Method = "GE T" }, "method"},
		{"Host header", func(r *Request) { r.Headers = map[string]string{"host": "example.com"} }, "Host header is set by the client"},
		{"Content-Length header", func(r *Request) { r.Headers = map[string]string{"Content-Length": "3"} }, "Content-Length header"},
		{"header name with a space", func(r *Request) { r.Headers = map[string]string{"X Bad": "1"} }, "not valid"},
		{"header value with a newline", func(r *Request) { r.Headers = map[string]string{"X-Note": "a\r\nX-Injected: 1"} }, "control character"},
		{"header given twice", func(r *Request) { r.Headers = map[string]string{"X-A": "1", "x-a": "2"} }, "given twice"},
	}
	c := New(LocalPolicy())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := call(srv.URL + "/step")
			tt.edit(&r)
			_, err := c.Do(context.Background(), r)
			mustPermanent(t, err, tt.want)
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("the server was called %d times", n)
		}
	})
}

func TestInvalidPolicy(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	_, err := New(Policy{Allow: []string{"https://api.example.com"}}).Do(context.Background(), call(srv.URL))
	mustPermanent(t, err, `allow-list entry "https://api.example.com"`)
}

// TestRefusedBeforeDial: local addresses are refused after resolving and
// before any connection is attempted.
func TestRefusedBeforeDial(t *testing.T) {
	t.Parallel()
	table := map[string]string{
		"metadata.test": "169.254.169.254",
		"db.test":       "10.0.0.1",
		"mapped.test":   "::ffff:10.0.0.1",
		"cgnat.test":    "100.64.0.1",
		"lo.test":       "127.0.0.1",
		"v6lo.test":     "::1",
		// A resolver that reads inet_aton forms (getaddrinfo) may answer a
		// decimal "name" with the address it spells.
		"2852039166": "169.254.169.254",
	}
	tests := []struct {
		url     string
		allow   []string
		want    string
		lookups int32
	}{
		{"http://metadata.test/latest/meta-data/", []string{"*"}, "refused: metadata.test resolves to 169.254.169.254, a link-local address; name it in the allow-list to call it", 1},
		{"http://db.test:5432/", []string{"*"}, "refused: db.test resolves to 10.0.0.1, a private address", 1},
		{"https://mapped.test/", []string{"*"}, "a private address", 1},
		{"http://cgnat.test/", []string{"*"}, "a carrier-grade NAT address", 1},
		{"http://lo.test:8080/", []string{"*.test"}, "a loopback address", 1},
		{"http://v6lo.test/", []string{"*"}, "a loopback address", 1},
		{"http://2852039166/", []string{"*"}, "refused: 2852039166 resolves to 169.254.169.254, a link-local address", 1},
		{"http://169.254.169.254/latest/meta-data/", []string{"*"}, "refused: 169.254.169.254 is a link-local address; name it in the allow-list to call it", 0},
		{"http://[::ffff:169.254.169.254]/", []string{"*"}, "a link-local address", 0},
		{"http://10.0.0.1:8080/", []string{"*"}, "refused: 10.0.0.1 is a private address", 0},
		{"http://0.0.0.0:8080/", []string{"*"}, "an unspecified address", 0},
		{"http://[fe80::1]/", []string{"*"}, "a link-local address", 0},
		{"http://evil.test/", []string{"api.example.com"}, "refused: evil.test is not in the allow-list", 0},
		{"http://203.0.113.9/", []string{"api.example.com"}, "refused: 203.0.113.9 is not in the allow-list", 0},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			var lookups atomic.Int32
			c := New(Policy{Allow: tt.allow}, WithResolver(hosts(table, &lookups)))
			dials := watchDials(c, nil)
			_, err := c.Do(context.Background(), call(tt.url))
			mustPermanent(t, err, tt.want)
			if d := dials.list(); len(d) != 0 {
				t.Errorf("dialed %v", d)
			}
			if n := lookups.Load(); n != tt.lookups {
				t.Errorf("%d lookups, want %d", n, tt.lookups)
			}
		})
	}
}

// TestAdmittedLocal: what the policy admits reaches a local server.
func TestAdmittedLocal(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	p := port(t, srv)
	tests := []struct {
		name string
		url  string
		pol  Policy
	}{
		{"local policy", "http://svc.test:" + p + "/", LocalPolicy()},
		{"exact name", "http://svc.test:" + p + "/", Policy{Allow: []string{"SVC.test."}}},
		{"ip entry", "http://127.0.0.1:" + p + "/", Policy{Allow: []string{"127.0.0.1"}}},
		{"cidr entry for a name", "http://svc.test:" + p + "/", Policy{Allow: []string{"127.0.0.0/8"}}},
		{"trailing dot", "http://svc.test.:" + p + "/", Policy{Allow: []string{"svc.test"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(tt.pol, WithResolver(hosts(map[string]string{"svc.test": "127.0.0.1", "svc.test.": "127.0.0.1"}, nil)))
			if _, err := c.Do(context.Background(), call(tt.url)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDialsTheCheckedAddress: the resolver answers a public address, then
// loopback. The client must connect to the address it checked, never ask
// again: 203.0.113.7 stands for a public server and is routed to the test
// server, so only a dial of the checked address reaches it.
func TestDialsTheCheckedAddress(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	p := port(t, srv)
	var lookups atomic.Int32
	rebinding := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	c := New(Policy{Allow: []string{"*"}}, WithResolver(rebinding))
	public := net.JoinHostPort("203.0.113.7", p)
	dials := watchDials(c, map[string]string{public: srv.Listener.Addr().String()})
	if _, err := c.Do(context.Background(), call("http://rebind.test:"+p+"/")); err != nil {
		t.Fatal(err)
	}
	if d := dials.list(); len(d) != 1 || d[0] != public {
		t.Errorf("dialed %v, want [%s]", d, public)
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
}

// TestEveryConnectionIsChecked: a fresh connection resolves again and is
// checked again, so the second answer (loopback) is refused.
func TestEveryConnectionIsChecked(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	p := port(t, srv)
	var lookups atomic.Int32
	rebinding := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	c := New(Policy{Allow: []string{"*"}}, WithResolver(rebinding))
	watchDials(c, map[string]string{net.JoinHostPort("203.0.113.7", p): srv.Listener.Addr().String()})
	r := call("http://rebind.test:" + p + "/")
	r.Headers = map[string]string{"Connection": "close"}
	if _, err := c.Do(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(context.Background(), r)
	mustPermanent(t, err, "refused: rebind.test resolves to 127.0.0.1, a loopback address")
}

func TestRedirects(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hops := map[string][]echo{} // by test, each hop as the server saw it
	mux := http.NewServeMux()
	mux.HandleFunc("/{test}/{code}/{n}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		hops[r.PathValue("test")] = append(hops[r.PathValue("test")], echo{
			Method:         r.Method,
			Body:           string(body),
			ContentType:    r.Header.Get("Content-Type"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"),
			Referer:        r.Header.Get("Referer"),
		})
		mu.Unlock()
		n, _ := strconv.Atoi(r.PathValue("n"))
		code, _ := strconv.Atoi(r.PathValue("code"))
		if n == 0 {
			io.WriteString(w, `{"arrived":true}`)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/%s/%d/%d", r.PathValue("test"), code, n-1), code)
	})
	srv := newServer(t, mux.ServeHTTP)
	const body = `{"amount":100}`
	post := echo{Method: "POST", Body: body, ContentType: "application/json", IdempotencyKey: key}
	get := echo{Method: "GET", IdempotencyKey: key}
	tests := []struct {
		name  string
		code  int
		n     int
		after echo // every hop after the first
		ok    bool
	}{
		{"none", 302, 0, post, true},
		{"five 302", 302, 5, get, true},
		{"301", 301, 1, get, true},
		{"303", 303, 2, get, true},
		{"307 keeps the method and body", 307, 3, post, true},
		{"308 keeps the method and body", 308, 5, post, true},
		{"six are too many", 302, 6, get, false},
	}
	c := New(LocalPolicy())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := strconv.Itoa(i)
			r := call(fmt.Sprintf("%s/%s/%d/%d?token=s3cret", srv.URL, name, tt.code, tt.n))
			r.Body = json.RawMessage(body)
			out, err := c.Do(context.Background(), r)
			if tt.ok {
				if err != nil || string(out) != `{"arrived":true}` {
					t.Fatalf("Do = %s, %v", out, err)
				}
			} else {
				mustPermanent(t, err, fmt.Sprintf("stopped after 5 redirects: HTTP %d", tt.code))
				if se := new(StatusError); !errors.As(err, &se) || se.Status != tt.code {
					t.Errorf("status error %+v", se)
				}
			}
			mu.Lock()
			got := hops[name]
			mu.Unlock()
			if len(got) != min(tt.n, MaxRedirects)+1 {
				t.Fatalf("%d hops, want %d", len(got), min(tt.n, MaxRedirects)+1)
			}
			for j, h := range got {
				want := tt.after
				if j == 0 {
					want = post
				}
				if h != want {
					t.Errorf("hop %d: server saw %+v, want %+v", j, h, want)
				}
			}
		})
	}
}

// TestRedirectRechecked: every hop passes the same checks as the first.
func TestRedirectRechecked(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		io.WriteString(w, `{"target":true}`)
	})
	tp := port(t, target)
	table := map[string]string{"allowed.test": "127.0.0.1", "internal.test": "10.0.0.1", "other.example": "203.0.113.9"}
	tests := []struct {
		name     string
		allow    Policy
		location string
		want     string // "" when the target is reached
	}{
		{"to a loopback literal", Policy{Allow: []string{"allowed.test"}}, "http://127.0.0.1:" + tp + "/", "refused: 127.0.0.1 is a loopback address"},
		{"to a name at a private address", Policy{Allow: []string{"allowed.test", "*.test"}}, "http://internal.test:" + tp + "/", "refused: internal.test resolves to 10.0.0.1, a private address"},
		{"to a host not in the list", Policy{Allow: []string{"allowed.test"}}, "http://other.example:" + tp + "/", "refused: other.example is not in the allow-list"},
		{"to another scheme", Policy{Allow: []string{"allowed.test"}}, "ftp://allowed.test/x", "must be http or https"},
		{"to user info", Policy{Allow: []string{"allowed.test"}}, "http://u:p@allowed.test:" + tp + "/", "must not carry user info"},
		{"to an allowed loopback", Policy{Allow: []string{"allowed.test", "127.0.0.1"}}, "http://127.0.0.1:" + tp + "/", ""},
		{"to an allowed name", Policy{Allow: []string{"*.test"}, AllowLocal: true}, "http://allowed.test:" + tp + "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.location, http.StatusFound)
			})
			c := New(tt.allow, WithResolver(hosts(table, nil)))
			dials := watchDials(c, nil)
			before := targetHits.Load()
			out, err := c.Do(context.Background(), call("http://allowed.test:"+port(t, origin)+"/start"))
			if tt.want == "" {
				if err != nil || string(out) != `{"target":true}` {
					t.Fatalf("Do = %s, %v", out, err)
				}
				return
			}
			mustPermanent(t, err, tt.want)
			if n := targetHits.Load() - before; n != 0 {
				t.Errorf("the target was called %d times", n)
			}
			for _, d := range dials.list() {
				if !strings.HasSuffix(d, ":"+port(t, origin)) {
					t.Errorf("dialed %s", d)
				}
			}
		})
	}
}

// TestTLSVerifiesTheName: the client dials the checked address but verifies
// the certificate against the URL's host name.
func TestTLSVerifiesTheName(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(echoHandler))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	p := port(t, srv)
	table := map[string]string{"example.com": "127.0.0.1", "other.test": "127.0.0.1"}
	c := New(Policy{Allow: []string{"example.com", "other.test"}}, WithResolver(hosts(table, nil)), WithRootCAs(pool))
	dials := watchDials(c, nil)
	if _, err := c.Do(context.Background(), call("https://example.com:"+p+"/")); err != nil {
		t.Fatalf("the certificate for example.com: %v", err)
	}
	if d := dials.list(); len(d) != 1 || d[0] != "127.0.0.1:"+p {
		t.Errorf("dialed %v", d)
	}
	_, err := c.Do(context.Background(), call("https://other.test:"+p+"/"))
	mustPermanent(t, err, "certificate")
	if !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("error %v is not a certificate error", err)
	}
}

// TestErrorsHoldNoSecrets: no error quotes a header value, the body or the
// query string.
func TestErrorsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	secret := func(u string) Request {
		return Request{
			URL:            u + "?token=s3cret-query#s3cret-fragment",
			Headers:        map[string]string{"Authorization": "Bearer s3cret-auth", "X-Api-Key": "s3cret-key"},
			Body:           json.RawMessage(`{"card":"s3cret-card"}`),
			IdempotencyKey: key,
		}
	}
	status := func(code int) func(t *testing.T) (*Client, Request) {
		return func(t *testing.T) (*Client, Request) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) })
			return New(LocalPolicy()), secret(srv.URL + "/pay")
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (*Client, Request)
	}{
		{"400", status(400)},
		{"503", status(503)},
		{"timeout", func(t *testing.T) (*Client, Request) {
			release := make(chan struct{})
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			})
			t.Cleanup(func() { close(release) })
			r := secret(srv.URL + "/pay")
			r.Timeout = 20 * time.Millisecond
			return New(LocalPolicy()), r
		}},
		{"connection refused", func(t *testing.T) (*Client, Request) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			return New(LocalPolicy()), secret("http://" + ln.Addr().String() + "/pay")
		}},
		{"no such host", func(t *testing.T) (*Client, Request) {
			return New(LocalPolicy(), WithResolver(hosts(nil, nil))), secret("http://nowhere.test/pay")
		}},
		{"refused address", func(t *testing.T) (*Client, Request) {
			c := New(Policy{Allow: []string{"*"}}, WithResolver(hosts(map[string]string{"db.test": "10.0.0.1"}, nil)))
			return c, secret("http://db.test/pay")
		}},
		{"redirect refused", func(t *testing.T) (*Client, Request) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://169.254.169.254/latest", http.StatusTemporaryRedirect)
			})
			return New(Policy{Allow: []string{"127.0.0.1"}}), secret(srv.URL + "/pay")
		}},
		{"too many redirects", func(t *testing.T) (*Client, Request) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
			})
			return New(LocalPolicy()), secret(srv.URL + "/pay")
		}},
		{"body over the cap", func(t *testing.T) (*Client, Request) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, MaxOutputBytes+1)) })
			return New(LocalPolicy()), secret(srv.URL + "/pay")
		}},
		{"invalid header value", func(t *testing.T) (*Client, Request) {
			r := secret("http://127.0.0.1/pay")
			r.Headers["X-Bad"] = "s3cret-value\n"
			return New(LocalPolicy()), r
		}},
		{"Idempotency-Key header", func(t *testing.T) (*Client, Request) {
			r := secret("http://127.0.0.1/pay")
			r.Headers["Idempotency-Key"] = "s3cret-idempotency"
			return New(LocalPolicy()), r
		}},
		{"invalid body", func(t *testing.T) (*Client, Request) {
			r := secret("http://127.0.0.1/pay")
			r.Body = json.RawMessage(`{"card":"s3cret-card"`)
			return New(LocalPolicy()), r
		}},
		{"invalid url", func(t *testing.T) (*Client, Request) {
			return New(LocalPolicy()), secret("http://exa mple.com/pay")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, r := tt.setup(t)
			_, err := c.Do(context.Background(), r)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q holds a secret", err)
			}
		})
	}
}

func TestConcurrentDo(t *testing.T) {
	t.Parallel()
	srv := newServer(t, echoHandler)
	c := New(LocalPolicy())
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 5 {
				r := call(srv.URL)
				r.IdempotencyKey = fmt.Sprintf("run-%d/%d", i, j)
				out, err := c.Do(context.Background(), r)
				var got echo
				if err == nil {
					err = json.Unmarshal(out, &got)
				}
				if err != nil || got.IdempotencyKey != r.IdempotencyKey {
					t.Errorf("Do(%s) = %s, %v", r.IdempotencyKey, out, err)
				}
			}
		})
	}
	wg.Wait()
}
