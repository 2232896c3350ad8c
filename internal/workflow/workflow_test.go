package workflow

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, s string) Input {
	t.Helper()
	var in Input
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		t.Fatalf("test input is not JSON: %v", err)
	}
	return in
}

func TestNormalizeAppliesDefaults(t *testing.T) {
	t.Parallel()
	def, err := parse(t, `{"name":"  etl ","steps":[
		{"id":"a"},
		{"id":"b","type":"task","config":{"action":"x","duration_seconds":0,"fail_probability":0.5,"max_retries":0},"depends_on":["a"]},
		{"id":"c","type":"http","config":{"url":"https://pay.example/charges"},"depends_on":["a"]},
		{"id":"d","type":"wait","config":{"seconds":60}},
		{"id":"e","type":"approval"}]}`).Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if def.Name != "etl" {
		t.Errorf("name not trimmed: %q", def.Name)
	}
	want := []struct {
		typ string
		cfg Config
	}{
		{"task", Config{DurationSeconds: 1, MaxRetries: 3}},
		// Explicit zero values are kept, not replaced by defaults.
		{"task", Config{Action: "x", FailProbability: 0.5}},
		{"http", Config{URL: "https://pay.example/charges", Method: "POST", TimeoutSeconds: 10, MaxRetries: 3}},
		{"wait", Config{Seconds: 60}},
		{"approval", Config{}},
	}
	for i, w := range want {
		s := def.Steps[i]
		if s.Type != w.typ || !reflect.DeepEqual(s.Config, w.cfg) || s.DependsOn == nil {
			t.Errorf("step %s = %s %+v (depends_on %v), want %s %+v", s.ID, s.Type, s.Config, s.DependsOn, w.typ, w.cfg)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxSteps+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"id":"s%d"}`, i)
	}
	tests := []struct {
		name, input, field, msg string
	}{
		{"missing name", `{"steps":[{"id":"a"}]}`, "name", "required"},
		{"blank name", `{"name":"   ","steps":[{"id":"a"}]}`, "name", "empty"},
		{"long name", `{"name":"` + strings.Repeat("é", MaxNameLen+1) + `","steps":[{"id":"a"}]}`, "name", "longer than 128"},
		{"control char in name", `{"name":"a\u0007b","steps":[{"id":"a"}]}`, "name", "control"},
		{"no steps", `{"name":"w","steps":[]}`, "steps", "at least one"},
		{"null steps", `{"name":"w"}`, "steps", "at least one"},
		{"too many steps", `{"name":"w","steps":[` + strings.Join(many, ",") + `]}`, "steps", "maximum is 100"},
		{"missing id", `{"name":"w","steps":[{"id":"a"},{}]}`, "steps[1].id", "required"},
		{"empty id", `{"name":"w","steps":[{"id":""}]}`, "steps[0].id", "empty"},
		{"id with space", `{"name":"w","steps":[{"id":"a b"}]}`, "steps[0].id", "only letters"},
		{"id starting with dash", `{"name":"w","steps":[{"id":"-a"}]}`, "steps[0].id", "start with"},
		{"long id", `{"name":"w","steps":[{"id":"` + strings.Repeat("a", 65) + `"}]}`, "steps[0].id", "longer than 64"},
		{"duplicate id", `{"name":"w","steps":[{"id":"a"},{"id":"b"},{"id":"a"}]}`, "steps[2].id", "steps[0]"},
		{"empty type", `{"name":"w","steps":[{"id":"a","type":""}]}`, "steps[0].type", "empty"},
		{"long action", `{"name":"w","steps":[{"id":"a","config":{"action":"` + strings.Repeat("x", 65) + `"}}]}`, "steps[0].config.action", "64"},
		{"negative duration", `{"name":"w","steps":[{"id":"a","config":{"duration_seconds":-1}}]}`, "steps[0].config.duration_seconds", "between 0.001 and 300"},
		// DynamoDB rejects numbers this small ("Number underflow"); they
		// must never reach a run start.
		{"underflowing duration", `{"name":"w","steps":[{"id":"a","config":{"duration_seconds":1e-320}}]}`, "steps[0].config.duration_seconds", "millisecond"},
		{"sub-millisecond duration", `{"name":"w","steps":[{"id":"a","config":{"duration_seconds":0.0005}}]}`, "steps[0].config.duration_seconds", "0.0005"},
		{"underflowing probability", `{"name":"w","steps":[{"id":"a","config":{"fail_probability":1e-200}}]}`, "steps[0].config.fail_probability", "1e-130"},
		{"long duration", `{"name":"w","steps":[{"id":"a","config":{"duration_seconds":300.5}}]}`, "steps[0].config.duration_seconds", "300.5"},
		{"negative probability", `{"name":"w","steps":[{"id":"a","config":{"fail_probability":-0.1}}]}`, "steps[0].config.fail_probability", "between 1e-130 and 1"},
		{"probability over one", `{"name":"w","steps":[{"id":"a","config":{"fail_probability":1.01}}]}`, "steps[0].config.fail_probability", "and 1"},
		{"negative retries", `{"name":"w","steps":[{"id":"a","config":{"max_retries":-1}}]}`, "steps[0].config.max_retries", "between 0 and 10"},
		{"too many retries", `{"name":"w","steps":[{"id":"a","config":{"max_retries":11}}]}`, "steps[0].config.max_retries", "got 11"},
		{"unknown dependency", `{"name":"w","steps":[{"id":"a","depends_on":["zz"]}]}`, "steps[0].depends_on[0]", `unknown step "zz"`},
		{"self dependency", `{"name":"w","steps":[{"id":"a"},{"id":"b","depends_on":["a","b"]}]}`, "steps[1].depends_on[1]", "itself"},
		{"repeated dependency", `{"name":"w","steps":[{"id":"a"},{"id":"b","depends_on":["a","a"]}]}`, "steps[1].depends_on[1]", "twice"},
		{"two-step cycle", `{"name":"w","steps":[{"id":"a","depends_on":["b"]},{"id":"b","depends_on":["a"]}]}`, "steps", "cycle"},
		{"unknown type", `{"name":"w","steps":[{"id":"a","type":"htp"}]}`, "steps[0].type", `one of task, http, wait, approval, got "htp"`},
		{"task field on http step", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","duration_seconds":1}}]}`, "steps[0].config.duration_seconds", "does not apply to a http step"},
		{"http field on task", `{"name":"w","steps":[{"id":"a","config":{"url":"https://x.example"}}]}`, "steps[0].config.url", "does not apply to a task step"},
		{"http without url", `{"name":"w","steps":[{"id":"a","type":"http"}]}`, "steps[0].config.url", "required"},
		{"ftp url", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"ftp://x.example/f"}}]}`, "steps[0].config.url", "http:// or https://"},
		{"url with password", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://u:p@x.example/"}}]}`, "steps[0].config.url", "password"},
		{"unknown method", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","method":"TRACE"}}]}`, "steps[0].config.method", "TRACE"},
		{"reserved header", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","headers":{"Idempotency-Key":"k"}}}]}`, "steps[0].config.headers.Idempotency-Key", "set by Stepflow"},
		{"bad header name", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","headers":{"a b":"k"}}}]}`, "steps[0].config.headers.a b", "not a valid header name"},
		{"long http timeout", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","timeout_seconds":301}}]}`, "steps[0].config.timeout_seconds", "between 0.001 and 300"},
		{"wait without seconds", `{"name":"w","steps":[{"id":"a","type":"wait"}]}`, "steps[0].config.seconds", "required"},
		{"wait over a year", `{"name":"w","steps":[{"id":"a","type":"wait","config":{"seconds":31536001}}]}`, "steps[0].config.seconds", "a year"},
		{"retries on a wait", `{"name":"w","steps":[{"id":"a","type":"wait","config":{"seconds":1,"max_retries":1}}]}`, "steps[0].config.max_retries", "does not apply to a wait step"},
		{"template of a step not depended on", `{"name":"w","steps":[{"id":"a"},{"id":"b","type":"http","config":{"url":"https://x.example","body":{"v":"{{steps.a.output.id}}"}}}]}`, "steps[1].config.body.v", "a"},
		{"template with unknown root", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example/{{env.HOME}}"}}]}`, "steps[0].config.url", "env"},
		{"malformed template", `{"name":"w","steps":[{"id":"a","type":"http","config":{"url":"https://x.example","headers":{"X":"{{input.a"}}}]}`, "steps[0].config.headers.X", "{{"},
		{"cycle behind a valid prefix", `{"name":"w","steps":[{"id":"root"},{"id":"x","depends_on":["root","z"]},{"id":"y","depends_on":["x"]},{"id":"z","depends_on":["y"]}]}`, "steps", "cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tt.input).Normalize()
			fe, ok := err.(*FieldError)
			if !ok {
				t.Fatalf("err = %v (%T), want *FieldError", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %s: %s; want field %s with %q", fe.Field, fe.Msg, tt.field, tt.msg)
			}
		})
	}
}

func TestNormalizeAcceptsLimits(t *testing.T) {
	t.Parallel()
	steps := make([]string, MaxSteps)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","config":{"duration_seconds":300,"fail_probability":1,"max_retries":10}}`, i)
	}
	in := parse(t, `{"name":"`+strings.Repeat("n", MaxNameLen)+`","steps":[`+strings.Join(steps, ",")+`]}`)
	if _, err := in.Normalize(); err != nil {
		t.Fatalf("input at every limit was rejected: %v", err)
	}
}

func steps(spec ...string) []Step {
	// spec entries are "id" or "id:dep1,dep2".
	out := make([]Step, len(spec))
	for i, s := range spec {
		id, deps, _ := strings.Cut(s, ":")
		out[i].ID = id
		if deps != "" {
			out[i].DependsOn = strings.Split(deps, ",")
		}
	}
	return out
}

func ids(s []Step, order []int) string {
	names := make([]string, len(order))
	for i, n := range order {
		names[i] = s[n].ID
	}
	return strings.Join(names, " ")
}

func TestTopoSort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []Step
		want  string
	}{
		{"no dependencies keeps written order", steps("c", "a", "b"), "c a b"},
		{"chain", steps("a", "b:a", "c:b"), "a b c"},
		{"diamond", steps("a", "b:a", "c:a", "d:b,c"), "a b c d"},
		{"out of order input", steps("d:b,c", "c:a", "b:a", "a"), "a c b d"},
		{"stable among ready steps", steps("x", "late:x", "early", "mid:early"), "x late early mid"},
		{"join waits for all parents", steps("j:p2,p1", "p1", "p2:p1"), "p1 p2 j"},
		{"independent chains interleave by written order", steps("a1", "b1", "a2:a1", "b2:b1"), "a1 b1 a2 b2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			order, err := TopoSort(tt.steps)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(tt.steps, order); got != tt.want {
				t.Fatalf("order = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTopoSortNamesTheCycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		steps []Step
		want  string
	}{
		{steps("a:b", "b:a"), "a -> b -> a"},
		{steps("root", "x:root,z", "y:x", "z:y", "tail:z"), "x -> y -> z -> x"},
		{steps("ok", "p:q", "q:r", "r:p"), "p -> r -> q -> p"}, // p depends on q, so q runs first
	}
	for _, tt := range tests {
		_, err := TopoSort(tt.steps)
		if err == nil {
			t.Fatalf("no error for cycle %s", tt.want)
		}
		// The cycle may start at any member; check the rotation.
		msg := err.Error()
		members := strings.Split(tt.want, " -> ")
		members = members[:len(members)-1]
		found := false
		for r := range members {
			rot := append(append([]string{}, members[r:]...), members[:r]...)
			rot = append(rot, rot[0])
			if strings.Contains(msg, strings.Join(rot, " -> ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("error %q does not name cycle %s", msg, tt.want)
		}
	}
}

func TestDependents(t *testing.T) {
	t.Parallel()
	got := Dependents(steps("a", "b:a", "c:a", "d:b,c"))
	want := "[[1 2] [3] [3] []]"
	if fmt.Sprint(got) != want {
		t.Fatalf("Dependents = %v, want %s", got, want)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	def := Definition{Name: "d", Steps: steps("d:b,c", "c:a", "b:a", "a")}
	plan, err := NewPlan(def)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, p := range plan {
		if p.Index != i {
			t.Fatalf("plan[%d].Index = %d", i, p.Index)
		}
		got = append(got, fmt.Sprintf("%s%v%v", p.ID, p.Parents, p.Dependents))
	}
	// a runs first and feeds c (index 1) and b (index 2); both feed d (3).
	if want := "a[][1 2] c[0][3] b[0][3] d[1 2][]"; strings.Join(got, " ") != want {
		t.Fatalf("plan = %s, want %s", strings.Join(got, " "), want)
	}
}
