package engine

import (
	"context"
	"fmt"
	"time"

	"stepflow/internal/workflow"
)

// TaskInput identifies one attempt of a step.
type TaskInput struct {
	RunID   string
	StepID  string
	Index   int
	Attempt int // 0 for the first attempt
	// Generation is the run's generation the attempt was started in.
	Generation int
	Config     workflow.Config
}

// Task does a step's work. An error fails the attempt; its text becomes the
// step's error_message. Run must return when ctx is done.
type Task interface {
	Run(ctx context.Context, in TaskInput) error
}

// Simulated is the prototype's task: it takes duration_seconds and fails
// with probability fail_probability.
type Simulated struct {
	// Rand returns a number in [0, 1). Required.
	Rand func() float64
	// Sleep waits for d or until ctx is done; nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Run implements Task.
func (s Simulated) Run(ctx context.Context, in TaskInput) error {
	sleep := s.Sleep
	if sleep == nil {
		sleep = realSleep
	}
	d := time.Duration(in.Config.DurationSeconds * float64(time.Second))
	if err := sleep(ctx, d); err != nil {
		return err
	}
	if p := in.Config.FailProbability; p > 0 && s.Rand() < p {
		return fmt.Errorf("simulated failure (fail_probability %v)", p)
	}
	return nil
}

func realSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
