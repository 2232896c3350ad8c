package workflow

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"stepflow/internal/template"
)

// TopoSort returns the indices of steps in dependency order: every step comes
// after the steps it depends on, and among steps whose dependencies are met
// the one written first comes first (a stable Kahn's algorithm). Every
// depends_on entry must name a step in steps. If the graph has a cycle the
// error is a *FieldError on "steps" naming the steps of one cycle.
func TopoSort(steps []Step) ([]int, error) {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.ID] = i
	}
	indegree := make([]int, len(steps))
	dependents := make([][]int, len(steps))
	for i, s := range steps {
		for _, dep := range s.DependsOn {
			indegree[i]++
			dependents[index[dep]] = append(dependents[index[dep]], i)
		}
	}
	// ready is kept sorted ascending so the earliest-written step goes next.
	var ready []int
	for i, d := range indegree {
		if d == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]int, 0, len(steps))
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		order = append(order, n)
		for _, c := range dependents[n] {
			indegree[c]--
			if indegree[c] == 0 {
				ready = insertSorted(ready, c)
			}
		}
	}
	if len(order) < len(steps) {
		return nil, &FieldError{Field: "steps", Msg: "depends_on has a cycle: " + describeCycle(steps, index, indegree)}
	}
	return order, nil
}

func insertSorted(s []int, v int) []int {
	i := len(s)
	for i > 0 && s[i-1] > v {
		i--
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// describeCycle finds one cycle among the steps Kahn's algorithm could not
// order (those with indegree > 0) and renders it as "a -> b -> a".
func describeCycle(steps []Step, index map[string]int, indegree []int) string {
	// Every unordered step has an unordered dependency, so walking
	// dependencies from any of them must revisit a step.
	start := 0
	for i, d := range indegree {
		if d > 0 {
			start = i
			break
		}
	}
	pos := map[int]int{}
	var path []int
	for n := start; ; {
		if p, ok := pos[n]; ok {
			cycle := append(path[p:], n)
			names := make([]string, len(cycle))
			// path follows "depends on" edges; print it in execution
			// direction (dependency first).
			for i := range cycle {
				names[len(cycle)-1-i] = steps[cycle[i]].ID
			}
			return strings.Join(names, " -> ")
		}
		pos[n] = len(path)
		path = append(path, n)
		for _, dep := range steps[n].DependsOn {
			if d := index[dep]; indegree[d] > 0 {
				n = d
				break
			}
		}
	}
}

// Dependents returns, for each step index, the indices of the steps that
// depend on it, in ascending order.
func Dependents(steps []Step) [][]int {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.ID] = i
	}
	out := make([][]int, len(steps))
	for i, s := range steps {
		for _, dep := range s.DependsOn {
			out[index[dep]] = append(out[index[dep]], i)
		}
	}
	return out
}

// PlannedStep is a step placed in a run: Index is its position in
// dependency order; Parents and Dependents are the Indexes of the steps it
// waits for and of the steps that wait for it, in ascending order.
type PlannedStep struct {
	Step
	Index      int
	Parents    []int
	Dependents []int
	// Needs is what an http step's templates read when it runs.
	Needs template.Needs
}

// Plan is a definition's steps in dependency order: every step comes after
// its parents, so a step's Index is greater than each of its Parents'.
type Plan []PlannedStep

// NewPlan lays out def's steps in dependency order (see TopoSort). def must
// be a validated Definition.
func NewPlan(def Definition) (Plan, error) {
	order, err := TopoSort(def.Steps)
	if err != nil {
		return nil, err
	}
	pos := make([]int, len(order)) // original index -> planned index
	for p, orig := range order {
		pos[orig] = p
	}
	index := make(map[string]int, len(def.Steps))
	for i, s := range def.Steps {
		index[s.ID] = i
	}
	deps := Dependents(def.Steps)
	out := make(Plan, len(order))
	for p, orig := range order {
		ps := PlannedStep{Step: def.Steps[orig], Index: p, Parents: []int{}, Dependents: []int{}}
		for _, d := range deps[orig] {
			ps.Dependents = append(ps.Dependents, pos[d])
		}
		for _, parent := range def.Steps[orig].DependsOn {
			ps.Parents = append(ps.Parents, pos[index[parent]])
		}
		slices.Sort(ps.Dependents)
		slices.Sort(ps.Parents)
		if ps.Type == TypeHTTP {
			if err := ps.readNeeds(index); err != nil {
				return nil, err
			}
		}
		out[p] = ps
	}
	return out, nil
}

// MaxDuration is the longest time any step's attempt may take (see
// Step.Seconds).
func (p Plan) MaxDuration() float64 {
	longest := 0.0
	for _, s := range p {
		longest = max(longest, s.Seconds())
	}
	return longest
}

// CheckStart checks a run's input and whether it has an order against what
// the plan's templates read, so that a run is refused before its steps act:
// a template that reads a path of the input that the input does not have,
// or {{order.id}} in a run without an order, is a *FieldError on "input" or
// "order_id".
func (p Plan) CheckStart(input json.RawMessage, hasOrder bool) error {
	for _, s := range p {
		if err := s.Needs.CheckInput(input); err != nil {
			return fieldErr("input", "step %s reads %v", s.ID, err)
		}
		if s.Needs.Order && !hasOrder {
			return fieldErr("order_id", "step %s reads {{order.id}}: start the run with an order_id", s.ID)
		}
	}
	return nil
}

// Has reports whether the plan has a step of type typ.
func (p Plan) Has(typ string) bool {
	for _, s := range p {
		if s.Type == typ {
			return true
		}
	}
	return false
}

// Indexes returns the plan indexes of the steps with the given ids, in the
// ids' order (ids the plan does not have are left out).
func (p Plan) Indexes(ids []string) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		for j, s := range p {
			if s.ID == id {
				out = append(out, j)
				break
			}
		}
	}
	return out
}

// Seconds is how long one attempt of the step may run: a task's
// duration_seconds, an http step's timeout_seconds; a wait or an approval
// holds no runner while it waits, so 0.
func (s Step) Seconds() float64 {
	switch s.Type {
	case TypeHTTP:
		return s.Config.TimeoutSeconds
	case TypeWait, TypeApproval:
		return 0
	}
	return s.Config.DurationSeconds
}

// readNeeds lists what the step's templates read.
func (ps *PlannedStep) readNeeds(ids map[string]int) error {
	steps := make(map[string]bool, len(ids))
	for id := range ids {
		steps[id] = true
	}
	if err := ps.Needs.AddString(ps.Config.URL, steps); err != nil {
		return fmt.Errorf("step %s url: %w", ps.ID, err)
	}
	for _, v := range ps.Config.Headers {
		if err := ps.Needs.AddString(v, steps); err != nil {
			return fmt.Errorf("step %s headers: %w", ps.ID, err)
		}
	}
	if ps.Config.Body != nil {
		if err := ps.Needs.Add(ps.Config.Body, steps); err != nil {
			return fmt.Errorf("step %s body: %w", ps.ID, err)
		}
	}
	return nil
}
