package bench

import (
	"fmt"

	"stepflow/internal/deploy"
)

// List prices in US dollars, us-east-1, on demand, as published by AWS and
// Temporal (looked up in late 2026):
//
//   - DynamoDB on-demand: $0.625 per million write request units, $0.125
//     per million read request units (aws.amazon.com/dynamodb/pricing/on-demand).
//   - SQS standard queues: $0.40 per million requests after the free tier,
//     each 64 KB chunk of a payload billed as one request
//     (aws.amazon.com/sqs/pricing).
//   - Lambda on arm64: $0.20 per million requests and $0.0000133334 per
//     GB-second, duration rounded up to 1 ms (aws.amazon.com/lambda/pricing).
//   - API Gateway HTTP APIs: $1.00 per million requests, first 300 million a
//     month (aws.amazon.com/api-gateway/pricing).
//   - CloudWatch Logs: $0.50 per GB ingested, standard class
//     (aws.amazon.com/cloudwatch/pricing).
//   - Step Functions Standard: $0.025 per 1,000 state transitions, one for
//     each state a workflow executes, retries included
//     (aws.amazon.com/step-functions/pricing).
//   - Step Functions Express: $1.00 per million requests (executions) and
//     $0.06 per GB-hour of duration for the first 1,000 GB-hours, duration
//     rounded up to 100 ms and memory billed in 64 MB chunks, a workflow
//     using about 50 MB plus its definition and data (same page, pricing
//     examples 3 and 4).
//   - Lambda durable functions: $8.00 per million durable operations
//     (aws.amazon.com/lambda/pricing), on top of Lambda's request and
//     duration charges.
//   - Temporal Cloud: pay-as-you-go Actions from $50 per million, with
//     volume discounts down to $25 per million (temporal.io/pricing,
//     docs.temporal.io/cloud/pricing); a workflow start and each activity
//     (or activity retry) is an Action.
//
// Free tiers are left out: at a million steps they are either used up or a
// rounding error.
const (
	PricePerMillionWriteUnits     = 0.625
	PricePerMillionReadUnits      = 0.125
	PricePerMillionSQSRequests    = 0.40
	PricePerMillionLambdaRequests = 0.20
	PricePerLambdaGBSecondARM     = 0.0000133334
	PricePerMillionHTTPAPICalls   = 1.00
	PricePerGBLogsIngested        = 0.50

	PricePerMillionSFNTransitions     = 25.0
	PricePerMillionSFNExpressRequests = 1.00
	PricePerSFNExpressGBSecond        = 0.06 / 3600
	PricePerMillionDurableOperations  = 8.0
	PricePerMillionTemporalActions    = 50.0
	PricePerMillionTemporalVolume     = 25.0
)

// Assumptions of the comparison figures.
const (
	// sfnExpressGB and sfnExpressSeconds: an Express execution of four
	// zero-duration Lambda tasks fits the smallest memory chunk (64 MB) and
	// the first 100 ms of billed duration.
	sfnExpressGB      = 64.0 / 1024
	sfnExpressSeconds = 0.1
	// taskLambdaGB and taskLambdaSeconds: a zero-duration task in a Lambda
	// of its own, at the step runner's memory, billed the 1 ms minimum.
	taskLambdaGB      = deploy.StepRunnerMemoryMB / 1024.0
	taskLambdaSeconds = 0.001
)

// Alternative is one way to run the same steps, priced per million steps.
type Alternative struct {
	Name string
	// PerMillionSteps is the cost of a million zero-duration steps;
	// PerStepSecond the cost of a million steps each running one second
	// longer.
	PerMillionSteps, PerStepSecond float64
	Assumptions                    string
}

// comparison prices the bench's two 4-step workflows on other services.
func comparison() []Alternative {
	lambdaTask := PricePerMillionLambdaRequests + taskLambdaGB*taskLambdaSeconds*PricePerLambdaGBSecondARM*1e6
	lambdaSecond := taskLambdaGB * PricePerLambdaGBSecondARM * 1e6
	sfn := func(transitions float64) float64 {
		return transitions/4*PricePerMillionSFNTransitions + lambdaTask
	}
	express := (PricePerMillionSFNExpressRequests+sfnExpressGB*sfnExpressSeconds*PricePerSFNExpressGBSecond*1e6)/4 + lambdaTask
	expressSecond := lambdaSecond + sfnExpressGB*PricePerSFNExpressGBSecond*1e6
	durable := func(ops float64) float64 {
		return ops/4*PricePerMillionDurableOperations + PricePerMillionLambdaRequests/4
	}
	return []Alternative{
		{"Step Functions Standard, diamond", sfn(5), lambdaSecond,
			"5 transitions per run: A (Task), the Parallel state, B and C (Tasks in its branches), D (Task, End); no Pass, Choice or Succeed states, no retries (each adds one); plus one Lambda invocation per task (" + taskNote() + ")"},
		{"Step Functions Standard, order", sfn(4), lambdaSecond,
			"4 transitions per run: validate, charge, ship, notify as Task states, the last with End; a Succeed state or a Catch to a Fail state would add one each; plus one Lambda invocation per task"},
		{"Step Functions Express, either workflow", express, expressSecond,
			fmt.Sprintf("one request per run of 4 steps; duration %.0f ms at %.0f MB (the first billed 100 ms and 64 MB chunk); plus one Lambda invocation per task; at-least-once, runs of at most 5 minutes, no state kept between runs", sfnExpressSeconds*1000, sfnExpressGB*1024)},
		{"Lambda durable functions, order", durable(5), lambdaSecond,
			"5 durable operations per run (the execution and one step each) at $8 per million, plus one Lambda request per run; the function's own duration while it checkpoints, and the data written and retained, are not included"},
		{"Lambda durable functions, diamond", durable(8), lambdaSecond,
			"8 durable operations per run: the execution, 4 steps, and a parallel with one child context per branch (B, C), assuming contexts are billed like steps; plus one Lambda request per run; duration and data charges not included"},
		{"Temporal Cloud, either workflow", 5.0 / 4 * PricePerMillionTemporalActions, 0,
			fmt.Sprintf("5 Actions per run (the workflow start and 4 activities) at $%.0f per million ($%.2f per million steps at the $%.0f volume rate); the workers that run the activities are yours to host and pay for, and are not included", PricePerMillionTemporalActions, 5.0/4*PricePerMillionTemporalVolume, PricePerMillionTemporalVolume)},
	}
}

func taskNote() string {
	return fmt.Sprintf("%.0f MB, the %.0f ms minimum billed", taskLambdaGB*1024, taskLambdaSeconds*1000)
}
