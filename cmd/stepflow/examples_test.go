package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"stepflow/internal/client"
	"stepflow/internal/demoservice"
	"stepflow/internal/status"
	"stepflow/internal/testenv"
	"stepflow/internal/wire"
)

// httpOrderInput is the input README gives examples/http-order.json: the
// demo services' base URL, as "stepflow demo-services" prints it, and the
// amount to charge.
const httpOrderInput = `{"services": "http://127.0.0.1:8090", "amount": 19.99}`

// scripted returns a demoservice.Config.Rand that returns draws in turn,
// then 0.9 (under a rate below 0.9: neither a failure nor a slow answer)
// for ever. The service draws with its lock held, once to decide a
// failure, then, for a request not failed, once to decide a slow answer.
func scripted(draws ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(draws) == 0 {
			return 0.9
		}
		d := draws[0]
		draws = draws[1:]
		return d
	}
}

// TestHTTPOrderExample runs examples/http-order.json as README tells a
// user to, through the CLI, against the demo services and the local stack
// with its default (local) HTTP policy. The services fail the first
// request of every step and answer the charge's second request after the
// step's timeout, so each http step is retried, the charge through a lost
// answer; still the order is charged, shipped and notified exactly once,
// and the shipment carries the charge's payment id. A second run of the
// example on the same order, started while the first waits for approval,
// fails without calling the services.
func TestHTTPOrderExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "stepflow run examples/http-order.json --amount 19.99 --input '"+httpOrderInput+"'") {
		t.Fatalf("README does not run examples/http-order.json with the input %s", httpOrderInput)
	}

	svc := demoservice.New(demoservice.Config{
		FailRate: 0.3, SlowRate: 0.5, Delay: 5 * time.Second,
		Rand: scripted(
			0,      // charge: fails
			0.5, 0, // charge again: done and recorded, answered after the step's 1 s timeout
			// charge a third time: the first answer, replayed (no draw)
			0,        // ship: fails
			0.5, 0.9, // ship again: done
			0,        // notify: fails
			0.5, 0.9, // notify again: done
		),
	})
	services := httptest.NewServer(svc)
	t.Cleanup(services.Close)
	input := strings.Replace(httpOrderInput, "http://127.0.0.1:8090", services.URL, 1)

	api, tok := localStack(t)
	c := client.New(api)
	c.Token = tok
	sf := func(args ...string) (int, string, string) {
		t.Helper()
		return cli(t, append(args, "--api", api, "--token", tok)...)
	}

	code, out, errOut := sf("run", "../../examples/http-order.json", "--amount", "19.99", "--input", input)
	m := regexp.MustCompile(`order (ord_\S+) \(amount 19.99\)\nrun (run_\S+) of http-order \(5 steps\)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("stepflow run: exit %d\n%s%s", code, out, errOut)
	}
	orderID, runID := m[1], m[2]
	d := await(t, c, runID, func(d wire.RunDetail) bool {
		return d.Status.Terminal() || stepOf(d, "approve").Status == status.StepWaiting
	})
	if d.Status != status.RunRunning {
		t.Fatalf("run %s before the approval, want running: %+v", d.Status, d.Steps)
	}
	charge := stepOf(d, "charge")
	var pay demoservice.Payment
	if err := json.Unmarshal(charge.Output, &pay); err != nil || pay.ID == "" || pay.OrderID != orderID || pay.Amount != "19.99" {
		t.Fatalf("charge output %s (%v), want a payment of 19.99 for %s", charge.Output, err, orderID)
	}
	if order := getOrder(t, api, tok, orderID); order.Status != status.OrderCharged {
		t.Fatalf("order %s while the run waits for approval, want charged", order.Status)
	}
	// What README says run-status shows then.
	if code, out, errOut := sf("run-status", runID); code != exitRunning || !strings.Contains(out, "\ncharge: output {\"payment_id\":\""+pay.ID+"\"") ||
		!strings.Contains(out, "\napprove: waiting for approval until ") {
		t.Fatalf("run-status while waiting for approval: exit %d\n%s%s", code, out, errOut)
	}

	t.Run("a second run on the order", func(t *testing.T) {
		before := svc.Stats()
		code, out, errOut := sf("run", "../../examples/http-order.json", "--order", orderID, "--input", input)
		m := regexp.MustCompile(`run (run_\S+) of`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("stepflow run --order: exit %d\n%s%s", code, out, errOut)
		}
		d := await(t, c, m[1], func(d wire.RunDetail) bool { return d.Status.Terminal() })
		v, ch := stepOf(d, "validate"), stepOf(d, "charge")
		if d.Status != status.RunFailed || v.Status != status.StepFailed || v.ErrorMessage == nil ||
			!strings.Contains(*v.ErrorMessage, "charged") || ch.Status != status.StepSkipped {
			b, _ := json.MarshalIndent(d.Steps, "", "  ")
			t.Fatalf("the second run is %s, want failed at validate with charge skipped:\n%s", d.Status, b)
		}
		if after := svc.Stats(); after.Requests != before.Requests {
			t.Errorf("the second run sent %d requests to the services, want none", after.Requests-before.Requests)
		}
	})

	if code, out, errOut := sf("approve", runID, "approve"); code != 0 || !regexp.MustCompile(`(?m)^2\s+approve\s+completed\s`).MatchString(out) {
		t.Fatalf("stepflow approve: exit %d\n%s%s", code, out, errOut)
	}
	d = await(t, c, runID, func(d wire.RunDetail) bool { return d.Status.Terminal() })
	if d.Status != status.RunCompleted {
		b, _ := json.MarshalIndent(d.Steps, "", "  ")
		t.Fatalf("run %s after the approval, want completed:\n%s", d.Status, b)
	}

	// Every http step was retried: the charge after an injected failure
	// and a timeout, the others after an injected failure.
	for _, want := range []struct {
		step     string
		attempts int
	}{{"charge", 3}, {"ship", 2}, {"notify", 2}} {
		s := stepOf(d, want.step)
		if len(s.Attempts) != want.attempts || s.RetryCount != want.attempts-1 {
			b, _ := json.MarshalIndent(s.Attempts, "", "  ")
			t.Errorf("%s: %d attempts (retry count %d), want %d:\n%s", want.step, len(s.Attempts), s.RetryCount, want.attempts, b)
			continue
		}
		if !strings.Contains(s.Attempts[0].Error, "500") {
			t.Errorf("%s: the first attempt failed with %q, want the injected 500", want.step, s.Attempts[0].Error)
		}
		if want.step == "charge" && !strings.Contains(s.Attempts[1].Error, "no response within 1s") {
			t.Errorf("charge: the second attempt failed with %q, want a timeout", s.Attempts[1].Error)
		}
	}

	// The shipment names the charge's payment.
	var shp demoservice.Shipment
	if err := json.Unmarshal(stepOf(d, "ship").Output, &shp); err != nil || shp.ID == "" || shp.OrderID != orderID || shp.PaymentID != pay.ID {
		t.Errorf("ship output %s (%v), want a shipment of %s paid by %s", stepOf(d, "ship").Output, err, orderID, pay.ID)
	}
	var ntf demoservice.Notification
	if err := json.Unmarshal(stepOf(d, "notify").Output, &ntf); err != nil || ntf.Message != "Order "+orderID+" has shipped." {
		t.Errorf("notify output %s (%v)", stepOf(d, "notify").Output, err)
	}

	order := getOrder(t, api, tok, orderID)
	var events []string
	for _, h := range order.History {
		events = append(events, h.Event)
	}
	if order.Status != status.OrderShipped || strings.Join(events, ",") != "created,validate_order,charge_payment,ship_order,send_notification" {
		t.Errorf("order %s with history %v, want shipped, each action once", order.Status, events)
	}

	// Each effect happened once, although the services were asked more
	// often: a failed request does nothing, a repeated one is replayed.
	st := svc.Stats()
	t.Logf("demo services: %d requests, %d injected failures, %d replays; %d payment, %d shipment, %d notification",
		st.Requests, st.InjectedFailures, st.Replays, st.Payments, st.Shipments, st.Notifications)
	if got := st.ByOrder[orderID]; got != (demoservice.OrderStats{Payments: 1, Shipments: 1, Notifications: 1}) ||
		st.Payments != 1 || st.Shipments != 1 || st.Notifications != 1 {
		t.Errorf("the services made %+v for the order, %+v in all; want one of each", got, st)
	}
	if st.InjectedFailures != 3 || st.Replays < 1 || st.Requests != 3+st.InjectedFailures+st.Replays {
		t.Errorf("%d requests, %d injected failures, %d replays; want 3 failures, a replay at least, and no other request", st.Requests, st.InjectedFailures, st.Replays)
	}
}

// stepOf returns the step of d whose id is id.
func stepOf(d wire.RunDetail, id string) wire.StepDetail {
	for _, s := range d.Steps {
		if s.StepID == id {
			return s
		}
	}
	return wire.StepDetail{}
}

// getOrder reads an order through the API.
func getOrder(t *testing.T, api, token, id string) wire.Order {
	t.Helper()
	code, v := testenv.GetJSON(t, api+"/orders/"+id, token)
	if code != 200 {
		t.Fatalf("GET /orders/%s: %d %v", id, code, v)
	}
	b, _ := json.Marshal(v)
	var o wire.Order
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o
}
