package functions_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stepflow/internal/queue"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// SizeBudget is the largest bootstrap we ship (see README).
const SizeBudget = 12 << 20

var functions = []string{"api", "authorizer", "redrive", "steprunner", "sweeper"}

// makeBuild runs "make build" for the given architecture into dir.
func makeBuild(t *testing.T, arch, dir string) {
	t.Helper()
	cmd := exec.Command("make", "-s", "build", "BUILD_DIR="+dir, "LAMBDA_ARCH="+arch)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build (%s): %v\n%s", arch, err, out)
	}
}

// TestBootstrapsFitTheBudget: make build produces one linux/arm64
// bootstrap per function, each within the size budget.
func TestBootstrapsFitTheBudget(t *testing.T) {
	dir := t.TempDir()
	makeBuild(t, "arm64", dir)
	for _, fn := range functions {
		path := filepath.Join(dir, fn, "bootstrap")
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		head := make([]byte, 20)
		f, _ := os.Open(path)
		_, _ = io.ReadFull(f, head)
		f.Close()
		// ELF, 64-bit, machine 0xB7 (AArch64).
		if string(head[:4]) != "\x7fELF" || head[4] != 2 || head[18] != 0xB7 {
			t.Errorf("%s is not a linux/arm64 ELF binary", fn)
		}
		if st.Size() > SizeBudget {
			t.Errorf("%s is %.1f MiB, over the %d MiB budget", fn, float64(st.Size())/(1<<20), SizeBudget>>20)
		}
		t.Logf("%s: %.2f MiB", fn, float64(st.Size())/(1<<20))
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBootstrapsAnswerUnderTheRuntimeEmulator runs each real entry point
// the way Lambda does, under the AWS Lambda Runtime Interface Emulator, and
// sends it one recorded event. The binaries are built for this machine's
// architecture (the emulator cannot run arm64 code here) with the same
// flags as the shipped ones.
func TestBootstrapsAnswerUnderTheRuntimeEmulator(t *testing.T) {
	bins := t.TempDir()
	makeBuild(t, hostArch(t), bins)
	rie := filepath.Join(t.TempDir(), "aws-lambda-rie")
	build := exec.Command("go", "build", "-modfile=../tools/rie/go.mod", "-o", rie, "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the runtime interface emulator: %v\n%s", err, out)
	}

	// Real AWS APIs for the functions: the embedded emulator.
	db := testenv.DynamoDB(t)
	table := testenv.Table(t, db)
	tokenTable := testenv.Name(t, "tok")
	if err := store.EnsureTokenTable(context.Background(), db, tokenTable); err != nil {
		t.Fatal(err)
	}
	qs := testenv.Queue(t, testenv.SQS(t), queue.Settings{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 5})
	env := append(os.Environ(),
		"AWS_ENDPOINT_URL="+testenv.SQSEndpoint(t), "AWS_ENDPOINT_URL_DYNAMODB="+testenv.Endpoint(t),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"STEPFLOW_TABLE="+table, "STEPFLOW_TOKEN_TABLE="+tokenTable, "STEPFLOW_QUEUE_URL="+qs.URL, "STEPFLOW_DLQ_URL="+qs.DLQURL,
		"STEPFLOW_SECRETS_PREFIX=/stepflow/test/secrets/", "STEPFLOW_HTTP_ALLOW=*")

	tests := []struct {
		fn, event string
		want      []string
	}{
		{"api", "api-healthz.json", []string{`"statusCode":200`, `\"status\":\"ok\"`}},
		{"authorizer", "authorizer-bad-token.json", []string{`"isAuthorized":false`}},
		{"steprunner", "steprunner-sqs.json", []string{`"batchItemFailures":[{"itemIdentifier":"8c1b0d2e-31b4-4b0f-9d61-3f1b1f0a7c11"}]`}},
		{"sweeper", "sweeper-schedule.json", []string{`"Runs":0`}},
		{"redrive", "redrive-invoke.json", []string{`"moved":0`}},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			addr := freePort(t)
			cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", freePort(t),
				filepath.Join(bins, tt.fn, "bootstrap"))
			cmd.Env = env
			var logs strings.Builder
			cmd.Stdout, cmd.Stderr = &logs, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			event, err := os.ReadFile(filepath.Join("testdata", tt.event))
			if err != nil {
				t.Fatal(err)
			}
			body := invoke(t, addr, string(event), &logs)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s answered %s; want it to contain %s\nlogs:\n%s", tt.fn, body, w, logs.String())
				}
			}
		})
	}
}

func invoke(t *testing.T, addr, event string, logs fmt.Stringer) string {
	t.Helper()
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(event))
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return string(data)
		}
		if ctx.Err() != nil {
			t.Fatalf("the emulator never answered: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hostArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
