package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/demoservice"
)

// lockedBuffer is a strings.Builder safe for the command's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// demoRun is "stepflow demo-services" running in this process.
type demoRun struct {
	urls   map[string]string // by service name, from the printed lines
	rest   chan string       // everything printed after "Press Ctrl-C to stop."
	code   chan int
	stderr *lockedBuffer
}

func startDemo(t *testing.T, ctx context.Context, args ...string) *demoRun {
	t.Helper()
	outR, outW := io.Pipe()
	d := &demoRun{urls: map[string]string{}, rest: make(chan string, 1), code: make(chan int, 1), stderr: &lockedBuffer{}}
	go func() {
		d.code <- demoServicesCmd(ctx, args, outW, d.stderr)
		outW.Close()
	}()
	line := regexp.MustCompile(`^  (\w+):\s+(http://\S+)$`)
	sc := bufio.NewScanner(outR)
	for sc.Scan() && sc.Text() != "Press Ctrl-C to stop." {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			d.urls[m[1]] = m[2]
		}
	}
	go func() {
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		d.rest <- b.String()
	}()
	for _, name := range []string{"payments", "shipments", "notifications", "stats"} {
		if d.urls[name] == "" {
			t.Fatalf("no %s URL printed; stderr:\n%s", name, d.stderr)
		}
	}
	return d
}

// demoPost sends a JSON body with an Idempotency-Key.
func demoPost(url, key, body string) (int, http.Header, string, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(demoservice.KeyHeader, key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b), err
}

func demoStats(t *testing.T, url string) demoservice.Stats {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st demoservice.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDemoServices: the command prints the services' URLs, a repeated key
// makes one payment, and cancelling its context stops it with exit 0.
func TestDemoServices(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := startDemo(t, ctx, "--addr", "127.0.0.1:0", "--fail-rate", "0", "--slow-rate", "0")
	if !strings.HasPrefix(d.urls["payments"], "http://127.0.0.1:") || !strings.HasSuffix(d.urls["payments"], "/payments") {
		t.Fatalf("payments URL %q", d.urls["payments"])
	}
	body := `{"order_id":"ord_1","amount":19.99}`
	code1, h1, b1, err1 := demoPost(d.urls["payments"], "demo-1", body)
	code2, h2, b2, err2 := demoPost(d.urls["payments"], "demo-1", body)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if code1 != 201 || code2 != 201 || b1 != b2 || h1.Get(demoservice.ReplayHeader) != "" || h2.Get(demoservice.ReplayHeader) != "true" {
		t.Fatalf("two calls with one key: %d %s, then %d %s (replay %q)", code1, b1, code2, b2, h2.Get(demoservice.ReplayHeader))
	}
	if st := demoStats(t, d.urls["stats"]); st.Payments != 1 || st.Replays != 1 || st.ByOrder["ord_1"].Payments != 1 {
		t.Fatalf("stats %+v, want one payment replayed once", st)
	}
	cancel()
	if code := <-d.code; code != 0 {
		t.Fatalf("exit %d after cancel; stderr:\n%s", code, d.stderr)
	}
	if rest := <-d.rest; !strings.Contains(rest, "Stopped. 1 payment(s)") {
		t.Fatalf("output after cancel: %q", rest)
	}
	if !strings.Contains(d.stderr.String(), "replayed") {
		t.Errorf("no log of the replay:\n%s", d.stderr)
	}
}

// TestDemoServicesStopsDuringASlowAnswer: a slow answer in flight does not
// hold up stopping; it is sent at once.
func TestDemoServicesStopsDuringASlowAnswer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := startDemo(t, ctx, "--addr", "127.0.0.1:0", "--fail-rate", "0", "--slow-rate", "1", "--delay", "1h")
	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		code, _, body, err := demoPost(d.urls["payments"], "slow-1", `{"order_id":"ord_1","amount":5}`)
		answered <- answer{code, body, err}
	}()
	for demoStats(t, d.urls["stats"]).Payments == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := <-d.code; code != 0 {
		t.Fatalf("exit %d after cancel; stderr:\n%s", code, d.stderr)
	}
	if a := <-answered; a.err != nil || a.code != 201 || !strings.Contains(a.body, `"payment_id":"pay_`) {
		t.Fatalf("slow answer: %d %s (%v)", a.code, a.body, a.err)
	}
}

func TestDemoServicesFlags(t *testing.T) {
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"--fail-rate", "1.5"}, "--fail-rate 1.5 is not between 0 and 1"},
		{[]string{"--fail-rate", "NaN"}, "--fail-rate NaN is not between 0 and 1"},
		{[]string{"--slow-rate", "-0.1"}, "--slow-rate -0.1 is not between 0 and 1"},
		{[]string{"--delay", "-1s"}, "--delay -1s is negative"},
		{[]string{"--addr", "0.0.0.0:8090"}, "add --public"},
		{[]string{"--addr", ":8090"}, "add --public"},
		{[]string{"--addr", "example.com:8090"}, "add --public"},
		{[]string{"--addr", "127.0.0.1"}, "missing port"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		var out, errOut strings.Builder
		code := demoServicesCmd(context.Background(), tt.args, &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tt.says) || out.Len() != 0 {
			t.Errorf("%v: exit %d, want %d saying %q; stdout %q, stderr:\n%s", tt.args, code, exitUsage, tt.says, out.String(), errOut.String())
		}
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8090", true},
		{"127.0.0.2:0", true},
		{"[::1]:8090", true},
		{"localhost:8090", true},
		{"0.0.0.0:8090", false},
		{"[::]:8090", false},
		{":8090", false},
		{"192.168.1.10:8090", false},
		{"example.com:8090", false},
	}
	for _, tt := range tests {
		if got, err := isLoopback(tt.addr); err != nil || got != tt.want {
			t.Errorf("isLoopback(%q) = %v, %v; want %v", tt.addr, got, err, tt.want)
		}
	}
}
