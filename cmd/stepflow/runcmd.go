package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"stepflow/internal/client"
	"stepflow/internal/status"
	"stepflow/internal/wire"
	"stepflow/internal/workflow"
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

// runCmd: stepflow run FILE [--order ID | --amount N] [--input JSON|@FILE] [--api URL] [--watch]
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	orderID := fs.String("order", "", "tie the run to this existing order")
	amount := fs.String("amount", "", "create an order of this amount and tie the run to it")
	var in jsonFlag
	fs.Var(&in, "input", "the run's input, which its steps read: `JSON`, @FILE or @- (standard input)")
	watch := fs.Bool("watch", false, "show live progress until the run ends; the exit code is its final status")
	interval := fs.Duration("interval", 500*time.Millisecond, "how often --watch polls")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: stepflow run FILE [--order ID | --amount N] [--input JSON|@FILE] [--api URL] [--watch]")
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
	switch {
	case file == "":
		fmt.Fprintln(stderr, "stepflow run: missing the workflow FILE")
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "stepflow run: one workflow FILE at a time, got %d\n", fs.NArg())
	case *orderID != "" && *amount != "":
		fmt.Fprintln(stderr, "stepflow run: --order and --amount exclude each other (an existing order, or a new one)")
	default:
		input, err := in.value("--input", os.Stdin)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow run: %v\n", err)
			return exitUsage
		}
		return startAndWatch(ctx, api.connect(), file, *orderID, *amount, input, *watch, *interval, stdout, stderr)
	}
	fs.Usage()
	return exitUsage
}

// startAndWatch submits the workflow in file, starts a run (with an
// order, and input unless it is nil) and, with watch, follows it to its
// end.
func startAndWatch(ctx context.Context, c *client.Client, file, orderID, amount string, input json.RawMessage, watch bool, interval time.Duration, stdout, stderr io.Writer) int {
	def, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %v\n", err)
		return exitUsage
	}
	wf, err := c.CreateWorkflow(ctx, def)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %s: %v\n", file, err)
		return exitError
	}
	if amount != "" {
		o, err := c.CreateOrder(ctx, amount)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow run: --amount: %v\n", err)
			return exitError
		}
		orderID = o.ID
		fmt.Fprintf(stdout, "order %s (amount %s)\n", o.ID, o.Amount)
	}
	run, err := c.StartRun(ctx, wf.ID, orderID, input)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow run: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "run %s of %s (%d steps)\n", run.ID, wf.Name, len(run.Steps))
	if !watch {
		return exitCompleted
	}
	return watchRun(ctx, c, run.ID, interval, stdout, stderr)
}

// watchRun shows the run's progress until it ends. On a terminal it
// redraws the whole view in place; otherwise (a log, a pipe) it prints a
// line only for a step whose line changed, then the final progress bar.
func watchRun(ctx context.Context, c *client.Client, id string, every time.Duration, stdout, stderr io.Writer) int {
	tty := isTerminal(stdout)
	last, lines := "", 0
	printed := map[string]string{} // step id -> the line last printed for it
	for {
		d, err := c.Run(ctx, id)
		if err != nil {
			fmt.Fprintf(stderr, "stepflow run: %v\n", err)
			return exitError
		}
		if tty {
			if view := renderProgress(d); view != last {
				if lines > 0 {
					fmt.Fprintf(stdout, "\x1b[%dA\x1b[J", lines)
				}
				fmt.Fprint(stdout, view)
				last, lines = view, strings.Count(view, "\n")
			}
		} else {
			width := stepWidth(d)
			for _, s := range d.Steps {
				if l := stepLine(s, width); printed[s.StepID] != l {
					fmt.Fprintln(stdout, l)
					printed[s.StepID] = l
				}
			}
		}
		if d.Status.Terminal() {
			if !tty {
				fmt.Fprintln(stdout, progressBar(d))
			}
			return exitCode(d.Status)
		}
		select {
		case <-ctx.Done():
			return exitError
		case <-time.After(every):
		}
	}
}

func exitCode(s status.RunStatus) int {
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

var marks = map[status.StepStatus]string{
	status.StepPending: "·", status.StepRunning: "▶", status.StepCompleted: "✓",
	status.StepWaiting: "◷", status.StepFailed: "✗", status.StepSkipped: "-", status.StepCancelled: "⊘",
}

// renderProgress draws a progress bar and one line per step.
func renderProgress(d wire.RunDetail) string {
	var b strings.Builder
	b.WriteString(progressBar(d) + "\n")
	width := stepWidth(d)
	for _, s := range d.Steps {
		b.WriteString(stepLine(s, width) + "\n")
	}
	return b.String()
}

func progressBar(d wire.RunDetail) string {
	done := 0
	for _, s := range d.Steps {
		if s.Status == status.StepCompleted {
			done++
		}
	}
	const barLen = 30
	filled := 0
	if len(d.Steps) > 0 {
		filled = done * barLen / len(d.Steps)
	}
	return fmt.Sprintf("[%s%s] %d/%d steps  %s", strings.Repeat("#", filled), strings.Repeat("-", barLen-filled), done, len(d.Steps), d.Status)
}

func stepWidth(d wire.RunDetail) int {
	width := 0
	for _, s := range d.Steps {
		width = max(width, len(s.StepID))
	}
	return width
}

func stepLine(s wire.StepDetail, width int) string {
	l := fmt.Sprintf("  %s %-*s  %-9s  retries %d/%d", marks[s.Status], width, s.StepID, s.Status, s.RetryCount, s.MaxRetries)
	switch {
	case s.ErrorMessage != nil:
		l += "  error: " + printable(*s.ErrorMessage)
	case s.Status == status.StepWaiting && waitsFor(s) != "":
		l += "  " + waitsFor(s)
	case hasData(s.Output):
		l += "  output: " + brief(s.Output, maxLineData)
	}
	return l
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
	st := fs.String("status", "", "only runs in this status: "+runStatuses())
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *st != "" && !status.RunStatus(*st).Valid() {
		fmt.Fprintf(stderr, "stepflow runs: --status %q is not a run status; use one of %s\n", *st, runStatuses())
		return exitUsage
	}
	if *limit < 1 || *limit > 200 {
		fmt.Fprintf(stderr, "stepflow runs: --limit must be from 1 to 200, got %d\n", *limit)
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
			if r.OrderStatus != nil {
				order += " (" + string(*r.OrderStatus) + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.WorkflowName, r.Status, r.StepsCompleted, r.StepCount, order, when(r.StartedAt), duration(r))
	}
	_ = tw.Flush()
	return 0
}

func runStatuses() string {
	names := make([]string, len(status.Runs))
	for i, r := range status.Runs {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
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
	printRun(stdout, d)
	return exitCode(d.Status)
}

// printRun shows a run: a line for the run (and one for its input, if it
// has one), a table of its steps, then a line for each step that waits or
// has an output.
func printRun(w io.Writer, d wire.RunDetail) {
	fmt.Fprintf(w, "run %s of %s: %s (started %s, %s)\n", d.ID, d.WorkflowName, d.Status, when(d.StartedAt), duration(d.RunSummary))
	if in := inputLine(d); in != "" {
		fmt.Fprintln(w, in)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTEP\tSTATUS\tRETRIES\tDEPENDS ON\tSTARTED\tENDED\tERROR")
	for _, s := range d.Steps {
		deps, msg := strings.Join(s.DependsOn, ","), ""
		if deps == "" {
			deps = "-"
		}
		if s.ErrorMessage != nil {
			msg = printable(*s.ErrorMessage)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", s.StepIndex, s.StepID, s.Status, s.RetryCount, s.MaxRetries, deps, when(s.StartedAt), when(s.CompletedAt), msg)
	}
	_ = tw.Flush()
	for _, s := range d.Steps {
		switch {
		case s.Status == status.StepWaiting && s.Type == workflow.TypeApproval:
			fmt.Fprintf(w, "%s: waiting %s (stepflow approve|reject %s %s)\n", s.StepID, waitsFor(s), d.ID, s.StepID)
		case s.Status == status.StepWaiting:
			fmt.Fprintln(w, strings.TrimSpace(s.StepID+": waiting "+waitsFor(s)))
		case hasData(s.Output):
			fmt.Fprintf(w, "%s: output %s\n", s.StepID, brief(s.Output, maxData))
		case s.OutputOmitted:
			fmt.Fprintf(w, "%s: output left out of the run's detail (large): GET /runs/%s/steps/%s/output\n", s.StepID, d.ID, s.StepID)
		}
	}
}

// inputLine is "input <JSON>" for a run with an input, saying which retry
// gave it when one did; "" for a run without.
func inputLine(d wire.RunDetail) string {
	if !hasData(d.Input) {
		return ""
	}
	l := "input " + brief(d.Input, maxData)
	from := 0
	for _, in := range d.Inputs {
		if in.Generation <= d.Generation && in.Generation > from {
			from = in.Generation
		}
	}
	if from > 0 {
		l += fmt.Sprintf(" (from retry %d)", from)
	}
	return l
}

// waitsFor says what a waiting step waits for: "for approval" (and until
// when, if it times out) or "until <time>".
func waitsFor(s wire.StepDetail) string {
	var n []string
	if s.Type == workflow.TypeApproval {
		n = append(n, "for approval")
	}
	if s.WaitUntil != nil {
		n = append(n, "until "+deadline(s.WaitUntil))
	}
	return strings.Join(n, " ")
}

func hasData(v json.RawMessage) bool {
	return len(v) > 0 && string(v) != "null"
}

// How many characters show an input or an output: in run-status, and on a
// step's line in --watch, where a line of a step whose id has up to 12
// characters stays within 80 columns (a line that wraps would spoil the
// view redrawn in place).
const (
	maxData     = 60
	maxLineData = 30
)

// brief is a JSON value on one line, printable, in at most most characters:
// when cut, it ends with "… (N bytes)", its whole size.
func brief(v json.RawMessage, most int) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		b.Reset()
		b.Write(v)
	}
	r := []rune(printable(b.String()))
	if len(r) <= most {
		return string(r)
	}
	size := fmt.Sprintf("… (%d bytes)", b.Len())
	return string(r[:max(0, most-utf8.RuneCountInString(size))]) + size
}

// printable escapes what a terminal would act on rather than show: control
// characters (an escape sequence in a step's error, say, which an outside
// system can set through a callback) and invisible format characters.
func printable(s string) string {
	if !strings.ContainsFunc(s, hidden) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func hidden(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("15:04:05")
}

// deadline is when, with its date unless it is today: a wait's deadline
// may be days away.
func deadline(t *time.Time) string {
	if t == nil {
		return "-"
	}
	l := t.Local()
	if y, m, d := l.Date(); time.Now().Format("2006-01-02") == fmt.Sprintf("%04d-%02d-%02d", y, m, d) {
		return l.Format("15:04:05")
	}
	return l.Format("2006-01-02 15:04:05")
}

func duration(r wire.RunSummary) string {
	if r.StartedAt == nil {
		return "-"
	}
	end := time.Now()
	if r.CompletedAt != nil {
		end = *r.CompletedAt
	}
	return end.Sub(*r.StartedAt).Round(10 * time.Millisecond).String()
}
