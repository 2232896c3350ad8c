package frontend_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/retry"
	"stepflow/internal/testenv"
)

// api is the stack's API as the operator token sees it.
type api struct {
	t   *testing.T
	st  *testStack
	tok string
}

func apiOf(t *testing.T, st *testStack) api { return api{t: t, st: st, tok: st.Token} }

func (a api) post(path, body string) map[string]any {
	a.t.Helper()
	return testenv.PostJSON(a.t, a.st.URL+path, a.tok, body)
}

func (a api) get(path string) map[string]any {
	a.t.Helper()
	code, v := testenv.GetJSON(a.t, a.st.URL+path, a.tok)
	if code != 200 {
		a.t.Fatalf("GET %s: %d %v", path, code, v)
	}
	return v
}

// start creates the workflow def and starts a run, with a new order when
// amount is not "".
func (a api) start(def, amount string) (runID, orderID string) {
	a.t.Helper()
	wf := a.post("/workflows", def)
	body := ""
	if amount != "" {
		orderID = a.post("/orders", `{"amount":`+amount+`}`)["id"].(string)
		body = `{"order_id":"` + orderID + `"}`
	}
	return a.post("/workflows/"+wf["id"].(string)+"/runs", body)["id"].(string), orderID
}

// wait polls until the run has the status.
func (a api) wait(runID, want string) {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := a.get("/runs/" + runID)["status"]
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s is %v after 60s, want %s", runID, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const orderFlow = `{"name":"order-processing","steps":[
 {"id":"validate","config":{"action":"validate_order","duration_seconds":0}},
 {"id":"charge","depends_on":["validate"],"config":{"action":"charge_payment","duration_seconds":0}},
 {"id":"ship","depends_on":["charge"],"config":{"action":"ship_order","duration_seconds":0}},
 {"id":"notify","depends_on":["ship"],"config":{"action":"send_notification","duration_seconds":0}}]}`

func wait(sel string) chromedp.Action {
	return chromedp.WaitVisible(sel, chromedp.ByQuery)
}

func until(js string) chromedp.Action {
	return chromedp.Poll(js, nil, chromedp.WithPollingTimeout(20*time.Second))
}

// TestRunsList: the workflow name leads each row with a short run id;
// times are relative with the full date on hover and focus; counts by
// status match the API; progress and the order's status come from the
// list itself.
func TestRunsList(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	shipped, _ := a.start(orderFlow, "12.5")
	failed, _ := a.start(`{"name":"breaks","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","depends_on":["a"],"config":{"fail_probability":1,"max_retries":0}}]}`, "")
	a.wait(shipped, "completed")
	a.wait(failed, "failed")

	var row struct {
		First, ID, IDLabel, Progress, Order string
		Times                               []string
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"),
		until(`document.querySelectorAll("#runs tbody tr[data-run]").length === 2 && document.querySelector("#counts .n") !== null`),
		chromedp.Evaluate(fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-run=%q]');
			return { First: r.querySelector("td a").textContent, ID: r.querySelector("code.id").textContent, IDLabel: r.querySelector("code.id").getAttribute("aria-label"),
			  Progress: r.querySelector(".progress-text").textContent, Order: r.cells[3].textContent,
			  Times: [...r.querySelectorAll("time")].map(x => x.textContent + "|" + x.title) }; })()`, shipped), &row))
	if row.First != "order-processing" || row.ID != "…"+shipped[len(shipped)-6:] || row.IDLabel != shipped ||
		row.Progress != "4/4" || !strings.Contains(row.Order, "shipped") {
		t.Fatalf("row: %+v", row)
	}
	year := fmt.Sprint(time.Now().Year())
	if len(row.Times) != 1 || !(strings.HasPrefix(row.Times[0], "just now|") || strings.Contains(row.Times[0], " ago|")) || !strings.Contains(row.Times[0], year) {
		t.Fatalf("started time %q: want a relative time with the full date in its title", row.Times)
	}
	// Keyboard focus shows the full date too.
	var shown string
	run(t, ctx, chromedp.Focus(fmt.Sprintf(`tr[data-run=%q] time`, shipped), chromedp.ByQuery),
		chromedp.Evaluate(`getComputedStyle(document.activeElement, "::after").content`, &shown))
	if !strings.Contains(shown, year) {
		t.Fatalf("focused time shows %q, want the full date", shown)
	}
	var counts map[string]string
	run(t, ctx, chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("#counts a[data-status]")].map(c => [c.dataset.status, c.querySelector(".n").textContent]))`, &counts))
	if fmt.Sprint(counts) != "map[cancelled:0 completed:1 failed:1 pending:0 running:0]" {
		var html string
		_ = chromedp.Run(ctx, chromedp.Evaluate(`document.getElementById("counts").outerHTML`, &html))
		t.Fatalf("counts by status: %v\n%s", counts, html)
	}
	var failedRow string
	run(t, ctx, chromedp.Text(fmt.Sprintf(`tr[data-run=%q]`, failed), &failedRow, chromedp.ByQuery))
	if !strings.Contains(failedRow, "breaks") || !strings.Contains(failedRow, "failed") || !strings.Contains(failedRow, "1/2") {
		t.Fatalf("failed row: %q", failedRow)
	}
}

// TestRunsListRequestBudget counts the dashboard's requests from the
// browser's network events: every refresh of a page of runs with orders
// is GET /runs, GET /runs/stats and GET /dlq, no request per run.
func TestRunsListRequestBudget(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	for i := range 12 {
		amount := ""
		if i%2 == 0 {
			amount = "3"
		}
		a.start(orderFlow, amount)
	}
	var mu sync.Mutex
	var paths []string
	recording := false
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			u, err := url.Parse(e.Request.URL)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if recording && !strings.HasPrefix(u.Path, "/ui/") && u.Path != "/config.json" && !strings.HasPrefix(u.Path, "/examples/") && u.Path != "/" {
				paths = append(paths, e.Request.Method+" "+u.Path)
			}
		}
	})
	run(t, ctx, network.Enable(), chromedp.Navigate(st.URL+"/#/"),
		until(`document.querySelectorAll("#runs tbody tr[data-run]").length === 10`))
	time.Sleep(time.Second) // let the first load finish
	mu.Lock()
	recording = true
	mu.Unlock()
	time.Sleep(7 * time.Second) // two refreshes or more, at 3 s
	mu.Lock()
	recording = false
	got := append([]string(nil), paths...)
	mu.Unlock()
	by := map[string]int{}
	for _, p := range got {
		by[p]++
	}
	refreshes := by["GET /runs"]
	t.Logf("%d requests over %d refreshes: %v", len(got), refreshes, by)
	if refreshes < 2 || len(got) > 3*refreshes || by["GET /runs/stats"] != refreshes || by["GET /dlq"] != refreshes || len(by) != 3 {
		t.Fatalf("%d requests over %d refreshes (%v); want GET /runs, /runs/stats and /dlq once each per refresh, nothing else", len(got), refreshes, by)
	}
}

// TestWorkflowsPage: the grid of recent runs by steps shows each step's
// status as the API has it, and the success rate and durations are the
// API's statistics.
func TestWorkflowsPage(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	def := `{"name":"grid","steps":[{"id":"fetch","config":{"duration_seconds":0}},{"id":"transform","depends_on":["fetch"],"config":{"duration_seconds":2}},{"id":"load","depends_on":["transform"],"config":{"duration_seconds":0}}]}`
	var runs []string
	for range 3 {
		id, _ := a.start(def, "")
		runs = append(runs, id)
	}
	for _, id := range runs {
		a.wait(id, "completed")
	}
	cancelled, _ := a.start(def, "")
	a.post("/runs/"+cancelled+"/cancel", "")
	wfID := a.get("/runs/" + cancelled)["workflow_id"].(string)
	stats := a.get("/runs/stats?workflow_id=" + wfID)

	var cells map[string]string
	var rate, p50 string
	var nodes int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/workflows/"+wfID),
		until(`document.querySelectorAll("#run-grid tbody a.cell").length === 12`),
		chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("#run-grid a.cell")].map(c => [c.dataset.cell, c.dataset.status]))`, &cells),
		chromedp.Text(`#success-rate`, &rate, chromedp.ByQuery), chromedp.Text(`#p50`, &p50, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#wf-graph .gnode[data-node]").length`, &nodes))
	for _, id := range append(runs, cancelled) {
		d := a.get("/runs/" + id)
		if cells[id] != d["status"] {
			t.Errorf("run %s: grid header %q, API %v", id, cells[id], d["status"])
		}
		for _, s := range d["steps"].([]any) {
			s := s.(map[string]any)
			if key := id + "/" + s["step_id"].(string); cells[key] != s["status"] {
				t.Errorf("cell %s: %q, API %v", key, cells[key], s["status"])
			}
		}
	}
	if rate != "75 %" || stats["success_rate"] != 0.75 || p50 == "—" || nodes != 3 {
		t.Fatalf("success rate %q (API %v), p50 %q, %d graph nodes", rate, stats["success_rate"], p50, nodes)
	}
	// The legend is a badge per status, no text besides.
	var legend struct {
		Badges []string
		Text   string
	}
	run(t, ctx, chromedp.Evaluate(`({ Badges: [...document.querySelectorAll(".legend .badge")].map(b => b.textContent),
		Text: document.querySelector(".legend").textContent })`, &legend))
	if len(legend.Badges) < 6 || legend.Badges[0] != "✓ completed" || strings.Join(legend.Badges, " ") != strings.TrimSpace(legend.Text) {
		t.Fatalf("legend: badges %q, text %q", legend.Badges, legend.Text)
	}
	// A cell opens that step of that run.
	run(t, ctx, chromedp.Click(fmt.Sprintf(`a.cell[data-cell="%s/transform"]`, runs[0]), chromedp.ByQuery),
		until(`document.querySelector("#panel-title") && document.querySelector("#panel-title").textContent.startsWith("transform")`))
	run(t, ctx, chromedp.Navigate(st.URL+"/#/workflows/"+wfID), until(`document.querySelectorAll("#run-grid a.cell").length === 16`))
	screenshot(t, ctx, "workflows.png")
}

// TestOrdersPage: orders with their status, and an order's history, with
// older entries paged in on request.
func TestOrdersPage(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	runID, orderID := a.start(orderFlow, "42")
	a.wait(runID, "completed")
	var status string
	var links int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/orders"),
		until(fmt.Sprintf(`document.querySelector('tr[data-order=%q] .badge') !== null`, orderID)),
		chromedp.Text(fmt.Sprintf(`tr[data-order=%q] .badge`, orderID), &status, chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`tr[data-order=%q] a`, orderID), chromedp.ByQuery),
		until(`document.querySelectorAll("#order-history li").length === 5`),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll('#order-history a[href^="#/runs/%s"]').length`, runID), &links))
	var more bool
	run(t, ctx, chromedp.Evaluate(`document.getElementById("history-more").getClientRects().length > 0`, &more))
	if !strings.Contains(status, "shipped") || links != 4 || more {
		t.Fatalf("order list status %q; %d history entries link to the run, want 4; older entries offered: %v", status, links, more)
	}
	screenshot(t, ctx, "order.png")

	// An order touched by 129 runs (130 entries with its creation): 100
	// entries come with it, the rest on request.
	o := a.post("/orders", `{"amount": 9}`)
	notify := a.post("/workflows", `{"name":"notify","steps":[{"id":"n","config":{"action":"send_notification","duration_seconds":0}}]}`)["id"].(string)
	var touches []string
	for range 129 {
		touches = append(touches, a.post("/workflows/"+notify+"/runs", `{"order_id":"`+o["id"].(string)+`"}`)["id"].(string))
	}
	for _, r := range touches {
		a.wait(r, "completed")
	}
	o = map[string]any{"ID": o["id"]}
	var first, all int
	var last string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/orders/"+o["ID"].(string)), until(`document.querySelectorAll("#order-history li").length === 100`),
		chromedp.Evaluate(`document.querySelectorAll("#order-history li").length`, &first),
		chromedp.Click(`#history-more`, chromedp.ByQuery), until(`document.querySelectorAll("#order-history li").length === 130`),
		chromedp.Evaluate(`document.querySelectorAll("#order-history li").length`, &all),
		chromedp.Text(`#order-history li:last-child strong`, &last, chromedp.ByQuery))
	if first != 100 || all != 130 || last != "send_notification" {
		t.Fatalf("history: %d first, %d after more, last %q", first, all, last)
	}
}

// TestStuckWorkIsVisible: a run whose step hangs past its lease is flagged
// on its page and in the list, while a run waiting for a scheduled retry
// and a run with a long step are not; the dead-letter queue's depth shows,
// and Redrive empties it.
func TestStuckWorkIsVisible(t *testing.T) {
	slow := retry.Policy{Base: 20 * time.Second, Cap: 20 * time.Second, Rand: func() float64 { return 0.99 }}
	st := stackWith(t, stackOpts{hang: true, leaseMargin: time.Second, sweepGrace: time.Second, retry: &slow})
	a := apiOf(t, st)
	ctx := browser(t)
	retrying, _ := a.start(`{"name":"retrying","steps":[{"id":"flaky","config":{"duration_seconds":0,"fail_probability":1,"max_retries":2}}]}`, "")
	stuck, _ := a.start(`{"name":"stuck","steps":[{"id":"wait","config":{"action":"hang","duration_seconds":0}}]}`, "")
	long, _ := a.start(`{"name":"long","steps":[{"id":"crunch","config":{"action":"hang","duration_seconds":60}}]}`, "")

	var warning string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+stuck), wait(`#stalled`), chromedp.Text(`#stalled`, &warning, chromedp.ByQuery))
	if !strings.Contains(warning, "No progress since") {
		t.Fatalf("stalled warning %q", warning)
	}
	screenshot(t, ctx, "stalled.png")
	// The retrying run: its step waits for attempt 2, by a time shown in
	// its panel and on the timeline; that wait is not a stall.
	var next string
	var waits int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+retrying+"?step=flaky"), until(`document.getElementById("next-attempt") !== null`),
		chromedp.Text(`#next-attempt`, &next, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".tl-wait").length`, &waits))
	if !strings.Contains(next, "Attempt 2 of 3 is scheduled after a retry backoff: it starts by") || waits != 1 {
		t.Fatalf("next attempt %q, %d wait bars", next, waits)
	}
	var flags map[string]bool
	var banner string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"), wait(`#stalled-runs`),
		chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("#runs tr[data-run]")].map(r => [r.dataset.run, r.querySelector(".stalled-flag") !== null]))`, &flags),
		chromedp.Text(`#stalled-runs`, &banner, chromedp.ByQuery))
	if !flags[stuck] || flags[long] || flags[retrying] || len(flags) != 3 || !strings.HasPrefix(banner, "⚠ 1 run on this page shows no progress") {
		t.Fatalf("stalled flags %v (stuck %s, long %s, retrying %s), banner %q", flags, stuck, long, retrying, banner)
	}
	if d := a.get("/runs/" + retrying); d["stalled"] != false || d["steps"].([]any)[0].(map[string]any)["next_attempt_at"] == nil {
		t.Fatalf("the retrying run as the API has it: %v", d)
	}

	sq := awsclient.SQS(testenv.Config(t), st.SQS)
	for i := range 2 {
		body := fmt.Sprintf(`{"run_id":"run_01KAAAAAAAAAAAAAAAAAAAAAA%d","step_index":0,"attempt":0}`, i)
		if _, err := sq.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(st.DLQURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var note, depth string
	run(t, ctx, until(`document.getElementById("dlq-depth") && document.getElementById("dlq-depth").textContent === "2 messages"`))
	screenshot(t, ctx, "runs-stuck.png")
	run(t, ctx, chromedp.Click(`#redrive`, chromedp.ByQuery), wait(`#redrive-note`),
		until(`document.getElementById("dlq-depth").textContent === "0 messages"`),
		chromedp.Text(`#redrive-note`, &note, chromedp.ByQuery), chromedp.Text(`#dlq-depth`, &depth, chromedp.ByQuery))
	if note != "Moved 2 messages back to the work queue." || depth != "0 messages" {
		t.Fatalf("after Redrive: %q, depth %q", note, depth)
	}
}

// TestReaderSeesNoWriteControls signs in with a reader token: no Start,
// Cancel, Retry or Redrive to press; each place says why.
func TestReaderSeesNoWriteControls(t *testing.T) {
	st := stackWith(t, stackOpts{noAutoSignIn: true})
	a := apiOf(t, st)
	ctx := browser(t)
	runID, _ := a.start(orderFlow, "5")
	signInAs(t, ctx, st, "wallboard", auth.Reader)
	run(t, ctx, until(`document.getElementById("dlq") && !document.getElementById("dlq").hidden`))
	// Controls a reader could press, and the reasons shown.
	const writable = `[...document.querySelectorAll("#start, #cancel, #retry, #redrive, #new-run-link, [data-nav=new]")].filter(e => !e.disabled && e.getClientRects().length > 0).map(e => e.id || e.dataset.nav)`
	var enabled []string
	var reason string
	run(t, ctx, chromedp.Evaluate(writable, &enabled), chromedp.Text(`#dlq .readonly`, &reason, chromedp.ByQuery))
	if len(enabled) != 0 || reason != "Redrive needs an operator token." {
		t.Fatalf("runs list: enabled write controls %v, reason %q", enabled, reason)
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+runID), wait(`#readonly`),
		chromedp.Evaluate(writable, &enabled), chromedp.Text(`#readonly`, &reason, chromedp.ByQuery))
	if len(enabled) != 0 || !strings.Contains(reason, "reader token") {
		t.Fatalf("run view: enabled write controls %v, reason %q", enabled, reason)
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), until(`document.getElementById("start-note").textContent !== ""`),
		chromedp.Evaluate(writable, &enabled), chromedp.Text(`#start-note`, &reason, chromedp.ByQuery))
	if len(enabled) != 0 || !strings.Contains(reason, "operator token") {
		t.Fatalf("new run: enabled write controls %v, reason %q", enabled, reason)
	}
}

// pageWidths opens each page at the viewport's size and returns the
// widths of the pages that scroll sideways.
func pageWidths(t *testing.T, ctx context.Context, base string, pages map[string]string) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for hash, ready := range pages {
		var w [2]int
		run(t, ctx, chromedp.Navigate(base+"/"+hash), until(ready), chromedp.Sleep(400*time.Millisecond),
			chromedp.Evaluate(`[Math.max(document.documentElement.scrollWidth, document.body.scrollWidth), window.innerWidth]`, &w))
		out[hash] = w
	}
	return out
}

// TestPhoneLayout: at 390 px no page scrolls sideways.
func TestPhoneLayout(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	runID, orderID := a.start(orderFlow, "7.25")
	failed, _ := a.start(`{"name":"a-workflow-with-a-rather-long-name-to-wrap","steps":[{"id":"a_step_with_a_long_identifier_name","config":{"duration_seconds":0,"fail_probability":1,"max_retries":1}}]}`, "")
	// A waiting approval, and an input with a line wider than a phone.
	approval := a.startInput(approvalFlow, `{"comment":"`+strings.Repeat("a long line without spaces ", 6)+`","id":"`+strings.Repeat("x", 120)+`"}`)
	a.wait(runID, "completed")
	a.wait(failed, "failed")
	a.waitStep(approval, "approve", "waiting")
	wfID := a.get("/runs/" + runID)["workflow_id"].(string)
	run(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	pages := map[string]string{
		"#/":                               `document.querySelectorAll("#runs tr[data-run]").length === 3`,
		"#/runs/" + runID:                  `document.querySelector("#run-status .badge") !== null && document.querySelector("#run-expires") !== null`,
		"#/runs/" + runID + "?step=charge": `document.querySelector("#step-attempts") !== null`,
		"#/runs/" + failed + "?step=a_step_with_a_long_identifier_name": `document.querySelector("#step-attempts") !== null`,
		"#/runs/" + failed:                     `document.querySelector("#failure:not([hidden])") !== null`,
		"#/runs/" + approval:                   `document.querySelector("#run-input .json-body") !== null`,
		"#/runs/" + approval + "?step=approve": `document.querySelector("#callback-url") !== null`,
		"#/new":                                `document.querySelector('#example option[value^="ex:"]') !== null`,
		"#/workflows/" + wfID:                  `document.querySelector("#run-grid") !== null`,
		"#/orders":                             `document.querySelector("#orders tr[data-order]") !== null`,
		"#/orders/" + orderID:                  `document.querySelectorAll("#order-history li").length === 5`,
		"#/signin":                             `document.querySelector("#token") !== null`,
	}
	widths := pageWidths(t, ctx, st.URL, pages)
	for hash, w := range widths {
		t.Logf("%-60s scrollWidth %d, viewport %d", hash, w[0], w[1])
		if w[1] != 390 || w[0] > w[1] {
			var wide []string
			run(t, ctx, chromedp.Navigate(st.URL+"/"+hash), until(pages[hash]), chromedp.Sleep(300*time.Millisecond),
				chromedp.Evaluate(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 390).slice(0, 8).map(e => e.tagName + "." + e.className + "#" + e.id + " " + Math.round(e.getBoundingClientRect().right))`, &wide))
			t.Errorf("%s is %d px wide in a %d px viewport; widest: %v", hash, w[0], w[1], wide)
		}
	}
	// The new-run page with a definition and its preview in it.
	var w [2]int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), pickExample("order-processing.json"), until(`document.querySelectorAll("#preview .gnode").length === 4`),
		chromedp.Evaluate(`[document.documentElement.scrollWidth, window.innerWidth]`, &w))
	if w[0] > w[1] {
		t.Errorf("new run with a preview: %d px wide in %d", w[0], w[1])
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+runID+"?step=charge"), wait(`#step-attempts`), chromedp.Sleep(300*time.Millisecond))
	screenshot(t, ctx, "run-phone.png")
	run(t, ctx, chromedp.Navigate(st.URL+"/#/"), until(pages["#/"]), chromedp.Sleep(300*time.Millisecond))
	screenshot(t, ctx, "runs-phone.png")
}

// TestBigFanOut: a 100-step fan-out is drawn as a root, one group node
// and a join, two arrows; shown in full, every node's text fits its box,
// no two boxes overlap, and the graph fits its frame's width, on a desktop
// and on a phone.
func TestBigFanOut(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	steps := []string{`{"id":"root","config":{"duration_seconds":0}}`}
	for i := range 98 {
		steps = append(steps, fmt.Sprintf(`{"id":"fan_out_branch_with_a_long_descriptive_name_%02d","depends_on":["root"],"config":{"duration_seconds":0}}`, i))
	}
	var deps []string
	for i := range 98 {
		deps = append(deps, fmt.Sprintf(`"fan_out_branch_with_a_long_descriptive_name_%02d"`, i))
	}
	steps = append(steps, `{"id":"join","depends_on":[`+strings.Join(deps, ",")+`],"config":{"duration_seconds":0}}`)
	runID, _ := a.start(`{"name":"fan-out","steps":[`+strings.Join(steps, ",")+`]}`, "")
	a.wait(runID, "completed")

	const measure = `(() => {
	  const box = document.getElementById("graph"), canvas = box.querySelector(".graph-canvas");
	  const nodes = [...box.querySelectorAll(".gnode[data-node]")].filter(n => !n.classList.contains("group"));
	  const bad = [];
	  const rects = nodes.map(n => n.getBoundingClientRect());
	  nodes.forEach((n, i) => {
	    const r = rects[i];
	    for (const label of n.querySelectorAll(".n-id, .n-detail")) {
	      const l = label.getBoundingClientRect();
	      const range = document.createRange(); range.selectNodeContents(label);
	      const t = range.getBoundingClientRect();
	      if (label.scrollWidth > label.clientWidth || l.left < r.left || l.right > r.right || t.left < r.left || t.right > r.right || t.top < r.top || t.bottom > r.bottom)
	        bad.push(n.dataset.node + ": " + label.textContent + " " + [label.scrollWidth, label.clientWidth, l.left, l.right, t.left, t.right, t.top, t.bottom, r.left, r.right, r.top, r.bottom].map(Math.round).join(","));
	    }
	    for (let j = i + 1; j < rects.length; j++) {
	      const q = rects[j];
	      if (r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom) bad.push("overlap " + n.dataset.node + " / " + nodes[j].dataset.node);
	    }
	  });
	  return { nodes: nodes.length, groups: box.querySelectorAll(".gnode.group").length, edges: box.querySelectorAll("svg.graph-edges > path").length,
	           bad, canvas: canvas.offsetWidth, box: box.clientWidth };
	})()`
	type result struct {
		Nodes, Groups, Edges, Canvas, Box int
		Bad                               []string
	}
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"desktop", 1280, 900}, {"phone", 390, 844}} {
		t.Run(vp.name, func(t *testing.T) {
			var collapsed, full result
			run(t, ctx, chromedp.EmulateViewport(vp.w, vp.h), chromedp.Navigate("about:blank"), chromedp.Navigate(st.URL+"/#/runs/"+runID), wait(`.gnode.group`),
				chromedp.Evaluate(measure, &collapsed))
			if collapsed.Nodes != 2 || collapsed.Groups != 1 || collapsed.Edges != 2 || len(collapsed.Bad) > 0 || collapsed.Canvas > collapsed.Box {
				t.Fatalf("collapsed: %+v", collapsed)
			}
			var groupLabel string
			run(t, ctx, chromedp.AttributeValue(`.gnode.group`, "aria-label", &groupLabel, nil, chromedp.ByQuery))
			if !strings.HasPrefix(groupLabel, "98 parallel steps: 98 completed") {
				t.Fatalf("group node says %q", groupLabel)
			}
			if vp.name == "desktop" {
				screenshot(t, ctx, "fan-out.png")
			}
			run(t, ctx, chromedp.Click(`.graph-tools button`, chromedp.ByQuery), until(`document.querySelectorAll("#graph .gnode[data-node]").length === 100`),
				chromedp.Evaluate(measure, &full))
			t.Logf("%s: %d nodes, %d edges, canvas %d px in a %d px frame", vp.name, full.Nodes, full.Edges, full.Canvas, full.Box)
			if full.Nodes != 100 || full.Groups != 0 || full.Edges != 2 || len(full.Bad) > 0 || full.Canvas > full.Box {
				t.Fatalf("expanded: %+v", full)
			}
		})
	}
}

// contrastJS lists text whose colour is below WCAG AA against the
// background it is drawn on (4.5:1, or 3:1 for large text).
const contrastJS = `(() => {
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const over = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let bg = { r: 255, g: 255, b: 255, a: 1 }; for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg); return bg; };
  const bad = []; let checked = 0;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) {
    const el = n.parentElement;
    if (!n.textContent.trim() || el.closest("[disabled], [hidden], option, .skip, script, style")) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden" || el.getClientRects().length === 0) continue;
    const bg = bgOf(el), fg = over(parse(cs.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(cs.fontSize), large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
    checked++;
    if (ratio < (large ? 3 : 4.5)) bad.push(n.textContent.trim().slice(0, 30) + " (" + ratio.toFixed(2) + ": " + cs.color + " on " + JSON.stringify(bg) + ")");
  }
  return { bad, checked, page: lum(bgOf(document.body)) };
})()`

// TestContrastLightAndDark checks every visible text's contrast on the
// main pages, in the light and the dark colour scheme.
func TestContrastLightAndDark(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	runID, orderID := a.start(orderFlow, "7")
	failed, _ := a.start(`{"name":"breaks","steps":[{"id":"a","config":{"duration_seconds":0}},{"id":"b","depends_on":["a"],"config":{"fail_probability":1,"max_retries":1}},{"id":"c","depends_on":["b"]}]}`, "")
	a.wait(runID, "completed")
	a.wait(failed, "failed")
	cancelled, _ := a.start(`{"name":"slow","steps":[{"id":"s","config":{"duration_seconds":30}},{"id":"t","depends_on":["s"]}]}`, "")
	a.post("/runs/"+cancelled+"/cancel", "")
	approval := a.startInput(approvalFlow, `{"customer":"ada"}`)
	a.waitStep(approval, "approve", "waiting")
	wfID := a.get("/runs/" + failed)["workflow_id"].(string)
	pages := map[string]string{
		"#/":                                   `document.querySelectorAll("#runs tr[data-run]").length === 4 && document.querySelector("#counts .n") !== null`,
		"#/runs/" + failed + "?step=b":         `document.querySelector("#step-attempts") !== null && document.querySelector(".tl-bar") !== null`,
		"#/runs/" + runID:                      `document.querySelectorAll("#order-history li").length === 5`,
		"#/runs/" + approval + "?step=approve": `document.querySelector("#callback-url") !== null && document.querySelector(".tl-bar.waiting") !== null`,
		"#/runs/" + approval:                   `document.querySelector("#run-input .json-body") !== null`,
		"#/workflows/" + wfID:                  `document.querySelector("#run-grid") !== null`,
		"#/orders":                             `document.querySelector("#orders tr[data-order]") !== null`,
		"#/orders/" + orderID:                  `document.querySelectorAll("#order-history li").length === 5`,
		"#/new":                                `document.querySelector('#example option[value^="ex:"]') !== null`,
	}
	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			run(t, ctx, emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}))
			for hash, ready := range pages {
				var res struct {
					Bad     []string
					Checked int
					Page    float64
				}
				run(t, ctx, chromedp.Navigate(st.URL+"/"+hash), until(ready), chromedp.Sleep(200*time.Millisecond), chromedp.Evaluate(contrastJS, &res))
				if res.Checked < 10 || len(res.Bad) > 0 || (scheme == "dark") != (res.Page < 0.1) {
					t.Errorf("%s in %s: %d texts checked, page luminance %.2f, below AA: %v", hash, scheme, res.Checked, res.Page, res.Bad)
				}
			}
			if scheme == "dark" {
				run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+failed+"?step=b"), until(pages["#/runs/"+failed+"?step=b"]))
				screenshot(t, ctx, "run-dark.png")
			}
		})
	}
}

// TestNewRunPreviewAndOrderFields: the preview follows the editor as the
// user types, and each order field is enabled only with its option.
func TestNewRunPreviewAndOrderFields(t *testing.T) {
	st := stack(t)
	ctx := browser(t)
	typeDef := func(def string) chromedp.Action {
		return chromedp.Tasks{chromedp.SetValue(`#definition`, def, chromedp.ByQuery),
			chromedp.Evaluate(`document.getElementById("definition").dispatchEvent(new Event("input"))`, nil)}
	}
	var nodes []string
	var status string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), wait(`#definition`),
		typeDef(`{"name":"p","steps":[{"id":"a"},{"id":"b","depends_on":["a"]},{"id":"c","depends_on":["a"]}]}`),
		until(`document.querySelectorAll("#preview .gnode").length === 3`),
		chromedp.Evaluate(`[...document.querySelectorAll("#preview .gnode")].map(n => n.dataset.node)`, &nodes),
		chromedp.Text(`#preview-status`, &status, chromedp.ByQuery))
	if fmt.Sprint(nodes) != "[a b c]" || !strings.HasPrefix(status, "3 steps in 2 layers") {
		t.Fatalf("preview nodes %v, status %q", nodes, status)
	}
	run(t, ctx, typeDef(`{"name":"p","steps":[{"id":"a","depends_on":["b"]},{"id":"b","depends_on":["a"]}]}`),
		until(`document.getElementById("preview-status").textContent === "The dependencies form a cycle."`),
		typeDef(`{"name":"p","steps":[{"id":"a"`),
		until(`document.getElementById("preview-status").textContent.startsWith("Not valid JSON yet")`))

	disabled := func() (amount, order bool) {
		var d []bool
		run(t, ctx, chromedp.Evaluate(`[document.getElementById("amount").disabled, document.getElementById("order-id").disabled]`, &d))
		return d[0], d[1]
	}
	for _, tt := range []struct {
		mode          string
		amount, order bool // disabled
	}{{"none", true, true}, {"new", false, true}, {"existing", true, false}, {"none", true, true}} {
		run(t, ctx, chromedp.Click(`input[name="order-mode"][value="`+tt.mode+`"]`, chromedp.ByQuery))
		if a, o := disabled(); a != tt.amount || o != tt.order {
			t.Errorf("%s: amount disabled %v, existing order disabled %v; want %v, %v", tt.mode, a, o, tt.amount, tt.order)
		}
	}
}
