// Package testenv gives integration tests real AWS services: the embedded
// kumo emulator by default, or the endpoint in STEPFLOW_TEST_ENDPOINT
// (DynamoDB Local, LocalStack, a standalone kumo). An endpoint that is set
// but unreachable fails the test; nothing is skipped.
package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sivchari/kumo"

	"stepflow/internal/awsclient"
	"stepflow/internal/queue"
	"stepflow/internal/store"
)

// EndpointVar names the variable that points tests at an external endpoint.
const EndpointVar = "STEPFLOW_TEST_ENDPOINT"

var (
	once     sync.Once
	endpoint string
	setupErr error
	counter  atomic.Int64
)

// Endpoint returns the endpoint tests use, starting the embedded emulator
// on first use.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if e := os.Getenv(EndpointVar); e != "" {
			endpoint, setupErr = e, reachable(e)
			return
		}
		// One emulator per test binary; kumo keeps its state process-wide
		// anyway, so tests isolate themselves by table and queue names.
		endpoint = kumo.NewServer().URL
	})
	if setupErr != nil {
		t.Fatalf("%s=%s: %v", EndpointVar, endpoint, setupErr)
	}
	return endpoint
}

func reachable(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL")
	}
	conn, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		return fmt.Errorf("endpoint unreachable: %w", err)
	}
	return conn.Close()
}

// Config returns SDK configuration for local endpoints.
func Config(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := awsclient.Load(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// DynamoDB returns a client for the test endpoint.
func DynamoDB(t testing.TB) *dynamodb.Client {
	t.Helper()
	return awsclient.DynamoDB(Config(t), Endpoint(t))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Name returns a name unique to this test, for tables and queues.
func Name(t testing.TB, kind string) string {
	t.Helper()
	n := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("%s-%s-%d-%d", kind, n, os.Getpid(), counter.Add(1))
}

// Table creates a Stepflow table for this test, deleted when it ends, and
// returns its name.
func Table(t testing.TB, db *dynamodb.Client) string {
	t.Helper()
	name := Name(t, "sf")
	ctx := context.Background()
	if err := store.EnsureTable(ctx, db, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

// SQS returns a client for the test endpoint.
//
// SQS always uses the embedded emulator unless STEPFLOW_TEST_SQS_ENDPOINT
// is set: DynamoDB Local, the DynamoDB conformance target, has no SQS.
func SQS(t testing.TB) *sqs.Client {
	t.Helper()
	return awsclient.SQS(Config(t), SQSEndpoint(t))
}

var (
	sqsOnce     sync.Once
	sqsEndpoint string
)

// SQSEndpoint returns the SQS endpoint tests use.
func SQSEndpoint(t testing.TB) string {
	t.Helper()
	sqsOnce.Do(func() {
		if e := os.Getenv("STEPFLOW_TEST_SQS_ENDPOINT"); e != "" {
			sqsEndpoint = e
			return
		}
		if os.Getenv(EndpointVar) == "" {
			sqsEndpoint = Endpoint(t)
			return
		}
		sqsEndpoint = kumo.NewServer().URL
	})
	return sqsEndpoint
}

// Queue creates a work queue (with a dead-letter queue if the settings ask
// for one) for this test, deleted when it ends.
func Queue(t testing.TB, c *sqs.Client, s queue.Settings) queue.Queues {
	t.Helper()
	q, err := queue.EnsureQueues(context.Background(), c, Name(t, "q"), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, u := range []string{q.URL, q.DLQURL} {
			if u != "" {
				_, _ = c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
			}
		}
	})
	return q
}

// Store returns a Store over a fresh table, with opts.
func Store(t testing.TB, opts ...store.Option) *store.Store {
	t.Helper()
	db := DynamoDB(t)
	return store.New(db, Table(t, db), opts...)
}

// Tokens returns a token store over a fresh token table, deleted when the
// test ends.
func Tokens(t testing.TB) *store.Tokens {
	t.Helper()
	db := DynamoDB(t)
	name := Name(t, "tok")
	if err := store.EnsureTokenTable(context.Background(), db, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return store.NewTokens(db, name)
}

// PostJSON posts body to url with the bearer token (if any), requires a
// 2xx answer and decodes it.
func PostJSON(t testing.TB, url, token, body string) map[string]any {
	t.Helper()
	code, v := send(t, http.MethodPost, url, token, body)
	if code/100 != 2 {
		t.Fatalf("POST %s: %d %v", url, code, v)
	}
	return v
}

// GetJSON gets url with the bearer token (if any) and decodes the answer,
// returning its status too.
func GetJSON(t testing.TB, url, token string) (int, map[string]any) {
	t.Helper()
	return send(t, http.MethodGet, url, token, "")
}

func send(t testing.TB, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(res.Body).Decode(&v)
	return res.StatusCode, v
}
