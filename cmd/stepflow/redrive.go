package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// redriveCmd asks a running Stepflow API to move dead-lettered messages
// back to the work queue.
func redriveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api", envOr("STEPFLOW_API", "http://127.0.0.1:8080"), "Stepflow API base URL")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*apiURL, "/")+"/redrive", nil)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow redrive: %v\n", err)
		return 2
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "stepflow redrive: %v\n", err)
		return 1
	}
	defer res.Body.Close()
	var body struct {
		Moved int    `json:"moved"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "stepflow redrive: %s: %s\n", res.Status, body.Error)
		return 1
	}
	fmt.Fprintf(stdout, "moved %d message(s) from the dead-letter queue to the work queue\n", body.Moved)
	return 0
}
