package template_test

import (
	"encoding/json"
	"fmt"

	"stepflow/internal/template"
)

func Example() {
	body := json.RawMessage(`{
		"payment": "{{steps.charge.output.payment_id}}",
		"amount": "{{input.total}}",
		"note": "order {{order.id}}, run {{run.id}}",
		"auth": "Bearer {{secrets.API_TOKEN}}"
	}`)
	deps := map[string]bool{"charge": true}

	// When the workflow is defined:
	if err := template.Check(body, "steps[1].config.body", deps, deps); err != nil {
		fmt.Println(err)
	}

	// When the step runs:
	var needs template.Needs
	if err := needs.Add(body, deps); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("needs: input %v, steps %v, secrets %v\n", needs.Input, needs.Steps, needs.Secrets)

	redactor := new(template.Redactor)
	c := template.Context{
		Input:   json.RawMessage(`{"total": 12.5}`),
		Outputs: map[string]json.RawMessage{"charge": json.RawMessage(`{"payment_id": "pay_7"}`)},
		RunID:   "run_1",
		OrderID: "ord_3",
		Secret: func(name string) (string, error) {
			return "tok-" + name, nil
		},
		Redactor: redactor,
	}
	out, err := template.Render(body, c)
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println("sent:  ", string(out))
	fmt.Println("stored:", string(redactor.RedactJSON(out)))

	c.Outputs["charge"] = json.RawMessage(`{}`)
	_, err = template.Render(body, c)
	fmt.Println("error: ", err)
	// Output:
	// needs: input true, steps [charge], secrets [API_TOKEN]
	// sent:   {"payment":"pay_7","amount":12.5,"note":"order ord_3, run run_1","auth":"Bearer tok-API_TOKEN"}
	// stored: {"payment":"pay_7","amount":12.5,"note":"order ord_3, run run_1","auth":"Bearer [redacted]"}
	// error:  {{steps.charge.output.payment_id}}: the output of step charge has no field payment_id
}
