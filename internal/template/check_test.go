package template

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// set makes a step id set.
func set(ids ...string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// nested returns depth arrays, one inside the other, around inner.
func nested(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

var (
	checkDeps = set("charge", "pay.v2", "a", "a.output.b", "x.output")
	checkAll  = set("charge", "pay.v2", "a", "a.output.b", "x.output", "ship", "later")
)

func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body string }{
		{"no templates", `{"a":1,"b":[true,null,"text {with} braces"],"c":{}}`},
		{"empty value", ``},
		{"input", `"{{input}}"`},
		{"input path", `{"id":"{{input.customer.id}}"}`},
		{"digits, dashes and underscores", `"{{input.items.0.sku-code_2}}"`},
		{"spaces around the path", `"{{  input.a  }}"`},
		{"run and order", `"{{run.id}}/{{order.id}}"`},
		{"secret", `"Bearer {{secrets.API_KEY_2}}"`},
		{"longest secret name", `"{{secrets.A` + strings.Repeat("B", 63) + `}}"`},
		{"step output", `["{{steps.charge.output}}","{{steps.charge.output.id}}"]`},
		{"step id with dots", `"{{steps.pay.v2.output.ok}}"`},
		{"step id ending in .output", `"{{steps.x.output.output.y}}"`},
		{"keys are not templated", `{"{{not a template":"v","}}":1}`},
		{"deepest nesting", nested(MaxDepth, `"{{input}}"`)},
		{"longest path", `"{{input` + strings.Repeat(".a", MaxDepth) + `}}"`},
		{"longest output path", `"{{steps.pay.v2.output` + strings.Repeat(".0", MaxDepth) + `}}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := Check(json.RawMessage(tt.body), "steps[2].config.body", checkDeps, checkAll); err != nil {
				t.Fatalf("Check(%s) = %v", tt.body, err)
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	t.Parallel()
	const body = "steps[2].config.body"
	tests := []struct {
		name, body, field, msg string
	}{
		{"unclosed", `{"a":"x {{input.a"}`, body + ".a", `"{{" at byte 2 has no closing "}}" (a literal "{{" is not supported)`},
		{"unclosed after a template", `"{{input}} {{"`, body, `"{{" at byte 10 has no closing "}}" (a literal "{{" is not supported)`},
		{"closing without opening", `["ok","a }} b"]`, body + "[1]", `"}}" at byte 2 has no opening "{{"`},
		{"closing after a template", `"{{input}}}}"`, body, `"}}" at byte 9 has no opening "{{"`},
		{"empty path", `"{{}}"`, body, `{{}}: the path is empty`},
		{"blank path", `"{{   }}"`, body, `{{   }}: the path is empty`},
		{"space inside the path", `"{{input.a b}}"`, body, `{{input.a b}}: the path has the character ' '; a path holds letters, digits, '_' and '-' in segments separated by '.'`},
		{"tab around the path", `"{{\tinput}}"`, body, `the path has the character '\t'`},
		{"slash", `"{{input.a/b}}"`, body, `the path has the character '/'`},
		{"triple braces", `"{{{input}}}"`, body, `{{{input}}: the path has the character '{'`},
		{"empty segment", `"{{input..a}}"`, body, `{{input..a}}: the path has an empty segment`},
		{"trailing dot", `"{{input.}}"`, body, `{{input.}}: the path has an empty segment`},
		{"leading dot", `"{{.input}}"`, body, `{{.input}}: the path has an empty segment`},
		{"empty segment after output", `"{{steps.charge.output..id}}"`, body, `the path has an empty segment`},
		{"trailing dot after output", `"{{steps.charge.output.}}"`, body, `the path has an empty segment`},
		{"unknown root", `{"k":"{{inputs.a}}"}`, body + ".k", `{{inputs.a}}: unknown root "inputs"; a path starts with input, steps, run, order or secrets`},
		{"unknown root env", `"{{env.HOME}}"`, body, `unknown root "env"`},
		{"run alone", `"{{run}}"`, body, `{{run}}: run has only the field id: write {{run.id}}`},
		{"run field", `"{{run.status}}"`, body, `run has only the field id`},
		{"order path", `"{{order.id.x}}"`, body, `{{order.id.x}}: order has only the field id: write {{order.id}}`},
		{"secrets alone", `"{{secrets}}"`, body, `{{secrets}}: a secret is named by {{secrets.NAME}}, where NAME matches ^[A-Z][A-Z0-9_]{0,63}$`},
		{"lower-case secret", `"{{secrets.api_key}}"`, body, `{{secrets.api_key}}: a secret is named by`},
		{"secret starting with a digit", `"{{secrets.1KEY}}"`, body, `a secret is named by`},
		{"secret with a dash", `"{{secrets.API-KEY}}"`, body, `a secret is named by`},
		{"secret name too long", `"{{secrets.A` + strings.Repeat("B", 64) + `}}"`, body, `a secret is named by`},
		{"secret path", `"{{secrets.KEY.x}}"`, body, `a secret is named by`},
		{"steps alone", `"{{steps}}"`, body, `{{steps}}: a step's output is read by {{steps.<step id>.output}}, optionally followed by a path`},
		{"step without output", `"{{steps.charge}}"`, body, `a step's output is read by`},
		{"step with another field", `"{{steps.charge.result.id}}"`, body, `a step's output is read by`},
		{"output without step id", `"{{steps..output}}"`, body, `a step's output is read by`},
		{"output as a prefix", `"{{steps.charge.outputs}}"`, body, `a step's output is read by`},
		{"no such step", `{"c":{"id":"{{steps.nope.output.id}}"}}`, body + ".c.id", `{{steps.nope.output.id}}: there is no step "nope"`},
		{"no such dotted step", `"{{steps.pay.v3.output}}"`, body, `there is no step "pay.v3"`},
		{"step that is not a dependency", `"{{steps.ship.output.id}}"`, body, `{{steps.ship.output.id}}: step "ship" is not among the dependencies of this step; add it to depends_on, directly or through a dependency`},
		{"ambiguous step id", `"{{steps.a.output.b.output.c}}"`, body, `{{steps.a.output.b.output.c}}: the step id is ambiguous: both "a" and "a.output.b" are steps`},
		{"second template bad", `"{{input}} and {{secrets.x}}"`, body, `{{secrets.x}}: a secret is named by`},
		{"path too long", `"{{input` + strings.Repeat(".a", MaxDepth+1) + `}}"`, body, `the path has 65 segments after its root; the most is 64`},
		{"output path too long", `"{{steps.charge.output` + strings.Repeat(".a", MaxDepth+1) + `}}"`, body, `the path has 65 segments after its root`},
		{"not JSON", `{"a":`, body, `is not valid JSON`},
		{"two values", `{} {}`, body, `is not valid JSON`},
		{"too deep", nested(MaxDepth+1, `1`), body + strings.Repeat("[0]", MaxDepth), `nests deeper than 64 levels`},
		{"key with a space in the path", `{"a b":["{{x}}"]}`, body + `["a b"][0]`, `unknown root "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(json.RawMessage(tt.body), body, checkDeps, checkAll)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %s: %s\nwant field %s with %s", fe.Field, fe.Msg, tt.field, tt.msg)
			}
			if fe.Error() != fe.Field+": "+fe.Msg {
				t.Errorf("Error() = %q", fe.Error())
			}
		})
	}
}

func TestCheckString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, s, field, msg string
	}{
		{"valid url", "https://api.example.com/orders/{{order.id}}?run={{run.id}}", "steps[0].config.url", ""},
		{"valid header", "Bearer {{secrets.TOKEN}}", "steps[0].config.headers.Authorization", ""},
		{"no templates", "https://example.com/", "steps[0].config.url", ""},
		{"bad url", "https://x/{{steps.ship.output.id}}", "steps[0].config.url", `step "ship" is not among the dependencies`},
		{"bad header", "Bearer {{secrets.token}}", "steps[0].config.headers.Authorization", "a secret is named by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckString(tt.s, tt.field, checkDeps, checkAll)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("CheckString(%q) = %v", tt.s, err)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %v, want field %s with %q", err, tt.field, tt.msg)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	t.Parallel()
	steps := set("charge", "pay.v2", "ship")
	tests := []struct {
		name    string
		url     string
		body    string
		want    Needs
		wantErr string
	}{
		{"nothing", "https://example.com/", `{"a":[1,"b"]}`, Needs{}, ""},
		{"run and order only", "https://x/{{run.id}}", `"{{order.id}}"`, Needs{Order: true}, ""},
		{"input in the url", "https://x/{{input.id}}", ``, Needs{Input: true}, ""},
		{
			"sorted and distinct",
			"https://x/{{steps.ship.output.id}}?k={{secrets.B}}",
			`{"a":"{{steps.pay.v2.output}}","b":["{{steps.charge.output.id}}","{{steps.ship.output}}"],"c":"{{secrets.A}}{{secrets.B}}","d":"{{input}}"}`,
			Needs{Input: true, Steps: []string{"charge", "pay.v2", "ship"}, Secrets: []string{"A", "B"}},
			"",
		},
		{"unknown step", "", `"{{steps.nope.output}}"`, Needs{}, `{{steps.nope.output}}: there is no step "nope"`},
		{"malformed", "{{input", ``, Needs{}, `"{{" at byte 0 has no closing "}}"`},
		{"too deep", "", nested(MaxDepth+1, `1`), Needs{}, "nests deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n Needs
			err := n.AddString(tt.url, steps)
			if err == nil {
				err = n.Add(json.RawMessage(tt.body), steps)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n.inputRefs = nil // checked by TestCheckInput
			if !reflect.DeepEqual(n, tt.want) {
				t.Fatalf("needs = %+v, want %+v", n, tt.want)
			}
		})
	}
}

func TestCheckInput(t *testing.T) {
	t.Parallel()
	var n Needs
	if err := n.Add(json.RawMessage(`{"a":"{{input.customer.id}}","b":"x{{input.items.1}}","c":"{{input}}"}`), nil); err != nil {
		t.Fatal(err)
	}
	for input, want := range map[string]string{
		`{"customer":{"id":"c1"},"items":[1,2]}`: "",
		`{"customer":{"id":null},"items":[1,2]}`: "", // present, if null
		`{"customer":{},"items":[1,2]}`:          "{{input.customer.id}}",
		`{"customer":{"id":1},"items":[1]}`:      "{{input.items.1}}",
		``:                                       "{{input.customer.id}}",
	} {
		err := n.CheckInput(json.RawMessage(input))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("input %s: %v, want %q", input, err, want)
		}
	}
}
