package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func testContext() Context {
	return Context{
		Input: json.RawMessage(`{
			"n": 42, "f": -1.50e3, "b": true, "z": null, "s": "hi \"there\" <&>",
			"obj": {"z": 1, "a": [1, 2]},
			"arr": [10, {"k": "v"}],
			"01": "zero-one"
		}`),
		Outputs: map[string]json.RawMessage{
			"charge": json.RawMessage(`{"id":"ch_1","amount":12.5,"card":{"last4":"4242"}}`),
			"pay.v2": json.RawMessage(`{"ok":true}`),
			"list":   json.RawMessage(`[1]`),
			"empty":  nil,
		},
		RunID:   "run-1",
		OrderID: "ord-9",
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"number keeps its type", `"{{input.n}}"`, `42`},
		{"number keeps its text", `"{{input.f}}"`, `-1.50e3`},
		{"bool keeps its type", `"{{input.b}}"`, `true`},
		{"null keeps its type", `"{{input.z}}"`, `null`},
		{"object keeps its type and member order", `"{{input.obj}}"`, `{"z":1,"a":[1,2]}`},
		{"array keeps its type", `"{{input.arr}}"`, `[10,{"k":"v"}]`},
		{"string keeps its type", `"{{input.s}}"`, `"hi \"there\" <&>"`},
		{"spaces around the path", `"{{ input.n }}"`, `42`},
		{"text around a template makes a string", `" {{input.n}}"`, `" 42"`},
		{"two templates make a string", `"{{input.n}}{{input.b}}"`, `"42true"`},
		{
			"mixed text",
			`"n={{input.n}} s={{input.s}} o={{input.obj}} z={{input.z}}"`,
			`"n=42 s=hi \"there\" <&> o={\"z\":1,\"a\":[1,2]} z=null"`,
		},
		{
			"nested body",
			`{"customer":{"id":"{{input.arr.1.k}}","tags":["{{input.n}}","x",{"deep":["{{steps.charge.output.card.last4}}"]}]}}`,
			`{"customer":{"id":"v","tags":[42,"x",{"deep":["4242"]}]}}`,
		},
		{"array index", `["{{input.arr.0}}","{{input.obj.a.1}}"]`, `[10,2]`},
		{"digit key of an object", `"{{input.01}}"`, `"zero-one"`},
		{"step id with dots", `"{{steps.pay.v2.output.ok}}"`, `true`},
		{"whole input", `{"in":"{{input}}"}`, `{"in":{"n":42,"f":-1.50e3,"b":true,"z":null,"s":"hi \"there\" <&>","obj":{"z":1,"a":[1,2]},"arr":[10,{"k":"v"}],"01":"zero-one"}}`},
		{"whole output", `"{{steps.charge.output}}"`, `{"id":"ch_1","amount":12.5,"card":{"last4":"4242"}}`},
		{"whole output in text", `"out: {{steps.list.output}}"`, `"out: [1]"`},
		{"empty output is null", `"{{steps.empty.output}}"`, `null`},
		{"run and order ids", `{"run":"{{run.id}}","key":"{{run.id}}-{{order.id}}"}`, `{"run":"run-1","key":"run-1-ord-9"}`},
		{"keys are not templated", `{"{{input.n}}":"{{input.n}}"}`, `{"{{input.n}}":42}`},
		{"other values kept, members in order", "{ \"z\" : 1.0e2 ,\n \"a\": [ false , null ], \"m\": \"<b>\" }", `{"z":1.0e2,"a":[false,null],"m":"<b>"}`},
		{"top-level string without templates", `"plain"`, `"plain"`},
		{"empty value", ``, ``},
		{"deepest nesting", nested(MaxDepth, `"{{input.n}}"`), nested(MaxDepth, `42`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Render(json.RawMessage(tt.body), testContext())
			if err != nil {
				t.Fatalf("Render(%s): %v", tt.body, err)
			}
			if string(got) != tt.want {
				t.Fatalf("Render(%s)\n got %s\nwant %s", tt.body, got, tt.want)
			}
		})
	}
}

func TestRenderString(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, s, want string }{
		{"no templates", "https://example.com/", "https://example.com/"},
		{"url", "https://x/orders/{{order.id}}?amount={{steps.charge.output.amount}}", "https://x/orders/ord-9?amount=12.5"},
		{"exactly one string template", "{{input.s}}", `hi "there" <&>`},
		{"exactly one object template stays text", "{{input.obj}}", `{"z":1,"a":[1,2]}`},
		{"exactly one number template stays text", "{{input.n}}", "42"},
		{"null as text", "{{input.z}}", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RenderString(tt.s, testContext())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("RenderString(%q) = %q, want %q", tt.s, got, tt.want)
			}
		})
	}
}

func TestRenderMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Context)
		body string
		want string
	}{
		{"absent field", nil, `"{{steps.charge.output.payment_id}}"`, `{{steps.charge.output.payment_id}}: the output of step charge has no field payment_id`},
		{"absent nested field", nil, `"{{input.obj.x.y}}"`, `{{input.obj.x.y}}: the input has no field obj.x`},
		{"index out of range", nil, `"{{input.arr.2}}"`, `{{input.arr.2}}: the input has no element arr.2: arr has 2 elements`},
		{"index out of range at the root", nil, `"{{steps.list.output.1}}"`, `{{steps.list.output.1}}: the output of step list has no element 1: it has 1 element`},
		{"index too large for an int", nil, `"{{input.arr.99999999999999999999}}"`, `{{input.arr.99999999999999999999}}: the input has no element arr.99999999999999999999: arr has 2 elements`},
		{"key into an array", nil, `"{{input.arr.k}}"`, `{{input.arr.k}}: the input has no field arr.k: arr is an array`},
		{"leading zero into an array", nil, `"{{input.arr.01}}"`, `{{input.arr.01}}: the input has no field arr.01: arr is an array`},
		{"into a number", nil, `"{{input.n.x}}"`, `{{input.n.x}}: the input has no field n.x: n is a number`},
		{"into a string", nil, `"{{input.s.0}}"`, `{{input.s.0}}: the input has no field s.0: s is a string`},
		{"into a boolean", nil, `"{{steps.pay.v2.output.ok.x}}"`, `{{steps.pay.v2.output.ok.x}}: the output of step pay.v2 has no field ok.x: ok is a boolean`},
		{"into null", nil, `"{{input.z.x}}"`, `{{input.z.x}}: the input has no field z.x: z is null`},
		{"into an empty output", nil, `"{{steps.empty.output.x}}"`, `{{steps.empty.output.x}}: the output of step empty has no field x: it is null`},
		{"into an absent input", func(c *Context) { c.Input = nil }, `"{{input.a}}"`, `{{input.a}}: the input has no field a: it is null`},
		{"absent output", nil, `"{{steps.ship.output}}"`, `{{steps.ship.output}}: there is no output of step ship`},
		{"absent order", func(c *Context) { c.OrderID = "" }, `"{{order.id}}"`, `{{order.id}}: the run has no order`},
		{"absent run id", func(c *Context) { c.RunID = "" }, `"{{run.id}}"`, `{{run.id}}: no run id was given`},
		{"input not JSON", func(c *Context) { c.Input = json.RawMessage(`{"a":`) }, `"{{input.a}}"`, `{{input.a}}: the input is not valid JSON`},
		{"later template in text", nil, `"ok {{input.n}} {{input.nope}}"`, `{{input.nope}}: the input has no field nope`},
		{
			"ambiguous step id",
			func(c *Context) { c.Outputs = map[string]json.RawMessage{"a": nil, "a.output.b": nil} },
			`"{{steps.a.output.b.output}}"`,
			`{{steps.a.output.b.output}}: the step id is ambiguous: both "a" and "a.output.b" are steps`,
		},
		{"malformed", nil, `{"a":["{{input.n"]}`, `"{{" at byte 0 has no closing "}}" (a literal "{{" is not supported)`},
		{"unknown root", nil, `"{{env.HOME}}"`, `{{env.HOME}}: unknown root "env"; a path starts with input, steps, run, order or secrets`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testContext()
			if tt.edit != nil {
				tt.edit(&c)
			}
			_, err := Render(json.RawMessage(tt.body), c)
			var re *RenderError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RenderError", err, err)
			}
			if err.Error() != tt.want {
				t.Fatalf("err = %s\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestRenderRejectsBadValue(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, field, msg string }{
		{"not JSON", `{"a":`, "value", "is not valid JSON"},
		{"trailing data", `1 2`, "value", "is not valid JSON"},
		{"too deep", `{"a":` + nested(MaxDepth, `1`) + `}`, "value.a" + strings.Repeat("[0]", MaxDepth-1), "nests deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Render(json.RawMessage(tt.body), testContext())
			var fe *Error
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Msg != tt.msg {
				t.Fatalf("err = %v, want %s: %s", err, tt.field, tt.msg)
			}
		})
	}
}

var errNoSecret = errors.New("no such secret")

func secrets(m map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		v, ok := m[name]
		if !ok {
			return "", errNoSecret
		}
		return v, nil
	}
}

func TestRenderSecrets(t *testing.T) {
	t.Parallel()
	const token, other = "s3cr3t-Tok", "pa<ss>"
	tests := []struct {
		name     string
		body     string
		want     string // the rendered value, if it renders
		redacted string // the rendered value after RedactJSON
		wantErr  string
	}{
		{
			"resolved and redacted",
			`{"auth":"Bearer {{secrets.TOKEN}}","raw":"{{secrets.TOKEN}}","o":"{{secrets.OTHER}}"}`,
			`{"auth":"Bearer s3cr3t-Tok","raw":"s3cr3t-Tok","o":"pa<ss>"}`,
			`{"auth":"Bearer [redacted]","raw":"[redacted]","o":"[redacted]"}`,
			"",
		},
		{"later template fails", `"{{secrets.TOKEN}}:{{input.nope}}"`, "", "", `{{input.nope}}: the input has no field nope`},
		{"later value fails", `["{{secrets.TOKEN}}","{{order.id}}"]`, "", "", `{{order.id}}: the run has no order`},
		{"resolver fails", `"{{secrets.TOKEN}} {{secrets.MISSING}}"`, "", "", `{{secrets.MISSING}}: no such secret`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testContext()
			c.OrderID = ""
			c.Secret = secrets(map[string]string{"TOKEN": token, "OTHER": other})
			c.Redactor = new(Redactor)
			got, err := Render(json.RawMessage(tt.body), c)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("error %q holds the secret", err)
				}
				if tt.wantErr == `{{secrets.MISSING}}: no such secret` && !errors.Is(err, errNoSecret) {
					t.Fatalf("error %v does not wrap the resolver's", err)
				}
				// The secret resolved before the failure is known to the
				// Redactor all the same.
				if r := c.Redactor.Redact("x " + token); r != "x [redacted]" {
					t.Fatalf("Redact = %q", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if r := c.Redactor.RedactJSON(got); string(r) != tt.redacted {
				t.Fatalf("redacted %s, want %s", r, tt.redacted)
			}
		})
	}
}

func TestRenderSecretsNeedRedactor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    Context
	}{
		{"no resolver", Context{Redactor: new(Redactor)}},
		{"no redactor", Context{Secret: secrets(map[string]string{"TOKEN": "t"})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := RenderString("{{secrets.TOKEN}}", tt.c)
			if err == nil || err.Error() != "{{secrets.TOKEN}}: secrets need both Context.Secret and Context.Redactor" {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("{")
	for i := range 50 {
		if i > 0 {
			b.WriteString(",")
		}
		// Keys in an order that sorting would change.
		b.WriteString(`"k` + strings.Repeat("z", 50-i) + `":"{{input.obj}}"`)
	}
	b.WriteString("}")
	body := json.RawMessage(b.String())
	first, err := Render(body, testContext())
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(b.String(), `"{{input.obj}}"`, `{"z":1,"a":[1,2]}`)
	if string(first) != want {
		t.Fatalf("member order changed:\n got %s\nwant %s", first, want)
	}
	for range 20 {
		again, err := Render(body, testContext())
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("render differs:\n%s\n%s", again, first)
		}
	}
}

func TestRenderDoesNotRescanValues(t *testing.T) {
	t.Parallel()
	c := testContext()
	c.Input = json.RawMessage(`{"t":"{{secrets.TOKEN}}","u":"}}"}`)
	got, err := Render(json.RawMessage(`["{{input.t}}","a {{input.u}} b"]`), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["{{secrets.TOKEN}}","a }} b"]`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestRenderLimitsSize(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("x", 60) + `"`
	tests := []struct {
		name   string
		body   string
		string bool // render with RenderString
	}{
		{"values", `["{{input}}","{{input}}"]`, false},
		{"text", `"{{input}}{{input}}"`, false},
		{"string", `{{input}}{{input}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Context{Input: json.RawMessage(big), MaxBytes: 100}
			var err error
			if tt.string {
				_, err = RenderString(tt.body, c)
			} else {
				_, err = Render(json.RawMessage(tt.body), c)
			}
			var re *RenderError
			if !errors.As(err, &re) || err.Error() != "the rendered value is larger than 100 bytes" {
				t.Fatalf("err = %v", err)
			}
			// Half the data fits.
			if _, err := RenderString("{{input}}", c); err != nil {
				t.Fatalf("one copy: %v", err)
			}
		})
	}
}

func TestRenderDefaultSizeLimit(t *testing.T) {
	t.Parallel()
	c := Context{Input: json.RawMessage(`"` + strings.Repeat("x", DefaultMaxBytes/2) + `"`)}
	if _, err := Render(json.RawMessage(`"{{input}}"`), c); err != nil {
		t.Fatalf("half the default limit: %v", err)
	}
	_, err := Render(json.RawMessage(`["{{input}}","{{input}}","{{input}}"]`), c)
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("err = %v", err)
	}
}

// TestRenderReadsDataOnce checks that many templates reading one object
// read it once, not once each: rendering stays linear in the data.
func TestRenderReadsDataOnce(t *testing.T) {
	t.Parallel()
	const n = 2000
	var in, s strings.Builder
	in.WriteString(`{"a":{"b":[`)
	for i := range n {
		if i > 0 {
			in.WriteString(",")
		}
		fmt.Fprintf(&in, `{"k":%d}`, i)
		fmt.Fprintf(&s, "{{input.a.b.%d.k}},", i)
	}
	in.WriteString(`]}}`)
	pieces, err := split(s.String())
	if err != nil {
		t.Fatal(err)
	}
	r := newRenderer(Context{Input: json.RawMessage(in.String())})
	got, err := r.text(pieces)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(got, ","); want != n || !strings.HasPrefix(got, "0,1,2,") {
		t.Fatalf("rendered %d values: %.40s...", want, got)
	}
	// The input, a, a.b, and each element of a.b once.
	if len(r.read) != 3+n {
		t.Fatalf("read %d containers, want %d", len(r.read), 3+n)
	}
}

func TestRenderRepeatedKeys(t *testing.T) {
	t.Parallel()
	c := Context{Input: json.RawMessage(`{"a":1,"a":2}`)}
	got, err := RenderString("{{input.a}}", c)
	if err != nil {
		t.Fatal(err)
	}
	if got != "2" {
		t.Fatalf("got %s, want the last value, as json.Unmarshal reads it", got)
	}
}

func TestRenderAdversarialSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, s, want string }{
		{"many openings", strings.Repeat("{{", 1<<18), `"{{" at byte 0 has no closing "}}" (a literal "{{" is not supported)`},
		{"many closings", strings.Repeat("}}", 1<<18), `"}}" at byte 0 has no opening "{{"`},
		{"many templates, then an unclosed one", strings.Repeat("{{run.id}}", 1<<15) + "{{", `"{{" at byte 327680 has no closing "}}" (a literal "{{" is not supported)`},
		{"long path", "{{input." + strings.Repeat("a", 1<<20) + "x}}", `{{input.` + strings.Repeat("a", 1<<20) + `x}}: the input has no field ` + strings.Repeat("a", 1<<20) + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := RenderString(tt.s, Context{RunID: "r", Input: json.RawMessage(`{}`)})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %.200v", err)
			}
		})
	}
}

func TestRenderURL(t *testing.T) {
	t.Parallel()
	c := Context{Input: json.RawMessage(`{"base":"https://pay.example/v1","id":"cu_1/refund?x=#f","q":"a&b=c d","n":7}`)}
	for tmpl, want := range map[string]string{
		"{{input.base}}/customers/{{input.id}}/charge":                   "https://pay.example/v1/customers/cu_1%2Frefund%3Fx=%23f/charge",
		"https://pay.example/c/{{input.id}}?q={{input.q}}&n={{input.n}}": "https://pay.example/c/cu_1%2Frefund%3Fx=%23f?q=a%26b%3Dc+d&n=7",
		"https://{{input.n}}.pay.example/x":                              "https://7.pay.example/x",
		"{{input.base}}":                                                 "https://pay.example/v1",
	} {
		got, err := RenderURL(tmpl, c)
		if err != nil || got != want {
			t.Errorf("RenderURL(%s) = %q, %v; want %q", tmpl, got, err, want)
		}
	}
}
