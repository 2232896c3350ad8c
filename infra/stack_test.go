package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"stepflow/internal/deploy"
)

var (
	once     sync.Once
	template assertions.Template
	raw      map[string]any
	assembly string // the synthesized cloud assembly's folder
	nag      assertions.Annotations
)

// synth builds the stack once with fake function assets and cdk.json's
// context (the CLI reads cdk.json; go test does not), with cdk-nag's
// AwsSolutions rules applied.
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
		awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true), Reports: jsii.Bool(false)}), nil)
		template = assertions.Template_FromStack(stack, nil)
		nag = assertions.Annotations_FromStack(stack)
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
	check(t, "the main table and the token table", func() { tpl.ResourceCountIs(jsii.String("AWS::DynamoDB::GlobalTable"), jsii.Number(2)) })
	check(t, "token table settings", func() {
		tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), like(map[string]any{
			"BillingMode": "PAY_PER_REQUEST",
			"KeySchema":   []any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}},
			"Replicas": []any{like(map[string]any{
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
				"DeletionProtectionEnabled":        true,
			})},
		}))
	})
	check(t, "table settings", func() {
		tpl.HasResourceProperties(jsii.String("AWS::DynamoDB::GlobalTable"), like(map[string]any{
			"BillingMode": "PAY_PER_REQUEST",
			"KeySchema": []any{
				map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
				map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
			},
			"GlobalSecondaryIndexes": assertions.Match_ArrayWith(&[]any{
				like(map[string]any{"IndexName": "by_kind", "Projection": map[string]any{"ProjectionType": "KEYS_ONLY"}}),
				like(map[string]any{"IndexName": "by_workflow", "Projection": map[string]any{"ProjectionType": "KEYS_ONLY"}}),
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
		// One per function and the API's access logs.
		tpl.ResourcePropertiesCountIs(jsii.String("AWS::Logs::LogGroup"), like(map[string]any{"RetentionInDays": 30}), jsii.Number(6))
	})
	check(t, "step runner event source", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Lambda::EventSourceMapping"), like(map[string]any{
			"BatchSize": 10, "FunctionResponseTypes": []any{"ReportBatchItemFailures"},
			"ScalingConfig": map[string]any{"MaximumConcurrency": map[string]any{"Ref": "StepRunnerMaxConcurrency"}},
		}))
	})
	check(t, "sweeper schedule", func() {
		tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), like(map[string]any{"ScheduleExpression": "rate(1 minute)", "State": "ENABLED"}))
	})
	// Its CORS configuration is set after the distribution exists (see
	// TestCORS): in the API resource it would make a dependency cycle.
	check(t, "HTTP API", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Api"), like(map[string]any{
			"ProtocolType":      "HTTP",
			"CorsConfiguration": assertions.Match_Absent(),
		}))
	})
	// The authorizer authenticates only, so its cached answer may be keyed
	// on the Authorization header alone (see TestAuthorizerCache).
	check(t, "the token authorizer", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Authorizer"), like(map[string]any{
			"AuthorizerType": "REQUEST", "EnableSimpleResponses": true, "AuthorizerPayloadFormatVersion": "2.0",
			"IdentitySource": []any{"$request.header.Authorization"}, "AuthorizerResultTtlInSeconds": 30,
		}))
	})
	check(t, "API access logs", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), like(map[string]any{
			"AccessLogSettings": like(map[string]any{"DestinationArn": assertions.Match_AnyValue(), "Format": assertions.Match_StringLikeRegexp(jsii.String(`token_id`))}),
		}))
	})
	// The main table expires items by their ttl attribute: rate
	// counters, and ended runs after RetentionDays.
	mainTable := resources(raw, "AWS::DynamoDB::GlobalTable")[logicalID(t, raw, "AWS::DynamoDB::GlobalTable", "Table")]
	if got, _ := json.Marshal(mainTable["Properties"].(map[string]any)["TimeToLiveSpecification"]); string(got) != `{"AttributeName":"ttl","Enabled":true}` {
		t.Errorf("the main table's TTL is %s, want the attribute ttl, enabled", got)
	}
	// API Gateway does CORS on AWS (TestCORS) and ignores the API
	// Lambda's CORS headers, so the Lambda is given no origins.
	apiEnv := functionEnv(t, raw, "api")
	if v, ok := apiEnv["STEPFLOW_CORS_ORIGINS"]; ok {
		t.Errorf("the API Lambda is given STEPFLOW_CORS_ORIGINS=%v; API Gateway's CORS configuration is the one that counts", v)
	}
	check(t, "API throttling", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), like(map[string]any{
			"StageName": "$default",
			"DefaultRouteSettings": like(map[string]any{
				"ThrottlingRateLimit":  map[string]any{"Ref": "ApiThrottleRate"},
				"ThrottlingBurstLimit": map[string]any{"Ref": "ApiThrottleBurst"},
			}),
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
	if _, ok := functionEnv(t, raw, "steprunner")["STEPFLOW_QUEUE_VISIBILITY"]; !ok {
		t.Error("the step runner is not told the queue's visibility timeout")
	}
	// The limits, the index shards and the retention: stack parameters
	// with the defaults a first deployment starts from (reasons in
	// stack.go), bounded by what the services and the store accept.
	for _, p := range []struct {
		name          string
		def, min, max int
	}{
		{"StepRunnerMaxConcurrency", 100, 2, 1000},
		{"ApiThrottleRate", 500, 1, 10000},
		{"ApiThrottleBurst", 1000, 1, 5000},
		{"RunsPerMinutePerCaller", 600, 1, 60000},
		{"IndexShards", 8, 1, 64},
		{"RetentionDays", 90, 1, 3650},
	} {
		check(t, "parameter "+p.name, func() {
			tpl.HasParameter(jsii.String(p.name), like(map[string]any{
				"Type": "Number", "Default": p.def, "MinValue": p.min, "MaxValue": p.max,
			}))
		})
	}
	if got, _ := json.Marshal(apiEnv["STEPFLOW_RUNS_PER_MINUTE"]); string(got) != `{"Ref":"RunsPerMinutePerCaller"}` {
		t.Errorf("STEPFLOW_RUNS_PER_MINUTE = %s, want the RunsPerMinutePerCaller parameter", got)
	}
	// Lowering IndexShards loses runs from lists: its description says so.
	check(t, "IndexShards may only be raised", func() {
		tpl.HasParameter(jsii.String("IndexShards"), like(map[string]any{
			"Description": assertions.Match_StringLikeRegexp(jsii.String(`only be raised, never lowered`)),
		}))
	})
	// Every function that opens the main table's store is told the index
	// shards and the retention; the others are not.
	for _, fn := range []string{"api", "steprunner", "sweeper", "redrive", "authorizer"} {
		env := functionEnv(t, raw, fn)
		_, opensTable := env["STEPFLOW_TABLE"]
		if want := fn == "api" || fn == "steprunner" || fn == "sweeper"; opensTable != want {
			t.Errorf("%s is given STEPFLOW_TABLE: %v, want %v", fn, opensTable, want)
		}
		for k, param := range map[string]string{"STEPFLOW_INDEX_SHARDS": "IndexShards", "STEPFLOW_RETENTION_DAYS": "RetentionDays"} {
			got, ok := env[k]
			js, _ := json.Marshal(got)
			switch {
			case opensTable && string(js) != `{"Ref":"`+param+`"}`:
				t.Errorf("%s: %s = %s, want the %s parameter", fn, k, js, param)
			case !opensTable && ok:
				t.Errorf("%s, which opens no main table store, is given %s", fn, k)
			}
		}
	}
	if params := raw["Parameters"].(map[string]any); len(params) != 8 {
		// The seven above and CDK's BootstrapVersion.
		var names []string
		for n := range params {
			names = append(names, n)
		}
		t.Errorf("parameters %v, want HttpAllowList, the six limits and BootstrapVersion", names)
	}
	check(t, "parameter HttpAllowList, empty by default", func() {
		tpl.HasParameter(jsii.String("HttpAllowList"), like(map[string]any{
			"Type": "String", "Default": "", "AllowedPattern": httpAllowPattern, "MaxLength": httpAllowMaxLength,
		}))
	})
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
	for _, o := range []string{"ApiUrl", "DashboardUrl", "QueueUrl", "DLQUrl", "TableName", "TokenTableName", "TokenAdminPolicyArn"} {
		check(t, "output "+o, func() { tpl.HasOutput(jsii.String(o), assertions.Match_AnyValue()) })
	}
}

// resources returns the template's resources of type typ by logical id.
func resources(raw map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range raw["Resources"].(map[string]any) {
		if res := r.(map[string]any); res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// logicalID returns the logical id of the one resource of type typ whose
// id starts with prefix.
func logicalID(t *testing.T, raw map[string]any, typ, prefix string) string {
	t.Helper()
	var found []string
	for id := range resources(raw, typ) {
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s named %s*, found %v", typ, prefix, found)
	}
	return found[0]
}

// functionEnv returns a function's environment variables.
func functionEnv(t *testing.T, raw map[string]any, fn string) map[string]any {
	t.Helper()
	id := logicalID(t, raw, "AWS::Lambda::Function", fn)
	props := resources(raw, "AWS::Lambda::Function")[id]["Properties"].(map[string]any)
	env, _ := props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	return vars
}

// TestDashboardCSPNamesTheAPI checks that the dashboard may connect to this
// stack's API endpoint alone, not to any API Gateway in the region.
func TestDashboardCSPNamesTheAPI(t *testing.T) {
	_, raw := synth(t)
	api := logicalID(t, raw, "AWS::ApiGatewayV2::Api", "API")
	var policies []map[string]any
	for _, r := range resources(raw, "AWS::CloudFront::ResponseHeadersPolicy") {
		policies = append(policies, r)
	}
	if len(policies) != 1 {
		t.Fatalf("want one response headers policy, found %d", len(policies))
	}
	cfg := policies[0]["Properties"].(map[string]any)["ResponseHeadersPolicyConfig"].(map[string]any)
	csp := cfg["SecurityHeadersConfig"].(map[string]any)["ContentSecurityPolicy"].(map[string]any)
	const marker = "API_ORIGIN"
	before, after, _ := strings.Cut(dashboardCSP(marker), marker)
	want := map[string]any{"Fn::Join": []any{"", []any{before, map[string]any{"Fn::GetAtt": []any{api, "ApiEndpoint"}}, after}}}
	got, _ := json.Marshal(csp["ContentSecurityPolicy"])
	wantJS, _ := json.Marshal(want)
	if string(got) != string(wantJS) || csp["Override"] != true {
		t.Fatalf("dashboard CSP is\n%s\nwant\n%s", got, wantJS)
	}
	if strings.Contains(string(got), "*") {
		t.Errorf("dashboard CSP has a wildcard: %s", got)
	}
	for _, want := range []string{"connect-src 'self' ", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(before+after, want) {
			t.Errorf("dashboard CSP lacks %q", want)
		}
	}
}

// grant is one action a role may take on one resource.
type grant struct{ role, action, resource string }

// grants lists, per function, every action its role's policies allow and
// on what, with the resource written as the logical id of the table or
// queue it names ("Table", "Tokens", "Steps", "StepsDLQ" prefixes) or its
// JSON when it names none of them.
func grants(t *testing.T, raw map[string]any) map[string][]grant {
	t.Helper()
	targets := map[string]string{}
	for _, typ := range []string{"AWS::DynamoDB::GlobalTable", "AWS::SQS::Queue"} {
		for id := range resources(raw, typ) {
			targets[id] = id
		}
	}
	name := func(res any) string {
		js, _ := json.Marshal(res)
		for id := range targets {
			if strings.Contains(string(js), `"`+id+`"`) {
				for _, p := range []string{"StepsDLQ", "Steps", "Tokens", "Table"} {
					if strings.HasPrefix(id, p) {
						if strings.Contains(string(js), "/index/") {
							return p + "/index/*"
						}
						return p
					}
				}
			}
		}
		return string(js)
	}
	out := map[string][]grant{}
	for id, res := range resources(raw, "AWS::IAM::Policy") {
		props := res["Properties"].(map[string]any)
		var fns []string
		for _, role := range props["Roles"].([]any) {
			for _, fn := range []string{"api", "steprunner", "sweeper", "redrive", "authorizer"} {
				if strings.Contains(fmt.Sprint(role), fn+"ServiceRole") {
					fns = append(fns, fn)
				}
			}
		}
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			if st["Effect"] != "Allow" {
				continue
			}
			var actions, resList []any
			switch a := st["Action"].(type) {
			case string:
				actions = []any{a}
			case []any:
				actions = a
			}
			switch r := st["Resource"].(type) {
			case []any:
				resList = r
			default:
				resList = []any{r}
			}
			for _, fn := range fns {
				for _, a := range actions {
					if a == "*" || strings.HasSuffix(a.(string), ":*") {
						t.Errorf("policy %s grants %s the wildcard action %q", id, fn, a)
					}
					for _, r := range resList {
						out[fn] = append(out[fn], grant{fn, a.(string), name(r)})
					}
				}
			}
		}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	_, raw := synth(t)
	all := grants(t, raw)
	for id, r := range raw["Resources"].(map[string]any) {
		props, _ := r.(map[string]any)["Properties"].(map[string]any)
		if arns, ok := props["ManagedPolicyArns"]; ok && strings.Contains(fmt.Sprint(arns), "FullAccess") {
			t.Errorf("%s uses a FullAccess managed policy", id)
		}
	}
	// on returns the actions fn may take on resource whose service is
	// service ("dynamodb", "sqs").
	on := func(fn, resource, service string) []string {
		var out []string
		for _, g := range all[fn] {
			if g.resource == resource && strings.HasPrefix(g.action, service+":") && !slices.Contains(out, g.action) {
				out = append(out, g.action)
			}
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	consume := []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"}
	send := []string{"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"}
	tests := []struct {
		fn, resource, service string
		want                  []string // exactly these, nothing else
	}{
		// The token table: read by the authorizer and the API, written by
		// nobody but the token CLI (TokenAdmin below).
		{"authorizer", "Tokens", "dynamodb", tokenReadActions},
		{"api", "Tokens", "dynamodb", tokenReadActions},
		{"steprunner", "Tokens", "dynamodb", nil},
		{"sweeper", "Tokens", "dynamodb", nil},
		{"redrive", "Tokens", "dynamodb", nil},
		// The authorizer touches nothing else.
		{"authorizer", "Table", "dynamodb", nil},
		{"authorizer", "Steps", "sqs", nil},
		{"authorizer", "StepsDLQ", "sqs", nil},
		// The runner and the sweeper: the calls they make.
		{"steprunner", "Table", "dynamodb", sorted(runnerTableActions)},
		{"steprunner", "Table/index/*", "dynamodb", sorted(runnerTableActions)},
		{"steprunner", "Steps", "sqs", sorted(append(append([]string{}, consume...), "sqs:SendMessage"))},
		{"steprunner", "StepsDLQ", "sqs", nil},
		{"sweeper", "Table", "dynamodb", sorted(sweeperTableActions)},
		{"sweeper", "Table/index/*", "dynamodb", sorted(sweeperTableActions)},
		{"sweeper", "Steps", "sqs", sweeperQueueActions},
		{"sweeper", "StepsDLQ", "sqs", nil},
		// Redrive moves messages and reads no table.
		{"redrive", "Table", "dynamodb", nil},
		{"redrive", "StepsDLQ", "sqs", consume},
		{"redrive", "Steps", "sqs", send},
		// The API: workflows, runs, orders and rate counters; it starts
		// runs and redrives.
		{"api", "Table", "dynamodb", sorted(apiTableActions)},
		{"api", "Table/index/*", "dynamodb", sorted(apiTableActions)},
		{"api", "Steps", "sqs", send},
		{"api", "StepsDLQ", "sqs", consume},
	}
	for _, tt := range tests {
		if got := on(tt.fn, tt.resource, tt.service); !slices.Equal(got, sorted(tt.want)) {
			t.Errorf("%s on %s: %v, want exactly %v", tt.fn, tt.resource, got, sorted(tt.want))
		}
	}
	// The API's calls, spelled out here so that a change to the list in
	// stack.go is a change to this test too: no Scan (one call reads every
	// workflow, run and order), no BatchWriteItem, no ConditionCheckItem.
	apiWant := sorted([]string{"dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"})
	for _, res := range []string{"Table", "Table/index/*"} {
		if got := on("api", res, "dynamodb"); !slices.Equal(got, apiWant) {
			t.Errorf("the API on %s: %v, want exactly %v", res, got, apiWant)
		}
	}
	for fn, gs := range all {
		for _, g := range gs {
			if g.action == "dynamodb:Scan" && strings.HasPrefix(g.resource, "Table") {
				t.Errorf("%s may Scan the main table (%s)", fn, g.resource)
			}
		}
	}
	// No role may write the token table; the TokenAdmin managed policy,
	// attached to no role, is the one way to.
	for fn, gs := range all {
		for _, g := range gs {
			if g.resource == "Tokens" && g.action != "dynamodb:GetItem" {
				t.Errorf("%s may %s on the token table", fn, g.action)
			}
		}
	}
	admin := resources(raw, "AWS::IAM::ManagedPolicy")
	if len(admin) != 1 {
		t.Fatalf("want one managed policy (TokenAdmin), found %d", len(admin))
	}
	for id, p := range admin {
		props := p["Properties"].(map[string]any)
		for _, k := range []string{"Roles", "Users", "Groups"} {
			if _, attached := props[k]; attached {
				t.Errorf("%s is attached to %s; it is for administrators to attach", id, k)
			}
		}
		js, _ := json.Marshal(props["PolicyDocument"])
		tokens := logicalID(t, raw, "AWS::DynamoDB::GlobalTable", "Tokens")
		var doc struct {
			Statement []struct {
				Action   []string
				Resource any
			}
		}
		_ = json.Unmarshal(js, &doc)
		if len(doc.Statement) != 1 || !slices.Equal(sorted(doc.Statement[0].Action), sorted(tokenAdminActions)) || !strings.Contains(fmt.Sprint(doc.Statement[0].Resource), tokens) {
			t.Errorf("TokenAdmin policy is %s; want %v on the token table only", js, tokenAdminActions)
		}
	}
	// The authorizer is told the token table's name and nothing else.
	if env := functionEnv(t, raw, "authorizer"); len(env) != 1 || env["STEPFLOW_TOKEN_TABLE"] == nil {
		t.Errorf("authorizer environment %v, want STEPFLOW_TOKEN_TABLE alone", env)
	}
}

// TestRoutesAuthorization: every route requires the token authorizer
// except the health check and callbacks (whose path token is the
// credential); all reach the API Lambda. No route takes OPTIONS, and there
// is no $default route to catch it: API Gateway answers preflights
// (TestCORS), so no unauthenticated OPTIONS request reaches the Lambda.
func TestRoutesAuthorization(t *testing.T) {
	tpl, raw := synth(t)
	open := map[string]bool{"GET /healthz": true, "POST /callbacks/{token}": true}
	authorized := map[string]bool{"GET /{proxy+}": true, "POST /{proxy+}": true}
	authorizer := logicalID(t, raw, "AWS::ApiGatewayV2::Authorizer", "")
	integrations := resources(raw, "AWS::ApiGatewayV2::Integration")
	if len(integrations) != 1 {
		t.Fatalf("want one integration (the API Lambda), found %d", len(integrations))
	}
	var integration string
	for id := range integrations {
		integration = id
	}
	seen := map[string]bool{}
	for id, r := range resources(raw, "AWS::ApiGatewayV2::Route") {
		props := r["Properties"].(map[string]any)
		key, _ := props["RouteKey"].(string)
		seen[key] = true
		auth, _ := json.Marshal(props["AuthorizerId"])
		method, _, _ := strings.Cut(key, " ")
		switch {
		case method == "OPTIONS" || method == "ANY" || key == "$default":
			t.Errorf("route %s (%s) takes OPTIONS requests; API Gateway answers preflights", key, id)
		case open[key]:
			if props["AuthorizationType"] != "NONE" || props["AuthorizerId"] != nil {
				t.Errorf("route %s (%s): authorization %v %s, want NONE", key, id, props["AuthorizationType"], auth)
			}
		case props["AuthorizationType"] != "CUSTOM" || !strings.Contains(string(auth), `"`+authorizer+`"`):
			t.Errorf("route %s (%s): authorization %v %s, want CUSTOM with the token authorizer", key, id, props["AuthorizationType"], auth)
		}
		if target, _ := json.Marshal(props["Target"]); !strings.Contains(string(target), `"`+integration+`"`) {
			t.Errorf("route %s (%s) targets %s, want the API Lambda's integration", key, id, target)
		}
	}
	for _, want := range []map[string]bool{open, authorized} {
		for key := range want {
			if !seen[key] {
				t.Errorf("no route %s", key)
			}
		}
	}
	if len(seen) != len(open)+len(authorized) {
		t.Errorf("routes %v, want %v with the authorizer and %v without", seen, authorized, open)
	}
	// Access logs name the route, never the path, which holds a
	// callback's token.
	check(t, "access logs without the path", func() {
		tpl.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), like(map[string]any{
			"AccessLogSettings": like(map[string]any{"Format": assertions.Match_StringLikeRegexp(jsii.String(`^((?!\$context\.path)(?!\$request\.path).)*$`))}),
		}))
	})
}

// TestCORS: API Gateway answers preflights and adds the CORS headers for
// the dashboard's CloudFront origin alone, with the methods and headers
// the dashboard uses, exposing Link. The configuration is set by a
// deploy-time UpdateApi call, once the API's stage and the distribution
// exist, by a function that may update this API and nothing else.
func TestCORS(t *testing.T) {
	_, raw := synth(t)
	api := logicalID(t, raw, "AWS::ApiGatewayV2::Api", "API")
	cdn := logicalID(t, raw, "AWS::CloudFront::Distribution", "DashboardCDN")
	stage := logicalID(t, raw, "AWS::ApiGatewayV2::Stage", "DefaultStage")
	calls := resources(raw, "Custom::AWS")
	if len(calls) != 1 {
		t.Fatalf("want one deploy-time SDK call (the API's CORS), found %d", len(calls))
	}
	var res map[string]any
	for _, r := range calls {
		res = r
	}
	props := res["Properties"].(map[string]any)
	if got, want := render(props["Update"]), render(props["Create"]); got != want {
		t.Errorf("the call on update\n%s\ndiffers from the one on create\n%s", got, want)
	}
	if _, ok := props["Delete"]; ok {
		t.Errorf("a call on delete: %s", render(props["Delete"]))
	}
	var call struct {
		Service, Action string
		Parameters      struct {
			ApiId             string
			CorsConfiguration map[string]any
		}
	}
	js := render(props["Create"])
	if err := json.Unmarshal([]byte(js), &call); err != nil {
		t.Fatalf("the call %s: %v", js, err)
	}
	if call.Service != "ApiGatewayV2" || call.Action != "UpdateApi" || call.Parameters.ApiId != "${"+api+"}" {
		t.Errorf("the call is %s %s on %s, want ApiGatewayV2 UpdateApi on ${%s}", call.Service, call.Action, call.Parameters.ApiId, api)
	}
	// Spelled out here, not read from stack.go, so that a change there is
	// a change to this test too.
	want := map[string]any{
		"AllowOrigins":     []any{"https://${" + cdn + ".DomainName}"},
		"AllowMethods":     []any{"GET", "POST"},
		"AllowHeaders":     []any{"Authorization", "Content-Type"},
		"ExposeHeaders":    []any{"Link", "Stepflow-Unreadable-Runs"},
		"MaxAge":           float64(600),
		"AllowCredentials": false,
	}
	got, _ := json.Marshal(call.Parameters.CorsConfiguration)
	wantJS, _ := json.Marshal(want)
	if string(got) != string(wantJS) {
		t.Errorf("the API's CORS configuration is\n%s\nwant\n%s", got, wantJS)
	}
	if deps := fmt.Sprint(res["DependsOn"]); !strings.Contains(deps, stage) {
		t.Errorf("the CORS call depends on %s, want the API's stage %s among them", deps, stage)
	}
	// The call's function may PATCH this API alone.
	var statements []string
	for id, p := range resources(raw, "AWS::IAM::Policy") {
		if !strings.HasPrefix(id, "APICors") {
			continue
		}
		for _, st := range p["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := st.(map[string]any)
			statements = append(statements, fmt.Sprintf("%v %v %s", st["Effect"], st["Action"], render(st["Resource"])))
		}
	}
	wantStatement := "Allow apigateway:PATCH arn:${AWS::Partition}:apigateway:${AWS::Region}::/apis/${" + api + "}"
	if len(statements) != 1 || statements[0] != wantStatement {
		t.Errorf("the CORS call's policy allows %q, want %q alone", statements, wantStatement)
	}
}

// render writes a template value as the string it resolves to, with
// ${Id} for a Ref and ${Id.Attribute} for a GetAtt.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if ref, ok := v["Ref"].(string); ok {
			return "${" + ref + "}"
		}
		if att, ok := v["Fn::GetAtt"].([]any); ok && len(att) == 2 {
			return fmt.Sprintf("${%v.%v}", att[0], att[1])
		}
		if join, ok := v["Fn::Join"].([]any); ok && len(join) == 2 {
			var parts []string
			for _, p := range join[1].([]any) {
				parts = append(parts, render(p))
			}
			return strings.Join(parts, join[0].(string))
		}
	}
	js, _ := json.Marshal(v)
	return string(js)
}

// TestStepRunnerSecretsAndHTTP: the step runner is told the HTTP allow
// list (the stack parameter) and its secrets path, may read parameters
// under that path alone, and no other function may read any.
func TestStepRunnerSecretsAndHTTP(t *testing.T) {
	_, raw := synth(t)
	env := functionEnv(t, raw, "steprunner")
	if got, _ := json.Marshal(env[deploy.EnvHTTPAllow]); string(got) != `{"Ref":"HttpAllowList"}` {
		t.Errorf("%s = %s, want the HttpAllowList parameter", deploy.EnvHTTPAllow, got)
	}
	const marker = "STACK"
	before, after, _ := strings.Cut(deploy.SecretsPrefix(marker), marker)
	wantPrefix, _ := json.Marshal(map[string]any{"Fn::Join": []any{"", []any{before, map[string]any{"Ref": "AWS::StackName"}, after}}})
	if got, _ := json.Marshal(env[deploy.EnvSecretsPrefix]); string(got) != string(wantPrefix) {
		t.Errorf("%s = %s, want %s", deploy.EnvSecretsPrefix, got, wantPrefix)
	}
	for _, fn := range []string{"api", "sweeper", "redrive", "authorizer"} {
		for _, k := range []string{deploy.EnvHTTPAllow, deploy.EnvSecretsPrefix} {
			if _, ok := functionEnv(t, raw, fn)[k]; ok {
				t.Errorf("%s is given %s", fn, k)
			}
		}
	}
	wantARN := `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":ssm:",{"Ref":"AWS::Region"},":",{"Ref":"AWS::AccountId"},` +
		`":parameter` + before + `",{"Ref":"AWS::StackName"},"` + after + `*"]]}`
	all := grants(t, raw)
	for fn, gs := range all {
		for _, g := range gs {
			service, _, _ := strings.Cut(g.action, ":")
			switch {
			case service == "kms":
				t.Errorf("%s may %s on %s; the AWS managed key aws/ssm needs no grant", fn, g.action, g.resource)
			case service != "ssm":
			case fn != "steprunner":
				t.Errorf("%s may %s on %s; only the step runner reads secrets", fn, g.action, g.resource)
			case !slices.Contains(runnerSecretActions, g.action) || g.resource != wantARN:
				t.Errorf("the step runner may %s on %s, want %v on %s alone", g.action, g.resource, runnerSecretActions, wantARN)
			}
		}
	}
	var reads []string
	for _, g := range all["steprunner"] {
		if strings.HasPrefix(g.action, "ssm:") {
			reads = append(reads, g.action)
		}
	}
	if !slices.Equal(reads, runnerSecretActions) {
		t.Errorf("the step runner's ssm actions are %v, want %v", reads, runnerSecretActions)
	}
}

// TestNag applies cdk-nag's AwsSolutions rules: every finding is fixed or
// suppressed in stack.go with its reason.
func TestNag(t *testing.T) {
	synth(t)
	var errs []string
	for _, m := range *nag.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		errs = append(errs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
	}
	if len(errs) > 0 {
		t.Errorf("%d unsuppressed cdk-nag errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	for _, m := range *nag.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
		t.Logf("cdk-nag warning %s: %v", *m.Id, m.Entry.Data)
	}
}
