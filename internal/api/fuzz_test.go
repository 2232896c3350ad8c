package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"stepflow/internal/workflow"
)

// FuzzDecodeWorkflow checks that any body either decodes to a definition
// that can be planned and round-trips, or is rejected with a 4xx that a
// client can act on. It must never panic.
func FuzzDecodeWorkflow(f *testing.F) {
	for _, seed := range []string{
		`{"name":"w","steps":[{"id":"a"},{"id":"b","depends_on":["a"]}]}`,
		`{"name":"d","steps":[{"id":"D","depends_on":["B","C"]},{"id":"B","depends_on":["A"]},{"id":"C","depends_on":["A"]},{"id":"A","config":{"action":"validate_order","duration_seconds":0.5,"fail_probability":0.1,"max_retries":2}}]}`,
		`{"name":"c","steps":[{"id":"a","depends_on":["b"]},{"id":"b","depends_on":["a"]}]}`,
		`{"name":5}`, `[]`, `{"name":"x","steps":[{"id":"a","config":{"max_retries":1e9}}]}`, ``, `{"name":"\u0000"}`,
		// Holes the v1 decoder left open: duplicate names, names in another
		// case, invalid UTF-8 and lone surrogates.
		`{"name":"w","name":"v","steps":[{"id":"a"}]}`, `{"NAME":"w","steps":[{"id":"a"}]}`,
		"{\"name\":\"w\xff\",\"steps\":[{\"id\":\"a\"}]}", `{"name":"w\ud800","steps":[{"id":"a"}]}`,
		`{"name":"w","steps":[{"id":"a"},{"id":"b","config":{"max_retries":"3"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		def, err := decodeWorkflow(bytes.NewReader(body))
		if err != nil {
			var he *httpError
			var fe *workflow.FieldError
			switch {
			case errors.As(err, &he):
				if he.status != http.StatusBadRequest && he.status != http.StatusRequestEntityTooLarge {
					t.Fatalf("decode error with status %d: %v", he.status, err)
				}
			case errors.As(err, &fe):
				if fe.Field == "" {
					t.Fatalf("validation error names no field: %v", err)
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if n := len(def.Steps); n < 1 || n > workflow.MaxSteps {
			t.Fatalf("accepted %d steps", n)
		}
		plan, err := workflow.NewPlan(def)
		if err != nil || len(plan) != len(def.Steps) {
			t.Fatalf("accepted definition cannot be planned: %v", err)
		}
		// What we store and return must decode to the same definition.
		out, err := json.Marshal(def)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeWorkflow(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("stored definition is rejected on re-submission: %v\n%s", err, out)
		}
		if a, b := mustJSON(t, again), string(out); a != b {
			t.Fatalf("definition changed on round trip:\n%s\n%s", a, b)
		}
	})
}

// FuzzCheckAmount checks the order amount rule: accepted amounts are
// positive, capped, and have at most two decimals.
func FuzzCheckAmount(f *testing.F) {
	for _, seed := range []string{"19.99", "0", "0.01", "1000000", "1000000.01", "-1", "1e3", "01", "1.005"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := jsonNumber(s)
		amount, err := checkAmount(&n)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status != http.StatusUnprocessableEntity || he.field != "amount" {
				t.Fatalf("bad error for %q: %v", s, err)
			}
			return
		}
		if !amountPattern.MatchString(string(amount)) || string(amount) != s {
			t.Fatalf("accepted %q as %q", s, amount)
		}
		var f float64
		if err := json.Unmarshal([]byte(s), &f); err != nil || f <= 0 || f > MaxAmount {
			t.Fatalf("accepted %q (%v, %v)", s, f, err)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
