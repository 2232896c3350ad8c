package template

import (
	"fmt"
	"regexp"
	"strings"
)

// RenderError reports a template that cannot be filled in from the data
// given: a malformed template, or a value that is missing (a path the input
// or an output does not have, an absent output or order), or a result
// larger than Context.MaxBytes. Rendering the same config with the same
// data fails the same way, so retrying does not help. Its text never holds
// a value.
type RenderError struct {
	Template string // the template as written, braces included; empty when there is none
	Msg      string
}

func (e *RenderError) Error() string {
	if e.Template == "" {
		return e.Msg
	}
	return e.Template + ": " + e.Msg
}

func renderErr(tmpl, format string, args ...any) *RenderError {
	return &RenderError{Template: tmpl, Msg: fmt.Sprintf(format, args...)}
}

// The roots a template path may start with.
const (
	rootInput   = "input"
	rootSteps   = "steps"
	rootRun     = "run"
	rootOrder   = "order"
	rootSecrets = "secrets"
)

var secretName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// A ref is one parsed template.
type ref struct {
	text string   // as written, braces included
	root string   // one of the root constants
	rest string   // steps: the path after "steps."; secrets: the name
	path []string // input: the segments after the root
}

// A piece of a templated string is literal text or a template.
type piece struct {
	lit string
	ref *ref
}

// split cuts s into literal text and parsed templates. Empty literals are
// left out, so a string that is exactly one template is one piece.
func split(s string) ([]piece, error) {
	var pieces []piece
	for pos := 0; pos < len(s); {
		open := strings.Index(s[pos:], "{{")
		if close := strings.Index(s[pos:], "}}"); close >= 0 && (open < 0 || close < open) {
			return nil, renderErr("", `"}}" at byte %d has no opening "{{"`, pos+close)
		}
		if open < 0 {
			pieces = append(pieces, piece{lit: s[pos:]})
			break
		}
		if open > 0 {
			pieces = append(pieces, piece{lit: s[pos : pos+open]})
		}
		start := pos + open
		n := strings.Index(s[start+2:], "}}")
		if n < 0 {
			return nil, renderErr("", `"{{" at byte %d has no closing "}}" (a literal "{{" is not supported)`, start)
		}
		end := start + 2 + n + 2
		r, err := parse(s[start:end])
		if err != nil {
			return nil, err
		}
		pieces = append(pieces, piece{ref: r})
		pos = end
	}
	return pieces, nil
}

// parse checks the syntax of one template, text, which is "{{...}}".
// Whether a step id names a step is left to resolveStep.
func parse(text string) (*ref, error) {
	p := strings.Trim(text[2:len(text)-2], " ")
	if p == "" {
		return nil, renderErr(text, "the path is empty")
	}
	for _, c := range []byte(p) {
		if !isPathByte(c) {
			return nil, renderErr(text, "the path has the character %q; a path holds letters, digits, '_' and '-' in segments separated by '.'", c)
		}
	}
	root, rest, dotted := strings.Cut(p, ".")
	r := &ref{text: text, root: root, rest: rest}
	switch root {
	case rootInput:
		if dotted {
			path, err := segments(text, rest)
			if err != nil {
				return nil, err
			}
			r.path = path
		}
	case rootRun, rootOrder:
		if rest != "id" {
			return nil, renderErr(text, "%s has only the field id: write {{%s.id}}", root, root)
		}
	case rootSecrets:
		if !secretName.MatchString(rest) {
			return nil, renderErr(text, "a secret is named by {{secrets.NAME}}, where NAME matches %s", secretName)
		}
	case rootSteps:
		if len(outputSegments(rest)) == 0 {
			return nil, renderErr(text, "a step's output is read by {{steps.<step id>.output}}, optionally followed by a path")
		}
	case "":
		return nil, renderErr(text, "the path has an empty segment")
	default:
		return nil, renderErr(text, "unknown root %q; a path starts with input, steps, run, order or secrets", root)
	}
	return r, nil
}

func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

// segments splits a path after its root into non-empty segments, at most
// MaxDepth of them.
func segments(text, path string) ([]string, error) {
	if n := strings.Count(path, ".") + 1; n > MaxDepth {
		return nil, renderErr(text, "the path has %d segments after its root; the most is %d", n, MaxDepth)
	}
	segs := strings.Split(path, ".")
	for _, s := range segs {
		if s == "" {
			return nil, renderErr(text, "the path has an empty segment")
		}
	}
	return segs, nil
}

// outputSegments returns the offsets in rest (the path after "steps.") of
// each ".output" segment that follows a non-empty step id: the possible
// ends of the step id.
func outputSegments(rest string) []int {
	const seg = ".output"
	var ends []int
	for i := 1; i < len(rest); i++ {
		if strings.HasPrefix(rest[i:], seg) && (i+len(seg) == len(rest) || rest[i+len(seg)] == '.') {
			ends = append(ends, i)
		}
	}
	return ends
}

// resolveStep finds the step id of a steps reference among the ids for
// which known is true and returns it with the path after ".output". When no
// candidate is known it returns the first candidate and found false.
func resolveStep(r *ref, known func(id string) bool) (id string, path []string, found bool, err error) {
	ends := outputSegments(r.rest)
	end := -1
	for _, e := range ends {
		if !known(r.rest[:e]) {
			continue
		}
		if end >= 0 {
			return "", nil, false, renderErr(r.text, "the step id is ambiguous: both %q and %q are steps", r.rest[:end], r.rest[:e])
		}
		end = e
	}
	if end < 0 {
		return r.rest[:ends[0]], nil, false, nil
	}
	if after := r.rest[end+len(".output"):]; after != "" {
		if path, err = segments(r.text, after[1:]); err != nil {
			return "", nil, false, err
		}
	}
	return r.rest[:end], path, true, nil
}
