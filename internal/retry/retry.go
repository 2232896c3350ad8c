// Package retry computes how long a failed step waits before its next
// attempt: exponential backoff with full jitter, capped. It is pure; the
// random source is injected so tests are deterministic.
package retry

import (
	"fmt"
	"math"
	"time"
)

// MaxCap is the longest delay SQS can apply to a message (DelaySeconds).
const MaxCap = 900 * time.Second

// Policy is exponential backoff with full jitter: before attempt n+1 (after
// n failures, n >= 1) the delay is uniform in [0, min(Cap, Base*2^(n-1))].
type Policy struct {
	Base time.Duration
	Cap  time.Duration
	// Rand returns a number in [0, 1). Required.
	Rand func() float64
}

// Default returns the default policy: base 1s, cap 60s.
func Default(rand func() float64) Policy {
	return Policy{Base: time.Second, Cap: time.Minute, Rand: rand}
}

// Validate checks the policy's bounds.
func (p Policy) Validate() error {
	switch {
	case p.Base <= 0:
		return fmt.Errorf("retry base must be positive, got %v", p.Base)
	case p.Cap < p.Base:
		return fmt.Errorf("retry cap %v is below the base %v", p.Cap, p.Base)
	case p.Cap > MaxCap:
		return fmt.Errorf("retry cap %v exceeds the SQS maximum delay of %v", p.Cap, MaxCap)
	case p.Rand == nil:
		return fmt.Errorf("retry policy needs a random source")
	}
	return nil
}

// Ceiling is the largest delay after failures failed attempts.
func (p Policy) Ceiling(failures int) time.Duration {
	if failures < 1 {
		return 0
	}
	exp := math.Pow(2, float64(failures-1))
	d := float64(p.Base) * exp
	if d > float64(p.Cap) || math.IsInf(d, 0) {
		return p.Cap
	}
	return time.Duration(d)
}

// Delay returns the delay before the next attempt after failures failed
// attempts, truncated to whole seconds (the unit of SQS DelaySeconds).
func (p Policy) Delay(failures int) time.Duration {
	d := time.Duration(p.Rand() * float64(p.Ceiling(failures)))
	return d.Truncate(time.Second)
}
