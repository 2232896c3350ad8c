package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"stepflow/internal/api"
	"stepflow/internal/queue"
	"stepflow/internal/redrive"
	"stepflow/internal/retry"
	"stepflow/internal/runstate"
	"stepflow/internal/status"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// serve serves the API over st with its clock fixed at now.
func serve(t *testing.T, st *store.Store, now time.Time, cfg api.Config) *bundle {
	t.Helper()
	cfg.Store, cfg.Now = st, func() time.Time { return now }
	srv := httptest.NewServer(api.New(cfg))
	t.Cleanup(srv.Close)
	return &bundle{t: t, url: srv.URL}
}

func TestMe(t *testing.T) {
	t.Parallel()
	var open map[string]any
	setup(t).must(200, "GET", "/me", "", &open)
	if fmt.Sprint(open) != "map[auth:false role:operator]" {
		t.Fatalf("without auth: %v", open)
	}
	b, c, _ := authSetup(t)
	for _, tt := range []struct{ cred, role string }{{c.reader, "reader"}, {c.operator, "operator"}} {
		var me map[string]any
		r := b.doAs(tt.cred, "GET", "/me", "")
		r.json(t, &me)
		id, _ := me["token_id"].(string)
		if r.status != 200 || me["role"] != tt.role || me["name"] != tt.role || me["auth"] != true || !strings.HasPrefix(tt.cred, "sft_"+id+"_") {
			t.Errorf("%s: %d %v", tt.role, r.status, me)
		}
	}
	if r := b.doAs("", "GET", "/me", ""); r.status != 401 {
		t.Errorf("without credentials: %d", r.status)
	}
}

// TestDLQDepth counts visible and in-flight dead letters on a real queue,
// and sees redrive empty it.
func TestDLQDepth(t *testing.T) {
	t.Parallel()
	sq := testenv.SQS(t)
	qs := testenv.Queue(t, sq, queue.Settings{VisibilityTimeout: 30 * time.Second, MaxReceiveCount: 2})
	b := serve(t, testenv.Store(t), time.Now(), api.Config{Redriver: redrive.Queues{Client: sq, DLQURL: qs.DLQURL, QueueURL: qs.URL}})
	depth := func() int {
		var d map[string]int
		b.must(200, "GET", "/dlq", "", &d)
		return d["depth"]
	}
	if n := depth(); n != 0 {
		t.Fatalf("empty DLQ: depth %d", n)
	}
	ctx := context.Background()
	for i := range 3 {
		body := fmt.Sprintf(`{"run_id":"run_01KAAAAAAAAAAAAAAAAAAAAAA%d","step_index":0,"attempt":0}`, i)
		if _, err := sq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(qs.DLQURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	// One received and not deleted: in flight, still counted.
	if _, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(qs.DLQURL), MaxNumberOfMessages: 1, VisibilityTimeout: 1}); err != nil {
		t.Fatal(err)
	}
	if n := depth(); n != 3 {
		t.Fatalf("depth %d, want 3 (2 visible + 1 in flight)", n)
	}
	time.Sleep(1100 * time.Millisecond) // the in-flight one becomes visible again
	var moved map[string]int
	b.must(200, "POST", "/redrive", "", &moved)
	if moved["moved"] != 3 || depth() != 0 {
		t.Fatalf("redrive moved %v, depth after %d", moved, depth())
	}
	// Without a dead-letter queue the route does not exist.
	if r := setup(t).do("GET", "/dlq", ""); r.status != 404 {
		t.Fatalf("GET /dlq without a DLQ: %d", r.status)
	}
}

func TestIdenticalWorkflowIsReused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var first, again, spelled, renamed workflowBody
	b.must(201, "POST", "/workflows", diamond, &first)
	b.must(200, "POST", "/workflows", diamond, &again)
	// The same definition with its defaults written out and other spacing
	// normalizes to the same thing.
	explicit := `{"name":" diamond ","steps":[
	 {"id":"D","type":"task","depends_on":["B","C"]},
	 {"id":"C","depends_on":["A"],"config":{"duration_seconds":1,"max_retries":3,"fail_probability":0}},
	 {"id":"B","depends_on":["A"]},
	 {"id":"A","config":{"duration_seconds":0.5,"action":""}}]}`
	b.must(200, "POST", "/workflows", explicit, &spelled)
	b.must(201, "POST", "/workflows", strings.Replace(diamond, `"diamond"`, `"diamond 2"`, 1), &renamed)
	if again.ID != first.ID || spelled.ID != first.ID || again.CreatedAt != first.CreatedAt || renamed.ID == first.ID {
		t.Fatalf("ids: first %s, again %s, spelled out %s, renamed %s", first.ID, again.ID, spelled.ID, renamed.ID)
	}
	// Concurrent creators of one new definition agree on one workflow.
	def := `{"name":"race","steps":[{"id":"a"},{"id":"b","depends_on":["a"]}]}`
	ids := make([]string, 8)
	codes := make([]int, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			r := b.do("POST", "/workflows", def)
			var wf workflowBody
			_ = json.Unmarshal(r.body, &wf)
			ids[i], codes[i] = wf.ID, r.status
		})
	}
	wg.Wait()
	created := 0
	for i := range ids {
		if ids[i] != ids[0] || (codes[i] != 200 && codes[i] != 201) {
			t.Fatalf("concurrent creates: ids %v codes %v", ids, codes)
		}
		if codes[i] == 201 {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("concurrent creates: %d answered 201 (%v), want 1", created, codes)
	}
	var list []workflowBody
	b.must(200, "GET", "/workflows", "", &list)
	if len(list) != 3 {
		t.Fatalf("%d workflows listed, want 3 (diamond, diamond 2, race)", len(list))
	}
}

// listedRun is a GET /runs item with the dashboard's fields.
type listedRun struct {
	ID             string   `json:"id"`
	WorkflowName   string   `json:"workflow_name"`
	Status         string   `json:"status"`
	StepCount      int      `json:"step_count"`
	StepsCompleted int      `json:"steps_completed"`
	StepStatuses   []string `json:"step_statuses"`
	OrderStatus    *string  `json:"order_status"`
	ProgressAt     string   `json:"progress_at"`
	Stalled        bool     `json:"stalled"`
}

type viewedRun struct {
	Status     string `json:"status"`
	ProgressAt string `json:"progress_at"`
	Stalled    bool   `json:"stalled"`
	Steps      []struct {
		StepID string `json:"step_id"`
		Config *struct {
			Action          string  `json:"action"`
			DurationSeconds float64 `json:"duration_seconds"`
			FailProbability float64 `json:"fail_probability"`
			MaxRetries      int     `json:"max_retries"`
		} `json:"config"`
		NextAttemptAt *string `json:"next_attempt_at"`
	} `json:"steps"`
}

// TestRunProgressAndStalled puts a run in an exact state through the
// store (step a completed, b failed once and waiting for its retry) and
// reads it through API servers whose clocks stand at chosen times.
func TestRunProgressAndStalled(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	b := serve(t, st, t0, api.Config{})
	var wf workflowBody
	b.must(201, "POST", "/workflows", `{"name":"pipe","steps":[
	 {"id":"a","config":{"action":"validate_order","duration_seconds":2,"fail_probability":0.25}},
	 {"id":"b","depends_on":["a"],"config":{"duration_seconds":1,"max_retries":4}},
	 {"id":"c","depends_on":["b"],"config":{"duration_seconds":0}}]}`, &wf)
	var o orderBody
	b.must(201, "POST", "/orders", `{"amount": 5}`, &o)
	var run, idle runBody
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{"order_id":"`+o.ID+`"}`, &run)
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", "", &idle)
	b.must(200, "POST", "/runs/"+idle.ID+"/cancel", "", nil)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// a runs from 1s to 3s and commits; b runs from 4s and fails at 5s,
	// its retry due delay seconds later (the engine's own writes).
	fail := func(runID string, delay time.Duration) {
		t.Helper()
		r, _, err := st.ReadRun(ctx, runID, true)
		must(err)
		_, plan, err := st.Plan(ctx, r.WorkflowID)
		must(err)
		policy := retry.Policy{Base: 2 * delay, Cap: 2 * delay, Rand: func() float64 { return 0.5 }}
		c, leases := runstate.NewClaim(r, plan, []int{0}, runstate.LeaseTerms{Token: "t1", Margin: 30 * time.Second}, at(1))
		must(st.ClaimIfLive(ctx, c))
		r = r.Apply(c.Swaps)
		done := runstate.BuildCommit(r, plan, status.OrderPending, []runstate.Outcome{{Step: 0, Held: leases[0].Held, Start: at(1), End: at(3)}}, policy, at(3))
		must(st.CommitIfHeld(ctx, done, "cmt_1"+runID))
		r = r.Apply(done.Swaps)
		c, leases = runstate.NewClaim(r, plan, []int{1}, runstate.LeaseTerms{Token: "t2", Margin: 30 * time.Second}, at(4))
		must(st.ClaimIfLive(ctx, c))
		r = r.Apply(c.Swaps)
		failed := runstate.BuildCommit(r, plan, status.OrderValidated, []runstate.Outcome{{Step: 1, Held: leases[0].Held, Start: at(4), End: at(5), Err: errors.New("boom")}}, policy, at(5))
		must(st.CommitIfHeld(ctx, failed, "cmt_2"+runID))
	}
	fail(run.ID, time.Second)
	// The same state in a run whose retry waits a minute.
	var slowWF workflowBody
	b.must(201, "POST", "/workflows", `{"name":"pipe, slow retries","steps":[
	 {"id":"a","config":{"action":"validate_order","duration_seconds":2,"fail_probability":0.25}},
	 {"id":"b","depends_on":["a"],"config":{"duration_seconds":1,"max_retries":4}},
	 {"id":"c","depends_on":["b"],"config":{"duration_seconds":0}}]}`, &slowWF)
	var slowOrder orderBody
	b.must(201, "POST", "/orders", `{"amount": 5}`, &slowOrder)
	var slow runBody
	b.must(202, "POST", "/workflows/"+slowWF.ID+"/runs", `{"order_id":"`+slowOrder.ID+`"}`, &slow)
	fail(slow.ID, time.Minute)

	// Progress was last made at t0+5s; b's retry is due at t0+6s (t0+65s
	// in the slow run). The longest step is 2s, so with the defaults (lease
	// margin 30s, grace 1m) a run is stalled 92s after its retry was due.
	tests := []struct {
		name     string
		run      string
		now      time.Time
		cfg      api.Config
		nextAt   time.Time
		stalled  bool
		runState string
	}{
		{"just after the retry was due", run.ID, at(7), api.Config{}, at(6), false, "running"},
		{"one second before the limit", run.ID, at(98), api.Config{}, at(6), false, "running"},
		{"one second past the limit", run.ID, at(99), api.Config{}, at(6), true, "running"},
		{"a long backoff is not a stall", slow.ID, at(99), api.Config{}, at(65), false, "running"},
		{"smaller margins stall sooner", run.ID, at(11), api.Config{LeaseMargin: time.Second, SweepGrace: time.Second}, at(6), true, "running"},
	}
	for _, tt := range tests {
		b := serve(t, st, tt.now, tt.cfg)
		var v viewedRun
		b.must(200, "GET", "/runs/"+tt.run, "", &v)
		next := v.Steps[1].NextAttemptAt
		if v.Status != tt.runState || v.Stalled != tt.stalled || v.ProgressAt != at(5).Format(time.RFC3339) ||
			next == nil || *next != tt.nextAt.Format(time.RFC3339) || v.Steps[0].NextAttemptAt != nil || v.Steps[2].NextAttemptAt != nil {
			t.Errorf("%s: detail status %s stalled %v progress_at %s next_attempt_at %v", tt.name, v.Status, v.Stalled, v.ProgressAt, next)
		}
		if tt.run != run.ID {
			continue
		}
		var list []listedRun
		b.must(200, "GET", "/runs?workflow_id="+wf.ID, "", &list)
		if len(list) != 2 || list[1].ID != run.ID || list[1].Stalled != tt.stalled || list[0].Stalled {
			t.Errorf("%s: list %+v", tt.name, list)
		}
	}

	b = serve(t, st, at(99), api.Config{})
	var v viewedRun
	b.must(200, "GET", "/runs/"+run.ID, "", &v)
	if c := v.Steps[0].Config; c == nil || c.Action != "validate_order" || c.DurationSeconds != 2 || c.FailProbability != 0.25 || c.MaxRetries != 3 {
		t.Fatalf("step a config: %+v", c)
	}
	var list []listedRun
	b.must(200, "GET", "/runs?workflow_id="+wf.ID, "", &list)
	got, cancelled := list[1], list[0]
	if got.WorkflowName != "pipe" || got.Status != "running" || got.StepCount != 3 || got.StepsCompleted != 1 ||
		fmt.Sprint(got.StepStatuses) != "[completed pending pending]" || got.ProgressAt != at(5).Format(time.RFC3339) || got.OrderStatus == nil || *got.OrderStatus != "validated" {
		t.Fatalf("listed run: %+v", got)
	}
	if cancelled.Status != "cancelled" || cancelled.OrderStatus != nil || fmt.Sprint(cancelled.StepStatuses) != "[cancelled cancelled cancelled]" || cancelled.Stalled {
		t.Fatalf("cancelled run: %+v", cancelled)
	}
}

type statsResult struct {
	Window      int            `json:"window"`
	Counts      map[string]int `json:"counts"`
	SuccessRate *float64       `json:"success_rate"`
	P50         *int64         `json:"duration_p50_ms"`
	P95         *int64         `json:"duration_p95_ms"`
}

func TestRunStats(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	ctx := context.Background()
	t0 := time.Now().UTC()
	b := serve(t, st, t0, api.Config{})
	var wf, other workflowBody
	b.must(201, "POST", "/workflows", `{"name":"s","steps":[{"id":"a"}]}`, &wf)
	b.must(201, "POST", "/workflows", `{"name":"other","steps":[{"id":"a"}]}`, &other)
	start := func(w string) string {
		var r runBody
		b.must(202, "POST", "/workflows/"+w+"/runs", "", &r)
		return r.ID
	}
	// end starts the run's step at t0 and, took later, completes it (the
	// run completes) or fails the run.
	end := func(id string, to status.RunStatus, took time.Duration) {
		t.Helper()
		r, _, err := st.ReadRun(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		_, plan, err := st.Plan(ctx, r.WorkflowID)
		if err != nil {
			t.Fatal(err)
		}
		c, leases := runstate.NewClaim(r, plan, []int{0}, runstate.LeaseTerms{Token: "tok", Margin: time.Minute}, t0)
		if err := st.ClaimIfLive(ctx, c); err != nil {
			t.Fatal(err)
		}
		r = r.Apply(c.Swaps)
		if to == status.RunFailed {
			e, _ := runstate.Fail(r, t0.Add(took))
			err = st.EndRunIfRunning(ctx, e)
		} else {
			done := runstate.BuildCommit(r, plan, "", []runstate.Outcome{{Step: 0, Held: leases[0].Held, Start: t0, End: t0.Add(took)}},
				retry.Default(func() float64 { return 0 }), t0.Add(took))
			err = st.CommitIfHeld(ctx, done, "cmt_"+id[4:])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Oldest first: completed in 4s, 1s, 3s, 2s; one failed; one pending.
	for _, s := range []int{4, 1, 3, 2} {
		end(start(wf.ID), status.RunCompleted, time.Duration(s)*time.Second)
	}
	end(start(wf.ID), status.RunFailed, time.Second)
	start(wf.ID)
	start(other.ID)

	get := func(q string) statsResult {
		var s statsResult
		b.must(200, "GET", "/runs/stats"+q, "", &s)
		return s
	}
	s := get("?workflow_id=" + wf.ID)
	want := "map[cancelled:0 completed:4 failed:1 pending:1 running:0]"
	if s.Window != 6 || fmt.Sprint(s.Counts) != want || s.SuccessRate == nil || *s.SuccessRate != 0.8 ||
		s.P50 == nil || *s.P50 != 2000 || s.P95 == nil || *s.P95 != 4000 {
		t.Fatalf("stats of one workflow: %+v (rate %v, p50 %v, p95 %v)", s, deref(s.SuccessRate), deref(s.P50), deref(s.P95))
	}
	if all := get(""); all.Window != 7 || all.Counts["pending"] != 2 {
		t.Fatalf("stats of all runs: %+v", all)
	}
	// The window is the newest runs: pending, failed, completed in 2s.
	if s := get("?limit=3&workflow_id=" + wf.ID); s.Window != 3 || s.Counts["completed"] != 1 || *s.SuccessRate != 0.5 || *s.P50 != 2000 {
		t.Fatalf("newest 3: %+v", s)
	}
	if s := get("?limit=1&workflow_id=" + other.ID); s.SuccessRate != nil || s.P50 != nil || s.P95 != nil || s.Counts["pending"] != 1 {
		t.Fatalf("nothing ended yet: %+v", s)
	}
	for _, tt := range []struct{ q, field string }{
		{"?limit=0", "limit"}, {"?limit=501", "limit"}, {"?limit=x", "limit"},
		{"?workflow_id=nope", "workflow_id"}, {"?status=completed", "status"},
	} {
		var e map[string]string
		b.must(400, "GET", "/runs/stats"+tt.q, "", &e)
		if e["field"] != tt.field || !strings.Contains(e["error"], tt.field) {
			t.Errorf("%s: %v", tt.q, e)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestOrderHistoryPages touches an order with 229 runs (each commits a
// notification, as the engine does) and pages through its history.
func TestOrderHistoryPages(t *testing.T) {
	t.Parallel()
	st := testenv.Store(t)
	b := serve(t, st, time.Now(), api.Config{})
	ctx := context.Background()
	var wf workflowBody
	b.must(201, "POST", "/workflows", `{"name":"notify","steps":[{"id":"n","config":{"action":"send_notification","duration_seconds":0}}]}`, &wf)
	var o orderBody
	b.must(201, "POST", "/orders", `{"amount": 5}`, &o)
	_, plan, err := st.Plan(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for range 229 {
		var run runBody
		b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{"order_id":"`+o.ID+`"}`, &run)
		r, _, err := st.ReadRun(ctx, run.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		c := runstate.BuildCommit(r, plan, status.OrderPending, []runstate.Outcome{{Step: 0, Held: runstate.Pending0, Start: now, End: now}},
			retry.Default(func() float64 { return 0 }), now)
		if err := st.CommitIfHeld(ctx, c, "cmt_"+run.ID[4:]); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run.ID)
	}
	type entry struct {
		Event string `json:"event"`
		RunID string `json:"run_id"`
	}
	var got struct {
		History     []entry `json:"history"`
		HistoryNext *string `json:"history_next"`
	}
	b.must(200, "GET", "/orders/"+o.ID, "", &got)
	if len(got.History) != 100 || got.History[0].Event != "created" || got.History[1].RunID != runs[0] || got.HistoryNext == nil {
		t.Fatalf("order: %d entries, next %v", len(got.History), got.HistoryNext)
	}
	link := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	events := []string{}
	for _, e := range got.History[1:] {
		events = append(events, e.RunID)
	}
	path, pages := "/orders/"+o.ID+"/history?limit=60&cursor="+*got.HistoryNext, 0
	for path != "" {
		var page []entry
		r := b.must(200, "GET", path, "", &page)
		pages++
		for _, e := range page {
			events = append(events, e.RunID)
		}
		path = ""
		if m := link.FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	if len(events) != 229 || pages != 3 {
		t.Fatalf("paged %d pages, %d entries", pages, len(events))
	}
	for i, e := range events {
		if e != runs[i] {
			t.Fatalf("entry %d is of %s, want %s: not oldest first, or repeated", i, e, runs[i])
		}
	}
	var small struct {
		History     []entry `json:"history"`
		HistoryNext *string `json:"history_next"`
	}
	var created orderBody
	b.must(201, "POST", "/orders", `{"amount": 1}`, &created)
	b.must(200, "GET", "/orders/"+created.ID, "", &small)
	if len(small.History) != 1 || small.HistoryNext != nil {
		t.Fatalf("new order: %+v", small)
	}
	for _, tt := range []struct{ q, field string }{
		{"?cursor=abc", "cursor"}, {"?cursor=999", "cursor"}, {"?cursor=007", "cursor"}, {"?limit=0", "limit"}, {"?limit=201", "limit"},
	} {
		var e map[string]string
		b.must(400, "GET", "/orders/"+o.ID+"/history"+tt.q, "", &e)
		if e["field"] != tt.field {
			t.Errorf("%s: %v", tt.q, e)
		}
	}
	b.must(404, "GET", "/orders/ord_01KBBBBBBBBBBBBBBBBBBBBBBB/history", "", nil)
}

// TestDashboardRoutesNeedCredentials: the added routes are behind the same
// authentication as the rest; readers may use them all.
func TestDashboardRoutesNeedCredentials(t *testing.T) {
	t.Parallel()
	b, c, _ := authSetup(t)
	var o orderBody
	if r := b.doAs(c.operator, "POST", "/orders", `{"amount": 5}`); r.status != 201 {
		t.Fatalf("create order: %d", r.status)
	} else {
		r.json(t, &o)
	}
	for _, path := range []string{"/me", "/dlq", "/runs/stats", "/orders/" + o.ID + "/history"} {
		if r := b.doAs("", "GET", path, ""); r.status != 401 {
			t.Errorf("GET %s without credentials: %d", path, r.status)
		}
		if r := b.doAs(c.reader, "GET", path, ""); r.status != 200 {
			t.Errorf("GET %s as a reader: %d %s", path, r.status, r.body)
		}
	}
}
