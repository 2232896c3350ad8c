package template

import (
	"encoding/json"
	"slices"
)

// Error reports an invalid template in a definition, or a value that is
// not valid JSON or nests deeper than MaxDepth. Field is the JSON path of
// the bad value, such as "steps[2].config.body.customer.id", so that an API
// can answer 422 naming the field.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Check validates the templates in every string of the JSON value v (object
// values and array elements at any depth; object keys are not templated)
// and returns an *Error for the first bad one. field is the JSON path of v,
// such as "steps[2].config.body"; the error's Field extends it with ".key"
// for object members (`["key"]` for keys with characters other than
// letters, digits, '_' and '-') and "[i]" for array elements. deps holds
// the ids of the step's transitive dependencies, the only steps whose
// outputs it may read; allSteps holds every step id of the workflow, to
// tell a reference to no step at all from one to a step that is not a
// dependency. An empty v has nothing to check.
func Check(v json.RawMessage, field string, deps, allSteps map[string]bool) error {
	w := &walker{prefix: field, maxDepth: MaxDepth}
	_, err := w.walk(v, func(w *walker, k kind, s string) ([]byte, error) {
		if k != stringToken {
			return nil, nil
		}
		if err := check(s, deps, allSteps); err != nil {
			return nil, &Error{Field: w.path(), Msg: err.Error()}
		}
		return nil, nil
	})
	return err
}

// CheckString is Check for a Go string, such as a url or a header value.
func CheckString(s, field string, deps, allSteps map[string]bool) error {
	if err := check(s, deps, allSteps); err != nil {
		return &Error{Field: field, Msg: err.Error()}
	}
	return nil
}

func check(s string, deps, allSteps map[string]bool) error {
	pieces, err := split(s)
	if err != nil {
		return err
	}
	for _, p := range pieces {
		if p.ref == nil || p.ref.root != rootSteps {
			continue
		}
		id, _, found, err := resolveStep(p.ref, func(id string) bool { return allSteps[id] || deps[id] })
		switch {
		case err != nil:
			return err
		case !found:
			return renderErr(p.ref.text, "there is no step %q", id)
		case !deps[id]:
			return renderErr(p.ref.text, "step %q is not among the dependencies of this step; add it to depends_on, directly or through a dependency", id)
		}
	}
	return nil
}

// Needs is what templates read at run time, so that a step reads only the
// outputs it uses and resolves only the secrets it uses. The zero value is
// empty and ready to use.
type Needs struct {
	Input   bool     // some template reads the run's input
	Order   bool     // some template reads {{order.id}}
	Steps   []string // the ids of the steps whose outputs are read, sorted
	Secrets []string // the names of the secrets used, sorted
	// inputRefs are the templates that read the input (see CheckInput).
	inputRefs []*ref
}

// CheckInput reports the first template that reads the input and finds
// nothing there in input (a *RenderError naming the template), so that a
// run can be refused before its steps act.
func (n Needs) CheckInput(input json.RawMessage) error {
	for _, t := range n.inputRefs {
		r := newRenderer(Context{Input: input})
		if _, err := r.lookup(t, input, t.path, "the input"); err != nil {
			return err
		}
	}
	return nil
}

// Add adds what the templates in the JSON value v read. Step ids are
// resolved against steps (the workflow's step ids, or the step's
// dependencies). A template that is malformed or names no step in steps
// is a *RenderError; a v that is not valid JSON or nests deeper than
// MaxDepth is an *Error on the field "value". After an error, n may hold
// part of what v reads.
func (n *Needs) Add(v json.RawMessage, steps map[string]bool) error {
	w := &walker{prefix: "value", maxDepth: MaxDepth}
	_, err := w.walk(v, func(_ *walker, k kind, s string) ([]byte, error) {
		if k != stringToken {
			return nil, nil
		}
		return nil, n.AddString(s, steps)
	})
	return err
}

// AddString is Add for a Go string, such as a url or a header value.
func (n *Needs) AddString(s string, steps map[string]bool) error {
	pieces, err := split(s)
	if err != nil {
		return err
	}
	for _, p := range pieces {
		if p.ref == nil {
			continue
		}
		switch p.ref.root {
		case rootInput:
			n.Input = true
			n.inputRefs = append(n.inputRefs, p.ref)
		case rootOrder:
			n.Order = true
		case rootSecrets:
			n.Secrets = insertSorted(n.Secrets, p.ref.rest)
		case rootSteps:
			id, _, found, err := resolveStep(p.ref, func(id string) bool { return steps[id] })
			if err != nil {
				return err
			}
			if !found {
				return renderErr(p.ref.text, "there is no step %q", id)
			}
			n.Steps = insertSorted(n.Steps, id)
		}
	}
	return nil
}

// insertSorted inserts s into the sorted list unless it is there already.
func insertSorted(list []string, s string) []string {
	i, found := slices.BinarySearch(list, s)
	if found {
		return list
	}
	return slices.Insert(list, i, s)
}
