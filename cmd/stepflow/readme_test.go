package main

import (
	"encoding/json"
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
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("README's curl block: %v\n%s", err, out)
	}
	// The block prints the run, then the order, a line each: the run
	// itself must be completed (not merely a step of it) and the order
	// shipped.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("README's curl block printed %d lines, want the run and the order:\n%s", len(lines), out)
	}
	var run, order struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &run); err != nil || run.Status != "completed" {
		t.Fatalf("README's curl block printed the run %s (%v), want it completed:\n%s", run.Status, err, lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &order); err != nil || order.Status != "shipped" {
		t.Fatalf("README's curl block printed the order %s (%v), want it shipped:\n%s", order.Status, err, lines[1])
	}
}
