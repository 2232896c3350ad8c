package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DefaultMaxBytes is the most bytes a rendered value may have when
// Context.MaxBytes is 0.
const DefaultMaxBytes = 1 << 20

// Context is the data templates are filled in from.
type Context struct {
	// Input is the run's input; empty stands for null.
	Input json.RawMessage
	// Outputs holds the outputs of steps by step id; an empty output
	// stands for null. Only the outputs templates read are needed (see
	// Needs).
	Outputs map[string]json.RawMessage
	// RunID and OrderID name the run and its order; OrderID is empty for a
	// run without an order.
	RunID, OrderID string
	// Secret resolves a secret by name. It may be called more than once
	// for one name.
	Secret func(name string) (string, error)
	// Redactor receives every secret value Render resolves. It must not be
	// nil when a template uses a secret.
	Redactor *Redactor
	// MaxBytes is the most bytes a rendered value may have, so that
	// templates cannot blow a large input up into a huge request; 0 (or
	// less) means DefaultMaxBytes.
	MaxBytes int
}

// Render fills in the templates in every string of the JSON value v
// (object values and array elements at any depth; object keys are not
// templated) and returns the result as compact JSON, object members in the
// order v has them. A string that is exactly one template becomes the
// value, with its JSON type; any other string stays a string. An empty v
// is returned as it is.
//
// A template whose value cannot be found, or a result larger than
// c.MaxBytes, is a *RenderError; an error from Secret is returned wrapped;
// a v that is not valid JSON or nests deeper than MaxDepth is an *Error on
// the field "value". No error text holds a value. The result may hold
// secrets: redact it with c.Redactor before storing or logging it.
func Render(v json.RawMessage, c Context) (json.RawMessage, error) {
	r := newRenderer(c)
	w := &walker{prefix: "value", maxDepth: MaxDepth, maxBytes: r.MaxBytes}
	return w.walk(v, func(_ *walker, k kind, s string) ([]byte, error) {
		if k != stringToken {
			return nil, nil
		}
		pieces, err := split(s)
		switch {
		case err != nil:
			return nil, err
		case len(pieces) == 1 && pieces[0].ref != nil:
			return r.value(pieces[0].ref)
		case len(pieces) <= 1:
			return nil, nil // no template
		}
		text, err := r.text(pieces)
		if err != nil {
			return nil, err
		}
		return quote(text), nil
	})
}

// RenderString fills in the templates in s, for a url or a header value:
// each template's value is inserted as text (a string as it is, any other
// value as its compact JSON text), even when s is exactly one template.
// Its errors are those of Render.
func RenderString(s string, c Context) (string, error) {
	pieces, err := split(s)
	if err != nil {
		return "", err
	}
	return newRenderer(c).text(pieces)
}

// A renderer fills in the templates of one value. It reads each object and
// array of the data at most once, however many templates read from it, so
// rendering takes time linear in the sizes of the config, the data and the
// result.
type renderer struct {
	Context
	read map[string]*container // by root and path, see lookup
}

// A container is an object or array of the data, read.
type container struct {
	array  bool
	fields map[string]json.RawMessage
	elems  []json.RawMessage
}

func newRenderer(c Context) *renderer {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return &renderer{Context: c, read: make(map[string]*container)}
}

// RenderURL is RenderString for a url: a value inserted where the scheme
// and the host are being written (before the first "/" after "://", so
// that a base URL can come from the input) goes in as it is; one in the
// path is escaped as a path segment ("/", "?" and "#" included), and one in
// the query or the fragment as a query component. So a value can never
// change which path or parameter of its service is called. Its errors are
// those of Render.
func RenderURL(s string, c Context) (string, error) {
	pieces, err := split(s)
	if err != nil {
		return "", err
	}
	return newRenderer(c).joined(pieces, urlEscape)
}

// urlEscape escapes value v for where it goes after the text so far.
func urlEscape(sofar, v string) string {
	scheme := strings.Index(sofar, "://")
	switch {
	case scheme < 0 || !strings.Contains(sofar[scheme+3:], "/"):
		return v // the scheme or the host
	case strings.ContainsAny(sofar, "?#"):
		return url.QueryEscape(v)
	}
	return url.PathEscape(v) // a segment: "/" is escaped too
}

// text joins pieces, inserting each template's value as text.
func (r *renderer) text(pieces []piece) (string, error) {
	return r.joined(pieces, nil)
}

// joined joins pieces, inserting each template's value as text, escaped by
// escape (given the text so far) if set.
func (r *renderer) joined(pieces []piece, escape func(sofar, v string) string) (string, error) {
	var b strings.Builder
	for _, p := range pieces {
		if p.ref == nil {
			b.WriteString(p.lit)
		} else {
			v, err := r.value(p.ref)
			if err != nil {
				return "", err
			}
			text := string(v)
			if v[0] == '"' {
				if err := json.Unmarshal(v, &text); err != nil {
					return "", fmt.Errorf("%s: decoding the value: %w", p.ref.text, err)
				}
			}
			if escape != nil {
				text = escape(b.String(), text)
			}
			b.WriteString(text)
		}
		if b.Len() > r.MaxBytes {
			return "", tooLarge(r.MaxBytes)
		}
	}
	return b.String(), nil
}

// value returns the compact JSON value of the template t.
func (r *renderer) value(t *ref) (json.RawMessage, error) {
	switch t.root {
	case rootInput:
		return r.lookup(t, r.Input, t.path, "the input")
	case rootSteps:
		id, path, found, err := resolveStep(t, func(id string) bool { _, ok := r.Outputs[id]; return ok })
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, renderErr(t.text, "there is no output of step %s", id)
		}
		return r.lookup(t, r.Outputs[id], path, "the output of step "+id)
	case rootRun:
		if r.RunID == "" {
			return nil, renderErr(t.text, "no run id was given")
		}
		return quote(r.RunID), nil
	case rootOrder:
		if r.OrderID == "" {
			return nil, renderErr(t.text, "the run has no order")
		}
		return quote(r.OrderID), nil
	case rootSecrets:
		if r.Secret == nil || r.Redactor == nil {
			return nil, fmt.Errorf("%s: secrets need both Context.Secret and Context.Redactor", t.text)
		}
		s, err := r.Secret(t.rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.text, err)
		}
		r.Redactor.Add(s)
		return quote(s), nil
	}
	return nil, renderErr(t.text, "unknown root %q", t.root) // parse allows no other root
}

// lookup follows path from root, a JSON value that desc describes, and
// returns the value found, compacted.
func (r *renderer) lookup(t *ref, root json.RawMessage, path []string, desc string) (json.RawMessage, error) {
	v := bytes.TrimSpace(root)
	if len(v) == 0 {
		v = json.RawMessage("null")
	}
	for i, seg := range path {
		at := strings.Join(path[:i+1], ".") // the path being read
		from := strings.Join(path[:i], ".") // the path of v
		c, err := r.container(desc+"\x00"+from, v, i == 0)
		if err != nil {
			return nil, renderErr(t.text, "%s is not valid JSON", desc)
		}
		it := from // v, in messages
		if it == "" {
			it = "it"
		}
		switch {
		case c == nil:
			return nil, renderErr(t.text, "%s has no field %s: %s is %s", desc, at, it, kindOf(v))
		case !c.array:
			next, ok := c.fields[seg]
			if !ok {
				return nil, renderErr(t.text, "%s has no field %s", desc, at)
			}
			v = next
		default:
			n, ok := index(seg)
			if !ok {
				return nil, renderErr(t.text, "%s has no field %s: %s is an array", desc, at, it)
			}
			if n < 0 || n >= len(c.elems) {
				return nil, renderErr(t.text, "%s has no element %s: %s has %d %s", desc, at, it, len(c.elems), plural(len(c.elems), "element"))
			}
			v = c.elems[n]
		}
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return nil, renderErr(t.text, "%s is not valid JSON", desc)
	}
	return b.Bytes(), nil
}

// container returns the object or array v, read, or nil if v is neither.
// key names v (its root and path): each value is read once. A root is
// checked to be valid JSON as a whole when first read.
func (r *renderer) container(key string, v json.RawMessage, root bool) (*container, error) {
	if c, ok := r.read[key]; ok {
		return c, nil
	}
	if root && !json.Valid(v) {
		return nil, errors.New("invalid JSON")
	}
	c, err := readContainer(v)
	if err != nil {
		return nil, err
	}
	r.read[key] = c
	return c, nil
}

// readContainer reads the members of the object or elements of the array
// v. It returns nil for any other value.
func readContainer(v json.RawMessage) (*container, error) {
	var c *container
	switch v[0] {
	case '{':
		c = &container{fields: make(map[string]json.RawMessage)}
	case '[':
		c = &container{array: true}
	default:
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for dec.More() {
		var name string
		if !c.array {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			name, _ = tok.(string)
		}
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			return nil, err
		}
		if c.array {
			c.elems = append(c.elems, m)
		} else {
			c.fields[name] = m // of repeated names the last counts, as with json.Unmarshal
		}
	}
	return c, nil
}

// index parses an array index: decimal digits with no sign and no leading
// zero except in "0". An index too large for an int is returned as -1,
// which no element has.
func index(seg string) (int, bool) {
	for _, c := range []byte(seg) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	if seg == "" || len(seg) > 1 && seg[0] == '0' {
		return 0, false
	}
	i, err := strconv.Atoi(seg)
	if errors.Is(err, strconv.ErrRange) {
		return -1, true
	}
	return i, err == nil
}

// kindOf names the type of a valid, non-container JSON value.
func kindOf(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
