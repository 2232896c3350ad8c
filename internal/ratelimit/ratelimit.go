// Package ratelimit admits a caller's run starts against its per-minute
// counter in DynamoDB, taking the counter's allowance in blocks so that a
// busy caller costs a write per block rather than per start.
//
// A process (an API Lambda's container) takes one start from the counter
// for a caller's first start of a minute, then blocks that grow with its
// use in that minute (1, 2, 4, 8, then the largest block), and admits the
// starts of a block without a write. The counter never admits more than
// the limit in a minute; a block the process does not use up is lost with
// the minute, so a caller may be refused early by at most a block less
// one start per process it used in that minute, and never by more than
// that process admitted. Near the limit, once a block does not fit, single
// starts are taken for the rest of the minute, so the limit itself stays
// reachable. Starts that find no allowance at the same moment each take a
// block of their own, so a burst of concurrent first starts costs a write
// each, as counting every start did.
package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"

	"stepflow/internal/store"
)

// Counter is the shared per-caller, per-minute count.
type Counter interface {
	// TakeRunStarts counts n starts if the minute's count stays at most
	// limit; store.ErrRateLimited if not.
	TakeRunStarts(ctx context.Context, caller string, n, limit int, now time.Time) error
}

// MaxBlock is the largest block taken at once.
const MaxBlock = 10

// Block is how many starts to take from the counter next, for a caller
// whose process took taken starts in this minute, under limit: one more
// than taken (so blocks double), at most MaxBlock and a twentieth of the
// limit (so the starts lost to unused blocks stay a small share of it),
// and at least one.
func Block(taken, limit int) int {
	return max(1, min(taken+1, MaxBlock, limit/20))
}

// Blocks admits run starts in blocks taken from Counter. It is safe for
// concurrent use; its zero value needs Counter set.
type Blocks struct {
	Counter Counter

	mu   sync.Mutex
	held map[string]*allowance
}

type allowance struct {
	minute      time.Time
	taken, left int
	// near: a block was refused this minute, so take single starts.
	near bool
}

// maxCallers bounds the callers remembered; past it, allowances of
// earlier minutes are dropped.
const maxCallers = 10000

// CountRunStartIfUnderLimit admits one run start by caller at now, or
// returns store.ErrRateLimited.
func (b *Blocks) CountRunStartIfUnderLimit(ctx context.Context, caller string, limit int, now time.Time) error {
	minute := now.UTC().Truncate(time.Minute)
	b.mu.Lock()
	a := b.current(caller, minute)
	if a != nil && a.left > 0 {
		a.left--
		b.mu.Unlock()
		return nil
	}
	n := 1
	if a != nil && !a.near {
		n = Block(a.taken, limit)
	}
	b.mu.Unlock()
	err := b.Counter.TakeRunStarts(ctx, caller, n, limit, now)
	if errors.Is(err, store.ErrRateLimited) && n > 1 {
		b.mu.Lock()
		if a := b.current(caller, minute); a != nil {
			a.near = true
		}
		b.mu.Unlock()
		n = 1
		err = b.Counter.TakeRunStarts(ctx, caller, n, limit, now)
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	if a = b.current(caller, minute); a != nil {
		a.taken += n
		a.left += n - 1
	}
	b.mu.Unlock()
	return nil
}

// current returns caller's allowance for minute, or nil if a later
// minute's replaced it. Called with b.mu held.
func (b *Blocks) current(caller string, minute time.Time) *allowance {
	if b.held == nil {
		b.held = map[string]*allowance{}
	}
	a := b.held[caller]
	switch {
	case a != nil && a.minute.Equal(minute):
		return a
	case a != nil && a.minute.After(minute):
		return nil
	}
	if len(b.held) >= maxCallers {
		for c, old := range b.held {
			if !old.minute.Equal(minute) {
				delete(b.held, c)
			}
		}
	}
	a = &allowance{minute: minute}
	b.held[caller] = a
	return a
}
