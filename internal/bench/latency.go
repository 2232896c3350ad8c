package bench

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
)

// addLatency makes every call of the clients built from cfg wait d before
// it is sent, as a round trip to AWS would: the engine and the floor get
// the same delay, so their ratio reflects round trips rather than CPU. Call
// it once per configuration.
func addLatency(cfg *aws.Config, d time.Duration) {
	if d <= 0 {
		return
	}
	cfg.APIOptions = append(cfg.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("stepflowBenchLatency", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return middleware.InitializeOutput{}, middleware.Metadata{}, ctx.Err()
			case <-t.C:
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
}
