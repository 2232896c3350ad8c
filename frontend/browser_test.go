package frontend_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"stepflow/internal/devstack"
	"stepflow/internal/engine"
	"stepflow/internal/retry"
	"stepflow/internal/testenv"
)

// These tests drive the dashboard in real headless Chromium (Debian's
// chromium package) against the local stack. A missing browser fails them.
// With STEPFLOW_SCREENSHOTS=1 they write README's screenshots.

const chromiumPath = "/usr/bin/chromium"

// stack starts the local stack with a deterministic task: steps never fail
// unless their fail_probability is above 0.5, and durations run at 30%.
// The dashboard signs in by itself, as it does on a loopback address.
func stack(t *testing.T) *devstack.Stack {
	t.Helper()
	return stackWith(t, false)
}

func stackWith(t *testing.T, noAutoSignIn bool) *devstack.Stack {
	t.Helper()
	policy := retry.Policy{Base: time.Second, Cap: time.Second, Rand: func() float64 { return 0 }}
	task := engine.Simulated{Rand: func() float64 { return 0.5 }, Sleep: func(ctx context.Context, d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d * 3 / 10):
			return nil
		}
	}}
	st, err := devstack.Start(context.Background(), devstack.Config{
		Addr: "127.0.0.1:0", Table: testenv.Name(t, "ui"), Endpoint: testenv.SQSEndpoint(t),
		Retry: &policy, Task: task, VisibilityTimeout: 5 * time.Second, SweepInterval: time.Hour,
		NoAutoSignIn: noAutoSignIn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is required for the dashboard tests (apt-get install chromium): %v", err)
	}
	// Chromium may still be writing its profile as it exits, so the
	// profile is removed best-effort rather than by t.TempDir.
	profile, err := os.MkdirTemp("", "stepflow-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU,
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
	if err := chromedp.Run(ctx); err != nil {
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
		chromedp.Poll(`document.querySelector('#example option[value="`+name+`"]') !== null`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.SetValue(`#example`, name, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("example").dispatchEvent(new Event("change"))`, nil),
		chromedp.Poll(`document.getElementById("definition").value.includes(`+"`"+strings.TrimSuffix(name, ".json")+"`"+`)`, nil, chromedp.WithPollingTimeout(10*time.Second)),
	}
}

func waitRunStatus(status string) chromedp.Action {
	return chromedp.Poll(`document.querySelector("#run-status .badge.`+status+`") !== null`, nil, chromedp.WithPollingTimeout(60*time.Second))
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
				run(t, ctx, chromedp.WaitVisible(`#order-status .badge.shipped`, chromedp.ByQuery),
					chromedp.Evaluate(`document.querySelectorAll("#order-history li").length`, &entries))
				if entries != 5 {
					t.Fatalf("order history shows %d entries, want created + 4 actions", entries)
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
				screenshot(t, ctx, "run-detail.png")
			}
		})
	}
}

func TestFailingStepShowsRetriesAndError(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	def := `{"name":"flaky","steps":[{"id":"ok","config":{"duration_seconds":0}},{"id":"flaky","depends_on":["ok"],"config":{"duration_seconds":0.1,"fail_probability":1,"max_retries":2}},{"id":"after","depends_on":["flaky"]}]}`
	var attempts, errText string
	var failedBars int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), chromedp.WaitVisible(`#definition`, chromedp.ByQuery),
		chromedp.SetValue(`#definition`, def, chromedp.ByQuery), chromedp.Click(`#start`, chromedp.ByQuery),
		waitRunStatus("failed"),
		chromedp.Text(`tr[data-step="flaky"] .attempts`, &attempts, chromedp.ByQuery),
		chromedp.Text(`tr[data-step="flaky"] .step-error`, &errText, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('.tl-bar.failed[data-step="flaky"]').length`, &failedBars))
	if attempts != "2/2" || !strings.Contains(errText, "simulated failure") || failedBars != 3 {
		t.Fatalf("flaky step shows retries %q, error %q, %d failed bars; want 2/2, the error, 3 bars", attempts, errText, failedBars)
	}
	var afterStatus string
	run(t, ctx, chromedp.Text(`tr[data-step="after"] .badge`, &afterStatus, chromedp.ByQuery))
	if afterStatus != "skipped" {
		t.Fatalf("downstream step shows %q, want skipped", afterStatus)
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
		if page == 0 {
			run(t, ctx, chromedp.Poll(`[...document.querySelectorAll("#runs .badge")].every(b => b.textContent === "completed")`, nil, chromedp.WithPollingTimeout(20*time.Second)))
			screenshot(t, ctx, "runs.png")
		}
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
	st := stackWith(t, true)
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
