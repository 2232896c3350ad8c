package frontend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"stepflow/internal/devstack"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/testenv"
)

// These tests drive the dashboard in real headless Chromium (Debian's
// chromium package) against the local stack. A missing browser fails them.
// With STEPFLOW_SCREENSHOTS=1 they write README's screenshots.

// chromiumPath is STEPFLOW_CHROMIUM, or the first of Chromium's usual
// names on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("STEPFLOW_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH")
}

// stack starts the local stack with a deterministic task: steps never fail
// unless their fail_probability is above 0.5, and durations run at 30%.
// The dashboard signs in by itself, as it does on a loopback address.
func stack(t *testing.T) *testStack {
	t.Helper()
	return stackWith(t, stackOpts{})
}

// stackOpts changes the test stack: no automatic sign-in, a task that
// hangs for steps whose action is "hang", a slower retry backoff, smaller
// stall margins.
type stackOpts struct {
	noAutoSignIn            bool
	hang                    bool
	retry                   *retry.Policy
	leaseMargin, sweepGrace time.Duration
}

// testStack is a running stack and the name of its table.
type testStack struct {
	*devstack.Stack
	table string
}

func stackWith(t *testing.T, o stackOpts) *testStack {
	t.Helper()
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	if o.retry != nil {
		policy = *o.retry
	}
	var task engine.Task = engine.Simulated{Rand: func() float64 { return 0.5 }, Sleep: func(ctx context.Context, d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d * 3 / 10):
			return nil
		}
	}}
	release := make(chan struct{})
	if o.hang {
		task = hangingTask{Task: task, release: release}
	}
	visibility, concurrency := 5*time.Second, 0
	if o.hang {
		// No redelivery (and no new attempt) while the test looks, and
		// pollers to spare beside those held by hanging steps.
		visibility, concurrency = time.Minute, 6
	}
	table := testenv.Name(t, "ui")
	st, err := devstack.Start(context.Background(), devstack.Config{
		Addr: "127.0.0.1:0", Table: table, Endpoint: testenv.SQSEndpoint(t),
		Retry: &policy, Task: task, VisibilityTimeout: visibility, SweepInterval: time.Hour,
		NoAutoSignIn: o.noAutoSignIn, LeaseMargin: o.leaseMargin, SweepGrace: o.sweepGrace, Concurrency: concurrency,
		// Some tests start more runs than a person would in a minute.
		RunsPerMinute: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	// Before Close, which waits for the steps in flight.
	t.Cleanup(func() { close(release) })
	return &testStack{Stack: st, table: table}
}

// hangingTask does not finish a step whose action is "hang" until the
// test ends: a runner stuck past its lease, as a stalled run has.
type hangingTask struct {
	engine.Task
	release chan struct{}
}

func (h hangingTask) Run(ctx context.Context, in engine.TaskInput) error {
	if in.Config.Action == "hang" {
		<-h.release
		return errors.New("released at the end of the test")
	}
	return h.Task.Run(ctx, in)
}

func browser(t *testing.T) context.Context {
	t.Helper()
	chromium, err := chromiumPath()
	if err != nil {
		t.Fatalf("the dashboard tests drive headless Chromium, and %v: install it (Debian/Ubuntu: apt-get install chromium) or set STEPFLOW_CHROMIUM to a Chromium or Chrome binary", err)
	}
	// Chromium may still be writing its profile as it exits, so the
	// profile is removed best-effort rather than by t.TempDir.
	profile, err := os.MkdirTemp("", "stepflow-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(profile))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelT()
		cancelB()
		cancelA()
		_ = os.RemoveAll(profile)
	})
	// A script error anywhere fails the test.
	var mu sync.Mutex
	var thrown []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			mu.Lock()
			thrown = append(thrown, e.ExceptionDetails.Error())
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(thrown) > 0 {
			t.Errorf("the page threw: %v", thrown)
		}
	})
	// Headless, the page never has the window's focus; emulate it so
	// :focus styles apply as they do for a person at the keyboard.
	if err := chromedp.Run(ctx, emulation.SetFocusEmulationEnabled(true)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// run runs actions; on failure it reports what the page showed.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var text, url string
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = chromedp.Run(dctx, chromedp.Location(&url), chromedp.Evaluate(`document.body.innerText`, &text))
		t.Fatalf("%v\npage %s shows:\n%s", err, url, text)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("STEPFLOW_SCREENSHOTS") == "" {
		return
	}
	var png []byte
	run(t, ctx, chromedp.CaptureScreenshot(&png))
	if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pickExample chooses an example in the picker and waits for the editor.
func pickExample(name string) chromedp.Action {
	return chromedp.Tasks{
		chromedp.Poll(`document.querySelector('#example option[value="ex:`+name+`"]') !== null`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.SetValue(`#example`, "ex:"+name, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("example").dispatchEvent(new Event("change"))`, nil),
		chromedp.Poll(`document.getElementById("definition").value.includes(`+"`"+strings.TrimSuffix(name, ".json")+"`"+`)`, nil, chromedp.WithPollingTimeout(10*time.Second)),
	}
}

func waitRunStatus(status string) chromedp.Action {
	return chromedp.Poll(`document.querySelector("#run-status .badge.s-`+status+`") !== null`, nil, chromedp.WithPollingTimeout(60*time.Second))
}

func TestSubmitEachExample(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	for _, name := range []string{"order-processing.json", "diamond-workflow.json", "simple-pipeline.json"} {
		t.Run(name, func(t *testing.T) {
			run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), pickExample(name))
			if name == "order-processing.json" {
				run(t, ctx, chromedp.Click(`input[name="order-mode"][value="new"]`, chromedp.ByQuery),
					chromedp.SetValue(`#amount`, "42.50", chromedp.ByQuery))
			}
			run(t, ctx, chromedp.Click(`#start`, chromedp.ByQuery), waitRunStatus("completed"))
			switch name {
			case "order-processing.json":
				var entries int
				run(t, ctx, chromedp.WaitVisible(`#order-status .badge.s-shipped`, chromedp.ByQuery),
					chromedp.Evaluate(`document.querySelectorAll("#order-history li").length`, &entries))
				if entries != 5 {
					t.Fatalf("order history shows %d entries, want created + 4 actions", entries)
				}
				// The charge step's panel shows its config and its effect on
				// the order.
				var cfg, effect string
				run(t, ctx, chromedp.Click(`.gnode[data-node="charge"]`, chromedp.ByQuery),
					chromedp.WaitVisible(`#step-config`, chromedp.ByQuery),
					chromedp.Text(`#step-config`, &cfg, chromedp.ByQuery),
					chromedp.Evaluate(`[...document.querySelectorAll("#step-panel h3")].find(h => h.textContent === "Order effect").nextElementSibling.textContent`, &effect))
				if !strings.Contains(cfg, "charge_payment") || !strings.Contains(effect, "validated → charged") {
					t.Fatalf("charge panel: config %q, effect %q", cfg, effect)
				}
			case "diamond-workflow.json":
				// The timeline shows B and C side by side, and D after both.
				var bars map[string][]float64
				run(t, ctx, chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll(".tl-bar")].map(b =>
					[b.dataset.step, [Number(b.dataset.start), Number(b.dataset.end), b.getBoundingClientRect().left, b.getBoundingClientRect().right]]))`, &bars))
				b, c, d := bars["B"], bars["C"], bars["D"]
				if len(b) != 4 || len(c) != 4 || len(d) != 4 {
					t.Fatalf("timeline bars: %v", bars)
				}
				if !(b[0] < c[1] && c[0] < b[1]) || !(b[2] < c[3] && c[2] < b[3]) {
					t.Errorf("B %v and C %v do not overlap on the timeline", b, c)
				}
				if d[0] < b[1] || d[0] < c[1] || d[2] < b[3]-1 {
					t.Errorf("D %v does not start after B %v and C %v", d, b, c)
				}
				// The axis has round ticks, in order, more than the two ends.
				var ticks []string
				run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll(".tl-axis span")].map(s => s.textContent)`, &ticks))
				if len(ticks) < 3 || ticks[0] != "0" || !strings.HasSuffix(ticks[1], " s") {
					t.Errorf("timeline axis ticks %q", ticks)
				}
				// The graph: A above B and C side by side, D below them; every
				// node completed.
				var nodes map[string][]float64
				run(t, ctx, chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll(".gnode[data-node]")].map(n =>
					[n.dataset.node + ":" + n.dataset.status, [n.getBoundingClientRect().top, n.getBoundingClientRect().left]]))`, &nodes))
				a, gb, gc, gd := nodes["A:completed"], nodes["B:completed"], nodes["C:completed"], nodes["D:completed"]
				if len(nodes) != 4 || a == nil || gb == nil || gc == nil || gd == nil || !(a[0] < gb[0] && gb[0] == gc[0] && gb[1] != gc[1] && gd[0] > gb[0]) {
					t.Fatalf("graph nodes (top, left): %v", nodes)
				}
				// Select B from the keyboard: the graph is one tab stop,
				// arrows move, Enter opens the panel.
				var panel string
				run(t, ctx, chromedp.Focus(`.gnode[data-node="A"]`, chromedp.ByQuery),
					chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Enter),
					chromedp.WaitVisible(`#step-attempts`, chromedp.ByQuery),
					chromedp.Text(`#panel-title`, &panel, chromedp.ByQuery))
				var selected string
				run(t, ctx, chromedp.Evaluate(`document.querySelector('.gnode[aria-pressed="true"]').dataset.node`, &selected))
				if !strings.HasPrefix(panel, selected) || (selected != "B" && selected != "C") {
					t.Fatalf("keyboard selection: pressed %q, panel %q", selected, panel)
				}
				screenshot(t, ctx, "run-detail.png")
			}
		})
	}
	// The same definition started again reuses its workflow.
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), pickExample("diamond-workflow.json"),
		chromedp.Click(`#start`, chromedp.ByQuery), waitRunStatus("completed"))
	var wfs []map[string]any
	code, _ := testenv.GetJSON(t, st.URL+"/workflows", st.Token)
	if code != 200 {
		t.Fatalf("GET /workflows: %d", code)
	}
	wfs = getList(t, st.URL+"/workflows", st.Token)
	if len(wfs) != 3 {
		t.Fatalf("%d workflows after starting 3 examples and one again, want 3", len(wfs))
	}
}

// getList gets a JSON array.
func getList(t *testing.T, url, token string) []map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v []map[string]any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFailingStepShowsRetriesAndError(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	def := `{"name":"flaky","steps":[{"id":"ok","config":{"duration_seconds":0}},{"id":"flaky","depends_on":["ok"],"config":{"duration_seconds":0.1,"fail_probability":1,"max_retries":2}},{"id":"after","depends_on":["flaky"]}]}`
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), chromedp.WaitVisible(`#definition`, chromedp.ByQuery),
		chromedp.SetValue(`#definition`, def, chromedp.ByQuery), chromedp.Click(`#start`, chromedp.ByQuery),
		waitRunStatus("failed"))
	// Keyboard: the first node has the tab stop; the right arrow moves to
	// flaky, Enter opens it.
	var retries, errText, cfg string
	var attempts []string
	run(t, ctx, chromedp.Focus(`.gnode[data-node="ok"]`, chromedp.ByQuery),
		chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`#step-attempts`, chromedp.ByQuery),
		chromedp.Text(`#step-config .attempts`, &retries, chromedp.ByQuery),
		chromedp.Text(`#step-panel .step-error`, &errText, chromedp.ByQuery),
		chromedp.Text(`#step-config`, &cfg, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("#step-attempts li .a-result")].map(r => r.textContent)`, &attempts))
	if retries != "2/2" || !strings.Contains(errText, "simulated failure") || !strings.Contains(cfg, "100 %") || len(attempts) != 3 {
		t.Fatalf("flaky step panel: retries %q, error %q, config %q, attempts %q", retries, errText, cfg, attempts)
	}
	for _, a := range attempts {
		if !strings.Contains(a, "simulated failure") {
			t.Fatalf("attempt results %q: each should carry its error", attempts)
		}
	}
	var failedBars int
	var afterStatus string
	run(t, ctx, chromedp.Evaluate(`document.querySelectorAll('.tl-bar.failed[data-step="flaky"]').length`, &failedBars),
		chromedp.AttributeValue(`.gnode[data-node="after"]`, "data-status", &afterStatus, nil, chromedp.ByQuery))
	if failedBars != 3 || afterStatus != "skipped" {
		t.Fatalf("%d failed bars for flaky (want 3); downstream step %q (want skipped)", failedBars, afterStatus)
	}
	// The timeline's bars are reachable from the keyboard, and focus shows
	// an attempt's error.
	var detail string
	run(t, ctx, chromedp.Focus(`.tl-bar[data-step="ok"]`, chromedp.ByQuery), chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowRight),
		chromedp.Text(`#tl-detail`, &detail, chromedp.ByQuery))
	if !strings.Contains(detail, "flaky · attempt 2 · failed") || !strings.Contains(detail, "error: simulated failure") {
		t.Fatalf("timeline detail after two arrow presses: %q", detail)
	}
	// Retry is offered for the failed run.
	var disabled bool
	run(t, ctx, chromedp.Evaluate(`document.getElementById("retry").disabled`, &disabled))
	if disabled {
		t.Fatal("Retry is disabled on a failed run")
	}
}

func TestUploadFillsTheEditor(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	file, err := filepath.Abs("../examples/simple-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), chromedp.WaitVisible(`#upload`, chromedp.ByQuery),
		chromedp.SetUploadFiles(`#upload`, []string{file}, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("definition").value.includes("simple-pipeline")`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Click(`#start`, chromedp.ByQuery), waitRunStatus("completed"))
}

func TestPagingThroughRuns(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	wf := testenv.PostJSON(t, st.URL+"/workflows", st.Token, `{"name":"tiny","steps":[{"id":"a","config":{"duration_seconds":0}}]}`)
	for range 23 {
		testenv.PostJSON(t, st.URL+"/workflows/"+wf["id"].(string)+"/runs", st.Token, "")
	}
	seen := map[string]bool{}
	var sizes []int
	rowsJS := `[...document.querySelectorAll("#runs tbody tr[data-run]")].map(r => r.dataset.run)`
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"))
	for page := range 3 {
		var ids []string
		run(t, ctx, chromedp.Poll(rowsJS+`.length > 0`, nil, chromedp.WithPollingTimeout(10*time.Second)),
			chromedp.Evaluate(rowsJS, &ids))
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("page %d repeats run %s", page+1, id)
			}
			seen[id] = true
		}
		sizes = append(sizes, len(ids))
		if page < 2 {
			first := ids[0]
			run(t, ctx, chromedp.Click(`#next-page`, chromedp.ByQuery),
				chromedp.Poll(fmt.Sprintf(`(%s)[0] !== %q`, rowsJS, first), nil, chromedp.WithPollingTimeout(10*time.Second)))
		}
	}
	if fmt.Sprint(sizes) != "[10 10 3]" || len(seen) != 23 {
		t.Fatalf("pages of %v runs, %d distinct; want [10 10 3], 23", sizes, len(seen))
	}
}

func TestAPIErrorsAreShown(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	var msg, invalid string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), chromedp.WaitVisible(`#definition`, chromedp.ByQuery),
		chromedp.SetValue(`#definition`, `{"name":"bad","steps":[{"id":"a","config":{"max_retries":99}}]}`, chromedp.ByQuery),
		chromedp.Click(`#start`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("definition-error").textContent !== ""`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`#definition-error`, &msg, chromedp.ByQuery),
		chromedp.AttributeValue(`#definition`, "aria-invalid", &invalid, nil, chromedp.ByQuery))
	if !strings.Contains(msg, "steps[0].config.max_retries") || invalid != "true" {
		t.Fatalf("error shown %q (aria-invalid %q)", msg, invalid)
	}
	// When the API goes away, the runs page says so instead of going blank.
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"), chromedp.WaitVisible(`#runs`, chromedp.ByQuery))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var notice string
	run(t, ctx, chromedp.WaitVisible(`#notice`, chromedp.ByQuery), chromedp.Text(`#notice`, &notice, chromedp.ByQuery))
	if !strings.Contains(notice, "Cannot reach the Stepflow API") {
		t.Fatalf("notice %q", notice)
	}
}

// TestSignIn: without automatic sign-in the dashboard asks for a token,
// refuses a wrong one, keeps the right one for the session only, and signs
// out.
func TestSignIn(t *testing.T) {
	st := stackWith(t, stackOpts{noAutoSignIn: true})
	ctx := browser(t)
	var msg string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"),
		chromedp.WaitVisible(`#signin`, chromedp.ByQuery),
		chromedp.SendKeys(`#token`, st.Token[:len(st.Token)-2]+"zz", chromedp.ByQuery),
		chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("token-error").textContent !== ""`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`#token-error`, &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "not accepted") {
		t.Fatalf("wrong token: %q", msg)
	}
	var sessionOnly bool
	run(t, ctx, chromedp.SetValue(`#token`, st.Token, chromedp.ByQuery),
		chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#runs`, chromedp.ByQuery),
		chromedp.Evaluate(`sessionStorage.getItem("stepflow.token") !== null && localStorage.length === 0`, &sessionOnly))
	if !sessionOnly {
		t.Fatal("the token is not kept in sessionStorage only")
	}
	run(t, ctx, chromedp.Click(`#signout`, chromedp.ByQuery), chromedp.WaitVisible(`#signin`, chromedp.ByQuery))
}
