// Package awsclient builds AWS SDK configuration for Stepflow's processes.
// On AWS the default chain is used as is; for a local endpoint (kumo,
// DynamoDB Local, LocalStack) it fills in a region and dummy credentials
// when none are configured, and turns off the response checksum that local
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
)

// DefaultRegion is used locally when AWS_REGION is not set.
const DefaultRegion = "us-east-1"

// Load returns the SDK configuration. If endpoint is not empty every
// service is sent there; otherwise the standard AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_<SERVICE> variables apply as usual.
func Load(ctx context.Context, endpoint string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if Local(endpoint) {
		if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			opts = append(opts, config.WithRegion(DefaultRegion))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
		}
	}
	if endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(endpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

// Local reports whether the process talks to a local emulator: endpoint is
// set, or one of the standard endpoint variables is.
func Local(endpoint string) bool {
	return endpoint != "" || os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != ""
}

// DynamoDB returns a DynamoDB client for cfg. For local endpoints it skips
// the CRC32 response check, which emulators do not support.
func DynamoDB(cfg aws.Config, local bool) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.DisableValidateResponseChecksum = local
	})
}
