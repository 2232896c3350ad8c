package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepflow/internal/testenv"
)

// proc is a started stepflow process with its stdout lines.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
}

func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

// await returns the first submatch of re on a stdout line.
func (p *proc) await(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("process exited before printing %v", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-timeout:
			t.Fatalf("nothing matched %v within 30s", re)
		}
	}
}

// TestDevSurvivesSIGKILL kills "stepflow dev" with SIGKILL in the middle of
// 20 order runs and starts it again on the same emulator: every run must
// finish, and no order may have a history entry twice.
func TestDevSurvivesSIGKILL(t *testing.T) {
	bin := buildCLI(t)
	emu := start(t, bin, nil, "emulator")
	endpoint := emu.await(t, regexp.MustCompile(`AWS endpoint: (\S+)`))
	env := []string{"AWS_ENDPOINT_URL=" + endpoint, "AWS_ENDPOINT_URL_DYNAMODB=", "AWS_ENDPOINT_URL_SQS="}
	args := []string{"dev", "--addr", "127.0.0.1:0", "--table", "crash-test", "--visibility-timeout", "2s",
		"--lease-margin", "1s", "--sweep-interval", "1s", "--sweep-grace", "3s", "--retry-base", "1s", "--retry-cap", "1s"}
	apiLine := regexp.MustCompile(`API:\s+(http://\S+)`)
	tokenLine := regexp.MustCompile(`Token:\s+(sft_\S+)`)
	dev := start(t, bin, env, args...)
	api := dev.await(t, apiLine)
	tok := dev.await(t, tokenLine)

	wf := testenv.PostJSON(t, api+"/workflows", tok, `{"name":"orders","steps":[
	 {"id":"validate","config":{"action":"validate_order","duration_seconds":0.2}},
	 {"id":"charge","config":{"action":"charge_payment","duration_seconds":0.2},"depends_on":["validate"]},
	 {"id":"ship","config":{"action":"ship_order","duration_seconds":0.2},"depends_on":["charge"]},
	 {"id":"notify","config":{"action":"send_notification","duration_seconds":0.2},"depends_on":["ship"]}]}`)
	type run struct{ id, order string }
	var runs []run
	for i := range 20 {
		o := testenv.PostJSON(t, api+"/orders", tok, fmt.Sprintf(`{"amount": %d}`, i+1))
		r := testenv.PostJSON(t, api+"/workflows/"+wf["id"].(string)+"/runs", tok, `{"order_id":"`+o["id"].(string)+`"}`)
		runs = append(runs, run{r["id"].(string), o["id"].(string)})
	}
	time.Sleep(500 * time.Millisecond)
	// The newest run first, and the kill as soon as one is unfinished: on
	// a slow machine, reading all 20 first could outlast the last run.
	unfinished := ""
	for _, r := range slices.Backward(runs) {
		if s := runStatus(t, api, tok, r.id); s != "completed" {
			unfinished = r.id
			break
		}
	}
	if unfinished == "" {
		t.Fatal("every run finished before the kill; the test proves nothing")
	}
	if err := dev.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = dev.cmd.Wait()
	t.Logf("killed stepflow dev with run %s unfinished", unfinished)

	dev = start(t, bin, env, args...)
	api = dev.await(t, apiLine)
	tok = dev.await(t, tokenLine)
	deadline := time.Now().Add(90 * time.Second)
	for _, r := range runs {
		for {
			_, d := testenv.GetJSON(t, api+"/runs/"+r.id, tok)
			if d["status"] == "completed" {
				break
			}
			if d["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("run %s: %v", r.id, d["status"])
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, o := testenv.GetJSON(t, api+"/orders/"+r.order, tok)
		var events []string
		for _, h := range o["history"].([]any) {
			events = append(events, h.(map[string]any)["event"].(string))
		}
		if got := strings.Join(events, " "); o["status"] != "shipped" || got != "created validate_order charge_payment ship_order send_notification" {
			t.Fatalf("order %s: %v, history %q", r.order, o["status"], got)
		}
	}
	if err := dev.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := dev.cmd.Wait(); err != nil {
		t.Fatalf("restarted dev did not stop cleanly: %v", err)
	}
}

func runStatus(t *testing.T, api, tok, id string) any {
	_, d := testenv.GetJSON(t, api+"/runs/"+id, tok)
	return d["status"]
}
