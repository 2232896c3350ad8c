package httpstep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds a request whose Timeout is zero.
const DefaultTimeout = 10 * time.Second

// MaxTimeout is the longest Request.Timeout.
const MaxTimeout = 300 * time.Second

// UserAgent is the User-Agent header sent unless the step sets its own.
const UserAgent = "stepflow/1"

const idempotencyHeader = "Idempotency-Key"

// Request is one call of an http step, its templates already rendered.
type Request struct {
	// Method defaults to POST; it is upper-cased.
	Method string
	// URL is http or https, without user info.
	URL string
	// Headers are sent with canonical names, overriding the defaults
	// (User-Agent, Content-Type). They may not set Idempotency-Key, nor the
	// headers the client manages (Host, Content-Length, Transfer-Encoding).
	Headers map[string]string
	// Body, when not empty, is sent as application/json unless Headers set
	// Content-Type. It must be valid JSON.
	Body json.RawMessage
	// Timeout bounds the whole call, from dialing to reading the body:
	// DefaultTimeout when zero, at most MaxTimeout.
	Timeout time.Duration
	// IdempotencyKey is sent as the Idempotency-Key header on every
	// attempt and redirect hop. Required.
	IdempotencyKey string
	// Redact, if set, is applied to the whole of an error response's body
	// (up to MaxOutputBytes) before its start is quoted in the error, so
	// that a secret the service echoes is hidden whole, never cut.
	Redact func(body []byte) string
}

// managedHeaders are set by net/http, which ignores them in a request's
// header map; a step that sets one gets an error rather than a surprise.
var managedHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true}

// timeout returns the request's timeout, or an error if it is out of range.
func (r Request) timeout() (time.Duration, error) {
	switch {
	case r.Timeout == 0:
		return DefaultTimeout, nil
	case r.Timeout < 0 || r.Timeout > MaxTimeout:
		return 0, permanent(fmt.Errorf("the timeout %v is not between 0 and %v", r.Timeout, MaxTimeout))
	}
	return r.Timeout, nil
}

// newRequest validates r and builds its first hop. It never quotes a header
// value, the body or the URL in an error.
func (c *Client) newRequest(ctx context.Context, r Request) (*http.Request, error) {
	if r.IdempotencyKey == "" {
		return nil, permanent(errors.New("the idempotency key is empty"))
	}
	if !validValue(r.IdempotencyKey) {
		return nil, permanent(errors.New("the idempotency key holds a control character"))
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL
		}
		return nil, permanent(fmt.Errorf("the url is not valid: %w", err))
	}
	if err := checkURL(u); err != nil {
		return nil, err
	}
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodPost
	}
	if !validName(method) {
		return nil, permanent(fmt.Errorf("the method %q is not valid", r.Method))
	}
	if err := c.rules.precheck(u.Hostname()); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, redact(u), err)
	}
	var body io.Reader
	if len(r.Body) > 0 {
		if !json.Valid(r.Body) {
			return nil, permanent(errors.New("the request body is not valid JSON"))
		}
		body = bytes.NewReader(r.Body)
	}
	header := http.Header{"User-Agent": {UserAgent}}
	if body != nil {
		header.Set("Content-Type", "application/json")
	}
	seen := map[string]bool{}
	for k, v := range r.Headers {
		name := http.CanonicalHeaderKey(k)
		switch {
		case !validName(k):
			return nil, permanent(fmt.Errorf("the header name %q is not valid", k))
		case name == idempotencyHeader:
			return nil, permanent(errors.New("the Idempotency-Key header is set from the step's idempotency key and cannot be overridden"))
		case managedHeaders[name]:
			return nil, permanent(fmt.Errorf("the %s header is set by the client and cannot be given", name))
		case seen[name]:
			return nil, permanent(fmt.Errorf("the header %s is given twice", name))
		case !validValue(v):
			return nil, permanent(fmt.Errorf("the value of header %s holds a control character", name))
		}
		seen[name] = true
		header.Set(name, v)
	}
	header.Set(idempotencyHeader, r.IdempotencyKey)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, permanent(fmt.Errorf("build the request: %w", err))
	}
	req.Header = header
	return req, nil
}

// checkURL refuses a URL that is not http or https, carries user info or
// has no valid host. It is applied to every redirect hop too.
func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return permanent(fmt.Errorf("the url scheme must be http or https, not %q", u.Scheme))
	}
	if u.User != nil {
		return permanent(errors.New("the url must not carry user info (user:pass@host); send credentials in a header"))
	}
	host := u.Hostname()
	if host == "" {
		return permanent(errors.New("the url has no host"))
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if _, ok := hostName(host); !ok {
		return permanent(fmt.Errorf("the url host %q is not a valid host name (use the xn-- form of an international name)", host))
	}
	return nil
}

// redact is u for error messages: its scheme and host only. The path, the
// query and user info may hold secrets filled in by templates, in escaped
// forms a redactor cannot know; the step's config says what was called.
func redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}

// validName reports whether s is an HTTP token (a method or header name).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validValue reports whether s may be a header value: no control
// characters but tab.
func validValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
