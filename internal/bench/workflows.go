package bench

import (
	"encoding/json"
	"fmt"
	"time"
)

// The workflows the bench runs, written as the API takes them.

type stepDef struct {
	ID        string   `json:"id"`
	Type      string   `json:"type,omitempty"`
	Config    any      `json:"config"`
	DependsOn []string `json:"depends_on,omitempty"`
}

// stepConfig is a task's config.
type stepConfig struct {
	Action          string  `json:"action,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	FailProbability float64 `json:"fail_probability"`
}

type workflowDef struct {
	Name  string    `json:"name"`
	Steps []stepDef `json:"steps"`
}

// load is one workflow and how many runs of it a pass starts; with orders,
// each run gets an order of its own.
type load struct {
	def    workflowDef
	runs   int
	orders bool
}

func (w workflowDef) json() string {
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // only fixed types above
	}
	return string(b)
}

func step(id string, seconds float64, deps ...string) stepDef {
	return stepDef{ID: id, Config: stepConfig{DurationSeconds: seconds}, DependsOn: deps}
}

// diamond: A, then B and C in parallel, then D.
func diamond(seconds float64) workflowDef {
	return workflowDef{Name: "bench-diamond", Steps: []stepDef{
		step("A", seconds), step("B", seconds, "A"), step("C", seconds, "A"), step("D", seconds, "B", "C"),
	}}
}

// order: validate -> charge -> ship -> notify, each acting on the run's order.
func order(seconds float64) workflowDef {
	w := workflowDef{Name: "bench-order"}
	prev := []string(nil)
	for _, s := range []struct{ id, action string }{
		{"validate", "validate_order"}, {"charge", "charge_payment"}, {"ship", "ship_order"}, {"notify", "send_notification"},
	} {
		st := step(s.id, seconds, prev...)
		st.Config = stepConfig{Action: s.action, DurationSeconds: seconds}
		w.Steps = append(w.Steps, st)
		prev = []string{s.id}
	}
	return w
}

// mix is the main workload: diamonds and order workflows.
func mix(diamonds, orders int, seconds float64) []load {
	return []load{{def: diamond(seconds), runs: diamonds}, {def: order(seconds), runs: orders, orders: true}}
}

// shape is a workflow of the scale section, with the inline budget of the
// engine that runs it (0: the default).
type shape struct {
	Name         string
	def          workflowDef
	inlineBudget time.Duration
	// hop is the engine's longest message delay (0: its default).
	hop time.Duration
}

// shapes returns the scale section's workflows of n steps each: a chain,
// n parallel steps, and a fan-in (a root, n-2 steps after it, and a join
// of all of them); first, for n over 4, a 4-step chain, the baseline a
// longer chain's reads per step are compared with.
func shapes(n int) []shape {
	var out []shape
	if n > 4 {
		out = append(out, shapes(4)[0])
	}
	chain := workflowDef{Name: fmt.Sprintf("chain-%d", n)}
	par := workflowDef{Name: fmt.Sprintf("parallel-%d", n)}
	fan := workflowDef{Name: fmt.Sprintf("fan-in-%d", n-2)}
	var mids []string
	fan.Steps = append(fan.Steps, step("root", 0))
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		var deps []string
		if i > 0 {
			deps = []string{chain.Steps[i-1].ID}
		}
		chain.Steps = append(chain.Steps, step(id, 0, deps...))
		par.Steps = append(par.Steps, step(id, 0))
		if i < n-2 {
			fan.Steps = append(fan.Steps, step(id, 0, "root"))
			mids = append(mids, id)
		}
	}
	fan.Steps = append(fan.Steps, step("join", 0, mids...))
	return append(out, shape{Name: chain.Name, def: chain}, shape{Name: par.Name, def: par}, shape{Name: fan.Name, def: fan})
}

// siblings: a 0.2 s step and a 5 s step that start together (two roots of
// one run, whose messages arrive in one batch), and a step after the fast
// one. The fast step's outcome must not wait for the slow one.
func siblings() workflowDef {
	return workflowDef{Name: "bench-siblings", Steps: []stepDef{
		step("fast", 0.2), step("slow", 5), step("after-fast", 0, "fast"),
	}}
}

// Steps just over the inline budget each run from a message of their own.
// The bench uses a short budget (and steps just longer) so that a 100-step
// chain of them takes seconds, not minutes: the requests a step makes do
// not depend on the budget's size.
const (
	longBudget  = 50 * time.Millisecond
	longSeconds = 0.06
)

// longChains returns a 4-step and an n-step chain of steps just over the
// inline budget.
func longChains(n int) []shape {
	var out []shape
	for _, k := range []int{4, n} {
		w := workflowDef{Name: fmt.Sprintf("long-chain-%d", k)}
		for i := range k {
			var deps []string
			if i > 0 {
				deps = []string{w.Steps[i-1].ID}
			}
			w.Steps = append(w.Steps, step(fmt.Sprintf("s%03d", i), longSeconds, deps...))
		}
		out = append(out, shape{Name: w.Name, def: w, inlineBudget: longBudget})
	}
	return out
}

// Step types: what an http step and a wait cost beside a task. Each
// shape's workflow is measured alone; the differences are the step types'
// own costs.
const (
	// typeHop is the bench's longest message delay, so that a wait of a
	// few seconds is a chain of messages (deployed: 15 minutes).
	typeHop = time.Second
	// waitShort and waitLong are two waits, so that one hop's cost is
	// their difference over their hops' difference.
	waitShort, waitLong = 2.0, 4.0
)

// typeShapes returns a 1-step and a 4-step chain of tasks, a 4-step chain
// of http steps calling url (each sending the previous one's output on),
// and two runs of one wait step each, waitShort and waitLong seconds.
func typeShapes(url string) []shape {
	tasks4 := longChains(4)[0].def
	tasks4.Name = "types-task-chain-4"
	for i := range tasks4.Steps {
		tasks4.Steps[i].Config = stepConfig{}
	}
	http4 := workflowDef{Name: "types-http-chain-4"}
	for i := range 4 {
		st := stepDef{ID: fmt.Sprintf("h%d", i), Type: "http"}
		c := map[string]any{"url": url}
		if i > 0 {
			prev := http4.Steps[i-1].ID
			st.DependsOn = []string{prev}
			c["body"] = map[string]any{"previous": "{{steps." + prev + ".output.n}}"}
		}
		st.Config = c
		http4.Steps = append(http4.Steps, st)
	}
	wait := func(secs float64) workflowDef {
		return workflowDef{Name: fmt.Sprintf("types-wait-%gs", secs), Steps: []stepDef{
			{ID: "w", Type: "wait", Config: map[string]any{"seconds": secs}},
		}}
	}
	return []shape{
		{Name: "types-task-1", def: workflowDef{Name: "types-task-1", Steps: []stepDef{{ID: "t", Config: stepConfig{}}}}, hop: typeHop},
		{Name: tasks4.Name, def: tasks4, hop: typeHop},
		{Name: http4.Name, def: http4, hop: typeHop},
		{Name: fmt.Sprintf("types-wait-%gs", waitShort), def: wait(waitShort), hop: typeHop},
		{Name: fmt.Sprintf("types-wait-%gs", waitLong), def: wait(waitLong), hop: typeHop},
	}
}
