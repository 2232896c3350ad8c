package api

import (
	"bytes"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// strictJSON are the decoder's options. Most are the JSON v2 defaults,
// spelled out because each closes a hole the v1 decoder left open: a
// duplicate name (`{"amount":-1,"amount":2}`) is an error rather than the
// last one winning, names match case-sensitively (`AMOUNT` is not
// `amount`), invalid UTF-8 (raw, or a lone surrogate escape) is an error
// rather than replaced, and unknown names are errors.
var strictJSON = json.JoinOptions(
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
	json.MatchCaseInsensitiveNames(false),
	json.RejectUnknownMembers(true),
)

// decodeJSON decodes body into v strictly: one JSON value, no unknown,
// duplicate or differently-cased names, valid UTF-8, matching types.
// Failures are 400s naming the field where one is known (as a path such as
// "steps[0].config.max_retries"), or 413 for an oversized body. An empty
// body is an error unless allowEmpty.
func decodeJSON(body io.Reader, v any, allowEmpty bool) error {
	data, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	}
	if err != nil {
		return badRequest("", "could not read request body")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("", "request body is empty; send a JSON object")
	}
	if err := json.Unmarshal(data, v, strictJSON); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) *httpError {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		ptr := syn.JSONPointer
		if errors.Is(syn.Err, jsontext.ErrDuplicateName) {
			field := fieldPath(ptr, true)
			return badRequest(field, fmt.Sprintf("duplicate field %q", field))
		}
		if errors.Is(syn.Err, io.ErrUnexpectedEOF) {
			return badRequest("", "malformed JSON: unexpected end of input")
		}
		field := fieldPath(ptr, false)
		if field == "" {
			return badRequest("", fmt.Sprintf("malformed JSON at byte %d: %v", syn.ByteOffset, syn.Err))
		}
		return badRequest(field, fmt.Sprintf("malformed JSON in %s: %v", field, syn.Err))
	case errors.As(err, &sem):
		if errors.Is(sem.Err, json.ErrUnknownName) {
			field := fieldPath(sem.JSONPointer, true)
			return badRequest(field, fmt.Sprintf("unknown field %q", field))
		}
		field := fieldPath(sem.JSONPointer, false)
		if field == "" {
			return badRequest("", "request body must be a JSON object")
		}
		want := describeGoType(sem.GoType)
		// A type that decodes itself (jsonNumber) says what it wanted.
		var legacy *jsonv1.UnmarshalTypeError
		if errors.As(sem.Err, &legacy) && legacy.Type != nil {
			want = describeGoType(legacy.Type)
		}
		got := describeJSONValue(sem.JSONKind, sem.JSONValue)
		if sem.JSONKind == '0' && strings.HasSuffix(want, "number") {
			want += " in range"
		}
		return badRequest(field, fmt.Sprintf("%s must be %s, not %s", field, want, got))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of input")
	}
	return badRequest("", "malformed JSON")
}

// fieldPath turns a JSON pointer ("/steps/0/config/max_retries") into the
// API's field syntax ("steps[0].config.max_retries"). Numeric tokens are
// array indexes (no request type has a map), except the last one when it
// names a member (lastIsName), as for an unknown or duplicate name.
func fieldPath(ptr jsontext.Pointer, lastIsName bool) string {
	var toks []string
	for tok := range ptr.Tokens() {
		toks = append(toks, tok)
	}
	var b strings.Builder
	for i, tok := range toks {
		if _, err := strconv.ParseUint(tok, 10, 32); err == nil && !(lastIsName && i == len(toks)-1) {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

func describeGoType(t reflect.Type) string {
	if t == nil {
		return "a value of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// describeJSONValue names what the client sent: its kind, and for a number
// its text (short ones only, since it is echoed back).
func describeJSONValue(kind jsontext.Kind, v jsontext.Value) string {
	switch kind {
	case '"':
		return "a string"
	case '0':
		if len(v) > 0 && len(v) <= 32 {
			return "number " + string(v)
		}
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "another type"
}
