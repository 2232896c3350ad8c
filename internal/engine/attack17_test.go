package engine_test

// An adversarial review of issue 17 (http, wait and approval steps, data
// between steps, order reservations). Each test drives one interleaving by
// hand with the real store, API and engine on the emulator (and on DynamoDB
// Local through tools/dynamodb-local/run.sh). Tests named
// TestAttack17Fails... fail on the code they were written against: the
// comment says what goes wrong and where. Tests named TestAttack17Holds...
// are attacks that the code withstood, kept as regression tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepflow/internal/api"
	"stepflow/internal/demoservice"
	"stepflow/internal/engine"
	"stepflow/internal/httpstep"
	"stepflow/internal/queue"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// post sends a JSON body to h and returns the status and the body.
func (r *rig) post(h http.Handler, path, body string) (int, string) {
	r.t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// operatorView is GET /runs/{id} as the API answers it with no
// authentication configured (every caller is an operator): with callback
// tokens.
func (r *rig) operatorView(runID string) wire.RunDetail {
	r.t.Helper()
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runs/"+runID, nil))
	var d wire.RunDetail
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		r.t.Fatalf("GET /runs/%s: %d %s", runID, rec.Code, rec.Body)
	}
	return d
}

// startWith creates workflow def and starts a run of it with body (the
// JSON of POST /workflows/{id}/runs).
func (r *rig) startWith(def, body string) string {
	r.t.Helper()
	code, out := r.post(r.api, "/workflows", def)
	if code/100 != 2 {
		r.t.Fatalf("create workflow: %d %s", code, out)
	}
	var wf wire.Workflow
	_ = json.Unmarshal([]byte(out), &wf)
	code, out = r.post(r.api, "/workflows/"+wf.ID+"/runs", body)
	if code != http.StatusAccepted {
		r.t.Fatalf("start run: %d %s", code, out)
	}
	var d wire.RunDetail
	_ = json.Unmarshal([]byte(out), &d)
	return d.ID
}

// handle hands m to e and logs an unexpected error.
func (r *rig) handle(e *engine.Engine, m queue.Message) error {
	r.t.Helper()
	err := e.Handle(context.Background(), engine.Delivery{Message: m})
	if err != nil && !errors.Is(err, engine.ErrBusy) {
		r.t.Logf("handle %s step %d: %v", m.RunID, m.StepIndex, err)
	}
	return err
}

// takeStep removes from the rig's queue and returns the messages of step i.
func (r *rig) takeStep(i int) []queue.Message {
	var mine, rest []queue.Message
	for _, m := range r.q.take() {
		if m.StepIndex == i {
			mine = append(mine, m)
		} else {
			rest = append(rest, m)
		}
	}
	_ = r.q.Send(context.Background(), rest)
	return mine
}

// settle hands the messages sent to the plain runner, each once it is due
// (honouring its delay, as SQS does), until none is left or seconds pass.
func (r *rig) settle(seconds float64) {
	r.t.Helper()
	type held struct {
		m   queue.Message
		due time.Time
	}
	var pending []held
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for time.Now().Before(deadline) {
		now := time.Now()
		for _, m := range r.q.take() {
			pending = append(pending, held{m, now.Add(m.Delay)})
		}
		if len(pending) == 0 {
			return
		}
		next := -1
		for i, h := range pending {
			if !h.due.After(now) && (next < 0 || h.due.Before(pending[next].due)) {
				next = i
			}
		}
		if next < 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		h := pending[next]
		pending = append(pending[:next], pending[next+1:]...)
		if err := r.handle(r.plain, h.m); errors.Is(err, engine.ErrBusy) {
			pending = append(pending, held{h.m, time.Now().Add(200 * time.Millisecond)})
		}
	}
	r.t.Fatalf("messages kept coming for %v s", seconds)
}

func stepOf(d wire.RunDetail, id string) wire.StepDetail {
	for _, s := range d.Steps {
		if s.StepID == id {
			return s
		}
	}
	return wire.StepDetail{}
}

// TestAttack17FailsDuplicateWaitExpiryRunsDependentTwice: w (a wait) ->
// x (a task). Two messages of w arrive once its deadline has passed (SQS
// delivers at least once; a Later chain that was handled twice, the
// sweeper's re-send at deadline+grace, or any completed ancestor's
// redelivered message whose walk reaches w all give a second one). Each
// runner reads w waiting and over, so each resolves it (runner.go
// handleRun: rn.s.Resolve(rn.expired(...))) and, since w "succeeded here
// and is not committed" (runstate/schedule.go succeededHere / inlineReady),
// each starts x inline after a fence. A wait's end is not held by anyone:
// unlike a claimed attempt, the waiting slot can be resolved by every
// reader at once, so "nobody else can claim it" no longer holds for the
// dependents started inline on it. One commit lands; the other runner's x
// has already run. No crash, no lost lease, no lost answer: x runs twice.
// TestRandomSchedules finds the same (seeds 40760 and 50184).
//
// Fix: an outcome that resolves a waiting slot must not make dependents
// inline-ready (commit the wait's end first, then claim the dependents as
// after any commit: Landed -> followUp), or the wait's end must first be
// taken by a compare-and-swap of the runner's own (W -> R with its token).
func TestAttack17FixedDuplicateWaitExpiryRunsDependentTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("BatchGetItem"), anyRequest, 0, nil, nil)
	// hold (an approval nobody decides) keeps the run live.
	runID := r.start(`{"name":"dup-expiry","steps":[
		{"id":"w","type":"wait","config":{"seconds":0.2}},
		{"id":"x","config":{"duration_seconds":0},"depends_on":["w"]},
		{"id":"hold","type":"approval"}]}`)
	// The root's runner begins the wait; its first message is due at the
	// deadline.
	for _, m := range r.q.take() {
		_ = r.handle(r.plain, m)
	}
	hop := r.takeStep(0)
	if len(hop) != 1 {
		t.Fatalf("messages of the wait: %+v", hop)
	}
	time.Sleep(400 * time.Millisecond) // the deadline passes
	// Runner B reads w (waiting, over) and pauses after its read.
	r.gate.arm()
	done := handleAsync(r.gated, hop[0])
	<-r.gate.paused
	// Runner A gets the duplicate: it ends the wait, runs x, commits both.
	_ = r.handle(r.plain, hop[0])
	r.drain()
	if d := r.get(runID); d.Steps[1].Status != status.StepCompleted {
		t.Fatalf("x %s after the first runner", d.Steps[1].Status)
	}
	close(r.gate.release)
	if err := <-done; err != nil && !errors.Is(err, engine.ErrBusy) {
		t.Log(err)
	}
	r.drain()
	if n := r.task.executions(runID, "x"); n != 1 {
		t.Fatalf("x ran %d times: two runners each resolved the same wait and started its dependent inline", n)
	}
}

// TestAttack17FailsRetryBetweenClaimAndWaitKillsCallbackToken: an approval
// a runs alone. The runner claims a (R0 in generation 0); before it commits
// the wait, the run is cancelled and retried. The retry keeps a's running
// slot (its lease is live: runstate.Retry) and the runner's commit then
// lands into generation 1, as the design says a live attempt's result
// does. But the runner computed the callback token's hash with the
// generation it knew (engine/steps.go run: rn.approvalHash(ctx, i,
// run.Gen, ...)), and CommitIfHeld stores the callback item with that
// generation (store/data.go callbackItem(c.RunID, c.Gen, w)), while the
// API shows operators Token(key, run, step, d.Generation=1, attempt)
// (api/decisions.go withCallbacks) and accepts a token only for the current
// generation (decide: want.gen != r.Gen). The token shown is unknown to
// the store (404) and the stored one is refused as "an earlier wait": the
// approval can no longer be decided by callback; when its timeout comes,
// expired() deletes a callback item that does not exist (the gen-1 hash),
// and the gen-0 item is left behind.
//
// Fix: derive the callback from the generation the commit lands in:
// condition a commit that begins an approval's wait on the generation it
// was built for (c.SameGen-like inGen on the slot's item) and rebuild the
// hash after a refusal; or hash the waiting slot's own identity (step,
// attempt, start) rather than the generation.
func TestAttack17FixedRetryBetweenClaimAndWaitKillsCallbackToken(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("UpdateItem"), anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"approval-retry","steps":[{"id":"a","type":"approval"}]}`)
	root := r.q.take()[0]
	// The gated runner claims a and pauses right after its claim landed.
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-r.gate.paused
	r.cancel(runID)
	r.retry(runID)
	close(r.gate.release)
	if err := <-done; err != nil {
		t.Log(err)
	}
	r.drain()
	d := r.operatorView(runID)
	a := stepOf(d, "a")
	t.Logf("run %s generation %d; a %s (retry count %d)", d.Status, d.Generation, a.Status, a.RetryCount)
	if a.Status != status.StepWaiting || a.CallbackToken == nil {
		t.Fatalf("a is %s with token %v; want it waiting with a token", a.Status, a.CallbackToken)
	}
	code, out := r.post(r.api, "/callbacks/"+*a.CallbackToken, `{"output":{"ok":true}}`)
	if code != http.StatusOK {
		t.Fatalf("the callback token the run detail shows for the waiting approval: %d %s", code, out)
	}
}

// TestAttack17FailsDecisionLandsAfterCancelAcknowledged: an approval a ->
// b. An operator's decision reads the run (live, a waiting), then the run
// is cancelled (200). The decision's commit (api/decisions.go decide ->
// runstate.BuildCommits, not SameGen since the run was read live) is
// conditioned on a's slot only, so it lands in the cancelled run and the
// API answers 200 "completed": a state change, and with an order action
// on the approval an order move, acknowledged after the cancel was. The
// design promises nothing starts after a cancel is acknowledged, and the
// API says "a decision needs a running run".
//
// Fix: condition a decision's commit on the run being live in the
// generation read (attribute_exists(live) AND gen = :g on the slot's item,
// as ClaimIfLive does); a refusal then re-reads and answers 404/409.
func TestAttack17FixedDecisionLandsAfterCancelAcknowledged(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, isOp("BatchGetItem"), 0, nil, nil)
	runID := r.start(`{"name":"decide-cancel","steps":[
		{"id":"a","type":"approval"},
		{"id":"b","config":{"duration_seconds":0},"depends_on":["a"]}]}`)
	r.drain()
	if a := stepOf(r.operatorView(runID), "a"); a.Status != status.StepWaiting {
		t.Fatalf("a is %s", a.Status)
	}
	// The decision reads the run (LoadRun: BatchGetItem) and pauses.
	r.apiGate.arm()
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		code, body := r.post(r.gatedAPI, "/runs/"+runID+"/steps/a/complete", `{"output":{"by":"kim"}}`)
		got <- answer{code, body}
	}()
	<-r.apiGate.paused
	r.cancel(runID)
	close(r.apiGate.release)
	ans := <-got
	d := r.get(runID)
	t.Logf("decision after the cancel: %d; run %s, a %s", ans.code, d.Status, d.Steps[0].Status)
	if ans.code == http.StatusOK || d.Steps[0].Status == status.StepCompleted {
		t.Fatalf("a decision landed after the cancel was acknowledged: %d, a %s in a %s run", ans.code, d.Steps[0].Status, d.Status)
	}
}

// TestAttack17FailsApprovalFailsOnTransientKeyRead: the first approval
// attempt reads the callback key (store.CallbackKey, a GetItem of
// KEY#callback). A transient storage error there (here: three lost answers
// in a row, which the SDK's retryer gives up on) becomes the attempt's
// error (engine/steps.go run: return attempt{err: err}); approvals have
// no retries (workflow.defaultRetries[approval] = 0, and max_retries is
// not a key an approval may set), so the step fails for good and the run
// fails: an infrastructure hiccup ends a business process a person was to
// decide. Expected: the invocation gives up (its message comes back), as
// for any other storage error the runner meets.
//
// Fix: return the error from the runner (rn.loop's failed) instead of
// making it the attempt's outcome, or mark it retryable whatever the
// step's retries.
func TestAttack17FixedApprovalFailsOnTransientKeyRead(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
	runID := r.start(`{"name":"key-read","steps":[{"id":"a","type":"approval"}]}`)
	root := r.q.take()[0]
	r.lose.Lose("GetItem", 3, testenv.Containing("KEY#callback"))
	if err := r.handle(r.gated, root); err == nil {
		t.Log("the runner reported success")
	}
	d := r.get(runID)
	t.Logf("run %s, a %s, lost %v", d.Status, d.Steps[0].Status, r.lose.Lost())
	if d.Status == status.RunFailed {
		t.Fatalf("a transient read of the callback key failed the approval and its run: %+v", d.Steps[0])
	}
}

// httpTweak gives the rig's engines an http client for local services.
func httpTweak(c *engine.Config) { c.HTTP = httpstep.New(httpstep.LocalPolicy()) }

// orderAt creates an order and moves it to validated.
func (r *rig) validatedOrder() string {
	r.t.Helper()
	code, out := r.post(r.api, "/orders", `{"amount":10}`)
	if code != http.StatusCreated {
		r.t.Fatalf("create order: %d %s", code, out)
	}
	var o wire.Order
	_ = json.Unmarshal([]byte(out), &o)
	v := r.startWith(`{"name":"validate","steps":[{"id":"v","config":{"action":"validate_order","duration_seconds":0}}]}`, `{"order_id":"`+o.ID+`"}`)
	r.drain()
	if d := r.get(v); d.Status != status.RunCompleted {
		r.t.Fatalf("validate: %s", d.Status)
	}
	return o.ID
}

// TestAttack17FailsTaskOrderActionIgnoresReservation: run A's http charge
// reserves the order (validated) and calls the payment service, which
// charges the card and answers slowly. Meanwhile run B's charge_payment is
// a task (or an approval, or a wait, with that action: none of them
// reserves, runstate.ReservesOrder is for http steps only). B's order check
// reads only the status (Sched.OrderCheck), and its commit moves the order
// on the condition "#st = :from" and REMOVES A's reservation
// (store/runs.go CommitIfHeld: u.remove res_run, res_step, res_until). When
// A's call returns, its commit is refused by the order's status and A's
// step fails ("order is charged"): the payment the service made is
// recorded nowhere, and the order's history says B charged it.
//
// Fix: the order update of every commit that moves an order (and the
// order check of a task that does) must respect another run's live
// reservation: condition it on "attribute_not_exists(res_run) OR res_run
// = :run OR res_until < :now", and refuse/retry otherwise.
func TestAttack17FixedTaskOrderActionIgnoresReservation(t *testing.T) {
	t.Parallel()
	called := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	payments := 0
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		payments++
		mu.Unlock()
		once.Do(func() { close(called) })
		<-release
		_, _ = w.Write([]byte(`{"payment_id":"pay_1"}`))
	}))
	defer svc.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
	orderID := r.validatedOrder()
	a := r.startWith(`{"name":"charge-http","steps":[{"id":"charge","type":"http","config":{"action":"charge_payment","url":"`+svc.URL+`/payments","max_retries":0}}]}`, `{"order_id":"`+orderID+`"}`)
	ma := r.q.take()
	doneA := handleAsync(r.plain, ma[0])
	<-called // A reserved the order and its request is at the service
	b := r.startWith(`{"name":"charge-task","steps":[{"id":"charge","config":{"action":"charge_payment","duration_seconds":0}}]}`, `{"order_id":"`+orderID+`"}`)
	for _, m := range r.q.take() {
		_ = r.handle(r.gated, m)
	}
	close(release)
	if err := <-doneA; err != nil {
		t.Log(err)
	}
	r.drain()
	da, db := r.get(a), r.get(b)
	ord, err := r.store.GetOrder(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run A (http, the service charged: %d) %s; run B (task) %s; order %s", payments, da.Status, db.Status, ord.Status)
	if payments == 1 && da.Status != status.RunCompleted {
		t.Fatalf("the service charged the card for run A, whose step then failed (%v): run B's task moved the order over A's reservation", errText(da.Steps[0]))
	}
}

func errText(s wire.StepDetail) string {
	if s.ErrorMessage == nil {
		return ""
	}
	return *s.ErrorMessage
}

// TestAttack17FailsReservationOutlivesPermanentFailure: run A's http
// charge reserves the order until its lease ends (the step's timeout plus
// the lease margin: 10 s + 30 s by default) and the service declines the
// card (400): A's step and run fail at once. Nothing releases the
// reservation (only a commit that moves the order removes it), so run B,
// started right after with another card, is refused "being moved by run A"
// for up to 40 s although A failed for good; with no retries left B fails
// too, naming a run that is not moving anything.
//
// Fix: the commit that fails a reserving step removes the reservation
// when it is its own (REMOVE res_* on the condition res_run = :run AND
// res_step = :step, as a separate item of the transaction).
func TestAttack17FixedReservationOutlivesPermanentFailure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	n := 0
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("card declined"))
			return
		}
		_, _ = w.Write([]byte(`{"payment_id":"pay_2"}`))
	}))
	defer svc.Close()
	r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
	orderID := r.validatedOrder()
	def := `{"name":"charge","steps":[{"id":"charge","type":"http","config":{"action":"charge_payment","url":"` + svc.URL + `/payments","max_retries":0}}]}`
	a := r.startWith(def, `{"order_id":"`+orderID+`"}`)
	r.drain()
	if d := r.get(a); d.Status != status.RunFailed {
		t.Fatalf("run A %s, want failed by the 400", d.Status)
	}
	b := r.startWith(def, `{"order_id":"`+orderID+`"}`)
	r.drain()
	d := r.get(b)
	if d.Status != status.RunCompleted {
		t.Fatalf("run B %s after run A failed for good: %q", d.Status, errText(d.Steps[0]))
	}
}

// TestAttack17FailsHTTPRequestAfterCancelAcknowledged: a single http step
// whose template reads the run's input. The runner claims it (the claim
// proves the run live) and launches the attempt, but the attempt makes
// storage requests before its HTTP request (engine/steps.go call:
// ReserveOrderIfFree for an order action, LoadData's Query and
// BatchGetItem for templates, and Secrets.Get, an SSM call on AWS). A
// cancel acknowledged in between does not stop the request: here the run
// is cancelled (200) after the input was read and the service is called
// afterwards. DECISIONS.md bounds the start-after-cancel gap by one read's
// answer; for an http step it is several round trips, and the effect (a
// charge) is what users care about.
//
// Fix: read what the templates need (and the secrets) before the claim or
// fence (outputs of completed parents never change, and the input is per
// generation, which the claim checks), and put the reservation in one
// transaction with a ConditionCheck of the run's live generation, right
// before the request.
func TestAttack17FixedHTTPRequestAfterCancelAcknowledged(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var at []time.Time
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	}))
	defer svc.Close()
	r := newRig(t, isOp("Query"), anyRequest, 0, nil, httpTweak)
	runID := r.startWith(`{"name":"call-after-cancel","steps":[{"id":"call","type":"http","config":{"url":"`+svc.URL+`/x","body":{"v":"{{input.v}}"}}}]}`, `{"input":{"v":1}}`)
	root := r.q.take()[0]
	r.gate.arm()
	done := handleAsync(r.gated, root)
	<-r.gate.paused // claimed, launched, and the input read
	r.cancel(runID)
	acked := time.Now()
	close(r.gate.release)
	if err := <-done; err != nil {
		t.Log(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range at {
		if a.After(acked) {
			t.Fatalf("the service was called %v after the cancel was acknowledged", a.Sub(acked))
		}
	}
}

// TestAttack17FailsSecretInURLPathLeaksInError: a secret in an http step's
// URL path, the service unreachable. httpstep's errors name the request as
// "POST " + redact(u), which drops the query but keeps the path as
// u.String() escapes it (EscapedPath: "/" ";" "," kept, " " "%" escaped),
// while template.Redactor hides the secret as it is, JSON-escaped,
// QueryEscape'd and PathEscape'd (which escapes "/" ";" ","). A secret with
// one character of each kind ("pa/ss^word" -> "pa/ss%5Eword") matches none
// of the forms and is stored in the attempt's error and shown in the run.
//
// Fix: have Redactor also hide url.URL{Path: secret}.EscapedPath() (and
// the forms of each path segment), or have httpstep drop the path from its
// error text too.
func TestAttack17FixedSecretInURLPathLeaksInError(t *testing.T) {
	t.Parallel()
	const secret = "pa/ss^word"
	r := newRig(t, anyRequest, anyRequest, 0, nil, func(c *engine.Config) {
		httpTweak(c)
		c.Secrets = secretsFunc(func(name string) (string, error) { return secret, nil })
	})
	// Port 1 on loopback refuses connections: the attempt fails with the
	// request's description in its error.
	runID := r.startWith(`{"name":"secret-path","steps":[{"id":"call","type":"http","config":{"url":"http://127.0.0.1:1/v1/{{secrets.KEY}}/ping","max_retries":0,"timeout_seconds":2}}]}`, "")
	r.drain()
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runs/"+runID, nil))
	shown := rec.Body.String()
	for _, form := range []string{secret, "pa/ss%5Eword"} {
		if strings.Contains(shown, form) {
			t.Fatalf("the run detail holds the secret as %q: %s", form, errText(r.get(runID).Steps[0]))
		}
	}
	if !strings.Contains(shown, "redacted") {
		t.Logf("error: %s", errText(r.get(runID).Steps[0]))
	}
}

type secretsFunc func(string) (string, error)

func (f secretsFunc) Get(_ context.Context, name string) (string, error) { return f(name) }

// encodeJSON is json.Marshal for tests.
func encodeJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

var _ = fmt.Sprint

// TestAttack17FailsNotificationKeySharedAcrossRuns: IdempotencyKey derives
// the key from the order and the action for every action in
// status.Actions (engine/steps.go: `if _, ok := status.Actions[action]; ok
// && orderID != ""`), send_notification included, although it does not move
// the order and an order's history takes any number of notifications. Two
// runs on one order that notify with different messages send one key with
// two bodies: the demo service (like Stripe) refuses the second with 422
// ("the key was used with another request"), a 4xx that fails the step at
// once; with the same message, the second notification is silently a
// replay of the first while the order's history records two.
//
// Fix: derive the key from the order only for actions that change the
// order's status (a.ChangesStatus(), as runstate.ReservesOrder does).
func TestAttack17FixedNotificationKeySharedAcrossRuns(t *testing.T) {
	t.Parallel()
	demo := httptest.NewServer(demoservice.New(demoservice.Config{}))
	defer demo.Close()
	r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
	orderID := r.validatedOrder()
	notify := func(msg string) string {
		return `{"name":"notify-` + msg + `","steps":[{"id":"n","type":"http","config":{"action":"send_notification","url":"` + demo.URL + `/notifications","body":{"order_id":"{{order.id}}","message":"` + msg + `"},"max_retries":0}}]}`
	}
	first := r.startWith(notify("charged"), `{"order_id":"`+orderID+`"}`)
	r.drain()
	second := r.startWith(notify("shipped"), `{"order_id":"`+orderID+`"}`)
	r.drain()
	d1, d2 := r.get(first), r.get(second)
	if d1.Status != status.RunCompleted || d2.Status != status.RunCompleted {
		t.Fatalf("two notifications on one order: runs %s and %s (%q)", d1.Status, d2.Status, errText(d2.Steps[0]))
	}
}

// TestAttack17FailsWaitingStepMasksStall: a run whose approval waits for
// a person (no timeout) and whose other branch is stuck (its step was
// claimed by a runner that died, and the sweeper has not helped for an
// hour) is never reported stalled: api/dashboard.go stalled returns false
// as soon as any step is waiting. A waiting step is progress for itself
// only; a wait that is over by more than the sweeper's grace is not
// progress at all.
//
// Fix: compute the stall from the steps that are not legitimately waiting
// (ProgressAt over the other steps, and a waiting step counts only until
// its deadline plus grace).
func TestAttack17FixedWaitingStepMasksStall(t *testing.T) {
	t.Parallel()
	var crashB atomic.Bool
	crashB.Store(true)
	r := newRig(t, anyRequest, anyRequest, 0, nil, func(c *engine.Config) {
		c.Crash = func(p engine.CrashPoint, m queue.Message) bool {
			return p == engine.AfterClaim && m.StepIndex == 1 && crashB.Load()
		}
	})
	runID := r.start(`{"name":"masked-stall","steps":[{"id":"a","type":"approval"},{"id":"b","config":{"duration_seconds":1}}]}`)
	for _, m := range r.q.take() {
		_ = r.handle(r.plain, m) // a waits; b's runner dies after its claim
	}
	later := api.New(api.Config{Store: r.store, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	rec := httptest.NewRecorder()
	later.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runs/"+runID, nil))
	var d wire.RunDetail
	_ = json.Unmarshal(rec.Body.Bytes(), &d)
	t.Logf("an hour later: run %s, steps %v, stalled %v", d.Status, d.StepStatuses, d.Stalled)
	if !d.Stalled {
		t.Fatalf("b's runner died an hour ago and nothing moved it, but the waiting approval hides the stall")
	}
}

// TestAttack17FailsRetryWithInputKeepsInFlightOldInputResult: a (http,
// slow, reads {{input.v}}) and f (a task that fails for good) run side by
// side; f fails the run while a's request, made with v=1, is in flight.
// The operator retries with {"v":2}. a's slot is kept (its lease is live:
// runstate.Retry) and its result, computed from the old input, is
// committed into generation 1 and fed to b, which reads both a's output and
// the new input. The issue says a retry's input "replaces the run's input
// for the steps that run again"; a was not run again, yet its output now
// stands in a generation whose input says otherwise, and nothing in the
// run detail tells which input a used. A judgement call rather than a
// crash: documented here so that it is decided on purpose.
//
// Fix (one of): a retry with a new input resets running steps whose
// templates read the input (they run again once their lease ends), or the
// run detail records, per step, the generation of the input it used.
func TestAttack17RetryWithInputKeepsInFlightResultAndSaysSo(t *testing.T) {
	t.Parallel()
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(req.Body).Decode(&body)
		if strings.HasSuffix(req.URL.Path, "/a") {
			once.Do(func() { close(inFlight) })
			<-release
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"v": body["v"]})
	}))
	defer svc.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	r := newRig(t, anyRequest, anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "f" && in.Generation == 0 {
			return errors.New("f fails")
		}
		return nil
	}, httpTweak)
	runID := r.startWith(`{"name":"retry-in-flight","steps":[
		{"id":"a","type":"http","config":{"url":"`+svc.URL+`/a","body":{"v":"{{input.v}}"}}},
		{"id":"f","config":{"duration_seconds":0,"max_retries":0}},
		{"id":"b","type":"http","depends_on":["a","f"],"config":{"url":"`+svc.URL+`/b","body":{"v":"{{input.v}}","from_a":"{{steps.a.output.v}}"}}}]}`, `{"input":{"v":1}}`)
	msgs := r.q.take()
	var aMsg queue.Message
	for _, m := range msgs {
		if m.StepIndex == 0 {
			aMsg = m
		}
	}
	done := handleAsync(r.plain, aMsg)
	<-inFlight
	for _, m := range msgs {
		if m.StepIndex != 0 {
			_ = r.handle(r.gated, m)
		}
	}
	if d := r.get(runID); d.Status != status.RunFailed {
		t.Fatalf("run %s, want failed by f", d.Status)
	}
	if code, out := r.post(r.api, "/runs/"+runID+"/retry", `{"input":{"v":2}}`); code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", code, out)
	}
	close(release)
	<-done
	r.drain()
	d := r.get(runID)
	t.Logf("run %s; input %s; a %s; b %s", d.Status, d.Input, stepOf(d, "a").Output, stepOf(d, "b").Output)
	// Decided (DECISIONS.md, "Data: items of their own"): a's request
	// was made with the old input and had its effect; it is not run again
	// (under its key, a service would replay the old answer), and the run
	// detail says which input it read.
	a := stepOf(d, "a")
	if d.Status != status.RunCompleted || string(a.Output) != `{"v":1}` || a.InputGeneration == nil || *a.InputGeneration != 0 {
		t.Fatalf("run %s, a's output %s read the input of generation %v", d.Status, a.Output, a.InputGeneration)
	}
	if b := stepOf(d, "b"); b.InputGeneration == nil || *b.InputGeneration != 1 || string(b.Output) != `{"v":2}` {
		t.Fatalf("b's output %s read the input of generation %v, want the retry's", b.Output, b.InputGeneration)
	}
}

// TestAttack17FailsDecisionAnswerSaysCompletedWhenOrderRefuses: an
// approval may carry an order action (workflow/types.go allows "action" on
// an approval). It begins its wait with the order where the action needs
// it (charge_payment on a validated order); another run then charges the
// order. An outside system completes the approval by callback:
// api/decisions.go decide builds the commit with runstate.BuildCommits,
// which turns the success into a failure (c.Refused; an approval has no
// retries, so the step and the run fail), commits it, and answers as if the
// decision was taken: {"status":"completed"} with 200, while the step
// failed. (The runner reads the order again before committing such a
// refusal; decide does not look at c.Refused at all.)
//
// Fix: in decide, when cs[0].Refused is not empty, read the order again
// and answer 409 naming the order's status without committing, or answer
// what was committed.
func TestAttack17FixedDecisionAnswerSaysCompletedWhenOrderRefuses(t *testing.T) {
	t.Parallel()
	r := newRig(t, anyRequest, anyRequest, 0, nil, nil)
	orderID := r.validatedOrder()
	runID := r.startWith(`{"name":"approve-charge","steps":[{"id":"a","type":"approval","config":{"action":"charge_payment"}}]}`, `{"order_id":"`+orderID+`"}`)
	r.drain()
	a := stepOf(r.operatorView(runID), "a")
	if a.Status != status.StepWaiting || a.CallbackToken == nil {
		t.Fatalf("a %+v", a)
	}
	other := r.startWith(`{"name":"charge-task","steps":[{"id":"c","config":{"action":"charge_payment","duration_seconds":0}}]}`, `{"order_id":"`+orderID+`"}`)
	r.drain()
	if d := r.get(other); d.Status != status.RunCompleted {
		t.Fatalf("the other run %s", d.Status)
	}
	code, out := r.post(r.api, "/callbacks/"+*a.CallbackToken, `{"output":{"ok":true}}`)
	d := r.get(runID)
	t.Logf("callback: %d %s; run %s, a %s %q", code, strings.TrimSpace(out), d.Status, d.Steps[0].Status, errText(d.Steps[0]))
	if code == http.StatusOK && strings.Contains(out, `"completed"`) && d.Steps[0].Status != status.StepCompleted {
		t.Fatalf("the callback answered %s, but the step is %s: %s", strings.TrimSpace(out), d.Steps[0].Status, errText(d.Steps[0]))
	}
}

// TestAttack17FailsURLTemplateValueRewritesPath: template values are
// inserted into an http step's url as raw text (template.RenderString: "a
// string as it is"), so data from the run's input (or from an earlier
// service's answer) can change which endpoint is called: with
// "https://pay/customers/{{input.customer}}/charge" and a customer
// "cu_1/refund?x=", the service gets POST /customers/cu_1/refund with the
// query "x=/charge". The host cannot change to a refused one (the policy
// checks the dialled address), but the path and query of an allowed host
// can, which is the classic injection of URL templating.
//
// Fix: in a url, escape each template's value for where it stands
// (url.PathEscape in the path, url.QueryEscape in the query), or refuse
// values holding "/", "?", "#", "@" and "%" there; keep raw insertion for a
// url that is a template as a whole.
func TestAttack17FixedURLTemplateValueRewritesPath(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		paths = append(paths, req.URL.Path+" ?"+req.URL.RawQuery)
		mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	}))
	defer svc.Close()
	r := newRig(t, anyRequest, anyRequest, 0, nil, httpTweak)
	runID := r.startWith(`{"name":"url-injection","steps":[{"id":"c","type":"http","config":{"url":"`+svc.URL+`/customers/{{input.customer}}/charge"}}]}`, `{"input":{"customer":"cu_1/refund?x="}}`)
	r.drain()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("run %s; the service got %q", r.get(runID).Status, paths)
	if len(paths) != 1 || !strings.HasSuffix(strings.Split(paths[0], " ?")[0], "/charge") {
		t.Fatalf("a customer id from the run's input rewrote the endpoint called: %q", paths)
	}
}

// TestAttack17FailsSecretEchoedInErrorBodyLeaks: a service that refuses a
// request often quotes the credential it refused ("invalid API key ...").
// httpstep puts the start of a 4xx/5xx body in the error (snippet: at most
// 256 bytes, white space collapsed), and engine/steps.go call redacts that
// text with Redactor.Redact, which knows the secret as it is, JSON-escaped
// (Go's way), URL-escaped. Two ordinary answers slip through:
//   - a JSON body from a service that escapes "/" as "\/" (PHP's
//     json_encode does by default), for a secret holding "/" (base64 keys
//     do): "ab\/cd..." is none of the forms;
//   - a body whose 256-byte cut falls inside the secret: its first bytes
//     are kept, and a prefix is not an occurrence.
//
// Fix: redact the whole body before it is cut (give the client the
// redactor, or return the bounded body and cut in the engine), and decode
// a JSON body's strings before redacting it (RedactJSON), as outputs are.
func TestAttack17FixedSecretEchoedInErrorBodyLeaks(t *testing.T) {
	t.Parallel()
	const secret = "sk_live/Ab12Cd34Ef56"
	for _, tc := range []struct{ name, body, leak string }{
		{"escaped slash", `{"error":"invalid api key sk_live\/Ab12Cd34Ef56"}`, `sk_live\/Ab12Cd34Ef56`},
		{"cut at 256 bytes", strings.Repeat("e", 240) + " key=" + secret, "sk_live/Ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer svc.Close()
			r := newRig(t, anyRequest, anyRequest, 0, nil, func(c *engine.Config) {
				httpTweak(c)
				c.Secrets = secretsFunc(func(string) (string, error) { return secret, nil })
			})
			runID := r.start(`{"name":"echo","steps":[{"id":"call","type":"http","config":{"url":"` + svc.URL + `/x","headers":{"Authorization":"Bearer {{secrets.KEY}}"}}}]}`)
			r.drain()
			shown := errText(r.get(runID).Steps[0])
			if strings.Contains(shown, tc.leak) {
				t.Fatalf("the step's error (shown in the run detail) holds %q of the secret: %s", tc.leak, shown)
			}
		})
	}
}

// TestAttack17FailsRetryLeavesOldWaitChainAlive: a wait w (-> x) is
// waiting when a sibling f fails the run; the run is retried, which resets
// w to pending and starts it again (a new chain of messages, due at the new
// deadline). The old chain is not stopped: its next message finds w
// waiting again, not over, and is replaced by one due at the new deadline
// (runner.go handleRun: dec.Later, whatever generation the message was
// sent in). At the new deadline two messages of w arrive together, two
// runners resolve the wait, and x runs twice (see
// TestAttack17FailsDuplicateWaitExpiryRunsDependentTwice; the random
// schedules found this with no crash at all, seed 57461). A retry of a run
// with a waiting wait step is all it takes.
//
// Fix: the dependents fix above; and drop a wait message that was sent
// for an earlier generation (the message carries gen: compare it with the
// run's in Deliver, or store the chain's generation in the slot).
func TestAttack17FixedRetryLeavesOldWaitChainAlive(t *testing.T) {
	t.Parallel()
	r := newRig(t, isOp("BatchGetItem"), anyRequest, 0, func(in engine.TaskInput) error {
		if in.StepID == "f" && in.Generation == 0 {
			return errors.New("f fails")
		}
		return nil
	}, nil)
	runID := r.start(`{"name":"retry-wait","steps":[
		{"id":"w","type":"wait","config":{"seconds":1}},
		{"id":"x","config":{"duration_seconds":0},"depends_on":["w"]},
		{"id":"f","config":{"duration_seconds":0,"max_retries":0}},
		{"id":"hold","type":"approval","depends_on":["f"]}]}`)
	for _, m := range r.takeStep(0) {
		_ = r.handle(r.plain, m) // w waits; its first message is due in 1 s
	}
	old := r.takeStep(0)
	r.drain() // f fails the run
	if d := r.get(runID); d.Status != status.RunFailed {
		t.Fatalf("run %s", d.Status)
	}
	r.retry(runID)
	time.Sleep(300 * time.Millisecond) // the retried wait starts later than the first
	for _, m := range r.takeStep(0) {
		_ = r.handle(r.plain, m) // w waits again: a new chain
	}
	fresh := r.takeStep(0)
	r.drain() // f, then hold waits
	time.Sleep(800 * time.Millisecond)
	for _, m := range old {
		_ = r.handle(r.plain, m) // the old chain's message: not over yet, so replaced
	}
	replaced := r.takeStep(0)
	t.Logf("messages of w: %d of the new chain, %d of the old one replaced", len(fresh), len(replaced))
	if len(replaced) == 0 {
		return // the old chain ended: fixed
	}
	time.Sleep(600 * time.Millisecond) // the new deadline passes
	r.gate.arm()
	done := handleAsync(r.gated, replaced[0])
	<-r.gate.paused
	_ = r.handle(r.plain, fresh[0])
	r.drain()
	close(r.gate.release)
	<-done
	r.drain()
	if n := r.task.executions(runID, "x"); n != 1 {
		t.Fatalf("x ran %d times after one retry of the run (two chains of w's messages met at its deadline)", n)
	}
}
