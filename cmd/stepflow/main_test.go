package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

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

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}
