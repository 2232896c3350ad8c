package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestREADMECurl runs the quick start's curl block, as written in README,
// against a local stack: it must exit 0 and leave the order shipped.
func TestREADMECurl(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- tested: TestREADMECurl -->\n```sh\n")
	if !ok {
		t.Fatal("README has no curl block marked for TestREADMECurl")
	}
	block, _, _ = strings.Cut(block, "```")
	api, tok := localStack(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "STEPFLOW_API="+api, "STEPFLOW_TOKEN="+tok)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status":"shipped"`) || !strings.Contains(string(out), `"status":"completed"`) {
		t.Fatalf("README's curl block: %v\n%s", err, out)
	}
}
