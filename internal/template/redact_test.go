package template

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

func redactor(secrets ...string) *Redactor {
	r := new(Redactor)
	for _, s := range secrets {
		r.Add(s)
	}
	return r
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"no secrets", nil, "token abc", "token abc"},
		{"empty secret ignored", []string{""}, "token abc", "token abc"},
		{"every occurrence", []string{"abc"}, "abc x abc", "[redacted] x [redacted]"},
		{"not present", []string{"abc"}, "ab c", "ab c"},
		{"longer secret wins", []string{"abc", "abcdef"}, "abcdefg", "[redacted]g"},
		{"overlapping secrets leave nothing", []string{"abc", "cde"}, "xabcdex", "x[redacted]x"},
		{"overlapping occurrences", []string{"aa"}, "baaab", "b[redacted]b"},
		{"touching occurrences", []string{"ab"}, "abab!", "[redacted]!"},
		{"JSON-escaped form", []string{`p"w\x`}, `{"k":"p\"w\\x"}`, `{"k":"[redacted]"}`},
		{"HTML-escaped JSON form", []string{"a<b"}, `{"k":"a\u003cb"}`, `{"k":"[redacted]"}`},
		{"query-escaped form", []string{"a b&c"}, "https://x/?t=a+b%26c", "https://x/?t=[redacted]"},
		{"path-escaped form", []string{"a b/c"}, "https://x/a%20b%2Fc/d", "https://x/[redacted]/d"},
		{"whole text", []string{"s"}, "s", "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redactor(tt.secrets...).Redact(tt.in); got != tt.want {
				t.Fatalf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactJSON(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t"
	tests := []struct{ name, in, want string }{
		{"untouched", `{"b": 1, "a": ["x", null, true]}`, `{"b":1,"a":["x",null,true]}`},
		{"string value", `{"echo":"Bearer s3cr3t"}`, `{"echo":"Bearer [redacted]"}`},
		{"escaped in the text", `{"echo":"\u0073\u0033cr3t"}`, `{"echo":"[redacted]"}`},
		{"key", `{"s3cr3t":1}`, `{"[redacted]":1}`},
		{"nested in an array", `[[{"a":["x s3cr3t"]}]]`, `[[{"a":["x [redacted]"]}]]`},
		{"not JSON", `<p>s3cr3t</p>`, `<p>[redacted]</p>`},
		{"deeper than MaxDepth", nested(100, `"s3cr3t"`), nested(100, `"[redacted]"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redactor(secret).RedactJSON(json.RawMessage(tt.in)); string(got) != tt.want {
				t.Fatalf("RedactJSON(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactJSONNumber(t *testing.T) {
	t.Parallel()
	got := redactor("123456").RedactJSON(json.RawMessage(`{"pin":123456,"n":12345}`))
	if want := `{"pin":"[redacted]","n":12345}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestRedactorConcurrent(t *testing.T) {
	t.Parallel()
	r := new(Redactor)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := "secret-" + strings.Repeat("x", i+1)
			r.Add(s)
			if got := r.Redact(s + "!"); !strings.HasSuffix(got, "[redacted]!") {
				t.Errorf("Redact = %q", got)
			}
		})
	}
	wg.Wait()
}
