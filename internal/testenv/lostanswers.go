package testenv

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"stepflow/internal/awsclient"
)

// LostAnswers is an HTTP transport for SDK clients that sends every request
// to the endpoint and, for requests an armed rule matches, throws the
// endpoint's answer away and answers 500 InternalServerError instead: the
// write landed, and its answer was lost on the way back. The SDK's standard
// retryer then sends the same request again by itself, as it does on AWS
// after a connection reset (see shared/notes/lost-answers.md). It is safe
// for concurrent use.
type LostAnswers struct {
	next http.RoundTripper

	mu    sync.Mutex
	rules []*loseRule
	lost  []string // operations whose answers were lost, in order
}

type loseRule struct {
	op    string
	match func(body string) bool
	n     int
	// landed and release, if set: the loss waits, after the request
	// landed, until release is closed, having closed landed.
	landed, release chan struct{}
}

// Lose arms a rule: the answers of the next n requests of operation op
// ("PutItem", "TransactWriteItems"...) whose JSON body match accepts (nil:
// any) are lost after the request landed.
func (l *LostAnswers) Lose(op string, n int, match func(body string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = append(l.rules, &loseRule{op: op, match: match, n: n})
}

// Hold arms a rule that loses the answer of the next request of op that
// match accepts, and holds it: once the request landed, landed is closed,
// and the lost answer (a 500) is given only when release is called. The
// SDK then retries, as after any lost answer.
func (l *LostAnswers) Hold(op string, match func(body string) bool) (landed <-chan struct{}, release func()) {
	r := &loseRule{op: op, match: match, n: 1, landed: make(chan struct{}), release: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = append(l.rules, r)
	var once sync.Once
	return r.landed, func() { once.Do(func() { close(r.release) }) }
}

// Containing matches request bodies that contain every one of parts.
func Containing(parts ...string) func(string) bool {
	return func(body string) bool {
		for _, p := range parts {
			if !strings.Contains(body, p) {
				return false
			}
		}
		return true
	}
}

// Lost returns the operations whose answers were lost so far.
func (l *LostAnswers) Lost() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lost...)
}

// Pending reports how many armed answers have not been lost yet.
func (l *LostAnswers) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.rules {
		n += r.n
	}
	return n
}

// RoundTrip implements http.RoundTripper.
func (l *LostAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	op := req.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	res, err := l.next.RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusOK {
		return res, err
	}
	rule := l.take(op, string(body))
	if rule == nil {
		return res, nil
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck // the answer is thrown away
	res.Body.Close()
	if rule.landed != nil {
		close(rule.landed)
		<-rule.release
	}
	msg := `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: the request landed and its answer was lost"}`
	return &http.Response{
		Status: "500 Internal Server Error", StatusCode: http.StatusInternalServerError,
		Proto: res.Proto, ProtoMajor: res.ProtoMajor, ProtoMinor: res.ProtoMinor,
		Header:  http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:    io.NopCloser(strings.NewReader(msg)),
		Request: req, ContentLength: int64(len(msg)),
	}, nil
}

func (l *LostAnswers) take(op, body string) *loseRule {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.rules {
		if r.n > 0 && r.op == op && (r.match == nil || r.match(body)) {
			r.n--
			l.lost = append(l.lost, op)
			return r
		}
	}
	return nil
}

// LosingDynamoDB returns a DynamoDB client for the test endpoint whose
// answers a test can lose, and the transport that loses them. The client
// keeps the SDK's standard retryer, so a lost answer is retried as on AWS.
func LosingDynamoDB(t testing.TB) (*dynamodb.Client, *LostAnswers) {
	t.Helper()
	cfg, l := LosingConfig(t)
	return awsclient.DynamoDB(cfg, Endpoint(t)), l
}

// LosingConfig returns SDK configuration whose HTTP transport can lose
// answers (see LostAnswers), for clients that add middleware of their own.
func LosingConfig(t testing.TB) (aws.Config, *LostAnswers) {
	t.Helper()
	l := &LostAnswers{next: awshttp.NewBuildableClient().GetTransport()}
	cfg := Config(t)
	cfg.HTTPClient = &http.Client{Transport: l}
	cfg.RetryMaxAttempts = 3
	cfg.RetryMode = aws.RetryModeStandard
	return cfg, l
}
