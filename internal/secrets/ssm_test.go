package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/sivchari/kumo"

	"stepflow/internal/deploy"
	"stepflow/internal/secrets"
	"stepflow/internal/testenv"
)

// SSMEndpointVar points the SSM tests at an external Parameter Store
// endpoint (LocalStack); by default they run against the embedded kumo
// emulator, which serves SSM. STEPFLOW_TEST_ENDPOINT is not used: it may
// be DynamoDB Local, which has no SSM.
const SSMEndpointVar = "STEPFLOW_TEST_SSM_ENDPOINT"

var (
	ssmOnce     sync.Once
	ssmEndpoint string
)

func endpoint(t *testing.T) string {
	t.Helper()
	ssmOnce.Do(func() {
		if ssmEndpoint = os.Getenv(SSMEndpointVar); ssmEndpoint == "" {
			ssmEndpoint = kumo.NewServer().URL
		}
	})
	return ssmEndpoint
}

// transport sits between the SDK and the endpoint: it counts GetParameter
// requests and can fail or hold the next ones.
type transport struct {
	next http.RoundTripper

	mu   sync.Mutex
	gets int
	fail int           // answer the next fail GetParameter requests 500, unsent
	hold chan struct{} // the next GetParameter waits for it to be closed
	held chan struct{} // closed when that request is held
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetParameter") {
		return tr.next.RoundTrip(req)
	}
	tr.mu.Lock()
	tr.gets++
	fail := tr.fail > 0
	if fail {
		tr.fail--
	}
	hold, held := tr.hold, tr.held
	tr.hold, tr.held = nil, nil
	tr.mu.Unlock()
	if fail {
		msg := `{"__type":"InternalServerError","message":"injected"}`
		return &http.Response{
			StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
			Body:   io.NopCloser(strings.NewReader(msg)), ContentLength: int64(len(msg)), Request: req,
		}, nil
	}
	if hold != nil {
		close(held)
		select {
		case <-hold:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return tr.next.RoundTrip(req)
}

// Gets returns how many GetParameter requests were made.
func (tr *transport) Gets() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.gets
}

// Hold makes the next GetParameter wait until release is called; held is
// closed once it waits.
func (tr *transport) Hold() (held <-chan struct{}, release func()) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.hold, tr.held = make(chan struct{}), make(chan struct{})
	h := tr.hold
	var once sync.Once
	return tr.held, func() { once.Do(func() { close(h) }) }
}

func (tr *transport) Fail(n int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.fail = n
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

type bundle struct {
	client *ssm.Client
	tr     *transport
	clock  *clock
	prefix string
	src    *secrets.SSM
}

const (
	ttl     = time.Minute
	missTTL = 5 * time.Second
)

// setup gives a test an SSM source over the real SDK and endpoint, with
// its own parameter prefix and clock. The client makes one attempt per
// call, so an injected failure is seen at once (retries are the SDK's).
func setup(t *testing.T) bundle {
	t.Helper()
	tr := &transport{next: http.DefaultTransport}
	client := ssm.NewFromConfig(testenv.Config(t), func(o *ssm.Options) {
		o.BaseEndpoint = aws.String(endpoint(t))
		o.HTTPClient = &http.Client{Transport: tr}
		o.RetryMaxAttempts = 1
	})
	b := bundle{client: client, tr: tr, clock: &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}
	b.prefix = "/stepflow/" + testenv.Name(t, "sf") + "/secrets/"
	src, err := secrets.NewSSM(client, secrets.SSMConfig{Prefix: b.prefix, TTL: ttl, MissTTL: missTTL, Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	b.src = src
	return b
}

func (b bundle) put(t *testing.T, name, value string, typ types.ParameterType) {
	t.Helper()
	_, err := b.client.PutParameter(context.Background(), &ssm.PutParameterInput{
		Name: aws.String(b.prefix + name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = b.client.DeleteParameter(context.Background(), &ssm.DeleteParameterInput{Name: aws.String(b.prefix + name)})
	})
}

// want calls Get and checks its value and the GetParameter requests made
// so far.
func (b bundle) want(t *testing.T, name, value string, gets int) {
	t.Helper()
	got, err := b.src.Get(context.Background(), name)
	if err != nil || got != value {
		t.Fatalf("Get(%s) = %q, %v; want %q", name, got, err, value)
	}
	if n := b.tr.Gets(); n != gets {
		t.Fatalf("after Get(%s): %d GetParameter calls, want %d", name, n, gets)
	}
}

func TestSSMReadsDecryptedAndCachesForTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "API_KEY", "v1", types.ParameterTypeSecureString)
	b.want(t, "API_KEY", "v1", 1) // decrypted: the value, not a ciphertext
	b.want(t, "API_KEY", "v1", 1)
	b.put(t, "API_KEY", "v2", types.ParameterTypeSecureString)
	b.clock.Advance(ttl - time.Nanosecond)
	b.want(t, "API_KEY", "v1", 1)
	b.clock.Advance(time.Nanosecond)
	b.want(t, "API_KEY", "v2", 2)
	b.want(t, "API_KEY", "v2", 2)
}

func TestSSMMissingIsRememberedBriefly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 2 {
		_, err := b.src.Get(context.Background(), "LATER")
		if !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Get of a missing parameter: %v, want ErrNotFound", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "LATER") || !strings.Contains(msg, b.prefix+"LATER") {
			t.Errorf("error %q does not name the secret and its parameter", msg)
		}
	}
	if n := b.tr.Gets(); n != 1 {
		t.Fatalf("%d GetParameter calls, want 1", n)
	}
	b.put(t, "LATER", "now", types.ParameterTypeSecureString)
	b.clock.Advance(missTTL - time.Nanosecond)
	if _, err := b.src.Get(context.Background(), "LATER"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("within MissTTL: %v, want ErrNotFound", err)
	}
	b.clock.Advance(time.Nanosecond)
	b.want(t, "LATER", "now", 2)
}

func TestSSMRefusesPlainParameters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "PLAIN", "visible-value", types.ParameterTypeString)
	for range 2 {
		_, err := b.src.Get(context.Background(), "PLAIN")
		if !errors.Is(err, secrets.ErrNotSecureString) {
			t.Fatalf("Get of a String parameter: %v, want ErrNotSecureString", err)
		}
		if strings.Contains(err.Error(), "visible-value") {
			t.Errorf("error %q contains the value", err)
		}
	}
	if n := b.tr.Gets(); n != 1 {
		t.Errorf("%d GetParameter calls, want 1 (remembered for MissTTL)", n)
	}
}

func TestSSMInvalidNameMakesNoCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"", "api_key", "../API_KEY", "/other/PARAM", "A.B", "1A", strings.Repeat("A", 65)} {
		if _, err := b.src.Get(context.Background(), name); !errors.Is(err, secrets.ErrInvalidName) {
			t.Errorf("Get(%q): %v, want ErrInvalidName", name, err)
		}
	}
	if n := b.tr.Gets(); n != 0 {
		t.Errorf("%d GetParameter calls for invalid names, want 0", n)
	}
}

func TestSSMErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "TOKEN", "tok-value", types.ParameterTypeSecureString)
	b.tr.Fail(1)
	_, err := b.src.Get(context.Background(), "TOKEN")
	if err == nil || errors.Is(err, secrets.ErrNotFound) || !strings.Contains(err.Error(), "TOKEN") {
		t.Fatalf("Get during a server error: %v, want an error naming TOKEN that is not ErrNotFound", err)
	}
	b.want(t, "TOKEN", "tok-value", 2)
}

func TestSSMConcurrentMissesMakeOneCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "SHARED", "shared-value", types.ParameterTypeSecureString)
	held, release := b.tr.Hold()
	defer release()
	const callers = 20
	got := make(chan string, callers)
	for range callers {
		go func() {
			v, err := b.src.Get(context.Background(), "SHARED")
			if err != nil {
				v = err.Error()
			}
			got <- v
		}()
	}
	<-held
	waitFor(t, func() bool { return b.src.Waiters("SHARED") == callers-1 })
	release()
	for range callers {
		if v := <-got; v != "shared-value" {
			t.Errorf("a caller got %q", v)
		}
	}
	if n := b.tr.Gets(); n != 1 {
		t.Errorf("%d GetParameter calls for %d concurrent callers, want 1", n, callers)
	}
}

// TestSSMCancelledCaller: a caller whose context ends stops waiting; a
// call cut short by its caller's context is made again for the callers
// that still wait, not handed them as their error.
func TestSSMCancelledCaller(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "SLOW", "slow-value", types.ParameterTypeSecureString)
	held, release := b.tr.Hold()
	defer release()
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, err := b.src.Get(first, "SLOW"); firstErr <- err }()
	<-held

	impatient, cancelImpatient := context.WithCancel(context.Background())
	impatientErr := make(chan error, 1)
	go func() { _, err := b.src.Get(impatient, "SLOW"); impatientErr <- err }()
	second := make(chan string, 1)
	go func() {
		v, err := b.src.Get(context.Background(), "SLOW")
		if err != nil {
			v = err.Error()
		}
		second <- v
	}()
	waitFor(t, func() bool { return b.src.Waiters("SLOW") == 2 })

	cancelImpatient()
	if err := <-impatientErr; !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter whose context ended: %v, want context.Canceled", err)
	}
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller whose context ended: %v, want context.Canceled", err)
	}
	if v := <-second; v != "slow-value" {
		t.Errorf("the waiter with a live context got %q, want the value", v)
	}
	if n := b.tr.Gets(); n != 2 {
		t.Errorf("%d GetParameter calls, want 2 (the cancelled one, then the waiter's)", n)
	}
}

func TestSSMCacheIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range secrets.MaxEntries + 10 {
		if _, err := b.src.Get(context.Background(), fmt.Sprintf("N%d", i)); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := b.src.Cached(); n > secrets.MaxEntries {
		t.Errorf("the cache holds %d names, want at most %d", n, secrets.MaxEntries)
	}
}

func TestNewSSMPrefix(t *testing.T) {
	t.Parallel()
	// The prefix of any CloudFormation stack name (a letter, then letters,
	// digits and hyphens, up to 128), as the stack hands it the runner.
	stack := "S"
	for len(stack) < 128 {
		stack += "a-1"
	}
	for _, tt := range []struct {
		prefix string
		ok     bool
	}{
		{deploy.SecretsPrefix("Stepflow"), true},
		{deploy.SecretsPrefix(stack[:128]), true},
		{"/stepflow/my-stack_2.x/secrets/", true},
		{"/a/", true},
		{"", false},
		{"/", false},
		{"stepflow/secrets/", false},
		{"/stepflow/secrets", false},
		{"/stepflow//secrets/", false},
		{"/stepflow/a b/", false},
	} {
		_, err := secrets.NewSSM(&ssm.Client{}, secrets.SSMConfig{Prefix: tt.prefix})
		if (err == nil) != tt.ok {
			t.Errorf("NewSSM(prefix %q): %v, want ok=%v", tt.prefix, err, tt.ok)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
