package frontend_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"stepflow/internal/auth"
	"stepflow/internal/awsclient"
	"stepflow/internal/id"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// The run page with the step types (issue 17): a run's input and its
// steps' outputs, the banner of a failed run, the mark of a retry on the
// timeline, an approval's decision (operators only), and when waiting
// steps resume.

// approvalFlow waits for a decision between two tasks.
const approvalFlow = `{"name":"refund","steps":[
 {"id":"prep","config":{"duration_seconds":0.01}},
 {"id":"approve","type":"approval","depends_on":["prep"],"config":{"timeout_seconds":3600}},
 {"id":"after","depends_on":["approve"],"config":{"duration_seconds":0.01}}]}`

// startInput creates def and starts a run of it with the JSON input.
func (a api) startInput(def, input string) string {
	a.t.Helper()
	wf := a.post("/workflows", def)
	return a.post("/workflows/"+wf["id"].(string)+"/runs", `{"input":`+input+`}`)["id"].(string)
}

// step returns the run's step as the API has it.
func (a api) step(runID, stepID string) map[string]any {
	a.t.Helper()
	for _, s := range a.get("/runs/" + runID)["steps"].([]any) {
		if s := s.(map[string]any); s["step_id"] == stepID {
			return s
		}
	}
	a.t.Fatalf("run %s has no step %s", runID, stepID)
	return nil
}

// waitUntil polls the run until ok holds.
func (a api) waitUntil(runID, what string, ok func(run map[string]any) bool) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := a.get("/runs/" + runID)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s: not %s after 60s: %v", runID, what, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStep polls until the run's step has the status.
func (a api) waitStep(runID, stepID, want string) {
	a.t.Helper()
	a.waitUntil(runID, stepID+" "+want, func(r map[string]any) bool {
		for _, s := range r["steps"].([]any) {
			if s := s.(map[string]any); s["step_id"] == stepID {
				return s["status"] == want
			}
		}
		return false
	})
}

// signInAs stores a new token of the role and signs the dashboard in with
// it (the stack must not sign in by itself).
func signInAs(t *testing.T, ctx context.Context, st *testStack, name string, role auth.Role) {
	t.Helper()
	tok, cred, err := auth.New(id.NewGenerator(nil, nil), name, role, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokens := store.NewTokens(awsclient.DynamoDB(testenv.Config(t), st.DynamoDB), st.TokenTable)
	if err := tokens.PutTokenIfAbsent(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(st.URL+"/#/signin"), wait(`#token`),
		chromedp.SetValue(`#token`, cred, chromedp.ByQuery), chromedp.Click(`#signin button[type="submit"]`, chromedp.ByQuery),
		wait(`#runs`), until(fmt.Sprintf(`document.getElementById("who").textContent === %q`, name+" · "+string(role))))
}

// text is the element's textContent.
func text(sel string, s *string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).textContent`, sel), s)
}

// TestApprovalDecidedByAnOperator: the run's input shows exactly as
// given and as text; an operator sees when the approval times out, its
// callback URL, and Complete and Fail; Fail needs a reason, Complete
// takes only JSON and shows the API's refusal; what is typed survives the
// page's refreshes; completing with an output lets the run finish, and
// the output shows, collapsed as it is large.
func TestApprovalDecidedByAnOperator(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	runID := a.startInput(approvalFlow, `{"customer":"ada","amount":1.0,"ref":12345678901234567890,"note":"<img src=x onerror=alert(1)>"}`)
	a.waitStep(runID, "approve", "waiting")
	token, _ := a.step(runID, "approve")["callback_token"].(string)
	if token == "" {
		t.Fatal("the API shows the operator no callback token")
	}

	var input string
	var open bool
	var imgs int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+runID), wait(`#run-input .json-body`),
		text(`#run-input .json-body`, &input),
		chromedp.Evaluate(`document.getElementById("run-input").open`, &open),
		chromedp.Evaluate(`document.querySelectorAll("#main img").length`, &imgs))
	for _, want := range []string{`"amount": 1.0`, `"ref": 12345678901234567890`, `"note": "<img src=x onerror=alert(1)>"`} {
		if !strings.Contains(input, want) {
			t.Errorf("input shows %q; want it to contain %s", input, want)
		}
	}
	if !open || imgs != 0 {
		t.Fatalf("input open %v (a small input starts open), %d img elements made from data", open, imgs)
	}

	var detail, note, url, bg string
	run(t, ctx, chromedp.Click(`.gnode[data-node="approve"]`, chromedp.ByQuery), wait(`#decision`),
		text(`.gnode[data-node="approve"] .n-detail`, &detail), text(`#wait-note`, &note),
		chromedp.Value(`#callback-url`, &url, chromedp.ByQuery),
		chromedp.Evaluate(`getComputedStyle(document.querySelector("#panel-title .badge")).backgroundColor`, &bg))
	if !strings.HasPrefix(detail, "times out in") || !strings.Contains(note, "times out at") {
		t.Errorf("approval node says %q, panel %q; want when it times out", detail, note)
	}
	if url != st.URL+"/callbacks/"+token {
		t.Errorf("callback URL %q, want %s/callbacks/<the API's token>", url, st.URL)
	}
	if bg != "rgb(14, 116, 144)" {
		t.Errorf("waiting badge background %s, want the waiting colour", bg)
	}

	run(t, ctx, chromedp.SetValue(`#decision-output`, `{"approved_by": "ada", "note": "refund within policy"}`, chromedp.ByQuery))
	screenshot(t, ctx, "approval.png")

	// Fail needs a reason; Complete needs JSON; neither is sent without.
	var reasonErr, outputErr, invalid string
	run(t, ctx, chromedp.Click(`#fail`, chromedp.ByQuery), until(`document.getElementById("decision-reason-error").textContent !== ""`),
		text(`#decision-reason-error`, &reasonErr),
		chromedp.SetValue(`#decision-output`, `{"approved": tru`, chromedp.ByQuery), chromedp.Click(`#complete`, chromedp.ByQuery),
		until(`document.getElementById("decision-output-error").textContent !== ""`),
		text(`#decision-output-error`, &outputErr),
		chromedp.AttributeValue(`#decision-output`, "aria-invalid", &invalid, nil, chromedp.ByQuery))
	if !strings.HasPrefix(reasonErr, "Say why the step fails") || !strings.HasPrefix(outputErr, "Not valid JSON") || invalid != "true" {
		t.Fatalf("reason error %q, output error %q (aria-invalid %q)", reasonErr, outputErr, invalid)
	}
	if s := a.step(runID, "approve")["status"]; s != "waiting" {
		t.Fatalf("after refused decisions the step is %v", s)
	}
	// JSON the browser takes but the API refuses: the API's error shows.
	run(t, ctx, chromedp.SetValue(`#decision-output`, `{"a": 1, "a": 2}`, chromedp.ByQuery), chromedp.Click(`#complete`, chromedp.ByQuery),
		until(`document.getElementById("decision-output-error").textContent.includes("duplicate")`),
		text(`#decision-output-error`, &outputErr))
	if !strings.Contains(outputErr, `duplicate field "output.a"`) {
		t.Fatalf("API refusal shown as %q", outputErr)
	}

	// A large output: what is typed survives two refreshes of the page.
	var fields []string
	for i := range 30 {
		fields = append(fields, fmt.Sprintf(`"line_%02d": %d`, i, i))
	}
	output := `{"approved_by": "ada", ` + strings.Join(fields, ", ") + `}`
	var kept, focused string
	run(t, ctx, chromedp.SetValue(`#decision-output`, output, chromedp.ByQuery), chromedp.Focus(`#decision-output`, chromedp.ByQuery),
		chromedp.Sleep(3500*time.Millisecond), chromedp.Value(`#decision-output`, &kept, chromedp.ByQuery),
		chromedp.Evaluate(`document.activeElement.id`, &focused))
	if kept != output || focused != "decision-output" {
		t.Fatalf("after the page refreshed, the output typed is %q and the focus on %q", kept, focused)
	}
	run(t, ctx, chromedp.Click(`#complete`, chromedp.ByQuery), waitRunStatus("completed"),
		wait(`details#step-output`))
	var shown string
	var large bool
	run(t, ctx, chromedp.Evaluate(`document.getElementById("step-output").open`, &open),
		chromedp.Evaluate(`document.getElementById("step-output").dataset.large === "true"`, &large),
		text(`#step-output .json-body`, &shown))
	if open || !large || !strings.Contains(shown, `"approved_by": "ada"`) || !strings.Contains(shown, `"line_29": 29`) {
		t.Fatalf("output: open %v, large %v, text %q", open, large, shown)
	}
	// The summary opens it from the keyboard.
	run(t, ctx, chromedp.Focus(`#step-output summary`, chromedp.ByQuery), chromedp.KeyEvent(" "),
		chromedp.Evaluate(`document.getElementById("step-output").open`, &open))
	if !open {
		t.Fatal("Space on the output's summary does not open it")
	}
	if out := a.step(runID, "approve")["output"].(map[string]any); out["approved_by"] != "ada" || len(out) != 31 {
		t.Fatalf("the API has the output %v", out)
	}
}

// TestReaderSeesNoDecisionButtons: a reader sees that an approval waits,
// and neither the buttons nor the callback URL.
func TestReaderSeesNoDecisionButtons(t *testing.T) {
	st := stackWith(t, stackOpts{noAutoSignIn: true})
	a := apiOf(t, st)
	ctx := browser(t)
	runID := a.startInput(approvalFlow, `{"customer":"bo"}`)
	a.waitStep(runID, "approve", "waiting")
	signInAs(t, ctx, st, "wallboard", auth.Reader)
	var note, reason string
	var shown []string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+runID+"?step=approve"), wait(`#decision-readonly`),
		text(`#wait-note`, &note), text(`#decision-readonly`, &reason),
		chromedp.Evaluate(`[...document.querySelectorAll("#decision, #complete, #fail, #callback-url, #decision-output, #decision-reason")].map(e => e.id)`, &shown))
	if len(shown) != 0 || !strings.Contains(note, "times out at") || !strings.Contains(reason, "reader token") {
		t.Fatalf("reader sees %v; wait note %q; reason %q", shown, note, reason)
	}
}

// TestFailedRunBannerAndRetryWithInput: the new-run form takes an input
// (JSON only); a failed run opens with a banner naming the failed step and
// its error; a retry with a new input is marked on the timeline, the
// earlier generation's attempts are told apart, and each input is listed
// with the generations that used it.
func TestFailedRunBannerAndRetryWithInput(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	def := `{"name":"breaks","steps":[{"id":"prep","config":{"duration_seconds":0.01}},{"id":"boom","depends_on":["prep"],"config":{"duration_seconds":0.01,"fail_probability":1,"max_retries":0}}]}`
	var inputErr string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/new"), wait(`#definition`),
		chromedp.SetValue(`#definition`, def, chromedp.ByQuery), chromedp.SetValue(`#run-input`, `{"try": `, chromedp.ByQuery),
		chromedp.Click(`#start`, chromedp.ByQuery), until(`document.getElementById("run-input-error").textContent !== ""`),
		text(`#run-input-error`, &inputErr))
	if !strings.HasPrefix(inputErr, "Not valid JSON") {
		t.Fatalf("input error %q", inputErr)
	}
	if wfs := getList(t, st.URL+"/workflows", st.Token); len(wfs) != 0 {
		t.Fatalf("a workflow was created with an invalid input: %v", wfs)
	}
	var banner, step, errText string
	run(t, ctx, chromedp.SetValue(`#run-input`, `{"try": 1}`, chromedp.ByQuery), chromedp.Click(`#start`, chromedp.ByQuery),
		waitRunStatus("failed"), wait(`#failure`),
		text(`#failure`, &banner), text(`#failed-step`, &step), text(`#failed-error`, &errText))
	if step != "boom" || !strings.Contains(errText, "simulated failure") || !strings.HasPrefix(banner, "✗ Step boom failed: simulated failure") {
		t.Fatalf("banner %q (step %q, error %q)", banner, step, errText)
	}
	var title, focused string
	run(t, ctx, chromedp.Click(`#show-failed`, chromedp.ByQuery), wait(`#step-attempts`), text(`#panel-title`, &title),
		chromedp.Evaluate(`document.activeElement.id`, &focused))
	if !strings.HasPrefix(title, "boom") || focused != "step-panel" {
		t.Fatalf("Show the step opened %q and focused %q", title, focused)
	}
	var runID string
	run(t, ctx, chromedp.Evaluate(`location.hash.split("/")[2].split("?")[0]`, &runID))

	// A retry's input must be JSON too.
	var retryErr string
	run(t, ctx, chromedp.SetValue(`#retry-input`, `{"try": 2`, chromedp.ByQuery), chromedp.Click(`#retry`, chromedp.ByQuery),
		until(`document.getElementById("retry-input-error").textContent !== ""`), text(`#retry-input-error`, &retryErr))
	if !strings.HasPrefix(retryErr, "Not valid JSON") || a.get("/runs/" + runID)["retries"] != 0.0 {
		t.Fatalf("retry input error %q; the run as the API has it: %v", retryErr, a.get("/runs/" + runID)["retries"])
	}
	run(t, ctx, chromedp.SetValue(`#retry-input`, `{"try": 2}`, chromedp.ByQuery), chromedp.Click(`#retry`, chromedp.ByQuery))
	r := a.waitUntil(runID, "failed again after a retry", func(r map[string]any) bool { return r["generation"] == 1.0 && r["status"] == "failed" })
	retriedAt, err := time.Parse(time.RFC3339Nano, r["retried_at"].(string))
	if err != nil {
		t.Fatal(err)
	}

	// The timeline: two bars for boom, the first of the earlier
	// generation, and the retry's line between them.
	type bar struct {
		Gen, Class  string
		Left, Right float64
	}
	var tl struct {
		Bars       map[string][]bar
		Flag       string
		At         float64
		Line       float64
		FlagLabels []string
		Origin     string
	}
	run(t, ctx, waitRunStatus("failed"), until(`document.querySelectorAll('.tl-bar.failed[data-step="boom"]').length === 2`),
		chromedp.Evaluate(`(() => {
		  const bars = {};
		  for (const b of document.querySelectorAll(".tl-bar")) {
		    const r = b.getBoundingClientRect();
		    (bars[b.dataset.step] ||= []).push({ Gen: b.dataset.generation, Class: b.className, Left: r.left, Right: r.right });
		  }
		  const flag = document.getElementById("tl-retry-flag");
		  const line = document.querySelector('.tl-bar[data-step="boom"]').parentElement.querySelector(".tl-retry");
		  return { Bars: bars, Flag: flag.textContent, At: Number(flag.dataset.at), Line: line.getBoundingClientRect().left,
		    Origin: document.querySelector(".tl-origin").textContent };
		})()`, &tl))
	boom := tl.Bars["boom"]
	if len(boom) != 2 || boom[0].Gen != "0" || !strings.Contains(boom[0].Class, "earlier") || boom[1].Gen != "1" || strings.Contains(boom[1].Class, "earlier") {
		t.Fatalf("boom's bars: %+v", boom)
	}
	if prep := tl.Bars["prep"]; len(prep) != 1 || !strings.Contains(prep[0].Class, "earlier") {
		t.Errorf("prep completed before the retry; its bar: %+v", prep)
	}
	if tl.Flag != "↻ retry 1" || math.Abs(tl.At-float64(retriedAt.UnixMilli())) > 1 || !strings.Contains(tl.Origin, "retry 1 began") {
		t.Errorf("retry mark %q at %v (API: %v), origin %q", tl.Flag, tl.At, retriedAt.UnixMilli(), tl.Origin)
	}
	if tl.Line < boom[0].Right-1 || tl.Line > boom[1].Left+1 {
		t.Errorf("the retry line at x=%v is not between boom's attempts %+v", tl.Line, boom)
	}
	var gens []string
	run(t, ctx, chromedp.Evaluate(`[...document.querySelectorAll("#step-attempts .a-gen")].map(g => g.textContent)`, &gens))
	if fmt.Sprint(gens) != "[generation 0, as started generation 1, retry 1]" {
		t.Errorf("boom's attempts in the panel: %q", gens)
	}

	// The inputs, each with the generations that used it; the banner
	// names the new failure.
	var inputs []string
	run(t, ctx, chromedp.Click(`#close-step`, chromedp.ByQuery), wait(`#run-inputs`), wait(`#failure`),
		chromedp.Evaluate(`[...document.querySelectorAll("#run-inputs > li")].map(li => li.dataset.generation + "|" + li.querySelector(".input-gens").textContent.split(" · ")[0] + "|" + li.querySelector(".json-body").textContent.replace(/\s+/g, " "))`, &inputs),
		text(`#failed-step`, &step))
	if fmt.Sprint(inputs) != `[0|Generation 0|{ "try": 1 } 1|Generation 1 (current)|{ "try": 2 }]` || step != "boom" {
		t.Fatalf("inputs %q; banner names %q", inputs, step)
	}
	screenshot(t, ctx, "run-retried.png")
}

// TestWaitingStepsSayWhenTheyResume: a wait step says when it resumes and
// an approval with no timeout that it waits for a decision, on the graph
// and in the panel; both have the waiting colour in the graph, the
// timeline and the workflow's grid and legend.
func TestWaitingStepsSayWhenTheyResume(t *testing.T) {
	st := stack(t)
	a := apiOf(t, st)
	ctx := browser(t)
	runID, _ := a.start(`{"name":"pauses","steps":[{"id":"pause","type":"wait","config":{"seconds":120}},{"id":"decide","type":"approval"}]}`, "")
	a.waitStep(runID, "pause", "waiting")
	a.waitStep(runID, "decide", "waiting")
	pause := a.step(runID, "pause")
	resumes, err := time.Parse(time.RFC3339Nano, pause["wait_until"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var details map[string]string
	var waitingBars int
	run(t, ctx, chromedp.Navigate(st.URL+"/#/runs/"+runID), until(`document.querySelectorAll('.gnode[data-status="waiting"]').length === 2`),
		chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll(".gnode[data-node]")].map(n => [n.dataset.node, n.querySelector(".n-detail").textContent]))`, &details),
		chromedp.Evaluate(`document.querySelectorAll(".tl-bar.waiting").length`, &waitingBars))
	if !strings.HasPrefix(details["pause"], "resumes in") || details["decide"] != "waits for a decision" || waitingBars != 2 {
		t.Fatalf("node details %v, %d waiting bars on the timeline", details, waitingBars)
	}
	var note, at string
	run(t, ctx, chromedp.Click(`.gnode[data-node="pause"]`, chromedp.ByQuery), wait(`#wait-note`),
		text(`#wait-note`, &note), chromedp.AttributeValue(`#wait-note time`, "datetime", &at, nil, chromedp.ByQuery))
	shownAt, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || !strings.HasPrefix(note, "Waiting: resumes at ") || !shownAt.Equal(resumes) {
		t.Fatalf("wait note %q (time %s, API %s)", note, at, resumes)
	}
	run(t, ctx, chromedp.Click(`.gnode[data-node="decide"]`, chromedp.ByQuery),
		until(`document.getElementById("panel-title").textContent.startsWith("decide")`), text(`#wait-note`, &note))
	if note != "Waits for a decision, with no timeout." {
		t.Fatalf("approval wait note %q", note)
	}
	wfID := a.get("/runs/" + runID)["workflow_id"].(string)
	var cells map[string]string
	var legend []string
	run(t, ctx, chromedp.Navigate(st.URL+"/#/workflows/"+wfID), until(`document.querySelectorAll("#run-grid a.cell").length === 3`),
		chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("#run-grid a.cell")].map(c => [c.dataset.cell, c.dataset.status]))`, &cells),
		chromedp.Evaluate(`[...document.querySelectorAll(".legend .badge")].map(b => b.textContent)`, &legend))
	if cells[runID+"/pause"] != "waiting" || !strings.Contains(strings.Join(legend, ","), "◷ waiting") {
		t.Fatalf("grid cells %v, legend %v", cells, legend)
	}
}
