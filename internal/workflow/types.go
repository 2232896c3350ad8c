package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"stepflow/internal/template"
)

// Step types.
const (
	// TypeTask simulates work: it takes duration_seconds and fails with
	// fail_probability (the prototype's steps).
	TypeTask = "task"
	// TypeHTTP calls an HTTP endpoint (url, method, headers, body,
	// timeout_seconds); its output is the response.
	TypeHTTP = "http"
	// TypeWait waits seconds, without holding a runner.
	TypeWait = "wait"
	// TypeApproval waits for a person or an outside system to complete or
	// fail it, for at most timeout_seconds (0: for ever).
	TypeApproval = "approval"
)

// Types lists the step types.
var Types = []string{TypeTask, TypeHTTP, TypeWait, TypeApproval}

// Limits of the typed configs. They are part of the API contract (README).
const (
	DefaultHTTPTimeoutSecs = 10.0
	MaxHTTPTimeoutSecs     = 300.0
	// MaxWaitSecs bounds a wait step and an approval's timeout: a year.
	MaxWaitSecs     = 365 * 24 * 3600.0
	MaxHeaders      = 32
	MaxHeaderName   = 64
	MaxHeaderValue  = 2048
	MaxURLLen       = 2048
	DefaultHTTPVerb = "POST"
)

// Methods are the HTTP methods an http step may use.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// defaultRetries is max_retries when a step of the type does not say.
var defaultRetries = map[string]int{TypeTask: DefaultMaxRetries, TypeHTTP: DefaultMaxRetries, TypeWait: 0, TypeApproval: 0}

// fieldsFor lists the config fields each type takes (action and, but for
// wait and approval, max_retries apply to all).
var fieldsFor = map[string][]string{
	TypeTask:     {"action", "duration_seconds", "fail_probability", "max_retries"},
	TypeHTTP:     {"action", "max_retries", "url", "method", "headers", "body", "timeout_seconds"},
	TypeWait:     {"action", "seconds"},
	TypeApproval: {"action", "timeout_seconds"},
}

// fieldsOf rejects a config field that does not apply to the step's type.
func (c *ConfigInput) fieldsOf(typ, path string) error {
	given := map[string]bool{
		"action": c.Action != nil, "duration_seconds": c.DurationSeconds != nil, "fail_probability": c.FailProbability != nil,
		"max_retries": c.MaxRetries != nil, "url": c.URL != nil, "method": c.Method != nil, "headers": c.Headers != nil,
		"body": c.Body != nil, "timeout_seconds": c.TimeoutSeconds != nil, "seconds": c.Seconds != nil,
	}
	for _, name := range []string{"action", "duration_seconds", "fail_probability", "max_retries", "url", "method", "headers", "body", "timeout_seconds", "seconds"} {
		if given[name] && !slices.Contains(fieldsFor[typ], name) {
			return fieldErr(path+"."+name, "does not apply to a %s step (its fields: %s)", typ, strings.Join(fieldsFor[typ], ", "))
		}
	}
	return nil
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reservedHeaders are set by Stepflow or by the HTTP client itself.
var reservedHeaders = []string{"idempotency-key", "host", "content-length", "transfer-encoding", "connection"}

// normalizeTyped validates the fields of an http, wait or approval step
// into cfg.
func (c *ConfigInput) normalizeTyped(typ, path string, cfg *Config) error {
	if c.URL != nil {
		u := strings.TrimSpace(*c.URL)
		if err := checkURL(path+".url", u); err != nil {
			return err
		}
		cfg.URL = u
	}
	if c.Method != nil {
		m := strings.ToUpper(*c.Method)
		if !slices.Contains(Methods, m) {
			return fieldErr(path+".method", "must be one of %s, got %q", strings.Join(Methods, ", "), *c.Method)
		}
		cfg.Method = m
	}
	if c.Headers != nil {
		if len(c.Headers) > MaxHeaders {
			return fieldErr(path+".headers", "has %d headers; the maximum is %d", len(c.Headers), MaxHeaders)
		}
		seen := map[string]string{}
		for _, name := range sortedNames(c.Headers) {
			field := path + ".headers." + name
			v := c.Headers[name]
			lower := strings.ToLower(name)
			switch {
			case len(name) > MaxHeaderName || !headerName.MatchString(name):
				return fieldErr(field, "is not a valid header name (at most %d of letters, digits and !#$%%&'*+.^_`|~-)", MaxHeaderName)
			case slices.Contains(reservedHeaders, lower):
				return fieldErr(field, "is set by Stepflow or the HTTP client; it cannot be set here")
			case seen[lower] != "":
				return fieldErr(field, "is the same header as %q (names are not case-sensitive)", seen[lower])
			case len(v) > MaxHeaderValue:
				return fieldErr(field, "is longer than %d bytes", MaxHeaderValue)
			case !printable(v):
				return fieldErr(field, "must not contain control characters")
			}
			seen[lower] = name
		}
		cfg.Headers = c.Headers
	}
	if c.Body != nil {
		cfg.Body = append(json.RawMessage(nil), c.Body...)
	}
	if c.TimeoutSeconds != nil {
		t, most := *c.TimeoutSeconds, MaxHTTPTimeoutSecs
		if typ == TypeApproval {
			most = MaxWaitSecs
		}
		if t < MinDurationSecs || t > most {
			return fieldErr(path+".timeout_seconds", "must be between %v and %v, got %v", MinDurationSecs, most, t)
		}
		cfg.TimeoutSeconds = t
	}
	if c.Seconds != nil {
		w := *c.Seconds
		if w < MinDurationSecs || w > MaxWaitSecs {
			return fieldErr(path+".seconds", "must be between %v and %v (a year), got %v", MinDurationSecs, MaxWaitSecs, w)
		}
		cfg.Seconds = w
	}
	return nil
}

// complete checks the fields a type requires and fills in its defaults.
func (c *Config) complete(typ, path string) error {
	switch typ {
	case TypeHTTP:
		if c.URL == "" {
			return fieldErr(path+".url", "is required for an http step")
		}
		if c.Method == "" {
			c.Method = DefaultHTTPVerb
		}
		if c.TimeoutSeconds == 0 {
			c.TimeoutSeconds = DefaultHTTPTimeoutSecs
		}
	case TypeWait:
		if c.Seconds == 0 {
			return fieldErr(path+".seconds", "is required for a wait step")
		}
	}
	return nil
}

// checkURL checks an http step's url: an absolute http or https URL with a
// host and no user info, or one that templates build (checked when the
// step runs, after they are filled in).
func checkURL(field, u string) error {
	switch {
	case u == "":
		return fieldErr(field, "must not be empty")
	case len(u) > MaxURLLen:
		return fieldErr(field, "is longer than %d bytes", MaxURLLen)
	case !printable(u) || strings.ContainsAny(u, " \t"):
		return fieldErr(field, "must not contain spaces or control characters")
	case strings.HasPrefix(u, "{{"):
		return nil // built by a template: checked when the step runs
	}
	lower := strings.ToLower(u)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return fieldErr(field, "must be an http:// or https:// URL")
	}
	if strings.Contains(u, "{{") {
		// Templates after the scheme: the host or path is filled in at
		// run time.
		return nil
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fieldErr(field, "is not a valid URL")
	case p.Host == "":
		return fieldErr(field, "has no host")
	case p.User != nil:
		return fieldErr(field, "must not carry a user name or password (use headers, with secrets)")
	}
	return nil
}

// checkTemplates validates the templates of every http step: their syntax,
// their roots, and that each step they read is among the step's
// dependencies (direct or not), so its output exists when the step runs.
func checkTemplates(def Definition) error {
	all := map[string]bool{}
	for _, s := range def.Steps {
		all[s.ID] = true
	}
	for i, s := range def.Steps {
		if s.Type != TypeHTTP {
			continue
		}
		deps := transitiveDeps(def.Steps, i)
		path := fmt.Sprintf("steps[%d].config", i)
		if err := fieldError(template.CheckString(s.Config.URL, path+".url", deps, all)); err != nil {
			return err
		}
		for _, name := range sortedNames(s.Config.Headers) {
			if err := fieldError(template.CheckString(s.Config.Headers[name], path+".headers."+name, deps, all)); err != nil {
				return err
			}
		}
		if s.Config.Body != nil {
			if err := fieldError(template.Check(s.Config.Body, path+".body", deps, all)); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldError(err error) error {
	var te *template.Error
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Msg: te.Msg}
	}
	return err
}

// transitiveDeps returns the ids of the steps step i waits for, directly
// or not.
func transitiveDeps(steps []Step, i int) map[string]bool {
	index := make(map[string]int, len(steps))
	for n, s := range steps {
		index[s.ID] = n
	}
	out := map[string]bool{}
	todo := slices.Clone(steps[i].DependsOn)
	for len(todo) > 0 {
		id := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if out[id] {
			continue
		}
		out[id] = true
		todo = append(todo, steps[index[id]].DependsOn...)
	}
	return out
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
