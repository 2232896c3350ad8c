package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"stepflow/internal/client"
	"stepflow/internal/status"
	"stepflow/internal/store"
)

// Exit codes of "stepflow run --watch" and "stepflow run-status".
const (
	exitCompleted = 0
	exitFailed    = 1
	exitUsage     = 2
	exitCancelled = 3
	exitError     = 4 // the API could not be reached or refused the input
	exitRunning   = 5 // run-status of a run that has not ended
)

// apiFlags adds --api and --token; connect builds the client from them.
type apiFlags struct{ api, token *string }

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		api:   fs.String("api", envOr("STEPFLOW_API", "http://127.0.0.1:8080"), "Stepflow API base URL (or STEPFLOW_API)"),
		token: fs.String("token", "", "API token (default: STEPFLOW_TOKEN, else the file "+tokenFileHint+")"),
	}
}

const tokenFileHint = "$XDG_CONFIG_HOME/stepflow/token"

func (f apiFlags) connect() *client.Client {
	c := client.New(*f.api)
	c.Token = *f.token
	if c.Token == "" {
		c.Token = os.Getenv("STEPFLOW_TOKEN")
	}
	if c.Token == "" {
		if dir, err := os.UserConfigDir(); err == nil {
			if b, err := os.ReadFile(filepath.Join(dir, "stepflow", "token")); err == nil {
				c.Token = strings.TrimSpace(string(b))
			}
		}
	}
	return c
}

// runCmd: stepflow run FILE [--order ID | --amount N] [--api URL] [--watch]
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	orderID := fs.String("order", "", "tie the run to this existing order")
	amount := fs.String("amount", "", "create an order of this amount and tie the run to it")
	watch := fs.Bool("watch", false, "show live progress until the run ends; the exit code is its final status")
	interval := fs.Duration("interval", 500*time.Millisecond, "how often --watch polls")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stepflow run FILE [--order ID | --amount N] [--api URL] [--watch]")
		fs.PrintDefaults()
	}
	// Accept the file before or after the flags.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	}
	if file == "" || fs.NArg() > 1 || (*orderID != "" && *amount != "") {
		fs.Usage()
		return exitUsage
	}
	def, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %v\n", err)
		return exitUsage
	}
	c := api.connect()
	wf, err := c.CreateWorkflow(ctx, def)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %s: %v\n", file, err)
		return exitError
	}
	if *amount != "" {
		o, err := c.CreateOrder(ctx, *amount)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow run: --amount: %v\n", err)
			return exitError
		}
		*orderID = o.ID
		fmt.Fprintf(stdout, "order %s (amount %s)\n", o.ID, o.Amount)
	}
	run, err := c.StartRun(ctx, wf.ID, *orderID)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "run %s of %s (%d steps)\n", run.ID, wf.Name, len(run.Steps))
	if !*watch {
		return exitCompleted
	}
	return watchRun(ctx, c, run.ID, *interval, stdout, stderr)
}

// watchRun redraws the run's progress until it ends. On a terminal it
// redraws in place; otherwise it prints a new block whenever anything
// changes.
func watchRun(ctx context.Context, c *client.Client, id string, every time.Duration, stdout, stderr io.Writer) int {
	tty := isTerminal(stdout)
	last, lines := "", 0
	for {
		d, err := c.Run(ctx, id)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow run: %v\n", err)
			return exitError
		}
		view := renderProgress(d)
		if view != last {
			if tty && lines > 0 {
				fmt.Fprintf(stdout, "\x1b[%dA\x1b[J", lines)
			}
			fmt.Fprint(stdout, view)
			last, lines = view, strings.Count(view, "\n")
		}
		if d.Status.Terminal() {
			return exitCode(d.Status)
		}
		select {
		case <-ctx.Done():
			return exitError
		case <-time.After(every):
		}
	}
}

func exitCode(s status.Run) int {
	switch s {
	case status.RunCompleted:
		return exitCompleted
	case status.RunFailed:
		return exitFailed
	case status.RunCancelled:
		return exitCancelled
	}
	return exitRunning
}

var marks = map[status.Step]string{
	status.StepPending: "·", status.StepRunning: "▶", status.StepCompleted: "✓",
	status.StepFailed: "✗", status.StepSkipped: "-", status.StepCancelled: "⊘",
}

// renderProgress draws a progress bar and one line per step.
func renderProgress(d store.RunDetail) string {
	done := 0
	width := 0
	for _, s := range d.Steps {
		if s.Status == status.StepCompleted {
			done++
		}
		width = max(width, len(s.StepID))
	}
	const barLen = 30
	filled := 0
	if len(d.Steps) > 0 {
		filled = done * barLen / len(d.Steps)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %d/%d steps  %s\n", strings.Repeat("#", filled), strings.Repeat("-", barLen-filled), done, len(d.Steps), d.Status)
	for _, s := range d.Steps {
		fmt.Fprintf(&b, "  %s %-*s  %-9s  retries %d/%d", marks[s.Status], width, s.StepID, s.Status, s.RetryCount, s.MaxRetries)
		if s.ErrorMessage != nil {
			fmt.Fprintf(&b, "  error: %s", *s.ErrorMessage)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runsCmd: stepflow runs [--status S] [--limit N] [--api URL]
func runsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	limit := fs.Int("limit", 20, "how many runs, newest first (1 to 200)")
	st := fs.String("status", "", "only runs in this status")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	runs, err := api.connect().Runs(ctx, *limit, *st)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow runs: %v\n", err)
		return exitError
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tWORKFLOW\tSTATUS\tSTEPS\tORDER\tSTARTED\tDURATION")
	for _, r := range runs {
		order := "-"
		if r.OrderID != nil {
			order = *r.OrderID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.WorkflowName, r.Status, r.StepCount, order, when(r.StartedAt), duration(r))
	}
	_ = tw.Flush()
	return 0
}

// runStatusCmd: stepflow run-status ID [--api URL]
func runStatusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run-status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	}
	if id == "" {
		fmt.Fprintln(stderr, "Usage: stepflow run-status RUN_ID [--api URL]")
		return exitUsage
	}
	d, err := api.connect().Run(ctx, id)
	var ae *client.Error
	if errors.As(err, &ae) && ae.Status == 404 {
		fmt.Fprintf(stderr, "stepflow run-status: no run %s\n", id)
		return exitError
	}
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run-status: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "run %s of %s: %s (started %s, %s)\n", d.ID, d.WorkflowName, d.Status, when(d.StartedAt), duration(d.Run))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTEP\tSTATUS\tRETRIES\tDEPENDS ON\tSTARTED\tENDED\tERROR")
	for _, s := range d.Steps {
		deps, msg := strings.Join(s.DependsOn, ","), ""
		if deps == "" {
			deps = "-"
		}
		if s.ErrorMessage != nil {
			msg = *s.ErrorMessage
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", s.StepIndex, s.StepID, s.Status, s.RetryCount, s.MaxRetries, deps, when(s.StartedAt), when(s.CompletedAt), msg)
	}
	_ = tw.Flush()
	return exitCode(d.Status)
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("15:04:05")
}

func duration(r store.Run) string {
	if r.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if r.CompletedAt != nil {
		end = *r.CompletedAt
	}
	return end.Sub(*r.StartedAt).Round(10 * time.Millisecond).String()
}
