// Package template fills in the templates that the url, headers and body of
// an "http" step may hold: {{input.a.b}}, {{steps.<step id>.output.a.b}},
// {{run.id}}, {{order.id}} and {{secrets.NAME}}. Check validates them when a
// workflow is defined, Needs lists what they read at run time, Render fills
// them in, and a Redactor keeps the secret values Render used out of stored
// data, error messages and logs. It does no I/O.
//
// # Syntax
//
// Every "{{" starts a template and every "}}" ends one: a literal "{{" or
// "}}" in a templated string is not supported and is rejected. Between the
// braces is a path, optionally surrounded by spaces (U+0020 only, as in
// {{ input.a }}). Its first segment is the root: input, steps, run, order
// or secrets. After input and after the output of a step come object keys
// (letters, digits, '_' and '-') or array indexes ("0", "1", ... without
// sign or leading zeros), separated by dots; a segment of digits is an
// index where it reads an array and a key where it reads an object. Keys
// with other characters cannot be addressed. Step ids may contain dots, so
// the id in steps.a.b.output.c is found among the known step ids: it is the
// text between "steps." and an ".output" segment that is a known id; a
// reference that two known ids fit is rejected as ambiguous. Secret names
// match ^[A-Z][A-Z0-9_]{0,63}$.
//
// # Values
//
// A string that is exactly one template, with nothing around it, is
// replaced by the value with its JSON type (a number stays a number, an
// object an object). Anywhere else, and always in a url or header value
// (RenderString), a template's value is inserted as text: a string as it
// is, any other value as its compact JSON text. Rendering is one pass: text
// that a value brings in is never read as a template. Render walks its JSON
// token by token, so object members keep their order, and inserted objects
// keep the order they have in the input or output they come from; the same
// config and data always render to the same bytes.
//
// # Limits
//
// Values nested deeper than MaxDepth and paths of more than MaxDepth
// segments are rejected. A call of Render reads each object and array of
// the data at most once, however many templates read from it, and fails a
// result larger than Context.MaxBytes, so its time is linear in the sizes
// of the config, the data and the result, whatever they hold.
//
// # Secrets
//
// Render adds each secret value it resolves to Context.Redactor; redact
// with it whatever is stored or logged. The error texts of this package
// never hold a value read from the data or a secret; an error from
// Context.Secret is wrapped as it is.
package template
