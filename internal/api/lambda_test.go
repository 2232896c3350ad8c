package api_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"stepflow/internal/api"
	"stepflow/internal/testenv"
)

func loadEvent(t *testing.T, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestLambdaHandlerServesRecordedEvents feeds recorded API Gateway HTTP API
// events through the same adapter the Lambda entry point uses.
func TestLambdaHandlerServesRecordedEvents(t *testing.T) {
	t.Parallel()
	h := api.Lambda(api.New(api.Config{Store: testenv.Store(t), AllowedOrigins: []string{"https://dash.example"}}))
	ctx := context.Background()

	res, err := h(ctx, loadEvent(t, "apigw-v2-post-workflow.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		ID         string `json:"id"`
		Definition struct {
			Steps []struct {
				ID string `json:"id"`
			} `json:"steps"`
		} `json:"definition"`
	}
	if res.StatusCode != 201 || res.Headers["Content-Type"] != "application/json" {
		t.Fatalf("POST /workflows: %d %v %s", res.StatusCode, res.Headers, res.Body)
	}
	if err := json.Unmarshal([]byte(res.Body), &wf); err != nil || len(wf.Definition.Steps) != 2 {
		t.Fatalf("body %s (%v)", res.Body, err)
	}

	res, err = h(ctx, loadEvent(t, "apigw-v2-list-runs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 400 || !strings.Contains(res.Body, `"field":"status"`) || res.Headers["Access-Control-Allow-Origin"] != "https://dash.example" {
		t.Fatalf("GET /runs?status=sideways: %d %v %s", res.StatusCode, res.Headers, res.Body)
	}
}
