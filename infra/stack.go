package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"

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
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3deployment"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

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

// NewStepflowStack defines Stepflow on AWS: one DynamoDB table, the work
// queue and its DLQ, four Lambdas, an HTTP API and the dashboard on S3
// behind CloudFront.
func NewStepflowStack(scope constructs.Construct, id string, props *StackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)

	table := newTable(stack, props.DeletionProtection)

	dlq := awssqs.NewQueue(stack, jsii.String("StepsDLQ"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		EnforceSSL:      jsii.Bool(true),
	})
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

	env := map[string]*string{
		"STEPFLOW_TABLE":     table.TableName(),
		"STEPFLOW_QUEUE_URL": queue.QueueUrl(),
	}
	fn := func(name string, memory, timeout float64, extra map[string]*string) awslambda.Function {
		e := map[string]*string{}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		logs := awslogs.NewLogGroup(stack, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		return awslambda.NewFunction(stack, jsii.String(name), &awslambda.FunctionProps{
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
	}

	// The dashboard's bucket and distribution come first: the API's CORS
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
				// connect-src allows the API (an execute-api domain).
				ContentSecurityPolicy: jsii.String("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
					"connect-src 'self' https://*.execute-api." + *stack.Region() + ".amazonaws.com; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
				Override: jsii.Bool(true),
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
	dashboardOrigin := "https://" + *dist.DistributionDomainName()

	apiFn := fn("api", deploy.APIMemoryMB, 15, map[string]*string{
		"STEPFLOW_DLQ_URL":         dlq.QueueUrl(),
		"STEPFLOW_CORS_ORIGINS":    jsii.String(dashboardOrigin),
		"STEPFLOW_RUNS_PER_MINUTE": jsii.String("60"),
	})
	authFn := fn("authorizer", 128, 10, nil)
	runner := fn("steprunner", deploy.StepRunnerMemoryMB, stepRunnerTimeout, map[string]*string{
		"STEPFLOW_QUEUE_VISIBILITY": jsii.String(fmt.Sprintf("%ds", 6*stepRunnerTimeout)),
	})
	sweeperFn := fn("sweeper", deploy.SweeperMemoryMB, 60, nil)
	redriveFn := fn("redrive", 128, 300, map[string]*string{"STEPFLOW_DLQ_URL": dlq.QueueUrl()})

	// Least privilege: each function gets the data actions it uses.
	table.GrantReadWriteData(apiFn)
	queue.GrantSendMessages(apiFn)
	dlq.GrantConsumeMessages(apiFn)
	table.GrantReadWriteData(runner)
	queue.GrantSendMessages(runner)
	table.GrantReadWriteData(sweeperFn)
	queue.GrantSendMessages(sweeperFn)
	table.GrantReadData(authFn)
	dlq.GrantConsumeMessages(redriveFn)
	queue.GrantSendMessages(redriveFn)

	runner.AddEventSource(awslambdaeventsources.NewSqsEventSource(queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(10),
		MaxConcurrency:          jsii.Number(20),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	awsevents.NewRule(stack, jsii.String("SweepEveryMinute"), &awsevents.RuleProps{
		Schedule: awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(deploy.SweepInterval.Minutes()))),
		Targets:  &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(sweeperFn, nil)},
	})

	// Every route requires a token checked by the authorizer (results
	// cached for 30 s, so a revoked token works at most 30 s more at the
	// gateway; the API Lambda checks every request again) except
	// GET /healthz.
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("APIIntegration"), apiFn, nil)
	authorizer := awsapigatewayv2authorizers.NewHttpLambdaAuthorizer(jsii.String("TokenAuthorizer"), authFn, &awsapigatewayv2authorizers.HttpLambdaAuthorizerProps{
		ResponseTypes:   &[]awsapigatewayv2authorizers.HttpLambdaResponseType{awsapigatewayv2authorizers.HttpLambdaResponseType_SIMPLE},
		ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(30)),
		IdentitySource:  jsii.Strings("$request.header.Authorization"),
	})
	httpAPI := awsapigatewayv2.NewHttpApi(stack, jsii.String("API"), &awsapigatewayv2.HttpApiProps{
		DefaultIntegration: integration,
		DefaultAuthorizer:  authorizer,
		CorsPreflight: &awsapigatewayv2.CorsPreflightOptions{
			AllowOrigins:  jsii.Strings(dashboardOrigin),
			AllowMethods:  &[]awsapigatewayv2.CorsHttpMethod{awsapigatewayv2.CorsHttpMethod_GET, awsapigatewayv2.CorsHttpMethod_POST, awsapigatewayv2.CorsHttpMethod_OPTIONS},
			AllowHeaders:  jsii.Strings("Content-Type", "Authorization"),
			ExposeHeaders: jsii.Strings("Link"),
			MaxAge:        awscdk.Duration_Minutes(jsii.Number(10)),
		},
		CreateDefaultStage: jsii.Bool(false),
	})
	httpAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String("/healthz"),
		Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET},
		Integration: integration,
		Authorizer:  awsapigatewayv2.NewHttpNoneAuthorizer(),
	})
	awsapigatewayv2.NewHttpStage(stack, jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageProps{
		HttpApi:    httpAPI,
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle:   &awsapigatewayv2.ThrottleSettings{RateLimit: jsii.Number(50), BurstLimit: jsii.Number(100)},
	})
	apiURL := "https://" + *httpAPI.ApiId() + ".execute-api." + *stack.Region() + ".amazonaws.com"

	sources := []awss3deployment.ISource{
		awss3deployment.Source_Asset(jsii.String(props.FrontendDir), &awss3assets.AssetOptions{Exclude: jsii.Strings("*.go")}),
		awss3deployment.Source_JsonData(jsii.String("config.json"), map[string]string{"api_url": apiURL}, nil),
	}
	sources = append(sources, exampleSources()...)
	awss3deployment.NewBucketDeployment(stack, jsii.String("DashboardFiles"), &awss3deployment.BucketDeploymentProps{
		DestinationBucket: site,
		Distribution:      dist,
		Sources:           &sources,
	})

	out := func(name string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(name), &awscdk.CfnOutputProps{Value: v})
	}
	out("ApiUrl", jsii.String(apiURL))
	out("DashboardUrl", jsii.String(dashboardOrigin))
	out("QueueUrl", queue.QueueUrl())
	out("DLQUrl", dlq.QueueUrl())
	out("TableName", table.TableName())
	return stack
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
