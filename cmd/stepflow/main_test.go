package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"stepflow/internal/awsclient"
	"stepflow/internal/testenv"
)

// buildCLI builds the stepflow binary once per test binary.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stepflow")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDevStartsAndStopsOnInterrupt runs "stepflow dev" as a user does: it
// prints its URL, serves the API, and exits 0 on Ctrl-C (SIGINT).
func TestDevStartsAndStopsOnInterrupt(t *testing.T) {
	dev := start(t, buildCLI(t), []string{"AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_DYNAMODB=", "AWS_ENDPOINT_URL_SQS="}, "dev", "--addr", "127.0.0.1:0")
	url := dev.await(t, regexp.MustCompile(`API:\s+(http://\S+)`))
	if code, body := testenv.GetJSON(t, url+"/healthz", ""); code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, body)
	}
	if err := dev.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range dev.lines {
		rest = append(rest, l)
	}
	if err := dev.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	if !strings.Contains(strings.Join(rest, "\n"), "Stopped.") {
		t.Fatalf("output after SIGINT: %q", rest)
	}
}

// TestDevPrintsWhatToPaste: the lines "stepflow dev" prints work as
// pasted. The exports point the CLI at this stack, the token create line
// makes a token for its table, and the queue URLs name queues on the
// endpoint that serves them. With --no-auto-signin the dashboard's
// config.json carries no token.
func TestDevPrintsWhatToPaste(t *testing.T) {
	bin := buildCLI(t)
	noEndpoints := []string{"AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_DYNAMODB=", "AWS_ENDPOINT_URL_SQS=", "STEPFLOW_TOKEN=", "STEPFLOW_API="}
	for _, auto := range []bool{true, false} {
		args := []string{"dev", "--addr", "127.0.0.1:0", "--table", "pasted"}
		if !auto {
			args = append(args, "--no-auto-signin")
		}
		dev := start(t, bin, noEndpoints, args...)
		out := dev.block(t, "Press Ctrl-C to stop.")
		field := func(re string) string {
			t.Helper()
			m := regexp.MustCompile(re).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no %s in:\n%s", re, out)
			}
			return m[1]
		}
		api := field(`(?m)^  API:\s+(http://\S+)$`)
		token := field(`(?m)^  export STEPFLOW_TOKEN=(sft_\S+)$`)
		if got := field(`(?m)^  export STEPFLOW_API=(\S+)$`); got != api {
			t.Fatalf("STEPFLOW_API=%s, API at %s", got, api)
		}
		env := []string{"STEPFLOW_API=" + api, "STEPFLOW_TOKEN=" + token}
		if b, err := cmdIn(bin, env, "runs"); err != nil || !strings.HasPrefix(b, "RUN") {
			t.Fatalf("stepflow runs with the printed exports: %v\n%s", err, b)
		}
		// The token create line, as printed, with a name for NAME.
		create := strings.Fields(field(`(?m)^  (AWS_ENDPOINT_URL_DYNAMODB=\S+ stepflow token create .*)$`))
		for i, w := range create {
			if w == "NAME" {
				create[i] = "laptop"
			}
		}
		created, err := cmdIn(bin, append(noEndpoints, create[0]), create[2:]...)
		reader := regexp.MustCompile(`(?m)^(sft_\S+)$`).FindStringSubmatch(created)
		if err != nil || reader == nil {
			t.Fatalf("%v: %v\n%s", create, err, created)
		}
		if b, err := cmdIn(bin, []string{"STEPFLOW_API=" + api, "STEPFLOW_TOKEN=" + reader[1]}, "runs"); err != nil || !strings.HasPrefix(b, "RUN") {
			t.Fatalf("the created token is refused: %v\n%s", err, b)
		}
		// Both queue URLs reach a queue on the printed endpoint.
		sqsURL, dlqURL := field(`(?m)^  SQS:\s+(\S+)$`), field(`(?m)^  DLQ:\s+(\S+)$`)
		endpoint := field(`(?m)^  DynamoDB:\s+(http://[^/\s]+)`)
		for _, q := range []string{sqsURL, dlqURL} {
			if !strings.HasPrefix(q, endpoint+"/") {
				t.Fatalf("queue URL %s is not on the endpoint %s", q, endpoint)
			}
			c := awsclient.SQS(testenv.Config(t), endpoint)
			if _, err := c.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q)}); err != nil {
				t.Fatalf("queue %s: %v", q, err)
			}
		}
		code, cfg := testenv.GetJSON(t, api+"/config.json", "")
		if _, has := cfg["token"]; code != 200 || has != auto {
			t.Fatalf("auto sign-in %v: config.json %d %v", auto, code, cfg)
		}
		if err := dev.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		_ = dev.cmd.Wait()
	}
}

// cmdIn runs the binary with extra environment and returns its output.
func cmdIn(bin string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// block returns the lines printed up to and including the one that has
// last.
func (p *proc) block(t *testing.T, last string) string {
	t.Helper()
	var b strings.Builder
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("process exited before printing %q; printed:\n%s", last, b.String())
			}
			b.WriteString(l + "\n")
			if strings.Contains(l, last) {
				return b.String()
			}
		case <-timeout:
			t.Fatalf("%q not printed within 30s; printed:\n%s", last, b.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}
