// Package bench measures the step engine on a local endpoint: throughput,
// hand-off latency, AWS requests and DynamoDB capacity per step, the cost
// per million steps at list prices, and the same run's "floor" (bare SQS
// plus one small transaction per step, no engine) for comparison.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/sivchari/kumo"

	"stepflow/internal/api"
	"stepflow/internal/awsclient"
	"stepflow/internal/engine"
	"stepflow/internal/poller"
	"stepflow/internal/queue"
	"stepflow/internal/retry"
	"stepflow/internal/status"
	"stepflow/internal/store"
)

// Prices are us-east-1 on-demand list prices in dollars (shared notes).
const (
	PricePerMillionWCU      = 0.625
	PricePerMillionRCU      = 0.125
	PricePerMillionSQS      = 0.40
	PricePerMillionLambda   = 0.20
	PricePerGBSecondARM     = 0.0000133334
	PricePerMillionSFNSteps = 25.0
	lambdaMemoryGB          = 0.125
)

// Config configures a benchmark run.
type Config struct {
	Diamonds, Orders int
	// Concurrency is the number of batches in flight (the poller's).
	Concurrency int
	Timeout     time.Duration
	Logger      *slog.Logger
}

// Report is what a run measured.
type Report struct {
	Steps          int
	Elapsed        time.Duration
	StepsPerSecond float64
	FloorPerSecond float64
	HandoffP50     time.Duration
	HandoffP99     time.Duration
	Requests       Snapshot
	Invocations    int
	HandlerTime    time.Duration
	Endpoint       string
}

const diamondDef = `{"name":"bench-diamond","steps":[
 {"id":"A","config":{"duration_seconds":0,"fail_probability":0}},
 {"id":"B","config":{"duration_seconds":0,"fail_probability":0},"depends_on":["A"]},
 {"id":"C","config":{"duration_seconds":0,"fail_probability":0},"depends_on":["A"]},
 {"id":"D","config":{"duration_seconds":0,"fail_probability":0},"depends_on":["B","C"]}]}`

const orderDef = `{"name":"bench-order","steps":[
 {"id":"validate","config":{"action":"validate_order","duration_seconds":0,"fail_probability":0}},
 {"id":"charge","config":{"action":"charge_payment","duration_seconds":0,"fail_probability":0},"depends_on":["validate"]},
 {"id":"ship","config":{"action":"ship_order","duration_seconds":0,"fail_probability":0},"depends_on":["charge"]},
 {"id":"notify","config":{"action":"send_notification","duration_seconds":0,"fail_probability":0},"depends_on":["ship"]}]}`

// Run runs the benchmark. DynamoDB and SQS endpoints come from the
// standard variables; a service without one uses an embedded kumo.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dynEP, sqsEP := awsclient.EnvEndpoint("DYNAMODB"), awsclient.EnvEndpoint("SQS")
	rep := Report{Endpoint: "DynamoDB " + dynEP + ", SQS " + sqsEP}
	if dynEP == "" || sqsEP == "" {
		emu := kumo.NewServer()
		defer emu.Close()
		dynEP, sqsEP = cmp(dynEP, emu.URL), cmp(sqsEP, emu.URL)
		rep.Endpoint = "DynamoDB " + dynEP + ", SQS " + sqsEP + " (embedded kumo for unset endpoints)"
	}
	plain, err := awsclient.Load(ctx, true)
	if err != nil {
		return rep, err
	}
	meter := NewMeter()
	metered := plain.Copy()
	meter.Attach(&metered)

	name := fmt.Sprintf("stepflow-bench-%d", time.Now().UnixNano())
	db := awsclient.DynamoDB(plain, dynEP)
	if err := store.EnsureTable(ctx, db, name); err != nil {
		return rep, err
	}
	sqPlain, sqMetered := awsclient.SQS(plain, sqsEP), awsclient.SQS(metered, sqsEP)
	url, err := queue.EnsureQueue(ctx, sqPlain, name, queue.Settings{VisibilityTimeout: 30 * time.Second})
	if err != nil {
		return rep, err
	}
	plainStore := store.New(db, name)
	meteredStore := store.New(awsclient.DynamoDB(metered, dynEP), name)
	work := &queue.SQS{Client: sqMetered, URL: url}

	rep.Steps = 4 * (cfg.Diamonds + cfg.Orders)
	var committed atomic.Int64
	done := make(chan struct{})
	var hmu sync.Mutex
	var handoffs []time.Duration
	eng, err := engine.New(engine.Config{
		Store: meteredStore, Queue: work, Task: engine.Simulated{Rand: func() float64 { return 0.5 }},
		Retry: retry.Default(func() float64 { return 0.5 }), Logger: cfg.Logger,
		OnStart: func(m queue.Message, at time.Time) {
			if m.StepIndex > 0 && m.Attempt == 0 {
				hmu.Lock()
				handoffs = append(handoffs, at.Sub(m.SentAt))
				hmu.Unlock()
			}
		},
		OnCommit: func(string, int) {
			if committed.Add(1) == int64(rep.Steps) {
				close(done)
			}
		},
	})
	if err != nil {
		return rep, err
	}
	h := api.New(api.Config{Store: plainStore, Starter: engine.Starter{Queue: work}})
	call := func(method, path, body string) (map[string]any, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		if rec.Code/100 != 2 {
			return nil, fmt.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		var v map[string]any
		err := jsonDecode(rec.Body.Bytes(), &v)
		return v, err
	}
	dia, err := call(http.MethodPost, "/workflows", diamondDef)
	if err != nil {
		return rep, err
	}
	ord, err := call(http.MethodPost, "/workflows", orderDef)
	if err != nil {
		return rep, err
	}
	var orderIDs []string
	for range cfg.Orders {
		o, err := call(http.MethodPost, "/orders", `{"amount": 10}`)
		if err != nil {
			return rep, err
		}
		orderIDs = append(orderIDs, o["id"].(string))
	}

	var invocations atomic.Int64
	var handlerNanos atomic.Int64
	handler := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		t := time.Now()
		defer func() {
			invocations.Add(1)
			handlerNanos.Add(int64(time.Since(t)))
		}()
		return eng.HandleSQS(ctx, ev)
	}
	pctx, stop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		poller.Run(pctx, poller.Config{Client: sqMetered, QueueURL: url, Handler: handler, Concurrency: cfg.Concurrency})
	}()

	start := time.Now()
	var runIDs []string
	for i := range max(cfg.Diamonds, cfg.Orders) {
		if i < cfg.Diamonds {
			r, err := call(http.MethodPost, "/workflows/"+dia["id"].(string)+"/runs", "")
			if err != nil {
				stop()
				return rep, err
			}
			runIDs = append(runIDs, r["id"].(string))
		}
		if i < cfg.Orders {
			r, err := call(http.MethodPost, "/workflows/"+ord["id"].(string)+"/runs", `{"order_id":"`+orderIDs[i]+`"}`)
			if err != nil {
				stop()
				return rep, err
			}
			runIDs = append(runIDs, r["id"].(string))
		}
	}
	select {
	case <-done:
	case <-time.After(cfg.Timeout):
		stop()
		pwg.Wait()
		return rep, fmt.Errorf("only %d of %d steps committed within %v", committed.Load(), rep.Steps, cfg.Timeout)
	}
	rep.Elapsed = time.Since(start)
	stop()
	pwg.Wait()
	rep.Requests = meter.Snapshot()
	rep.Invocations = int(invocations.Load())
	rep.HandlerTime = time.Duration(handlerNanos.Load())
	rep.StepsPerSecond = float64(rep.Steps) / rep.Elapsed.Seconds()
	slices.Sort(handoffs)
	rep.HandoffP50, rep.HandoffP99 = percentile(handoffs, 0.50), percentile(handoffs, 0.99)

	// Every run completed and every order shipped exactly once.
	for _, id := range runIDs {
		d, err := plainStore.GetRun(ctx, id)
		if err != nil {
			return rep, err
		}
		if d.Status != status.RunCompleted {
			return rep, fmt.Errorf("run %s ended %s", id, d.Status)
		}
	}
	for _, id := range orderIDs {
		o, err := plainStore.GetOrder(ctx, id)
		if err != nil {
			return rep, err
		}
		if o.Status != status.OrderShipped || len(o.History) != 5 {
			return rep, fmt.Errorf("order %s: %s with %d history entries", id, o.Status, len(o.History))
		}
	}

	rep.FloorPerSecond, err = floor(ctx, plain, dynEP, sqsEP, name, cfg, rep.Steps)
	return rep, err
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Print writes the report.
func (r Report) Print(w io.Writer) {
	per := func(n float64) float64 { return n / float64(r.Steps) }
	fmt.Fprintf(w, "Stepflow bench: %d steps on %s\n\n", r.Steps, r.Endpoint)
	fmt.Fprintf(w, "engine throughput   %8.1f steps/s (%.1fs)\n", r.StepsPerSecond, r.Elapsed.Seconds())
	fmt.Fprintf(w, "floor throughput    %8.1f steps/s (bare SQS + one 3-item transaction per step)\n", r.FloorPerSecond)
	fmt.Fprintf(w, "engine/floor ratio  %8.2f (target >= 0.70)\n", r.StepsPerSecond/r.FloorPerSecond)
	fmt.Fprintf(w, "hand-off latency    p50 %v, p99 %v (parent commit to child start)\n\n", r.HandoffP50.Round(time.Millisecond), r.HandoffP99.Round(time.Millisecond))
	fmt.Fprintln(w, "AWS requests (step runner and run start):")
	for _, l := range r.Requests.Lines(r.Steps) {
		fmt.Fprintln(w, "  "+l)
	}
	how := "modelled: 1 per single-item write or consistent read, 2 per transaction item; this endpoint reports no capacity"
	if r.Requests.Reported {
		how = "as reported by the endpoint"
	}
	fmt.Fprintf(w, "\nDynamoDB capacity per step: %.2f WCU, %.2f RCU (%s)\n\n", per(r.Requests.WCU), per(r.Requests.RCU), how)
	sqsReq := float64(r.Requests.Total("SQS"))
	gbs := r.HandlerTime.Seconds() * lambdaMemoryGB
	costs := []struct {
		name string
		usd  float64
		note string
	}{
		{"DynamoDB writes", per(r.Requests.WCU) * PricePerMillionWCU, ""},
		{"DynamoDB reads", per(r.Requests.RCU) * PricePerMillionRCU, ""},
		{"SQS requests", per(sqsReq) * PricePerMillionSQS, ""},
		{"Lambda requests", per(float64(r.Invocations)) * PricePerMillionLambda, fmt.Sprintf("%d batches", r.Invocations)},
		{"Lambda duration", per(gbs) * 1e6 * PricePerGBSecondARM, fmt.Sprintf("%.2f GB-s at 128 MB, handler time measured here", gbs)},
	}
	fmt.Fprintln(w, "Cost per million steps (us-east-1 on-demand list prices):")
	total := 0.0
	for _, c := range costs {
		total += c.usd
		fmt.Fprintf(w, "  %-16s $%6.2f  %s\n", c.name, c.usd, c.note)
	}
	fmt.Fprintf(w, "  %-16s $%6.2f  (target <= $4.00)\n", "total", total)
	fmt.Fprintf(w, "  %-16s $%6.2f  (one state transition per step)\n", "Step Functions", PricePerMillionSFNSteps)
}

// Cost returns the total cost per million steps.
func (r Report) Cost() float64 {
	per := func(n float64) float64 { return n / float64(r.Steps) }
	gbs := r.HandlerTime.Seconds() * lambdaMemoryGB
	return per(r.Requests.WCU)*PricePerMillionWCU + per(r.Requests.RCU)*PricePerMillionRCU +
		per(float64(r.Requests.Total("SQS")))*PricePerMillionSQS + per(float64(r.Invocations))*PricePerMillionLambda +
		per(gbs)*1e6*PricePerGBSecondARM
}

var errFloor = errors.New("floor did not finish")

// floor pushes the same number of steps, as chains of four, through bare
// SQS and one 3-item transaction each, with the same poller concurrency:
// the least any engine on this design must do per step.
func floor(ctx context.Context, cfg aws.Config, dynEP, sqsEP, table string, bc Config, steps int) (float64, error) {
	sq := awsclient.SQS(cfg, sqsEP)
	db := awsclient.DynamoDB(cfg, dynEP)
	url, err := queue.EnsureQueue(ctx, sq, table+"-floor", queue.Settings{VisibilityTimeout: 30 * time.Second})
	if err != nil {
		return 0, err
	}
	q := &queue.SQS{Client: sq, URL: url}
	var n atomic.Int64
	done := make(chan struct{})
	h := floorHandler{db: db, table: table, q: q, n: &n, total: int64(steps), done: done}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		poller.Run(pctx, poller.Config{Client: sq, QueueURL: url, Handler: h.handle, Concurrency: bc.Concurrency})
	}()
	start := time.Now()
	var roots []queue.Message
	for i := range steps / 4 {
		roots = append(roots, queue.Message{RunID: fmt.Sprintf("floor%d", i), WorkflowID: "floor", StepIndex: 0})
	}
	if err := q.Send(ctx, roots); err != nil {
		return 0, err
	}
	select {
	case <-done:
	case <-time.After(bc.Timeout):
		stop()
		wg.Wait()
		return 0, errFloor
	}
	el := time.Since(start)
	stop()
	wg.Wait()
	return float64(steps) / el.Seconds(), nil
}
