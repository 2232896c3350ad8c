package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/customresources"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"stepflow/examples"
	"stepflow/internal/deploy"
	"stepflow/internal/store"
)

// StackProps configures the Stepflow stack.
type StackProps struct {
	awscdk.StackProps
	// AssetDir holds one folder per function with its bootstrap binary
	// (make build writes build/<name>/bootstrap).
	AssetDir string
	// FrontendDir is the dashboard's folder.
	FrontendDir string
	// DeletionProtection keeps the table from being deleted with the stack.
	DeletionProtection bool
}

// Function settings: memory and timeout were chosen for the simulated
// tasks (steps take up to 300 s; see DECISIONS.md).
const (
	stepRunnerTimeout = 330 // seconds: the longest step (300 s) plus margin
	maxReceiveCount   = 5
)

// The data actions each function may take, in one place per function.
// Each list is what the code calls today (read internal/engine,
// internal/sweeper and internal/store when either changes): a call missing
// here fails on AWS with AccessDenied, and the infra tests assert every
// list. A transaction needs the action of each of its items (a Put item
// needs PutItem, an Update item UpdateItem, a ConditionCheck item
// ConditionCheckItem); SendMessageBatch is authorized as SendMessage.
var (
	// The step runner (engine): Plan, Fence and the callback key (GetItem,
	// PutItem once), LoadItems and outputs (BatchGetItem), a run's input
	// (Query), claims and EndRunIfRunning (UpdateItem, or a transaction of
	// Update items), order reservations (a transaction of an Update and a
	// ConditionCheck), and CommitIfHeld (a transaction of Put, Update and,
	// for an approval's callback item, Delete items).
	runnerTableActions = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}
	// It sends ready steps and retries, and keeps a long step's message
	// hidden; the SQS event source adds what Lambda needs to receive and
	// delete.
	runnerQueueActions = []string{"sqs:SendMessage", "sqs:ChangeMessageVisibility"}
	// The sweeper: ListActiveRuns and ReadRun (Query), a page of runs and
	// their re-send marks (BatchGetItem), Plan and read-backs (GetItem),
	// EndRun (UpdateItem, or a transaction of Update items), its cursor's
	// lease and the re-send marks (UpdateItem); it re-sends stalled steps.
	sweeperTableActions = []string{"dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}
	sweeperQueueActions = []string{"sqs:SendMessage"}
	// The API: reads of one item, the callback key and lost answers read
	// back (GetItem), run details and outputs (BatchGetItem), lists,
	// histories and run data (Query, on the table and its indexes), new
	// workflows, run items and the callback key (PutItem), new orders (a
	// transaction of Put items), per-caller counters and the end or retry
	// of a one-item run (UpdateItem), larger ends and retries (a
	// transaction of Update and Put items), a decision (CommitIfHeld: Put,
	// Update and Delete items), and the undo of a run creation that lost
	// to another run (DeleteItem). No Scan, no BatchWriteItem, no
	// ConditionCheck item (only the runner reserves orders).
	apiTableActions = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
	// The token table: the authorizer and the API only read a token
	// (GetToken); only the token CLI, with an administrator's own
	// credentials, writes: create (PutItem), revoke (UpdateItem), list
	// (Scan). The TokenAdmin managed policy grants exactly that.
	tokenReadActions  = []string{"dynamodb:GetItem"}
	tokenAdminActions = []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Scan"}
	// The step runner resolves {{secrets.NAME}} with GetParameter
	// (internal/secrets.SSM), on the stack's secrets path only.
	runnerSecretActions = []string{"ssm:GetParameter"}
	// The deploy-time call that sets the API's CORS configuration
	// (apiCORS): UpdateApi on this stack's API alone.
	apiCORSActions = []string{"apigateway:PATCH"}
)

// The HttpAllowList parameter: CloudFormation admits the characters of
// host names, IPv4 and IPv6 addresses and CIDRs (and *), separated by
// commas; the step runner parses the entries. Its value is an environment
// variable of the step runner, and a function's variables share 4 KB.
const (
	httpAllowPattern   = `^[A-Za-z0-9.:/*_,-]*$`
	httpAllowMaxLength = 1024
)

// The limits' defaults, for a team's first deployment in an account with
// AWS's default quotas; each is a stack parameter (see limitParameters).
const (
	// 100 of the account's default 1,000 concurrent Lambda executions per
	// region: batches of 10 run concurrently, so up to 1,000 steps in
	// flight (20 allowed 200), and 900 executions stay for the API, the
	// authorizer, the sweeper and the account's other functions. Lambda
	// adds up to 300 pollers a minute, so a backlog reaches 100 within a
	// minute. The event source takes 2 to 1,000.
	defaultStepRunnerConcurrency = 100
	// 500 requests/s, burst 1,000: 5% of the account's default 10,000
	// requests/s and 20% of its 5,000 burst, shared by every API of the
	// account in the region, so one runaway client cannot take the
	// account's quota; at ~50 ms a request the API needs ~25 concurrent
	// executions for it.
	defaultAPIRate  = 500
	defaultAPIBurst = 1000
	// 600 run starts (or retries) a minute per caller: 10 a second, a
	// service starting a run per order at a busy shop's pace; one caller
	// at the cap writes its counter item 10 times a second (a partition
	// takes ~1,000), and takes 2% of the ~500 starts a second at which
	// the shared by_active index key saturates.
	defaultRunsPerMinute = 600
	// The busy index keys (every run, every live run) take a shard
	// suffix: each shard is an index partition of ~1,000 writes/s, and a
	// list reads every shard. 8 shards take ~8,000 writes/s.
	defaultIndexShards = 8
	// An ended run's items are kept 90 days, then expire by the main
	// table's TTL (attribute ttl).
	defaultRetentionDays = 90
)

// NewStepflowStack defines Stepflow on AWS: the DynamoDB table and the
// token table, the work queue and its DLQ, five Lambdas, an HTTP API and
// the dashboard on S3 behind CloudFront.
func NewStepflowStack(scope constructs.Construct, id string, props *StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)

	table := newTable(stack, props.DeletionProtection)
	tokens := newTokenTable(stack, props.DeletionProtection)

	dlq := awssqs.NewQueue(stack, jsii.String("StepsDLQ"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		EnforceSSL:      jsii.Bool(true),
	})
	suppress(dlq, "AwsSolutions-SQS3", "This queue is the dead-letter queue of the work queue; it needs none of its own.")
	queue := awssqs.NewQueue(stack, jsii.String("Steps"), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(6 * stepRunnerTimeout)),
		EnforceSSL:        jsii.Bool(true),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: dlq, MaxReceiveCount: jsii.Number(maxReceiveCount)},
	})
	awscloudwatch.NewAlarm(stack, jsii.String("DLQNotEmpty"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("Step messages are in the dead-letter queue: fix the cause, then redrive."),
		Metric:             dlq.MetricApproximateNumberOfMessagesVisible(nil),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	awscloudwatch.NewAlarm(stack, jsii.String("StepsBacklogOld"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("The oldest step message has waited over 5 minutes."),
		Metric:             queue.MetricApproximateAgeOfOldestMessage(nil),
		Threshold:          jsii.Number(300),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(3),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})

	limits := newLimitParameters(stack)

	// Every function that opens the main table's store (the API, the
	// step runner, the sweeper) is told its index shards and retention.
	tableEnv := map[string]*string{
		"STEPFLOW_TABLE":          table.TableName(),
		"STEPFLOW_QUEUE_URL":      queue.QueueUrl(),
		"STEPFLOW_INDEX_SHARDS":   limits.indexShards.ValueAsString(),
		"STEPFLOW_RETENTION_DAYS": limits.retentionDays.ValueAsString(),
	}
	fn := func(name string, memory, timeout float64, envs ...map[string]*string) awslambda.Function {
		e := map[string]*string{}
		for _, env := range envs {
			for k, v := range env {
				e[k] = v
			}
		}
		logs := awslogs.NewLogGroup(stack, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		f := awslambda.NewFunction(stack, jsii.String(name), &awslambda.FunctionProps{
			Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
			Architecture:  awslambda.Architecture_ARM_64(),
			Handler:       jsii.String("bootstrap"),
			Code:          awslambda.Code_FromAsset(jsii.String(filepath.Join(props.AssetDir, name)), nil),
			MemorySize:    jsii.Number(memory),
			Timeout:       awscdk.Duration_Seconds(jsii.Number(timeout)),
			Environment:   &e,
			LoggingFormat: awslambda.LoggingFormat_JSON,
			LogGroup:      logs,
		})
		cdknag.NagSuppressions_AddResourceSuppressions(f, &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM4"),
			Reason:    jsii.String("AWSLambdaBasicExecutionRole only lets the function write its own logs."),
			AppliesTo: &[]any{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"},
		}}, jsii.Bool(true))
		return f
	}

	apiFn := fn("api", deploy.APIMemoryMB, 15, tableEnv, map[string]*string{
		"STEPFLOW_TOKEN_TABLE":     tokens.TableName(),
		"STEPFLOW_DLQ_URL":         dlq.QueueUrl(),
		"STEPFLOW_RUNS_PER_MINUTE": limits.runsPerMinute.ValueAsString(),
	})
	authFn := fn("authorizer", 128, 10, map[string]*string{"STEPFLOW_TOKEN_TABLE": tokens.TableName()})
	// What http steps may call: public hosts always, private ones (and
	// CIDRs) only when listed here. A stack parameter, so an operator
	// changes it with an update of the stack, not a new build.
	httpAllow := awscdk.NewCfnParameter(stack, jsii.String("HttpAllowList"), &awscdk.CfnParameterProps{
		Type: jsii.String("String"),
		Description: jsii.String("Comma-separated hosts that http steps may call: host names (api.example.com), " +
			"wildcards (*.example.com), IPs and CIDRs; * admits any host whose addresses are all public. A loopback, " +
			"private or link-local address is called only when an entry names its host or covers its address. " +
			"Empty: http steps may call nothing."),
		Default:               jsii.String(""),
		AllowedPattern:        jsii.String(httpAllowPattern),
		ConstraintDescription: jsii.String("host names and CIDRs separated by commas, no spaces"),
		MaxLength:             jsii.Number(httpAllowMaxLength),
	})
	// The stack's secrets: SecureString parameters under a path named
	// after the stack (the CloudFormation stack name, so a template
	// deployed under another name reads its own).
	secretsPrefix := deploy.SecretsPrefix(*awscdk.Aws_STACK_NAME())
	runner := fn("steprunner", deploy.StepRunnerMemoryMB, stepRunnerTimeout, tableEnv, map[string]*string{
		"STEPFLOW_QUEUE_VISIBILITY": jsii.String(fmt.Sprintf("%ds", 6*stepRunnerTimeout)),
		deploy.EnvHTTPAllow:         httpAllow.ValueAsString(),
		deploy.EnvSecretsPrefix:     jsii.String(secretsPrefix),
	})
	sweeperFn := fn("sweeper", deploy.SweeperMemoryMB, 60, tableEnv)
	redriveFn := fn("redrive", 128, 300, map[string]*string{"STEPFLOW_QUEUE_URL": queue.QueueUrl(), "STEPFLOW_DLQ_URL": dlq.QueueUrl()})

	// Least privilege: each function gets the data actions it calls (the
	// lists above). The API owns workflows, runs, orders and the per-caller
	// rate counters in the main table; nothing but the token CLI writes
	// the token table.
	table.Grant(apiFn, *jsii.Strings(apiTableActions...)...)
	tokens.Grant(apiFn, *jsii.Strings(tokenReadActions...)...)
	queue.GrantSendMessages(apiFn)
	dlq.GrantConsumeMessages(apiFn)
	table.Grant(runner, *jsii.Strings(runnerTableActions...)...)
	queue.Grant(runner, *jsii.Strings(runnerQueueActions...)...)
	table.Grant(sweeperFn, *jsii.Strings(sweeperTableActions...)...)
	queue.Grant(sweeperFn, *jsii.Strings(sweeperQueueActions...)...)
	tokens.Grant(authFn, *jsii.Strings(tokenReadActions...)...)
	// The runner reads the stack's secrets, one parameter at a time, and
	// no other parameter. No kms:Decrypt: parameters encrypted with the
	// AWS managed key aws/ssm are decrypted through SSM for any principal
	// of the account by that key's own policy; a customer managed key
	// would need kms:Decrypt on it, with kms:ViaService ssm.<region>.
	secretsARN := stack.FormatArn(&awscdk.ArnComponents{
		Service:      jsii.String("ssm"),
		Resource:     jsii.String("parameter"),
		ResourceName: jsii.String(strings.TrimPrefix(secretsPrefix, "/") + "*"),
		ArnFormat:    awscdk.ArnFormat_SLASH_RESOURCE_NAME,
	})
	runner.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(runnerSecretActions...),
		Resources: jsii.Strings(*secretsARN),
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(runner, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("The step runner reads the stack's secrets by name; the wildcard is the names under the stack's own secrets path."),
		AppliesTo: &[]any{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):ssm:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]{12}):parameter\/stepflow\/<AWS::StackName>\/secrets\/\*$/g`)}},
	}}, jsii.Bool(true))
	dlq.GrantConsumeMessages(redriveFn)
	queue.GrantSendMessages(redriveFn)
	tokenAdmin := awsiam.NewManagedPolicy(stack, jsii.String("TokenAdmin"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("Attach to the people who run stepflow token create|list|revoke: the only writers of the token table."),
		Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings(tokenAdminActions...),
			Resources: jsii.Strings(*tokens.TableArn()),
		})},
	})
	for _, f := range []awslambda.Function{apiFn, runner, sweeperFn} {
		// Grants on the main table cover its indexes (the lists and the
		// sweeper's by_active index are index Queries).
		suppressIndexes(f)
	}

	runner.AddEventSource(awslambdaeventsources.NewSqsEventSource(queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(10),
		MaxConcurrency:          limits.stepRunnerConcurrency.ValueAsNumber(),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	awsevents.NewRule(stack, jsii.String("SweepEveryMinute"), &awsevents.RuleProps{
		Schedule: awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(deploy.SweepInterval.Minutes()))),
		Targets:  &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(sweeperFn, nil)},
	})

	// Every route requires a token checked by the authorizer except
	// GET /healthz and POST /callbacks/{token} (its path holds its
	// credential). No route takes OPTIONS: API Gateway answers CORS
	// preflights itself (see apiCORS), so an unauthenticated request
	// reaches the API Lambda on those two routes alone.
	// The authorizer authenticates only, so its answer depends on the
	// Authorization header alone, the cache key: results are cached for
	// 30 s, so a revoked token works at most 30 s more at the gateway; the
	// API Lambda checks every request again and enforces the role.
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("APIIntegration"), apiFn, nil)
	authorizer := awsapigatewayv2authorizers.NewHttpLambdaAuthorizer(jsii.String("TokenAuthorizer"), authFn, &awsapigatewayv2authorizers.HttpLambdaAuthorizerProps{
		ResponseTypes:   &[]awsapigatewayv2authorizers.HttpLambdaResponseType{awsapigatewayv2authorizers.HttpLambdaResponseType_SIMPLE},
		ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(30)),
		IdentitySource:  jsii.Strings("$request.header.Authorization"),
	})
	// No $default route: it catches every method, OPTIONS too, so
	// preflights (which carry no credentials) would meet the authorizer
	// and fail; AWS's answer is an unauthenticated OPTIONS /{proxy+}
	// route to an integration, which is what this stack no longer has.
	// A route without an authorizer must say so (NewHttpNoneAuthorizer).
	httpAPI := awsapigatewayv2.NewHttpApi(stack, jsii.String("API"), &awsapigatewayv2.HttpApiProps{
		DefaultAuthorizer:  authorizer,
		CreateDefaultStage: jsii.Bool(false),
	})
	// The methods of the API's routes (internal/api), on every path; a
	// route with another method needs it added here.
	httpAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String("/{proxy+}"),
		Methods:     &apiMethods,
		Integration: integration,
		Authorizer:  authorizer,
	})
	open := func(path string, method awsapigatewayv2.HttpMethod, why string) {
		for _, r := range *httpAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(path),
			Methods:     &[]awsapigatewayv2.HttpMethod{method},
			Integration: integration,
			Authorizer:  awsapigatewayv2.NewHttpNoneAuthorizer(),
		}) {
			suppress(r, "AwsSolutions-APIG4", why)
		}
	}
	open("/healthz", awsapigatewayv2.HttpMethod_GET, "The health check answers {\"status\":\"ok\"} and reads nothing.")
	// A waiting step's callback URL is a capability: the token in its
	// path is the credential, checked by the API Lambda, and the caller
	// (another system) has no Stepflow token. Access logs record the
	// route key, not the path, so the token is not logged.
	open("/callbacks/{token}", awsapigatewayv2.HttpMethod_POST, "A callback URL's path token is its credential (a capability URL), checked by the API Lambda; callers hold no Stepflow token.")
	accessLogs := awslogs.NewLogGroup(stack, jsii.String("APIAccessLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	stage := awsapigatewayv2.NewHttpStage(stack, jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageProps{
		HttpApi:    httpAPI,
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  limits.apiRate.ValueAsNumber(),
			BurstLimit: limits.apiBurst.ValueAsNumber(),
		},
	})
	// Access logs without the Authorization header or any body.
	stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: jsii.String(`{"request_id":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",` +
			`"route":"$context.routeKey","status":"$context.status","latency_ms":"$context.responseLatency",` +
			`"authorizer_error":"$context.authorizer.error","token_id":"$context.authorizer.token_id"}`),
	})
	apiURL := httpAPI.ApiEndpoint() // https://<id>.execute-api.<region>.<domain>, no trailing slash

	// The dashboard: its CSP names the API's endpoint, and the API's CORS
	// origin is the distribution's domain.
	site := awss3.NewBucket(stack, jsii.String("Dashboard"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
		AutoDeleteObjects: jsii.Bool(true),
	})
	headers := awscloudfront.NewResponseHeadersPolicy(stack, jsii.String("DashboardHeaders"), &awscloudfront.ResponseHeadersPolicyProps{
		SecurityHeadersBehavior: &awscloudfront.ResponseSecurityHeadersBehavior{
			ContentSecurityPolicy: &awscloudfront.ResponseHeadersContentSecurityPolicy{
				// connect-src allows this stack's API alone: its endpoint is
				// the origin (scheme and host) the dashboard calls.
				ContentSecurityPolicy: jsii.String(dashboardCSP(*apiURL)),
				Override:              jsii.Bool(true),
			},
			ContentTypeOptions:      &awscloudfront.ResponseHeadersContentTypeOptions{Override: jsii.Bool(true)},
			FrameOptions:            &awscloudfront.ResponseHeadersFrameOptions{FrameOption: awscloudfront.HeadersFrameOption_DENY, Override: jsii.Bool(true)},
			ReferrerPolicy:          &awscloudfront.ResponseHeadersReferrerPolicy{ReferrerPolicy: awscloudfront.HeadersReferrerPolicy_NO_REFERRER, Override: jsii.Bool(true)},
			StrictTransportSecurity: &awscloudfront.ResponseHeadersStrictTransportSecurity{AccessControlMaxAge: awscdk.Duration_Days(jsii.Number(365)), Override: jsii.Bool(true)},
		},
	})
	dist := awscloudfront.NewDistribution(stack, jsii.String("DashboardCDN"), &awscloudfront.DistributionProps{
		DefaultRootObject: jsii.String("index.html"),
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:                awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(site, nil),
			ViewerProtocolPolicy:  awscloudfront.ViewerProtocolPolicy_REDIRECT_TO_HTTPS,
			ResponseHeadersPolicy: headers,
		},
	})
	suppress(site, "AwsSolutions-S1", "The bucket is private and read only by CloudFront (origin access control); viewer requests are what matter and CloudFront sees them. S3 access logs would record CloudFront's own reads.")
	for _, r := range [][2]string{
		{"AwsSolutions-CFR1", "The dashboard is for operators wherever they are; it serves static files and holds no data."},
		{"AwsSolutions-CFR2", "Static files only; the API has its own throttling and authentication. A web ACL costs more than it protects here."},
		{"AwsSolutions-CFR3", "Static files only; the API's access logs record every data request."},
		{"AwsSolutions-CFR4", "The default *.cloudfront.net certificate cannot set a minimum TLS version; a custom domain and certificate would (TLSv1.2_2021). Viewers are redirected to HTTPS and get HSTS."},
	} {
		suppress(dist, r[0], r[1])
	}
	dashboardOrigin := "https://" + *dist.DistributionDomainName()
	apiCORS(stack, httpAPI, stage, dashboardOrigin)

	sources := []awss3deployment.ISource{
		awss3deployment.Source_Asset(jsii.String(props.FrontendDir), &awss3assets.AssetOptions{Exclude: jsii.Strings("*.go")}),
		awss3deployment.Source_JsonData(jsii.String("config.json"), map[string]string{"api_url": *apiURL}, nil),
	}
	sources = append(sources, exampleSources()...)
	awss3deployment.NewBucketDeployment(stack, jsii.String("DashboardFiles"), &awss3deployment.BucketDeploymentProps{
		DestinationBucket: site,
		Distribution:      dist,
		Sources:           &sources,
	})
	// BucketDeployment's own Lambda (a singleton of the stack): CDK picks
	// its runtime and writes its policy, scoped to the asset bucket and the
	// dashboard bucket; it runs only at deploy time.
	if deployer := stack.Node().TryFindChild(jsii.String("Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C")); deployer != nil {
		for _, r := range [][2]string{
			{"AwsSolutions-L1", "CDK's BucketDeployment chooses this function's runtime; it runs only during deploys."},
			{"AwsSolutions-IAM4", "CDK's BucketDeployment function writes its logs with AWSLambdaBasicExecutionRole."},
			{"AwsSolutions-IAM5", "CDK's BucketDeployment copies the staged assets (s3:GetObject*, s3:List*) into the dashboard bucket (s3:PutObject, s3:DeleteObject*) and invalidates CloudFront; its wildcards are object keys in those two buckets."},
		} {
			suppress(deployer, r[0], r[1])
		}
	}

	out := func(name string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(name), &awscdk.CfnOutputProps{Value: v})
	}
	out("ApiUrl", apiURL)
	out("DashboardUrl", jsii.String(dashboardOrigin))
	out("QueueUrl", queue.QueueUrl())
	out("DLQUrl", dlq.QueueUrl())
	out("TableName", table.TableName())
	out("TokenTableName", tokens.TableName())
	out("TokenAdminPolicyArn", tokenAdmin.ManagedPolicyArn())
	return stack
}

// limitParameters are the stack's capacity and retention settings,
// changed with an update of the stack (cdk deploy --parameters
// Name=value), not a new build. The bounds are what the services accept.
type limitParameters struct {
	stepRunnerConcurrency, apiRate, apiBurst, runsPerMinute awscdk.CfnParameter
	indexShards, retentionDays                              awscdk.CfnParameter
}

func newLimitParameters(stack awscdk.Stack) limitParameters {
	number := func(name, description string, def, min, max float64) awscdk.CfnParameter {
		return awscdk.NewCfnParameter(stack, jsii.String(name), &awscdk.CfnParameterProps{
			Type:                  jsii.String("Number"),
			Description:           jsii.String(description),
			Default:               jsii.Number(def),
			MinValue:              jsii.Number(min),
			MaxValue:              jsii.Number(max),
			ConstraintDescription: jsii.String(fmt.Sprintf("a whole number from %g to %g", min, max)),
		})
	}
	return limitParameters{
		// Maximum concurrency of an SQS event source: 2 to 1,000.
		stepRunnerConcurrency: number("StepRunnerMaxConcurrency",
			"Most step runner invocations at once (each runs a batch of up to 10 steps). Keep it under the account's Lambda concurrency quota.",
			defaultStepRunnerConcurrency, 2, 1000),
		// Up to the account's default regional quota (10,000 requests/s,
		// burst 5,000); raise both bounds with a quota increase.
		apiRate: number("ApiThrottleRate",
			"Requests per second the API stage admits, all callers together (then 429).",
			defaultAPIRate, 1, 10000),
		apiBurst: number("ApiThrottleBurst",
			"Requests the API stage admits at once above its rate.",
			defaultAPIBurst, 1, 5000),
		// The API wants a positive count; one counter item per caller and
		// minute takes every start, and a partition ~1,000 writes a second.
		runsPerMinute: number("RunsPerMinutePerCaller",
			"Runs each API token may start or retry per minute (then 429 with Retry-After).",
			defaultRunsPerMinute, 1, 60000),
		// A run's index keys carry a shard chosen among this many when it
		// is written, and lists query every shard up to this count: a
		// lower count stops reading the higher shards.
		indexShards: number("IndexShards",
			"Shards of the main table's busiest index keys (every run, every live run): each takes about 1,000 writes a second, and lists read them all. "+
				"It may only be raised, never lowered: runs written under a higher count would drop out of lists.",
			defaultIndexShards, 1, 64),
		// Up to ten years.
		retentionDays: number("RetentionDays",
			"Days an ended run's items are kept before the main table's TTL deletes them.",
			defaultRetentionDays, 1, 3650),
	}
}

// The HTTP API's methods and CORS settings. The API's routes use GET and
// POST alone (internal/api), and so does the dashboard
// (frontend/ui/api.js), sending Authorization and, with a body,
// Content-Type; it reads Link (the next page), and the API also exposes
// the count of runs a list left out. Browsers keep a preflight's answer
// for corsMaxAge seconds, as the API Lambda's own CORS (the local stack's)
// tells them.
var (
	apiMethods  = []awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET, awsapigatewayv2.HttpMethod_POST}
	corsMethods = []string{"GET", "POST"}
	corsHeaders = []string{"Authorization", "Content-Type"}
	// Stepflow-Unreadable-Runs is internal/api.UnreadableHeader, spelled
	// out: importing internal/api would pull its modules into this one.
	corsExposed = []string{"Link", "Stepflow-Unreadable-Runs"}
)

const corsMaxAge = 600

// apiCORS makes API Gateway answer CORS preflights for origin alone, and
// put its CORS headers on every answer (it ignores those the API Lambda
// sends). HttpApiProps.CorsPreflight would write them into the API
// resource, which would then name the distribution, whose CSP names the
// API: a dependency cycle CloudFormation refuses. So an SDK call
// (UpdateApi, which changes only the fields it is given) sets them once
// the API, its stage and the distribution exist, and again on a deploy
// that changes them.
func apiCORS(stack awscdk.Stack, httpAPI awsapigatewayv2.HttpApi, stage awsapigatewayv2.HttpStage, origin string) {
	call := &customresources.AwsSdkCall{
		Service: jsii.String("ApiGatewayV2"),
		Action:  jsii.String("UpdateApi"),
		Parameters: map[string]any{
			"ApiId": httpAPI.ApiId(),
			"CorsConfiguration": map[string]any{
				"AllowOrigins":     []string{origin},
				"AllowMethods":     corsMethods,
				"AllowHeaders":     corsHeaders,
				"ExposeHeaders":    corsExposed,
				"MaxAge":           corsMaxAge,
				"AllowCredentials": false,
			},
		},
		PhysicalResourceId: customresources.PhysicalResourceId_Of(httpAPI.ApiId()),
	}
	// UpdateApi is authorized as apigateway:PATCH on the API.
	apiARN := stack.FormatArn(&awscdk.ArnComponents{
		Service:  jsii.String("apigateway"),
		Account:  jsii.String(""),
		Resource: jsii.String("/apis/" + *httpAPI.ApiId()),
	})
	cors := customresources.NewAwsCustomResource(stack, jsii.String("APICors"), &customresources.AwsCustomResourceProps{
		OnCreate: call,
		OnUpdate: call,
		Policy: customresources.AwsCustomResourcePolicy_FromStatements(&[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Actions:   jsii.Strings(apiCORSActions...),
				Resources: jsii.Strings(*apiARN),
			}),
		}),
		// The SDK in the Lambda runtime has UpdateApi; fetching the
		// latest at deploy time would need the package registry.
		InstallLatestAwsSdk: jsii.Bool(false),
	})
	cors.Node().AddDependency(stage)
	// The call's function, a singleton of the stack named after its UUID.
	providerID := "AWS" + strings.ReplaceAll(*customresources.AwsCustomResource_PROVIDER_FUNCTION_UUID(), "-", "")
	if fn := stack.Node().TryFindChild(jsii.String(providerID)); fn != nil {
		suppress(fn, "AwsSolutions-IAM4", "CDK's AwsCustomResource function, run only during deploys to set the API's CORS configuration, writes its logs with AWSLambdaBasicExecutionRole.")
	}
}

// exampleSources ships the example workflows under examples/, with the
// index.json the dashboard's picker reads.
func exampleSources() []awss3deployment.ISource {
	names := examples.Names()
	index, _ := json.Marshal(names)
	out := []awss3deployment.ISource{awss3deployment.Source_Data(jsii.String("examples/index.json"), jsii.String(string(index)), nil)}
	for _, n := range names {
		data, err := fs.ReadFile(examples.FS, n)
		if err != nil {
			panic("read example " + n + ": " + err.Error())
		}
		out = append(out, awss3deployment.Source_Data(jsii.String("examples/"+n), jsii.String(string(data)), nil))
	}
	return out
}

// dashboardCSP is the dashboard's Content-Security-Policy: scripts, styles
// and data only from its own origin, API calls only to apiOrigin, no framing.
func dashboardCSP(apiOrigin string) string {
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self' " + apiOrigin + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// suppress records why a cdk-nag rule does not apply to c (and its
// children); the reason is part of the template's metadata.
func suppress(c constructs.IConstruct, rule, reason string) {
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{{Id: jsii.String(rule), Reason: jsii.String(reason)}}, jsii.Bool(true))
}

// suppressIndexes accepts the one wildcard in a function's grants on the
// main table: its indexes, which the lists and the sweeper query.
func suppressIndexes(f awslambda.Function) {
	cdknag.NagSuppressions_AddResourceSuppressions(f, &[]*cdknag.NagPackSuppression{{
		Id:        jsii.String("AwsSolutions-IAM5"),
		Reason:    jsii.String("Queries read the table's indexes (lists, the sweeper's by_active index); the wildcard is the table's own index ARNs."),
		AppliesTo: &[]any{&cdknag.RegexAppliesTo{Regex: jsii.String(`/^Resource::<Table[0-9A-F]{8}\.Arn>\/index\/\*$/g`)}},
	}}, jsii.Bool(true))
}

// newTokenTable defines the token table from store.TokenTableSchema, the
// same definition the local stack creates: the API tokens' records and
// nothing else, so that IAM can keep every function but the token CLI
// from writing them.
func newTokenTable(stack awscdk.Stack, protect bool) awsdynamodb.TableV2 {
	s := store.TokenTableSchema()
	return awsdynamodb.NewTableV2(stack, jsii.String("Tokens"), &awsdynamodb.TablePropsV2{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(s.PK), Type: awsdynamodb.AttributeType_STRING},
		Billing:                          awsdynamodb.Billing_OnDemand(nil),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(protect),
		RemovalPolicy:                    removal(protect),
	})
}

// newTable defines the table from store.TableSchema, the same definition
// the local stack creates.
func newTable(stack awscdk.Stack, protect bool) awsdynamodb.TableV2 {
	s := store.TableSchema()
	var gsis []*awsdynamodb.GlobalSecondaryIndexPropsV2
	for _, ix := range s.Indexes {
		g := &awsdynamodb.GlobalSecondaryIndexPropsV2{
			IndexName:    jsii.String(ix.Name),
			PartitionKey: &awsdynamodb.Attribute{Name: jsii.String(ix.PK), Type: awsdynamodb.AttributeType_STRING},
			SortKey:      &awsdynamodb.Attribute{Name: jsii.String(ix.SK), Type: awsdynamodb.AttributeType_STRING},
		}
		if len(ix.Projected) == 0 {
			g.ProjectionType = awsdynamodb.ProjectionType_KEYS_ONLY
		} else {
			g.ProjectionType = awsdynamodb.ProjectionType_INCLUDE
			g.NonKeyAttributes = jsii.Strings(ix.Projected...)
		}
		gsis = append(gsis, g)
	}
	return awsdynamodb.NewTableV2(stack, jsii.String("Table"), &awsdynamodb.TablePropsV2{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(s.PK), Type: awsdynamodb.AttributeType_STRING},
		SortKey:                          &awsdynamodb.Attribute{Name: jsii.String(s.SK), Type: awsdynamodb.AttributeType_STRING},
		Billing:                          awsdynamodb.Billing_OnDemand(nil),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		DeletionProtection:               jsii.Bool(protect),
		TimeToLiveAttribute:              jsii.String(s.TTL),
		GlobalSecondaryIndexes:           &gsis,
		RemovalPolicy:                    removal(protect),
	})
}

func removal(protect bool) awscdk.RemovalPolicy {
	if protect {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}
