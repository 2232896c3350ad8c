package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"stepflow/internal/api"
	"stepflow/internal/client"
	"stepflow/internal/wire"
)

// Commands that act on a run: cancel, retry, and a decision on a waiting
// approval step (approve, reject). Each prints the run as run-status does
// and exits 0, or exitUsage before any call, or exitError with the API's
// message.

// cancelCmd: stepflow cancel RUN [--api URL]
func cancelCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cancel", "RUN", stderr)
	conn := addAPIFlags(fs)
	pos, ok := parseArgs(fs, args, "RUN")
	if !ok {
		return exitUsage
	}
	d, err := conn.connect().Cancel(ctx, pos[0])
	return report(stdout, stderr, "cancel", pos[0], d, err)
}

// retryCmd: stepflow retry RUN [--input JSON|@FILE] [--api URL]
func retryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("retry", "RUN [--input JSON|@FILE]", stderr)
	conn := addAPIFlags(fs)
	var in jsonFlag
	fs.Var(&in, "input", "a new input for the steps that run again: `JSON`, @FILE or @- (standard input)")
	pos, ok := parseArgs(fs, args, "RUN")
	if !ok {
		return exitUsage
	}
	input, err := in.value("--input", os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow retry: %v\n", err)
		return exitUsage
	}
	d, err := conn.connect().Retry(ctx, pos[0], input)
	return report(stdout, stderr, "retry", pos[0], d, err)
}

// approveCmd: stepflow approve RUN STEP [--output JSON|@FILE] [--api URL]
func approveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("approve", "RUN STEP [--output JSON|@FILE]", stderr)
	conn := addAPIFlags(fs)
	var out jsonFlag
	fs.Var(&out, "output", "the step's output, which later steps read: `JSON`, @FILE or @- (standard input)")
	pos, ok := parseArgs(fs, args, "RUN", "STEP")
	if !ok {
		return exitUsage
	}
	output, err := out.value("--output", os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow approve: %v\n", err)
		return exitUsage
	}
	d, err := conn.connect().Complete(ctx, pos[0], pos[1], output)
	return report(stdout, stderr, "approve", pos[0], d, err)
}

// rejectCmd: stepflow reject RUN STEP --error TEXT [--api URL]
func rejectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reject", "RUN STEP --error TEXT", stderr)
	conn := addAPIFlags(fs)
	reason := fs.String("error", "", "`TEXT` saying why the step fails (required); the run fails with it")
	pos, ok := parseArgs(fs, args, "RUN", "STEP")
	if !ok {
		return exitUsage
	}
	if strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(stderr, "stepflow reject: --error is required: say why the step fails")
		fs.Usage()
		return exitUsage
	}
	d, err := conn.connect().Fail(ctx, pos[0], pos[1], *reason)
	return report(stdout, stderr, "reject", pos[0], d, err)
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stepflow %s %s [--api URL]\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args, whose positional arguments (one for each of
// names) may come before, between or after the flags. On a usage error it
// says what is wrong and returns false.
func parseArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, bool) {
	var pos []string
	for {
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			pos, args = append(pos, args[0]), args[1:]
		}
		if len(args) == 0 {
			break
		}
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != len(names) {
		fmt.Fprintf(fs.Output(), "stepflow %s: want %s, got %d argument(s)\n", fs.Name(), strings.Join(names, " "), len(pos))
		fs.Usage()
		return nil, false
	}
	return pos, true
}

// report prints the run an API call answered, or the call's error.
func report(stdout, stderr io.Writer, cmd, runID string, d wire.RunDetail, err error) int {
	var ae *client.Error
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Field == "" && ae.Message == "not found":
		fmt.Fprintf(stderr, "stepflow %s: no run %s\n", cmd, runID)
		return exitError
	case err != nil:
		fmt.Fprintf(stderr, "stepflow %s: %v\n", cmd, err)
		return exitError
	}
	printRun(stdout, d)
	return 0
}

// jsonFlag is a flag whose value is JSON, given inline, as @FILE, or as @-
// (standard input). It only records the text; value reads and checks it.
type jsonFlag struct {
	text string
	set  bool
}

func (f *jsonFlag) String() string { return f.text }

func (f *jsonFlag) Set(s string) error {
	f.text, f.set = s, true
	return nil
}

// maxJSONFile bounds what @FILE reads: a file many times the API's limit
// is a mistake, and is refused without reading it all.
const maxJSONFile = 4 << 20

// value returns the flag's JSON (nil if the flag was not given), or an
// error naming the flag (name, such as "--input") and what is wrong: an
// unreadable file, text that is not one JSON value (or has a duplicate
// name or invalid UTF-8, which the API refuses too), or a value larger
// than the API takes.
func (f *jsonFlag) value(name string, stdin io.Reader) (json.RawMessage, error) {
	if !f.set {
		return nil, nil
	}
	data, from := []byte(f.text), name
	file, fromFile := strings.CutPrefix(f.text, "@")
	if fromFile {
		from = name + " " + f.text
		var r io.Reader = stdin
		if file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", from, err)
			}
			defer fh.Close()
			r = fh
		}
		var err error
		if data, err = io.ReadAll(io.LimitReader(r, maxJSONFile+1)); err != nil {
			return nil, fmt.Errorf("%s: %w", from, err)
		}
		if len(data) > maxJSONFile {
			return nil, fmt.Errorf("%s: larger than %d MiB; the API takes a value of at most %d KiB", from, maxJSONFile>>20, api.MaxInputBytes>>10)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s is empty; give a JSON value, such as {} or '\"text\"'", from)
	}
	var v jsontext.Value
	if err := jsonv2.Unmarshal(data, &v); err != nil {
		msg := fmt.Sprintf("%s is not JSON: %s", from, strings.TrimPrefix(err.Error(), "jsontext: "))
		if _, statErr := os.Stat(f.text); statErr == nil && !fromFile {
			msg += fmt.Sprintf(" (to read the file %s, write %s @%s)", f.text, name, f.text)
		}
		return nil, errors.New(msg)
	}
	if err := v.Compact(); err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	if len(v) > api.MaxInputBytes {
		return nil, fmt.Errorf("%s is %d bytes (without spaces); the API takes at most %d (%d KiB)", from, len(v), api.MaxInputBytes, api.MaxInputBytes>>10)
	}
	return json.RawMessage(v), nil
}
