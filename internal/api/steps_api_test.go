package api_test

import (
	"strings"
	"testing"
)

// TestStepInputsAreChecked: bad input to the new routes is a clear 4xx
// naming the field, and nothing is written.
func TestStepInputsAreChecked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wf struct{ ID string }
	b.must(201, "POST", "/workflows", `{"name":"ap","steps":[{"id":"a","type":"approval"},{"id":"b","depends_on":["a"]}]}`, &wf)
	var run struct{ ID string }
	b.must(202, "POST", "/workflows/"+wf.ID+"/runs", `{"input":{"customer":"c1"}}`, &run)
	big := `"` + strings.Repeat("x", 64<<10) + `"`
	var withInput struct{ ID string }
	b.must(201, "POST", "/workflows", `{"name":"in","steps":[{"id":"h","type":"http","config":{"url":"https://x.example/{{input.customer.id}}","body":{"o":"{{order.id}}"}}}]}`, &withInput)
	inputWF := withInput.ID
	tests := []struct {
		name, path, body string
		status           int
		field, msg       string
	}{
		{"a template naming a step not depended on", "/workflows", `{"name":"t","steps":[{"id":"a"},{"id":"b","type":"http","config":{"url":"https://x.example","body":{"v":"{{steps.a.output.id}}"}}}]}`,
			422, "steps[1].config.body.v", "not among the dependencies"},
		{"a template with an unknown root", "/workflows", `{"name":"t","steps":[{"id":"a","type":"http","config":{"url":"https://x.example/{{env.X}}"}}]}`,
			422, "steps[0].config.url", "unknown root"},
		{"malformed template syntax", "/workflows", `{"name":"t","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","headers":{"X":"{{input"}}}]}`,
			422, "steps[0].config.headers.X", "closing"},
		{"an unknown step type", "/workflows", `{"name":"t","steps":[{"id":"a","type":"email"}]}`, 422, "steps[0].type", "one of task, http, wait, approval"},
		{"an input over 64 KiB", "/workflows/" + wf.ID + "/runs", `{"input":` + big + `}`, 413, "input", "65536"},
		{"a retry input over 64 KiB", "/runs/" + run.ID + "/retry", `{"input":` + big + `}`, 413, "input", "65536"},
		{"a refusal without a reason", "/runs/" + run.ID + "/steps/a/fail", `{}`, 400, "error", "required"},
		{"a refusal with control characters", "/runs/" + run.ID + "/steps/a/fail", `{"error":"no\u001b[31m"}`, 400, "error", "control characters"},
		{"an input without a path a template reads", "/workflows/" + inputWF + "/runs", `{"input":{"other":1},"order_id":null}`, 422, "input", "{{input.customer.id}}"},
		{"a run without the order a template reads", "/workflows/" + inputWF + "/runs", `{"input":{"customer":{"id":"c"}}}`, 422, "order_id", "{{order.id}}"},
		{"an output over 64 KiB", "/runs/" + run.ID + "/steps/a/complete", `{"output":` + big + `}`, 413, "output", "65536"},
		{"a step the run does not have", "/runs/" + run.ID + "/steps/zz/complete", `{}`, 404, "step", `no step "zz"`},
		{"a decision on a step that is not waiting", "/runs/" + run.ID + "/steps/b/complete", `{}`, 409, "", "only approval steps"},
		{"a callback with both an output and an error", "/callbacks/" + strings.Repeat("a", 43), `{"output":1,"error":"x"}`, 400, "", "not both"},
		{"an unknown callback token", "/callbacks/" + strings.Repeat("a", 43), `{"output":1}`, 404, "", "no approval is waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do("POST", tt.path, tt.body)
			var e struct{ Error, Field string }
			r.json(t, &e)
			if r.status != tt.status || e.Field != tt.field || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("%d %+v, want %d naming field %q with %q", r.status, e, tt.status, tt.field, tt.msg)
			}
		})
	}
	// Nothing was written: the run is as it was.
	var d struct {
		Status string
		Input  map[string]string
		Inputs []any
	}
	b.must(200, "GET", "/runs/"+run.ID, "", &d)
	if d.Input["customer"] != "c1" || len(d.Inputs) != 1 {
		t.Errorf("run after refused requests: %+v", d)
	}
}
