package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

var _ api.Store = (*store.Store)(nil)

type bundle struct {
	t   *testing.T
	url string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	h := api.New(api.Config{Store: testenv.Store(t), AllowedOrigins: []string{"http://dash.example"}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &bundle{t: t, url: srv.URL}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.body)
	}
}

func (b *bundle) do(method, path, body string, headers ...string) response {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: data}
}

// must asserts the status and decodes the body into v (if not nil).
func (b *bundle) must(status int, method, path, body string, v any) response {
	b.t.Helper()
	r := b.do(method, path, body)
	if r.status != status {
		b.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if v != nil {
		r.json(b.t, v)
	}
	return r
}

const diamond = `{"name":"diamond","steps":[
 {"id":"D","depends_on":["B","C"]},
 {"id":"C","depends_on":["A"]},
 {"id":"B","depends_on":["A"]},
 {"id":"A","config":{"duration_seconds":0.5}}]}`

type workflowBody struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	CreatedAt  string `json:"created_at"`
	Definition struct {
		Name  string `json:"name"`
		Steps []struct {
			ID     string `json:"id"`
			Type   string `json:"type"`
			Config struct {
				Action          string  `json:"action"`
				DurationSeconds float64 `json:"duration_seconds"`
				FailProbability float64 `json:"fail_probability"`
				MaxRetries      int     `json:"max_retries"`
			} `json:"config"`
			DependsOn []string `json:"depends_on"`
		} `json:"steps"`
	} `json:"definition"`
}

type stepBody struct {
	ID           string   `json:"id"`
	StepID       string   `json:"step_id"`
	StepIndex    int      `json:"step_index"`
	Status       string   `json:"status"`
	RetryCount   int      `json:"retry_count"`
	MaxRetries   int      `json:"max_retries"`
	DependsOn    []string `json:"depends_on"`
	StartedAt    *string  `json:"started_at"`
	CompletedAt  *string  `json:"completed_at"`
	ErrorMessage *string  `json:"error_message"`
}

type runBody struct {
	ID           string     `json:"id"`
	WorkflowID   string     `json:"workflow_id"`
	WorkflowName string     `json:"workflow_name"`
	OrderID      *string    `json:"order_id"`
	Status       string     `json:"status"`
	CreatedAt    string     `json:"created_at"`
	StartedAt    *string    `json:"started_at"`
	CompletedAt  *string    `json:"completed_at"`
	Steps        []stepBody `json:"steps"`
}

type orderBody struct {
	ID        string          `json:"id"`
	Amount    json.RawMessage `json:"amount"`
	Status    string          `json:"status"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
	History   []struct {
		Event string `json:"event"`
		To    string `json:"to"`
		At    string `json:"at"`
	} `json:"history"`
}

var rfc3339UTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

func TestWorkflowLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf workflowBody
	b.must(201, "POST", "/workflows", diamond, &wf)
	if !strings.HasPrefix(wf.ID, "wf_") || wf.Name != "diamond" || !rfc3339UTC.MatchString(wf.CreatedAt) {
		t.Fatalf("created workflow = %+v", wf)
	}
	// The definition keeps the written order and shows the defaults.
	if n := len(wf.Definition.Steps); n != 4 || wf.Definition.Steps[0].ID != "D" {
		t.Fatalf("definition steps = %+v", wf.Definition.Steps)
	}
	if c := wf.Definition.Steps[1].Config; c.DurationSeconds != 1 || c.MaxRetries != 3 || wf.Definition.Steps[1].Type != "task" {
		t.Fatalf("defaults not shown: %+v", wf.Definition.Steps[1])
	}
	var got workflowBody
	b.must(200, "GET", "/workflows/"+wf.ID, "", &got)
	if fmt.Sprint(got) != fmt.Sprint(wf) {
		t.Fatalf("GET differs from POST:\n%+v\n%+v", got, wf)
	}
	var list []map[string]any
	b.must(200, "GET", "/workflows", "", &list)
	if len(list) != 1 || list[0]["id"] != wf.ID || list[0]["name"] != "diamond" || list[0]["definition"] != nil {
		t.Fatalf("list = %v", list)
	}
	b.must(404, "GET", "/workflows/wf_01KAAAAAAAAAAAAAAAAAAAAAAA", "", nil)
	b.must(404, "GET", "/workflows/not-an-id", "", nil)
}

func TestStartRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf workflowBody
	b.must(201, "POST", "/workflows", diamond, &wf)

	var run runBody
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", "", &run)
	if run.WorkflowID != wf.ID || run.WorkflowName != "diamond" || run.Status != "pending" || run.OrderID != nil || run.StartedAt != nil {
		t.Fatalf("run = %+v", run)
	}
	var order []string
	for i, st := range run.Steps {
		if st.StepIndex != i || st.Status != "pending" || st.RetryCount != 0 || st.MaxRetries != 3 || st.DependsOn == nil {
			t.Fatalf("step %d = %+v", i, st)
		}
		order = append(order, st.StepID)
	}
	// Stable Kahn: A first; C before B because C was written first.
	if got := strings.Join(order, ","); got != "A,C,B,D" {
		t.Fatalf("step order = %s, want A,C,B,D", got)
	}
	var detail runBody
	b.must(200, "GET", "/runs/"+run.ID, "", &detail)
	if fmt.Sprint(detail) != fmt.Sprint(run) {
		t.Fatalf("GET /runs/{id} differs from the POST response:\n%+v\n%+v", detail, run)
	}

	// With an order; an explicit empty body and null order_id are fine too.
	var o orderBody
	b.must(201, "POST", "/orders", `{"amount": 42.5}`, &o)
	var withOrder runBody
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{"order_id":"`+o.ID+`"}`, &withOrder)
	if withOrder.OrderID == nil || *withOrder.OrderID != o.ID {
		t.Fatalf("order_id not stored: %+v", withOrder)
	}
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{}`, nil)
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{"order_id":null}`, nil)

	// Filters.
	var runs []runBody
	b.must(200, "GET", "/runs?workflow_id="+wf.ID+"&status=pending", "", &runs)
	if len(runs) != 4 || runs[2].ID != withOrder.ID || runs[3].ID != run.ID || runs[0].Steps != nil {
		t.Fatalf("filtered runs = %+v", runs)
	}
	b.must(200, "GET", "/runs?status=completed", "", &runs)
	if len(runs) != 0 {
		t.Fatalf("no run is completed, got %d", len(runs))
	}
}

func TestOrders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var o orderBody
	b.must(201, "POST", "/orders", `{"amount": 19.99}`, &o)
	if !strings.HasPrefix(o.ID, "ord_") || string(o.Amount) != "19.99" || o.Status != "pending" || o.CreatedAt != o.UpdatedAt {
		t.Fatalf("order = %+v", o)
	}
	if len(o.History) != 1 || o.History[0].Event != "created" || o.History[0].To != "pending" || !rfc3339UTC.MatchString(o.History[0].At) {
		t.Fatalf("history = %+v", o.History)
	}
	var got orderBody
	b.must(200, "GET", "/orders/"+o.ID, "", &got)
	if fmt.Sprint(got) != fmt.Sprint(o) {
		t.Fatalf("GET differs:\n%+v\n%+v", got, o)
	}
	b.must(404, "GET", "/orders/ord_01KAAAAAAAAAAAAAAAAAAAAAAA", "", nil)
	var list []orderBody
	b.must(200, "GET", "/orders", "", &list)
	if len(list) != 1 || list[0].ID != o.ID || list[0].History != nil {
		t.Fatalf("list = %+v", list)
	}
}

func TestBadInputIsRejectedAndNothingWritten(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf workflowBody
	b.must(201, "POST", "/workflows", `{"name":"ok","steps":[{"id":"a"}]}`, &wf)
	step := func(s string) string { return `{"name":"w","steps":[` + s + `]}` }
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"malformed JSON", "POST", "/workflows", `{"name":`, 400, ""},
		{"not an object", "POST", "/workflows", `[1,2]`, 400, ""},
		{"empty body", "POST", "/workflows", ``, 400, ""},
		{"trailing data", "POST", "/workflows", `{"name":"w","steps":[{"id":"a"}]} {}`, 400, ""},
		{"name wrong type", "POST", "/workflows", `{"name":5,"steps":[{"id":"a"}]}`, 400, "name"},
		{"steps wrong type", "POST", "/workflows", `{"name":"w","steps":{}}`, 400, "steps"},
		{"retries wrong type", "POST", "/workflows", step(`{"id":"a","config":{"max_retries":"3"}}`), 400, "steps[0].config.max_retries"},
		{"fractional retries", "POST", "/workflows", step(`{"id":"a","config":{"max_retries":1.5}}`), 400, "steps[0].config.max_retries"},
		{"depends_on wrong type", "POST", "/workflows", step(`{"id":"a","depends_on":"b"}`), 400, "steps[0].depends_on"},
		{"unknown field", "POST", "/workflows", `{"name":"w","stepz":[]}`, 400, "stepz"},
		{"unknown config field", "POST", "/workflows", step(`{"id":"a","config":{"retries":3}}`), 400, "steps[0].config.retries"},
		{"huge number", "POST", "/workflows", step(`{"id":"a","config":{"duration_seconds":1e999}}`), 400, "steps[0].config.duration_seconds"},
		{"type error keeps the index", "POST", "/workflows", step(`{"id":"a"},{"id":"b","config":{"max_retries":"3"}}`), 400, "steps[1].config.max_retries"},
		{"depends_on element wrong type", "POST", "/workflows", step(`{"id":"a"},{"id":"b","depends_on":["a",5]}`), 400, "steps[1].depends_on[1]"},
		{"duplicate key", "POST", "/orders", `{"amount":-1,"amount":2}`, 400, "amount"},
		{"duplicate nested key", "POST", "/workflows", step(`{"id":"a","config":{"max_retries":1,"max_retries":2}}`), 400, "steps[0].config.max_retries"},
		{"field name in another case", "POST", "/orders", `{"AMOUNT":3}`, 400, "AMOUNT"},
		{"nested field name in another case", "POST", "/workflows", step(`{"ID":"a"}`), 400, "steps[0].ID"},
		{"invalid UTF-8", "POST", "/workflows", "{\"name\":\"w\xff\",\"steps\":[{\"id\":\"a\"}]}", 400, "name"},
		{"lone surrogate escape", "POST", "/workflows", `{"name":"w\ud800","steps":[{"id":"a"}]}`, 400, "name"},
		{"invalid UTF-8 in a field name", "POST", "/orders", "{\"amount\xff\":1}", 400, ""},
		{"empty name", "POST", "/workflows", `{"name":"","steps":[{"id":"a"}]}`, 422, "name"},
		{"long name", "POST", "/workflows", `{"name":"` + strings.Repeat("x", 129) + `","steps":[{"id":"a"}]}`, 422, "name"},
		{"no steps", "POST", "/workflows", `{"name":"w","steps":[]}`, 422, "steps"},
		{"too many steps", "POST", "/workflows", step(strings.TrimSuffix(strings.Repeat(`{"id":"x"},`, 101), ",")), 422, "steps"},
		{"duplicate ids", "POST", "/workflows", step(`{"id":"a"},{"id":"a"}`), 422, "steps[1].id"},
		{"malformed id", "POST", "/workflows", step(`{"id":"a/b"}`), 422, "steps[0].id"},
		{"unknown dependency", "POST", "/workflows", step(`{"id":"a","depends_on":["nope"]}`), 422, "steps[0].depends_on[0]"},
		{"self dependency", "POST", "/workflows", step(`{"id":"a","depends_on":["a"]}`), 422, "steps[0].depends_on[0]"},
		{"cycle", "POST", "/workflows", step(`{"id":"a","depends_on":["b"]},{"id":"b","depends_on":["a"]}`), 422, "steps"},
		{"duration too long", "POST", "/workflows", step(`{"id":"a","config":{"duration_seconds":301}}`), 422, "steps[0].config.duration_seconds"},
		{"negative duration", "POST", "/workflows", step(`{"id":"a","config":{"duration_seconds":-1}}`), 422, "steps[0].config.duration_seconds"},
		{"probability above 1", "POST", "/workflows", step(`{"id":"a","config":{"fail_probability":2}}`), 422, "steps[0].config.fail_probability"},
		{"retries above 10", "POST", "/workflows", step(`{"id":"a","config":{"max_retries":11}}`), 422, "steps[0].config.max_retries"},
		// DynamoDB cannot store these (first design: a 500 at run start
		// on DynamoDB Local).
		{"underflowing duration", "POST", "/workflows", step(`{"id":"a","config":{"duration_seconds":1e-320}}`), 422, "steps[0].config.duration_seconds"},
		{"underflowing probability", "POST", "/workflows", step(`{"id":"a","config":{"fail_probability":1e-200}}`), 422, "steps[0].config.fail_probability"},
		{"order missing amount", "POST", "/orders", `{}`, 422, "amount"},
		{"order amount zero", "POST", "/orders", `{"amount":0}`, 422, "amount"},
		{"order amount negative", "POST", "/orders", `{"amount":-5}`, 422, "amount"},
		{"order amount absurd", "POST", "/orders", `{"amount":1000000000000}`, 422, "amount"},
		{"order amount over the cap", "POST", "/orders", `{"amount":1000000.01}`, 422, "amount"},
		{"order amount three decimals", "POST", "/orders", `{"amount":1.005}`, 422, "amount"},
		{"order amount exponent", "POST", "/orders", `{"amount":1e3}`, 422, "amount"},
		{"order amount as string", "POST", "/orders", `{"amount":"12"}`, 400, "amount"},
		{"order amount null", "POST", "/orders", `{"amount":null}`, 422, "amount"},
		{"run order_id wrong type", "POST", "/workflows/" + wf.ID + "/runs", `{"order_id":7}`, 400, "order_id"},
		{"run unknown order", "POST", "/workflows/" + wf.ID + "/runs", `{"order_id":"ord_01KAAAAAAAAAAAAAAAAAAAAAAA"}`, 422, "order_id"},
		{"run malformed order id", "POST", "/workflows/" + wf.ID + "/runs", `{"order_id":"bogus"}`, 422, "order_id"},
		{"run unknown workflow", "POST", "/workflows/wf_01KAAAAAAAAAAAAAAAAAAAAAAA/runs", ``, 404, ""},
		{"limit zero", "GET", "/runs?limit=0", ``, 400, "limit"},
		{"limit too big", "GET", "/workflows?limit=201", ``, 400, "limit"},
		{"limit not a number", "GET", "/orders?limit=ten", ``, 400, "limit"},
		{"bad cursor", "GET", "/runs?cursor=abc", ``, 400, "cursor"},
		{"cursor of another list", "GET", "/runs?cursor=" + wf.ID, ``, 400, "cursor"},
		{"bad status filter", "GET", "/runs?status=done", ``, 400, "status"},
		{"bad workflow filter", "GET", "/runs?workflow_id=x", ``, 400, "workflow_id"},
	}
	for _, tt := range tests {
		r := b.do(tt.method, tt.path, tt.body)
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, r.status, tt.status, r.body)
			continue
		}
		r.json(t, &e)
		if e.Error == "" || e.Field != tt.field {
			t.Errorf("%s: body %s, want field %q", tt.name, r.body, tt.field)
		}
		if last := tt.field[strings.LastIndex(tt.field, ".")+1:]; !strings.Contains(e.Error, last) {
			t.Errorf("%s: message %q does not mention the field", tt.name, e.Error)
		}
	}
	// Nothing but the valid workflow was written.
	var wfs, runs, orders []map[string]any
	b.must(200, "GET", "/workflows", "", &wfs)
	b.must(200, "GET", "/runs", "", &runs)
	b.must(200, "GET", "/orders", "", &orders)
	if len(wfs) != 1 || len(runs) != 0 || len(orders) != 0 {
		t.Fatalf("bad input wrote data: %d workflows, %d runs, %d orders", len(wfs), len(runs), len(orders))
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Valid JSON just over the limit: the size alone is the problem.
	big := `{"name":"w","steps":[{"id":"a","type":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}]}`
	r := b.do("POST", "/workflows", big)
	if r.status != 413 || !strings.Contains(string(r.body), "larger than") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	// Just under the limit is accepted by the size check (and then
	// rejected for the over-long type, a 422, not a 413).
	under := `{"name":"w","steps":[{"id":"a","type":"` + strings.Repeat("x", api.MaxBodyBytes-100) + `"}]}`
	if r := b.do("POST", "/workflows", under); r.status != 422 {
		t.Fatalf("body under the limit: status %d", r.status)
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/workflows/x/y/z", 404, ""},
		{"DELETE", "/workflows", 405, "GET, HEAD, POST"},
		{"PUT", "/runs/run_01KAAAAAAAAAAAAAAAAAAAAAAA", 405, "GET, HEAD"},
		{"GET", "/workflows/wf_01KAAAAAAAAAAAAAAAAAAAAAAA/runs", 405, "POST"},
	}
	for _, tt := range tests {
		r := b.do(tt.method, tt.path, "")
		var e map[string]string
		if r.status != tt.status || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.status, r.header.Get("Content-Type"))
			continue
		}
		r.json(t, &e)
		if e["error"] == "" || r.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: body %s, Allow %q", tt.method, tt.path, r.body, r.header.Get("Allow"))
		}
	}
	var h map[string]string
	b.must(200, "GET", "/healthz", "", &h)
	if h["status"] != "ok" {
		t.Fatalf("healthz = %v", h)
	}
}

func TestPagingFollowsLinkHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf workflowBody
	b.must(201, "POST", "/workflows", `{"name":"p","steps":[{"id":"a"}]}`, &wf)
	var want []string
	for range 7 {
		var run runBody
		b.must(202, "POST", "/workflows/"+wf.ID+"/runs", "", &run)
		want = append([]string{run.ID}, want...)
	}
	link := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	var got []string
	path, pages := "/runs?limit=3&workflow_id="+wf.ID, 0
	for path != "" {
		var runs []runBody
		r := b.must(200, "GET", path, "", &runs)
		pages++
		for _, x := range runs {
			got = append(got, x.ID)
		}
		path = ""
		if l := r.header.Get("Link"); l != "" {
			m := link.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("malformed Link header %q", l)
			}
			path = m[1]
			if !strings.Contains(path, "workflow_id="+wf.ID) || !strings.Contains(path, "limit=3") {
				t.Fatalf("next link %q drops the filters", path)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Fatalf("paged %d pages: %v, want %v", pages, got, want)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do("GET", "/runs", "", "Origin", "http://dash.example")
	if r.header.Get("Access-Control-Allow-Origin") != "http://dash.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Link") {
		t.Fatalf("allowed origin headers: %v", r.header)
	}
	r = b.do("GET", "/runs", "", "Origin", "http://evil.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("disallowed origin got CORS headers")
	}
	r = b.do("OPTIONS", "/workflows", "", "Origin", "http://dash.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	r = b.do("OPTIONS", "/workflows", "", "Origin", "http://evil.example", "Access-Control-Request-Method", "POST")
	if r.status != 403 {
		t.Fatalf("disallowed preflight: %d", r.status)
	}
}

func TestStorageFailureIsAnOpaque500(t *testing.T) {
	t.Parallel()
	// A real client pointed at a closed port: the SDK fails as it would
	// against an unreachable DynamoDB.
	ln := httptest.NewServer(http.NotFoundHandler())
	dead := ln.URL
	ln.Close()
	cfg, err := awsclient.Load(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RetryMaxAttempts = 1
	h := api.New(api.Config{Store: store.New(awsclient.DynamoDB(cfg, dead), "t")})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/workflows", nil))
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"error":"internal error"}` {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
}

// TestSmallestNumbersRoundTrip: the smallest values validation accepts are
// stored and returned unchanged, and a run of them starts (make conformance
// runs this on DynamoDB Local, which rejects numbers below 1e-130).
func TestSmallestNumbersRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf workflowBody
	b.must(201, "POST", "/workflows", `{"name":"tiny","steps":[{"id":"a","config":{"duration_seconds":0.001,"fail_probability":1e-130}}]}`, &wf)
	var run struct {
		Steps []struct {
			Config struct {
				DurationSeconds float64 `json:"duration_seconds"`
				FailProbability float64 `json:"fail_probability"`
			} `json:"config"`
		} `json:"steps"`
	}
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", "", &run)
	if c := run.Steps[0].Config; c.DurationSeconds != 0.001 || c.FailProbability != 1e-130 {
		t.Fatalf("config came back as %+v", c)
	}
}
