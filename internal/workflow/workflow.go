package workflow

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a definition. They are part of the API contract and are listed
// in README.
const (
	MaxSteps        = 100
	MaxNameLen      = 128 // characters
	MaxStepIDLen    = 64
	MaxTypeLen      = 64
	MaxActionLen    = 64
	MaxDurationSecs = 300
	// MinDurationSecs is the smallest duration above zero: the engine keeps
	// time in milliseconds.
	MinDurationSecs = 0.001
	// MinProbability is the smallest fail_probability above zero:
	// DynamoDB stores no number of smaller magnitude than 1e-130.
	MinProbability    = 1e-130
	MaxRetries        = 10
	DefaultDuration   = 1.0
	DefaultMaxRetries = 3
	DefaultType       = TypeTask
)

// Definition is a validated workflow definition with defaults applied. Steps
// keep the order the user wrote them in.
type Definition struct {
	Name  string `json:"name"`
	Steps []Step `json:"steps"`
}

// Step is one node of the DAG.
type Step struct {
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Config    Config   `json:"config"`
	DependsOn []string `json:"depends_on"`
}

// Config says what a step does and how it is retried. Which fields apply
// depends on the step's type (see types.go).
type Config struct {
	// Action names an order action (see package status); any other value,
	// or none, makes the step a plain step of its type.
	Action string `json:"action"`
	// DurationSeconds is how long the simulated task takes (task).
	DurationSeconds float64 `json:"duration_seconds"`
	// FailProbability is the chance, 0..1, that one attempt fails (task).
	FailProbability float64 `json:"fail_probability"`
	// MaxRetries is how many times a failed attempt is retried.
	MaxRetries int `json:"max_retries"`
	// URL, Method, Headers and Body describe the request of an http step;
	// strings in URL, Headers and Body may hold templates.
	URL     string            `json:"url,omitempty"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
	// TimeoutSeconds bounds an http step's request, or how long an
	// approval waits for a decision (0: for ever).
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Seconds is how long a wait step waits.
	Seconds float64 `json:"seconds,omitempty"`
}

// Input is a definition as a client sent it: optional fields are pointers so
// that absence can be told from zero.
type Input struct {
	Name  *string     `json:"name"`
	Steps []StepInput `json:"steps"`
}

// StepInput is one step as sent by a client.
type StepInput struct {
	ID        *string      `json:"id"`
	Type      *string      `json:"type"`
	Config    *ConfigInput `json:"config"`
	DependsOn []string     `json:"depends_on"`
}

// ConfigInput is a step's config as sent by a client.
type ConfigInput struct {
	Action          *string           `json:"action"`
	DurationSeconds *float64          `json:"duration_seconds"`
	FailProbability *float64          `json:"fail_probability"`
	MaxRetries      *int              `json:"max_retries"`
	URL             *string           `json:"url"`
	Method          *string           `json:"method"`
	Headers         map[string]string `json:"headers"`
	Body            json.RawMessage   `json:"body"`
	TimeoutSeconds  *float64          `json:"timeout_seconds"`
	Seconds         *float64          `json:"seconds"`
}

// FieldError reports invalid input. Field is a JSON path such as
// "steps[2].config.max_retries".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var stepIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Normalize validates in and returns the definition with defaults applied.
// The error, if any, is a *FieldError for the first problem found, checked
// in document order.
func (in Input) Normalize() (Definition, error) {
	var def Definition
	if in.Name == nil {
		return def, fieldErr("name", "is required")
	}
	name := strings.TrimSpace(*in.Name)
	if err := checkText("name", name, MaxNameLen); err != nil {
		return def, err
	}
	def.Name = name

	if len(in.Steps) == 0 {
		return def, fieldErr("steps", "must have at least one step")
	}
	if len(in.Steps) > MaxSteps {
		return def, fieldErr("steps", "has %d steps; the maximum is %d", len(in.Steps), MaxSteps)
	}
	index := make(map[string]int, len(in.Steps))
	def.Steps = make([]Step, len(in.Steps))
	for i, s := range in.Steps {
		st, err := s.normalize(fmt.Sprintf("steps[%d]", i))
		if err != nil {
			return Definition{}, err
		}
		if j, dup := index[st.ID]; dup {
			return Definition{}, fieldErr(fmt.Sprintf("steps[%d].id", i), "duplicates the id of steps[%d]: %q", j, st.ID)
		}
		index[st.ID] = i
		def.Steps[i] = st
	}
	for i, st := range def.Steps {
		seen := make(map[string]bool, len(st.DependsOn))
		for j, dep := range st.DependsOn {
			field := fmt.Sprintf("steps[%d].depends_on[%d]", i, j)
			switch {
			case dep == st.ID:
				return Definition{}, fieldErr(field, "step %q cannot depend on itself", st.ID)
			case seen[dep]:
				return Definition{}, fieldErr(field, "lists %q twice", dep)
			}
			if _, ok := index[dep]; !ok {
				return Definition{}, fieldErr(field, "names unknown step %q", dep)
			}
			seen[dep] = true
		}
	}
	if _, err := TopoSort(def.Steps); err != nil {
		return Definition{}, err
	}
	if err := checkTemplates(def); err != nil {
		return Definition{}, err
	}
	return def, nil
}

func (s StepInput) normalize(path string) (Step, error) {
	var st Step
	if s.ID == nil {
		return st, fieldErr(path+".id", "is required")
	}
	st.ID = *s.ID
	switch {
	case st.ID == "":
		return st, fieldErr(path+".id", "must not be empty")
	case len(st.ID) > MaxStepIDLen:
		return st, fieldErr(path+".id", "is longer than %d characters", MaxStepIDLen)
	case !stepIDPattern.MatchString(st.ID):
		return st, fieldErr(path+".id", "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")
	}
	st.Type = DefaultType
	if s.Type != nil {
		if err := checkText(path+".type", *s.Type, MaxTypeLen); err != nil {
			return st, err
		}
		if !slices.Contains(Types, *s.Type) {
			return st, fieldErr(path+".type", "must be one of %s, got %q", strings.Join(Types, ", "), *s.Type)
		}
		st.Type = *s.Type
	}
	st.Config = Config{DurationSeconds: DefaultDuration, MaxRetries: DefaultMaxRetries}
	if st.Type != TypeTask {
		st.Config = Config{MaxRetries: defaultRetries[st.Type]}
	}
	if c := s.Config; c != nil {
		cp := path + ".config"
		if err := c.fieldsOf(st.Type, cp); err != nil {
			return st, err
		}
		if c.Action != nil {
			if len(*c.Action) > MaxActionLen || !printable(*c.Action) {
				return st, fieldErr(cp+".action", "must be at most %d printable characters", MaxActionLen)
			}
			st.Config.Action = *c.Action
		}
		if c.DurationSeconds != nil {
			d := *c.DurationSeconds
			if d < 0 || d > MaxDurationSecs || (d > 0 && d < MinDurationSecs) {
				return st, fieldErr(cp+".duration_seconds", "must be 0 or between %v and %d (millisecond resolution), got %v", MinDurationSecs, MaxDurationSecs, d)
			}
			st.Config.DurationSeconds = d
		}
		if c.FailProbability != nil {
			p := *c.FailProbability
			if p < 0 || p > 1 || (p > 0 && p < MinProbability) {
				return st, fieldErr(cp+".fail_probability", "must be 0 or between %v and 1, got %v", MinProbability, p)
			}
			st.Config.FailProbability = p
		}
		if c.MaxRetries != nil {
			r := *c.MaxRetries
			if r < 0 || r > MaxRetries {
				return st, fieldErr(cp+".max_retries", "must be between 0 and %d, got %d", MaxRetries, r)
			}
			st.Config.MaxRetries = r
		}
		if err := c.normalizeTyped(st.Type, cp, &st.Config); err != nil {
			return st, err
		}
	}
	if err := st.Config.complete(st.Type, path+".config"); err != nil {
		return st, err
	}
	st.DependsOn = append([]string{}, s.DependsOn...)
	return st, nil
}

func checkText(field, s string, max int) error {
	switch {
	case s == "":
		return fieldErr(field, "must not be empty")
	case !utf8.ValidString(s):
		return fieldErr(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		return fieldErr(field, "is longer than %d characters", max)
	case strings.ContainsFunc(s, isBidiControl):
		return fieldErr(field, "must not contain bidirectional control characters (they can make text display as something else)")
	case !printable(s):
		return fieldErr(field, "must not contain control characters")
	case !strings.ContainsFunc(s, isVisible):
		return fieldErr(field, "must contain a visible character")
	}
	return nil
}

// printable reports whether s is valid UTF-8 with no control characters
// and no bidirectional controls.
func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || isBidiControl(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

// isBidiControl reports whether r is one of Unicode's explicit
// bidirectional formatting characters, which reorder how the text around
// them displays: the embeddings and overrides U+202A-U+202E, the isolates
// U+2066-U+2069 and the marks U+200E, U+200F and U+061C.
func isBidiControl(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }

// isVisible reports whether r draws something: not white space, not a
// format character such as a zero-width space or joiner, and not one of
// the characters Unicode says to render as nothing (Hangul fillers,
// variation selectors and the like), nor the blank braille pattern.
func isVisible(r rune) bool {
	return !unicode.In(r, unicode.White_Space, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) &&
		r != '\u2800'
}
