// Package client is a small Go client for the Stepflow HTTP API, used by
// the stepflow command.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"stepflow/internal/wire"
)

// Client talks to one Stepflow API.
type Client struct {
	Base string
	// Token, if set, is sent as a bearer token.
	Token string
	HTTP  *http.Client
}

// New returns a client for the API at base, such as "http://127.0.0.1:8080".
func New(base string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: http.DefaultClient}
}

// Error is an error answer from the API.
type Error struct {
	Status  int
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		return fmt.Sprintf("%s: %s (HTTP %d)", e.Field, e.Message, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the Stepflow API at %s: %w", c.Base, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = res.Status
		}
		return &Error{Status: res.StatusCode, Message: e.Error, Field: e.Field}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// CreateWorkflow posts a definition as given (raw JSON).
func (c *Client) CreateWorkflow(ctx context.Context, def []byte) (wire.Workflow, error) {
	var w wire.Workflow
	err := c.do(ctx, http.MethodPost, "/workflows", def, &w)
	return w, err
}

// CreateOrder creates an order; amount is a JSON number such as "19.99".
func (c *Client) CreateOrder(ctx context.Context, amount string) (wire.Order, error) {
	var o wire.Order
	err := c.do(ctx, http.MethodPost, "/orders", []byte(`{"amount":`+amount+`}`), &o)
	return o, err
}

// StartRun starts a run of a workflow, tied to orderID unless it is "",
// with input (any JSON value) unless it is nil.
func (c *Client) StartRun(ctx context.Context, workflowID, orderID string, input json.RawMessage) (wire.RunDetail, error) {
	body, err := encode(struct {
		OrderID string          `json:"order_id,omitempty"`
		Input   json.RawMessage `json:"input,omitempty"`
	}{orderID, input})
	if err != nil {
		return wire.RunDetail{}, fmt.Errorf("input: %w", err)
	}
	var d wire.RunDetail
	err = c.do(ctx, http.MethodPost, "/workflows/"+url.PathEscape(workflowID)+"/runs", body, &d)
	return d, err
}

// Cancel cancels a pending or running run. The API answers 409 for a run
// that has ended.
func (c *Client) Cancel(ctx context.Context, id string) (wire.RunDetail, error) {
	var d wire.RunDetail
	err := c.do(ctx, http.MethodPost, runPath(id)+"/cancel", nil, &d)
	return d, err
}

// Retry runs a failed or cancelled run's failed and unstarted steps again,
// with a new input unless input is nil (the steps that run again see it;
// completed steps keep their outputs). The API answers 409 for a run that
// has not failed or been cancelled.
func (c *Client) Retry(ctx context.Context, id string, input json.RawMessage) (wire.RunDetail, error) {
	body, err := optional("input", input)
	if err != nil {
		return wire.RunDetail{}, err
	}
	var d wire.RunDetail
	err = c.do(ctx, http.MethodPost, runPath(id)+"/retry", body, &d)
	return d, err
}

// Complete approves an approval step that is waiting, with output (any
// JSON value) unless it is nil. The API answers 409 when the step is not a
// waiting approval.
func (c *Client) Complete(ctx context.Context, id, step string, output json.RawMessage) (wire.RunDetail, error) {
	body, err := optional("output", output)
	if err != nil {
		return wire.RunDetail{}, err
	}
	var d wire.RunDetail
	err = c.do(ctx, http.MethodPost, runPath(id)+"/steps/"+url.PathEscape(step)+"/complete", body, &d)
	return d, err
}

// Fail refuses an approval step that is waiting: the step fails, for
// reason, and with it the run. The API answers 409 when the step is not a
// waiting approval.
func (c *Client) Fail(ctx context.Context, id, step, reason string) (wire.RunDetail, error) {
	body, err := encode(map[string]string{"error": reason})
	if err != nil {
		return wire.RunDetail{}, err
	}
	var d wire.RunDetail
	err = c.do(ctx, http.MethodPost, runPath(id)+"/steps/"+url.PathEscape(step)+"/fail", body, &d)
	return d, err
}

func runPath(id string) string { return "/runs/" + url.PathEscape(id) }

// optional is the body {"<name>": v}, or no body when v is nil.
func optional(name string, v json.RawMessage) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	body, err := encode(map[string]json.RawMessage{name: v})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return body, nil
}

// encode is json.Marshal without escaping <, > and &, so that a value
// given as JSON is sent as given, compacted (and its size is the one the
// API counts).
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Run returns a run with its steps.
func (c *Client) Run(ctx context.Context, id string) (wire.RunDetail, error) {
	var d wire.RunDetail
	err := c.do(ctx, http.MethodGet, runPath(id), nil, &d)
	return d, err
}

// Runs returns the newest runs, at most limit, with their progress.
func (c *Client) Runs(ctx context.Context, limit int, status string) ([]wire.RunSummary, error) {
	var rs []wire.RunSummary
	path := fmt.Sprintf("/runs?limit=%d", limit)
	if status != "" {
		path += "&status=" + status
	}
	err := c.do(ctx, http.MethodGet, path, nil, &rs)
	return rs, err
}

// Redrive moves dead-lettered messages back and returns how many moved.
func (c *Client) Redrive(ctx context.Context) (int, error) {
	var out struct {
		Moved int `json:"moved"`
	}
	err := c.do(ctx, http.MethodPost, "/redrive", nil, &out)
	return out.Moved, err
}
