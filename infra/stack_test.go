package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"stepflow/internal/deploy"
)

var (
	once     sync.Once
	template assertions.Template
	raw      map[string]any
	assembly string // the synthesized cloud assembly's folder
)

// synth builds the stack once with fake function assets and cdk.json's
// context (the CLI reads cdk.json; go test does not).
func synth(t *testing.T) (assertions.Template, map[string]any) {
	t.Helper()
	once.Do(func() {
		assets, err := os.MkdirTemp("", "stepflow-assets-")
		if err != nil {
			t.Fatal(err)
		}
		for _, fn := range []string{"api", "steprunner", "sweeper", "redrive", "authorizer"} {
			if err := os.MkdirAll(filepath.Join(assets, fn), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(assets, fn, "bootstrap"), []byte("fake"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var cdk struct {
			Context map[string]any `json:"context"`
		}
		data, err := os.ReadFile("cdk.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &cdk); err != nil {
			t.Fatal(err)
		}
		app := awscdk.NewApp(&awscdk.AppProps{Context: &cdk.Context})
		stack := NewStepflowStack(app, "Test", &StackProps{AssetDir: assets, FrontendDir: "../frontend", DeletionProtection: true})
		template = assertions.Template_FromStack(stack, nil)
		raw = *template.ToJSON()
		assembly = *app.Synth(nil).Directory()
	})
	return template, raw
}

// check runs an assertion, turning its panic into a test error.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

func obj(v map[string]any) *map[string]any { return &v }

func like(v map[string]any) assertions.Matcher { return assertions.Match_ObjectLike(obj(v)) }

func TestResources(t *testing.T) {
	tpl, raw := synth(t)
	check(t, "one table", func() { tpl.ResourceCountIs(jsii.String("AWS::DynamoDB::GlobalTable"), jsii.Number(1)) })
	check(t, "table settings", func() {
		tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), like(map[string]any{
			"BillingMode": "PAY_PER_REQUEST",
			"KeySchema": []any{
				map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
				map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
			},
			"GlobalSecondaryIndexes": assertions.Match_ArrayWith(&[]any{
				like(map[string]any{"IndexName": "by_kind", "Projection": like(map[string]any{"ProjectionType": "INCLUDE"})}),
				like(map[string]any{"IndexName": "by_active", "Projection": map[string]any{"ProjectionType": "KEYS_ONLY"}}),
			}),
			"Replicas": []any{like(map[string]any{
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
				"DeletionProtectionEnabled":        true,
			})},
		}))
	})
	check(t, "two encrypted queues", func() {
		tpl.ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(2))
		tpl.AllResourcesProperties(jsii.String("AWS::SQS::Queue"), like(map[string]any{"SqsManagedSseEnabled": true}))
	})
	check(t, "work queue redrives to the DLQ", func() {
		tpl.HasResourceProperties(jsii.String("AWS::SQS::Queue"), like(map[string]any{
			"VisibilityTimeout": 6 * stepRunnerTimeout,
			"RedrivePolicy":     like(map[string]any{"maxReceiveCount": maxReceiveCount}),
		}))
	})
	check(t, "alarms on DLQ depth and message age", func() {
		tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), like(map[string]any{"MetricName": "ApproximateNumberOfMessagesVisible", "Threshold": 0}))
		tpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), like(map[string]any{"MetricName": "ApproximateAgeOfOldestMessage", "Threshold": 300}))
	})
	for name, want := range map[string][2]int{"api": {deploy.APIMemoryMB, 15}, "steprunner": {deploy.StepRunnerMemoryMB, stepRunnerTimeout}, "sweeper": {deploy.SweeperMemoryMB, 60}, "redrive": {128, 300}, "authorizer": {128, 10}} {
		check(t, "function "+name, func() {
			tpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), like(map[string]any{
				"Handler": "bootstrap", "Runtime": "provided.al2023", "Architectures": []any{"arm64"},
				"MemorySize": want[0], "Timeout": want[1],
				"LoggingConfig": like(map[string]any{"LogFormat": "JSON"}),
			}))
		})
	}
	check(t, "log retention", func() {
		tpl.ResourcePropertiesCountIs(jsii.String("AWS::Logs::LogGroup"), like(map[string]any{"RetentionInDays": 30}), jsii.Number(5))
	})
	check(t, "step runner event source", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), like(map[string]any{
			"BatchSize": 10, "FunctionResponseTypes": []any{"ReportBatchItemFailures"},
			"ScalingConfig": map[string]any{"MaximumConcurrency": 20},
		}))
	})
	check(t, "sweeper schedule", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), like(map[string]any{"ScheduleExpression": "rate(1 minute)", "State": "ENABLED"}))
	})
	check(t, "HTTP API with CORS for the dashboard only", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), like(map[string]any{
			"ProtocolType": "HTTP",
			"CorsConfiguration": like(map[string]any{
				"AllowOrigins":  []any{like(map[string]any{"Fn::Join": assertions.Match_AnyValue()})},
				"ExposeHeaders": []any{"Link"},
			}),
		}))
	})
	check(t, "the token authorizer on every route but GET /healthz", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Authorizer"), like(map[string]any{
			"AuthorizerType": "REQUEST", "EnableSimpleResponses": true, "AuthorizerPayloadFormatVersion": "2.0",
			"IdentitySource": []any{"$request.header.Authorization"}, "AuthorizerResultTtlInSeconds": 30,
		}))
		tpl.ResourceCountIs(jsii.String("AWS::ApiGatewayV2::Route"), jsii.Number(2))
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), like(map[string]any{"RouteKey": "$default", "AuthorizationType": "CUSTOM", "AuthorizerId": assertions.Match_AnyValue()}))
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Route"), like(map[string]any{"RouteKey": "GET /healthz", "AuthorizationType": "NONE"}))
	})
	check(t, "TTL for rate counters", func() {
		tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), like(map[string]any{
			"TimeToLiveSpecification": map[string]any{"AttributeName": "ttl", "Enabled": true},
		}))
	})
	// The only allowed origin is https:// + the dashboard distribution's
	// domain.
	for id, r := range raw["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] != "AWS::ApiGatewayV2::Api" {
			continue
		}
		origins := res["Properties"].(map[string]any)["CorsConfiguration"].(map[string]any)["AllowOrigins"].([]any)
		js, _ := json.Marshal(origins)
		if len(origins) != 1 || !strings.Contains(string(js), `"https://"`) || !strings.Contains(string(js), "DashboardCDN") || !strings.Contains(string(js), "DomainName") {
			t.Errorf("API %s allows origins %s, want only the dashboard's CloudFront domain", id, js)
		}
	}
	check(t, "API throttling", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), like(map[string]any{
			"StageName":            "$default",
			"DefaultRouteSettings": like(map[string]any{"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}),
		}))
	})
	check(t, "private, encrypted dashboard bucket", func() {
		tpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), like(map[string]any{
			"PublicAccessBlockConfiguration": map[string]any{"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true},
			"BucketEncryption":               assertions.Match_AnyValue(),
		}))
	})
	check(t, "CloudFront with origin access control, HTTPS only, security headers", func() {
		tpl.ResourceCountIs(jsii.String("AWS::CloudFront::OriginAccessControl"), jsii.Number(1))
		tpl.HasResourceProperties(jsii.String("AWS::CloudFront::Distribution"), like(map[string]any{
			"DistributionConfig": like(map[string]any{
				"DefaultRootObject":    "index.html",
				"DefaultCacheBehavior": like(map[string]any{"ViewerProtocolPolicy": "redirect-to-https"}),
			}),
		}))
		tpl.HasResourceProperties(jsii.String("AWS::CloudFront::ResponseHeadersPolicy"), like(map[string]any{
			"ResponseHeadersPolicyConfig": like(map[string]any{"SecurityHeadersConfig": like(map[string]any{
				"ContentSecurityPolicy": like(map[string]any{"Override": true}),
				"FrameOptions":          like(map[string]any{"FrameOption": "DENY"}),
			})}),
		}))
	})
	// The CSP is joined with the region at deploy time; check its text.
	csp, _ := json.Marshal(raw["Resources"])
	for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "connect-src 'self' https://*.execute-api."} {
		if !strings.Contains(string(csp), want) {
			t.Errorf("dashboard CSP lacks %q", want)
		}
	}
	if !strings.Contains(string(csp), "STEPFLOW_QUEUE_VISIBILITY") {
		t.Error("the step runner is not told the queue's visibility timeout")
	}
	// The dashboard's files, its examples under examples/ with their index
	// (next to the page, where the picker fetches them), are staged.
	staged := map[string]bool{}
	_ = filepath.WalkDir(assembly, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(assembly, path)
			if _, inAsset, ok := strings.Cut(filepath.ToSlash(rel), "/"); ok {
				staged[inAsset] = true
			}
		}
		return nil
	})
	for _, want := range []string{"index.html", "ui/app.js", "examples/index.json", "examples/diamond-workflow.json", "examples/order-processing.json", "examples/simple-pipeline.json"} {
		if !staged[want] {
			t.Errorf("the dashboard deployment does not stage %s", want)
		}
	}
	check(t, "dashboard files with config.json", func() {
		tpl.HasResourceProperties(jsii.String("Custom::CDKBucketDeployment"), like(map[string]any{
			"SourceObjectKeys": assertions.Match_AnyValue(),
			"DistributionId":   assertions.Match_AnyValue(),
		}))
	})
	for _, o := range []string{"ApiUrl", "DashboardUrl", "QueueUrl", "DLQUrl", "TableName"} {
		check(t, "output "+o, func() { tpl.HasOutput(jsii.String(o), assertions.Match_AnyValue()) })
	}
}

// policies returns, per IAM policy resource, the roles it is attached to
// and its actions.
func policies(t *testing.T, raw map[string]any) map[string][2][]string {
	t.Helper()
	out := map[string][2][]string{}
	for id, r := range raw["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] != "AWS::IAM::Policy" {
			continue
		}
		props := res["Properties"].(map[string]any)
		var roles, actions []string
		for _, role := range props["Roles"].([]any) {
			roles = append(roles, fmt.Sprint(role))
		}
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			switch a := st.(map[string]any)["Action"].(type) {
			case string:
				actions = append(actions, a)
			case []any:
				for _, x := range a {
					actions = append(actions, x.(string))
				}
			}
		}
		out[id] = [2][]string{roles, actions}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	_, raw := synth(t)
	pols := policies(t, raw)
	if len(pols) == 0 {
		t.Fatal("no IAM policies")
	}
	perFunction := map[string][]string{}
	for id, p := range pols {
		for _, a := range p[1] {
			if a == "*" || strings.HasSuffix(a, ":*") {
				t.Errorf("policy %s grants the wildcard action %q", id, a)
			}
		}
		for _, fn := range []string{"api", "steprunner", "sweeper", "redrive", "authorizer"} {
			for _, role := range p[0] {
				if strings.Contains(role, fn+"ServiceRole") {
					perFunction[fn] = append(perFunction[fn], p[1]...)
					for _, a := range p[1] {
						if strings.Contains(a, "*") {
							t.Errorf("%s's policy has a wildcard action %q", fn, a)
						}
					}
				}
			}
		}
	}
	for id, r := range raw["Resources"].(map[string]any) {
		if arns, ok := r.(map[string]any)["Properties"].(map[string]any)["ManagedPolicyArns"]; ok && strings.Contains(fmt.Sprint(arns), "FullAccess") {
			t.Errorf("%s uses a FullAccess managed policy", id)
		}
	}
	has := func(fn, action string) bool {
		for _, a := range perFunction[fn] {
			if a == action {
				return true
			}
		}
		return false
	}
	tests := []struct {
		fn, action string
		want       bool
	}{
		{"api", "dynamodb:PutItem", true},
		{"api", "sqs:SendMessage", true},
		{"api", "sqs:ReceiveMessage", true}, // redrive from the DLQ
		{"steprunner", "dynamodb:UpdateItem", true},
		{"steprunner", "dynamodb:ConditionCheckItem", true},
		{"steprunner", "sqs:SendMessage", true},
		{"steprunner", "sqs:ChangeMessageVisibility", true},
		{"sweeper", "dynamodb:Query", true},
		{"sweeper", "sqs:SendMessage", true},
		{"sweeper", "sqs:ReceiveMessage", false},
		{"redrive", "sqs:ReceiveMessage", true},
		{"redrive", "sqs:SendMessage", true},
		{"redrive", "dynamodb:GetItem", false},
		{"redrive", "dynamodb:PutItem", false},
		{"authorizer", "dynamodb:GetItem", true},
		{"authorizer", "dynamodb:PutItem", false},
		{"authorizer", "sqs:SendMessage", false},
	}
	for _, tt := range tests {
		if got := has(tt.fn, tt.action); got != tt.want {
			t.Errorf("%s has %s = %v, want %v (actions %v)", tt.fn, tt.action, got, tt.want, perFunction[tt.fn])
		}
	}
}
