package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// MaxDepth is how deeply the arrays and objects of a templated value may
// nest.
const MaxDepth = 64

// The kinds of token walk hands to its visitor.
type kind int

const (
	keyToken kind = iota
	stringToken
	numberToken
)

// A visitor sees one key, string or number token and returns the JSON text
// to write in its place, or nil to keep it.
type visitor func(w *walker, k kind, s string) ([]byte, error)

type frame struct {
	array   bool
	n       int    // members or elements begun so far
	key     string // object: the key of the current member
	wantKey bool   // object: the next token is a key
}

// A walker re-encodes one JSON value token by token.
type walker struct {
	prefix   string // the JSON path of the value, for errors
	maxDepth int    // how deeply containers may nest; 0: as deeply as encoding/json allows
	maxBytes int    // the most bytes the result may have; 0: no limit
	stack    []frame
}

// walk re-encodes the JSON value v compactly, keeping the order of object
// members, and passes every key, string and number to visit, which may
// replace it. An empty v is returned as it is. Errors of its own are *Error
// whose Field is w.prefix followed by the path of the bad value, or a
// *RenderError for a result larger than w.maxBytes.
func (w *walker) walk(v []byte, visit visitor) ([]byte, error) {
	if len(bytes.TrimSpace(v)) == 0 {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var out bytes.Buffer
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, &Error{Field: w.prefix, Msg: "is not valid JSON"}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			w.stack = w.stack[:len(w.stack)-1]
		} else {
			if len(w.stack) > 0 {
				top := &w.stack[len(w.stack)-1]
				if top.n > 0 && (top.array || top.wantKey) {
					out.WriteByte(',')
				}
				top.n++
				if top.wantKey {
					top.key, top.wantKey = tok.(string), false
					if err := w.write(&out, visit, keyToken, top.key, quote(top.key)); err != nil {
						return nil, err
					}
					out.WriteByte(':')
					continue
				}
			}
			switch t := tok.(type) {
			case json.Delim:
				if w.maxDepth > 0 && len(w.stack) == w.maxDepth {
					return nil, &Error{Field: w.path(), Msg: fmt.Sprintf("nests deeper than %d levels", w.maxDepth)}
				}
				out.WriteByte(byte(t))
				w.stack = append(w.stack, frame{array: t == '[', wantKey: t == '{'})
				continue
			case string:
				err = w.write(&out, visit, stringToken, t, quote(t))
			case json.Number:
				err = w.write(&out, visit, numberToken, t.String(), []byte(t))
			case bool:
				out.WriteString(strconv.FormatBool(t))
			case nil:
				out.WriteString("null")
			}
			if err != nil {
				return nil, err
			}
		}
		// A value is complete.
		if len(w.stack) == 0 {
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return nil, &Error{Field: w.prefix, Msg: "is not valid JSON"}
			}
			return out.Bytes(), nil
		}
		if top := &w.stack[len(w.stack)-1]; !top.array {
			top.wantKey = true
		}
	}
}

// write writes visit's replacement for a token, or else orig.
func (w *walker) write(out *bytes.Buffer, visit visitor, k kind, s string, orig []byte) error {
	rep, err := visit(w, k, s)
	if err != nil {
		return err
	}
	if rep == nil {
		rep = orig
	}
	out.Write(rep)
	if w.maxBytes > 0 && out.Len() > w.maxBytes {
		return tooLarge(w.maxBytes)
	}
	return nil
}

func tooLarge(n int) *RenderError {
	return renderErr("", "the rendered value is larger than %d bytes", n)
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// path returns the JSON path of the token being visited: the prefix,
// ".key" for an object member (["key"] if the key has other characters
// than letters, digits, '_' and '-') and "[i]" for an array element.
func (w *walker) path() string {
	var b strings.Builder
	b.WriteString(w.prefix)
	for _, f := range w.stack {
		switch {
		case f.array:
			fmt.Fprintf(&b, "[%d]", f.n-1)
		case plainKey.MatchString(f.key):
			b.WriteString("." + f.key)
		default:
			b.WriteString("[" + string(quote(f.key)) + "]")
		}
	}
	return b.String()
}

// quote returns s as a JSON string, with no HTML escaping.
func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
