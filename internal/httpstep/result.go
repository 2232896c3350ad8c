package httpstep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxOutputBytes is the largest response body a step accepts. A larger one
// fails the step permanently. It bounds the body, not the output: a body
// that is not JSON is quoted in a JSON string, where escapes can make it up
// to six times as long.
const MaxOutputBytes = 64 << 10

// MaxRetryAfter caps RetryableError.After.
const MaxRetryAfter = 15 * time.Minute

// maxSnippet is the most of a response body an error quotes, in bytes.
const maxSnippet = 256

// ErrPermanent is wrapped by every error that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// permanent marks err as one that retrying cannot fix.
func permanent(err error) error { return &permanentError{err} }

// RetryableError is a failure that a later attempt may not meet: 408, 429,
// 5xx, a timeout or a connection error.
type RetryableError struct {
	// Status is the response's status code, 0 when there was no response.
	Status int
	// After is the least the next attempt must wait, from the response's
	// Retry-After header (at most MaxRetryAfter), or 0.
	After time.Duration
	// Err is what failed: a *StatusError when there was a response.
	Err error
}

func (e *RetryableError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// StatusError is a response that is not a success: its status and the
// start of its body. Do wraps it in a RetryableError or a permanent error.
type StatusError struct {
	Status int
	// Body is the start of the response body: at most 256 bytes of valid
	// UTF-8, runs of white space and control characters made one space.
	// It is empty for a 3xx, whose body usually quotes the redirect's
	// target, query string included.
	Body string
}

func (e *StatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Status)
	if text := http.StatusText(e.Status); text != "" {
		s += " " + text
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// output is a 2xx response's step output: the body when it is JSON, else
// {"status": N, "body": "..."} with invalid UTF-8 replaced.
func output(status int, body []byte) json.RawMessage {
	if b := bytes.TrimSpace(body); utf8.Valid(b) && json.Valid(b) {
		return b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// Encoding an int and a string cannot fail.
	_ = enc.Encode(struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}{status, strings.ToValidUTF8(string(body), "\uFFFD")})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// retryAfter parses a Retry-After header value, delta-seconds or an
// HTTP-date relative to now. It returns 0 for a missing, negative or
// unparseable value, and at most MaxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	var d time.Duration
	switch {
	case v == "":
		return 0
	case strings.Trim(v, "0123456789") == "":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter // only digits: err is an overflow
		}
		d = time.Duration(n) * time.Second
	default:
		t, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// snippet reads the start of a response body for an error message: at most
// maxSnippet bytes of valid UTF-8, with runs of white space and control
// characters made one space. A read error keeps what was read.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxSnippet))
	var s strings.Builder
	gap := false
	for len(b) > 0 {
		c, n := utf8.DecodeRune(b)
		if c == utf8.RuneError && n == 1 && !utf8.FullRune(b) {
			break // a character cut by the limit
		}
		b = b[n:]
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			gap = s.Len() > 0
			continue
		}
		need := utf8.RuneLen(c)
		if gap {
			need++
		}
		if s.Len()+need > maxSnippet {
			break
		}
		if gap {
			s.WriteByte(' ')
			gap = false
		}
		s.WriteRune(c)
	}
	return s.String()
}
