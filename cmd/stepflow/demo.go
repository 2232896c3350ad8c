package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"stepflow/internal/demoservice"
)

// demoStopTimeout bounds how long stopping waits for requests in flight.
const demoStopTimeout = 5 * time.Second

// demoServicesCmd serves the demo payment, shipment and notification
// services (package demoservice) for a workflow's "http" steps to call,
// until ctx ends.
func demoServicesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-services", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (port 0 picks a free port)")
	public := fs.Bool("public", false, "allow a listen address that is not loopback (anyone who reaches it can use the services)")
	failRate := fs.Float64("fail-rate", 0.2, "share of requests answered 500 before anything is done, 0 to 1")
	slowRate := fs.Float64("slow-rate", 0.1, "share of the other requests answered only after --delay, 0 to 1")
	delay := fs.Duration("delay", 2*time.Second, "how late a slow answer is")
	jsonLogs := fs.Bool("json-logs", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := checkDemoFlags(fs.Args(), *addr, *public, *failRate, *slowRate, *delay); err != nil {
		fmt.Fprintf(stderr, "stepflow demo-services: %v\n", err)
		return exitUsage
	}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if *jsonLogs {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow demo-services: %v\n", err)
		return 1
	}
	svc := demoservice.New(demoservice.Config{FailRate: *failRate, SlowRate: *slowRate, Delay: *delay, Logger: log})
	srv := &http.Server{
		Handler:           svc,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests end with ctx, so slow answers do not hold up stopping.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(h, slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	printDemoServices(stdout, "http://"+ln.Addr().String(), *failRate, *slowRate, *delay)

	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(stderr, "stepflow demo-services: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Stopping...")
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), demoStopTimeout)
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil {
		fmt.Fprintf(stderr, "stepflow demo-services: stop: %v\n", err)
		return 1
	}
	st := svc.Stats()
	fmt.Fprintf(stdout, "Stopped. %d payment(s), %d shipment(s), %d notification(s) made; %d request(s), %d replay(s), %d injected failure(s).\n",
		st.Payments, st.Shipments, st.Notifications, st.Requests, st.Replays, st.InjectedFailures)
	return 0
}

// checkDemoFlags checks demo-services' flags: no arguments, rates from 0
// to 1, a delay not negative, and a loopback address unless public.
func checkDemoFlags(args []string, addr string, public bool, failRate, slowRate float64, delay time.Duration) error {
	switch {
	case len(args) > 0:
		return fmt.Errorf("unexpected argument %q", args[0])
	case !(failRate >= 0 && failRate <= 1):
		return fmt.Errorf("--fail-rate %v is not between 0 and 1", failRate)
	case !(slowRate >= 0 && slowRate <= 1):
		return fmt.Errorf("--slow-rate %v is not between 0 and 1", slowRate)
	case delay < 0:
		return fmt.Errorf("--delay %v is negative", delay)
	}
	loopback, err := isLoopback(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if !loopback && !public {
		return fmt.Errorf("refusing to listen on %s, which is not a loopback address: the demo services do whatever anyone asks; add --public to allow it", addr)
	}
	return nil
}

// isLoopback reports whether a listen address is on loopback only:
// localhost or a loopback IP. An empty host means every interface.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback(), nil
}

// printDemoServices tells the user where the services are and how to use
// them.
func printDemoServices(w io.Writer, base string, failRate, slowRate float64, delay time.Duration) {
	fmt.Fprintf(w, `Demo services are running (fail rate %v, slow rate %v, delay %v).
  payments:      %s/payments
  shipments:     %s/shipments
  notifications: %s/notifications
  stats:         %s/stats

Give a workflow's "http" steps these URLs. Every POST takes a JSON body and
an Idempotency-Key header, which Stepflow sends the same on every retry of a
step: a repeated key gets the first answer back (Idempotent-Replay: true), so
each payment and shipment is made once however often a step is retried.
Try it twice: one payment, then its replay (a 500 is an injected failure: send it again).
  curl -i -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '{"order_id": "ord_1", "amount": 19.99}' %s/payments
  curl %s/stats
Press Ctrl-C to stop.
`, failRate, slowRate, delay, base, base, base, base, base, base)
}
