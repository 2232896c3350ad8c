// Package awsclient builds AWS SDK clients for Stepflow's processes. On AWS
// the default chain is used as is. For local endpoints (kumo, DynamoDB
// Local, LocalStack) it fills in a region and dummy credentials when none
// are configured, and turns off the DynamoDB response checksum that
// emulators do not send.
package awsclient

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// DefaultRegion is used locally when AWS_REGION is not set.
const DefaultRegion = "us-east-1"

// Load returns the SDK configuration. With local set, a missing region and
// missing credentials get local defaults.
func Load(ctx context.Context, local bool) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if local {
		if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			opts = append(opts, config.WithRegion(DefaultRegion))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

// FromEnv is Load for a Lambda or a command configured by the standard
// variables: local defaults apply when an endpoint variable is set.
func FromEnv(ctx context.Context) (aws.Config, error) {
	return Load(ctx, EnvEndpoint("DYNAMODB") != "" || EnvEndpoint("SQS") != "")
}

// EnvEndpoint returns the endpoint the standard variables set for a service
// ("DYNAMODB", "SQS"): AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL.
func EnvEndpoint(service string) string {
	if e := os.Getenv("AWS_ENDPOINT_URL_" + service); e != "" {
		return e
	}
	return os.Getenv("AWS_ENDPOINT_URL")
}

// DynamoDB returns a DynamoDB client. A non-empty endpoint overrides the
// configured one and marks it local (no response checksum).
func DynamoDB(cfg aws.Config, endpoint string) *dynamodb.Client {
	local := endpoint != "" || EnvEndpoint("DYNAMODB") != ""
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.DisableValidateResponseChecksum = local
	})
}

// SQS returns an SQS client. A non-empty endpoint overrides the configured
// one.
func SQS(cfg aws.Config, endpoint string) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}
