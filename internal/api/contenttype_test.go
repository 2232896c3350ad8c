package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// sendRaw sends a request with exactly the given Content-Type ("" for
// none) and Origin; chunked sends the body without a length.
func (b *bundle) sendRaw(t *testing.T, method, path, body, contentType, origin string, chunked bool) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.ContentLength, req.TransferEncoding = -1, []string{"chunked"}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: data}
}

// TestWritesWithABodyMustBeJSON checks that a write with a body is refused
// with 415 unless it says it is JSON, which is what keeps out the bodies a
// page on another site can send without a CORS preflight (forms and
// text/plain), while writes without a body and preflights are untouched.
func TestWritesWithABodyMustBeJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf struct{ ID string }
	b.must(201, "POST", "/workflows", `{"name":"content type","steps":[{"id":"a","config":{"duration_seconds":300}}]}`, &wf)
	var run struct{ ID string }
	// A run start has an optional body: without one it needs no type.
	if r := b.sendRaw(t, "POST", "/workflows/"+wf.ID+"/runs", "", "", "", false); r.status != 202 {
		t.Fatalf("start a run without a body or Content-Type: %d %s", r.status, r.body)
	} else {
		r.json(t, &run)
	}
	const order = `{"amount": 1}`
	tests := []struct {
		name, method, path, body, contentType string
		origin                                string
		chunked                               bool
		want                                  int
	}{
		{"JSON", "POST", "/orders", order, "application/json", "", false, 201},
		{"JSON with a charset", "POST", "/orders", order, "application/json; charset=utf-8", "", false, 201},
		{"JSON in upper case", "POST", "/orders", order, "Application/JSON; Charset=UTF-8", "", false, 201},
		{"JSON, chunked", "POST", "/orders", order, "application/json", "", true, 201},
		{"no Content-Type", "POST", "/orders", order, "", "", false, 415},
		{"no Content-Type, chunked", "POST", "/orders", order, "", "", true, 415},
		{"text/plain (a page's fetch without preflight)", "POST", "/orders", order, "text/plain;charset=UTF-8", "", false, 415},
		{"a form", "POST", "/orders", "amount=1", "application/x-www-form-urlencoded", "", false, 415},
		{"a multipart form", "POST", "/orders", "--x\r\n\r\n1\r\n--x--\r\n", "multipart/form-data; boundary=x", "", false, 415},
		{"a JSON-like type", "POST", "/orders", order, "application/vnd.api+json", "", false, 415},
		{"a malformed type", "POST", "/orders", order, "application/json; charset", "", false, 415},
		{"workflow as text", "POST", "/workflows", `{"name":"w","steps":[{"id":"a"}]}`, "text/plain", "", false, 415},
		{"run start with a body as a form", "POST", "/workflows/" + wf.ID + "/runs", "{}", "application/x-www-form-urlencoded", "", false, 415},
		{"an allowed origin still reads the refusal", "POST", "/orders", order, "text/plain", "http://dash.example", false, 415},
		{"PUT with a body as text", "PUT", "/orders", order, "text/plain", "", false, 415},
		{"DELETE with a body as text", "DELETE", "/runs/" + run.ID, order, "text/plain", "", false, 415},
		{"DELETE with a JSON body reaches routing", "DELETE", "/runs/" + run.ID, order, "application/json", "", false, 405},
		{"no body, no Content-Type: checked as before", "POST", "/orders", "", "", "", false, 400},
		{"cancel without a body or Content-Type", "POST", "/runs/" + run.ID + "/cancel", "", "", "", false, 200},
		{"retry without a body, with a form type", "POST", "/runs/" + run.ID + "/retry", "", "application/x-www-form-urlencoded", "", false, 202},
		{"GET ignores Content-Type", "GET", "/orders", "", "text/plain", "", false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.sendRaw(t, tt.method, tt.path, tt.body, tt.contentType, tt.origin, tt.chunked)
			if r.status != tt.want {
				t.Fatalf("%s %s with Content-Type %q: %d, want %d: %s", tt.method, tt.path, tt.contentType, r.status, tt.want, r.body)
			}
			if r.status != 415 {
				return
			}
			var e struct{ Error, Field string }
			r.json(t, &e)
			if !strings.Contains(e.Error, "Content-Type: application/json") {
				t.Errorf("error %q does not name the header and the type it needs", e.Error)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("error sent as %q, want application/json", got)
			}
			if tt.method == "POST" && r.header.Get("Accept-Post") != "application/json" {
				t.Errorf("Accept-Post %q, want application/json", r.header.Get("Accept-Post"))
			}
			if tt.origin != "" && r.header.Get("Access-Control-Allow-Origin") != tt.origin {
				t.Errorf("the refusal has no CORS header for %s, so the dashboard could not read it", tt.origin)
			}
		})
	}
}

// TestPreflightIsUnaffected checks that a CORS preflight, which has no
// body and no Content-Type of its own, is answered as before.
func TestPreflightIsUnaffected(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, _ := http.NewRequest("OPTIONS", b.url+"/orders", nil)
	req.Header.Set("Origin", "http://dash.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 || !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d, Allow-Headers %q; want 204 allowing Content-Type", res.StatusCode, res.Header.Get("Access-Control-Allow-Headers"))
	}
}
