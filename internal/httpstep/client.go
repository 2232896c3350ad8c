package httpstep

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// MaxRedirects is how many redirects a request follows; the response to
// one more fails the step permanently.
const MaxRedirects = 5

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Option configures a Client.
type Option func(*Client)

// WithResolver sets the resolver; the default is net.DefaultResolver.
func WithResolver(r Resolver) Option { return func(c *Client) { c.resolver = r } }

// WithClock sets the clock that HTTP-dates in Retry-After are measured
// from; the default is time.Now.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithRootCAs sets the certificate authorities TLS trusts; the default is
// the system's.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *Client) { c.roots = pool } }

// Client calls the endpoints of http steps under a Policy. It is safe for
// concurrent use and keeps connections alive between calls.
type Client struct {
	rules    *rules
	err      error // the policy's; every Do returns it
	resolver Resolver
	now      func() time.Time
	roots    *x509.CertPool
	// dial connects to an address the policy admitted (an IP and a port).
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	http *http.Client
}

// New returns a Client that calls only what p permits. If p is not valid
// (see Policy.Validate) every request fails permanently.
func New(p Policy, opts ...Option) *Client {
	c := &Client{resolver: net.DefaultResolver, now: time.Now}
	c.rules, c.err = p.compile()
	c.dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	for _, o := range opts {
		o(c)
	}
	// The request's context bounds every phase (dial, TLS, headers, body);
	// the transport's own limits are backstops.
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            c.dialContext,
		TLSClientConfig:        &tls.Config{RootCAs: c.roots},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  MaxTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	c.http = &http.Client{Transport: transport, CheckRedirect: c.checkRedirect}
	return c
}

// errTimedOut is the cause of a context that ended at the request's
// timeout, to tell it from the caller's context ending.
var errTimedOut = errors.New("request timed out")

// Do makes the request and returns the step's output: a 2xx response's
// body when it is JSON, else {"status": N, "body": "..."}. Its errors are
// a *RetryableError, an error wrapping ErrPermanent, or, when ctx ends
// first, an error wrapping ctx's error.
func (c *Client) Do(ctx context.Context, r Request) (json.RawMessage, error) {
	if c.err != nil {
		return nil, permanent(fmt.Errorf("the http policy is not valid: %w", c.err))
	}
	timeout, err := r.timeout()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		where := req.Method + " " + redact(req.URL)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the URL with its query
			if u, perr := url.Parse(ue.URL); perr == nil {
				where = req.Method + " " + redact(u)
			}
		}
		return nil, failure(ctx, where, timeout, err)
	}
	defer resp.Body.Close()
	return c.result(ctx, timeout, resp, r.Redact)
}

// result classifies a response.
func (c *Client) result(ctx context.Context, timeout time.Duration, resp *http.Response, redactBody func([]byte) string) (json.RawMessage, error) {
	quote := func() string {
		if redactBody == nil {
			return snippet(resp.Body)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxOutputBytes))
		return snippet(strings.NewReader(redactBody(b)))
	}
	where := resp.Request.Method + " " + redact(resp.Request.URL)
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutputBytes+1))
		if err != nil {
			return nil, failure(ctx, where, timeout, err)
		}
		if len(body) > MaxOutputBytes {
			return nil, permanent(fmt.Errorf("%s: the response body is over 64 KiB", where))
		}
		return output(code, body), nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 && code <= 599:
		return nil, &RetryableError{
			Status: code,
			After:  retryAfter(resp.Header.Get("Retry-After"), c.now()),
			Err:    fmt.Errorf("%s: %w", where, &StatusError{Status: code, Body: quote()}),
		}
	case code >= 300 && code <= 399:
		// No body: a redirect's usually quotes its target, query included.
		err := fmt.Errorf("%s: %w", where, &StatusError{Status: code})
		if isRedirect(code) && resp.Header.Get("Location") != "" {
			err = fmt.Errorf("%s: stopped after %d redirects: %w", where, MaxRedirects, &StatusError{Status: code})
		}
		return nil, permanent(err)
	default:
		return nil, permanent(fmt.Errorf("%s: %w", where, &StatusError{Status: code, Body: quote()}))
	}
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// failure classifies an error met before a response was read in full.
func failure(ctx context.Context, where string, timeout time.Duration, err error) error {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimedOut):
		return &RetryableError{Err: fmt.Errorf("%s: no response within %v: %w", where, timeout, context.DeadlineExceeded)}
	case cause != nil:
		return fmt.Errorf("%s: %w", where, ctx.Err())
	case errors.Is(err, ErrPermanent):
		return fmt.Errorf("%s: %w", where, err)
	case errors.As(err, new(*tls.CertificateVerificationError)):
		return permanent(fmt.Errorf("%s: %w", where, err))
	}
	return &RetryableError{Err: fmt.Errorf("%s: %w", where, err)}
}

// checkRedirect follows at most MaxRedirects redirects, checks each hop as
// the first, keeps the Idempotency-Key and drops the Referer net/http adds
// (the previous URL, whose query may hold a secret).
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return http.ErrUseLastResponse
	}
	if err := checkURL(req.URL); err != nil {
		return err
	}
	if err := c.rules.precheck(req.URL.Hostname()); err != nil {
		return err
	}
	first := via[0]
	req.Header.Set(idempotencyHeader, first.Header.Get(idempotencyHeader))
	if first.Header.Get("Referer") == "" {
		req.Header.Del("Referer")
	}
	return nil
}

// dialContext resolves the host once, checks every address against the
// policy and dials the checked addresses themselves, so a second answer
// from DNS can never be the one connected to.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	host = normHost(host)
	addrs, err := c.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if err := c.rules.check(host, addrs); err != nil {
		return nil, err
	}
	var first error
	for _, a := range addrs {
		conn, err := c.dial(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		first = cmp.Or(first, err)
	}
	return nil, first
}

// resolve returns an IP literal itself, else the resolver's answer.
func (c *Client) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}
