package template

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Redacted is what a Redactor puts in place of a secret.
const Redacted = "[redacted]"

// Redactor hides secret values: Render adds each secret it resolves, and
// the caller redacts with it whatever it stores or logs that may hold one
// (the rendered request, a response, an error). Besides a value as it is,
// a Redactor hides the forms it takes escaped in a JSON string and in a
// URL. Text where occurrences of secrets overlap or touch becomes a single
// Redacted, so that no part of any secret is left. A short secret hides
// every occurrence of its text, wanted or not. The zero value holds no
// secrets; a Redactor is safe for concurrent use.
type Redactor struct {
	mu    sync.Mutex
	forms []string // the forms of the secrets added, non-empty and distinct
}

// Add makes r hide secret. An empty secret is ignored.
func (r *Redactor) Add(secret string) {
	if secret == "" {
		return
	}
	escaped := string(quote(secret))
	htmlEscaped, _ := json.Marshal(secret) // a string always encodes
	forms := []string{
		secret,
		escaped[1 : len(escaped)-1],
		string(htmlEscaped[1 : len(htmlEscaped)-1]),
		url.QueryEscape(secret),
		url.PathEscape(secret),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		if !slices.Contains(r.forms, f) {
			r.forms = append(r.forms, f)
		}
	}
}

// Redact returns s with every occurrence of a secret replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hidden []bool // hidden[i]: byte i of s is part of a secret
	for _, f := range r.forms {
		end := 0 // where the last occurrence of f ends
		for i := 0; ; i++ {
			j := strings.Index(s[i:], f)
			if j < 0 {
				break
			}
			if hidden == nil {
				hidden = make([]bool, len(s))
			}
			i += j
			for k := max(i, end); k < i+len(f); k++ {
				hidden[k] = true
			}
			end = i + len(f)
		}
	}
	if hidden == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case !hidden[i]:
			b.WriteByte(s[i])
		case i == 0 || !hidden[i-1]:
			b.WriteString(Redacted)
		}
	}
	return b.String()
}

// RedactJSON returns the JSON value v with every secret in its keys,
// strings and numbers replaced by Redacted (a number holding one becomes
// the string "[redacted]"). It decodes strings first, so escapes cannot
// hide a secret, and returns compact JSON. A v that is not valid JSON is
// redacted as text with Redact.
func (r *Redactor) RedactJSON(v json.RawMessage) json.RawMessage {
	out, err := new(walker).walk(v, func(_ *walker, k kind, s string) ([]byte, error) {
		red := r.Redact(s)
		switch {
		case red == s:
			return nil, nil
		case k == numberToken:
			return quote(Redacted), nil
		}
		return quote(red), nil
	})
	if err != nil {
		return json.RawMessage(r.Redact(string(v)))
	}
	return out
}
