package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// request is what the fake API received.
type request struct {
	method, path, contentType, body string
}

// setup serves answer to every request and records the last one.
func setup(t *testing.T, code int, answer string) (*Client, *request) {
	t.Helper()
	got := &request{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = request{r.Method, r.URL.EscapedPath(), r.Header.Get("Content-Type"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL + "/"), got
}

func TestRunWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		call func(*Client) error
		want request // contentType is application/json whenever body is set
	}{
		{"start", func(c *Client) error { _, err := c.StartRun(ctx, "wf_1", "", nil); return err },
			request{"POST", "/workflows/wf_1/runs", "", `{}`}},
		{"start with an order and input", func(c *Client) error {
			_, err := c.StartRun(ctx, "wf_1", "ord_1", json.RawMessage(`{ "n": [1, 2], "html": "<b>&" }`))
			return err
		}, request{"POST", "/workflows/wf_1/runs", "", `{"order_id":"ord_1","input":{"n":[1,2],"html":"<b>&"}}`}},
		{"cancel", func(c *Client) error { _, err := c.Cancel(ctx, "run_1"); return err },
			request{"POST", "/runs/run_1/cancel", "", ``}},
		{"retry", func(c *Client) error { _, err := c.Retry(ctx, "run_1", nil); return err },
			request{"POST", "/runs/run_1/retry", "", ``}},
		{"retry with input", func(c *Client) error { _, err := c.Retry(ctx, "run_1", json.RawMessage(`"x"`)); return err },
			request{"POST", "/runs/run_1/retry", "", `{"input":"x"}`}},
		{"complete", func(c *Client) error { _, err := c.Complete(ctx, "run_1", "a", nil); return err },
			request{"POST", "/runs/run_1/steps/a/complete", "", ``}},
		{"complete with output", func(c *Client) error {
			_, err := c.Complete(ctx, "run_1", "a", json.RawMessage(`{"ok":true}`))
			return err
		}, request{"POST", "/runs/run_1/steps/a/complete", "", `{"output":{"ok":true}}`}},
		{"fail", func(c *Client) error { _, err := c.Fail(ctx, "run_1", "a", "no stock"); return err },
			request{"POST", "/runs/run_1/steps/a/fail", "", `{"error":"no stock"}`}},
		{"ids are escaped", func(c *Client) error { _, err := c.Complete(ctx, "run/1?x", "a b", nil); return err },
			request{"POST", "/runs/run%2F1%3Fx/steps/a%20b/complete", "", ``}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, got := setup(t, 200, `{"id":"run_1","status":"running"}`)
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			if tt.want.body != "" {
				tt.want.contentType = "application/json"
			}
			if *got != tt.want {
				t.Errorf("sent %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestInvalidJSONIsNotSent(t *testing.T) {
	t.Parallel()
	c, got := setup(t, 200, `{}`)
	if _, err := c.StartRun(context.Background(), "wf_1", "", json.RawMessage(`{nope`)); err == nil || !strings.HasPrefix(err.Error(), "input: ") {
		t.Errorf("StartRun with invalid input: %v", err)
	}
	if _, err := c.Complete(context.Background(), "run_1", "a", json.RawMessage(`[1,`)); err == nil || !strings.HasPrefix(err.Error(), "output: ") {
		t.Errorf("Complete with invalid output: %v", err)
	}
	if *got != (request{}) {
		t.Errorf("sent %+v", *got)
	}
}

// TestError: an error answer surfaces the API's message and field, and its
// status; one without a JSON body surfaces the HTTP status.
func TestError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   int
		answer string
		want   Error
		text   string
	}{
		{409, `{"error":"step b is pending, not waiting for a decision"}`,
			Error{409, "step b is pending, not waiting for a decision", ""}, "step b is pending, not waiting for a decision (HTTP 409)"},
		{400, `{"error":"input is not valid JSON","field":"input"}`,
			Error{400, "input is not valid JSON", "input"}, "input is not valid JSON (HTTP 400)"},
		{404, `{"error":"run run_1 has no step \"z\"","field":"step"}`,
			Error{404, `run run_1 has no step "z"`, "step"}, `run run_1 has no step "z" (HTTP 404)`},
		{422, `{"error":"names no order","field":"order_id"}`,
			Error{422, "names no order", "order_id"}, "order_id: names no order (HTTP 422)"},
		{502, `<html>bad gateway</html>`, Error{502, "502 Bad Gateway", ""}, "502 Bad Gateway (HTTP 502)"},
	}
	for _, tt := range tests {
		c, _ := setup(t, tt.code, tt.answer)
		_, err := c.Complete(context.Background(), "run_1", "b", nil)
		var ae *Error
		if !errors.As(err, &ae) || *ae != tt.want || err.Error() != tt.text {
			t.Errorf("%d %s: got %#v (%v), want %#v (%s)", tt.code, tt.answer, ae, err, tt.want, tt.text)
		}
	}
}
