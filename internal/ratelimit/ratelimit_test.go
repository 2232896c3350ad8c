package ratelimit_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"stepflow/internal/ratelimit"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

func TestBlockDoublesUpToATwentiethOfTheLimit(t *testing.T) {
	tests := []struct{ taken, limit, want int }{
		{0, 600, 1}, {1, 600, 2}, {3, 600, 4}, {7, 600, 8}, {15, 600, 10}, {500, 600, 10},
		{7, 120, 6}, {7, 60, 3}, {0, 20, 1}, {30, 19, 1}, {5, 1, 1},
	}
	for _, tt := range tests {
		if got := ratelimit.Block(tt.taken, tt.limit); got != tt.want {
			t.Errorf("Block(%d, %d) = %d, want %d", tt.taken, tt.limit, got, tt.want)
		}
	}
}

// counted passes takes through to the store and counts the writes.
type counted struct {
	*store.Store
	writes atomic.Int64
}

func (c *counted) TakeRunStarts(ctx context.Context, caller string, n, limit int, now time.Time) error {
	c.writes.Add(1)
	return c.Store.TakeRunStarts(ctx, caller, n, limit, now)
}

var minute = time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)

// admit starts runs through lims in turn until every one is refused, and
// returns how many were admitted.
func admit(t *testing.T, caller string, limit int, at time.Time, lims ...*ratelimit.Blocks) int {
	t.Helper()
	admitted, refused := 0, map[int]bool{}
	for i := 0; len(refused) < len(lims); i++ {
		k := i % len(lims)
		if refused[k] {
			continue
		}
		err := lims[k].CountRunStartIfUnderLimit(context.Background(), caller, limit, at)
		switch {
		case errors.Is(err, store.ErrRateLimited):
			refused[k] = true
		case err != nil:
			t.Fatal(err)
		default:
			admitted++
		}
		if i > 10*limit {
			t.Fatal("the limit never refused")
		}
	}
	return admitted
}

// TestBlocksKeepTheLimitWithFewWrites: one process admits exactly the
// limit with a write per block; processes sharing a caller never admit
// more than the limit together, and lose at most a block less one each;
// a new minute starts afresh.
func TestBlocksKeepTheLimitWithFewWrites(t *testing.T) {
	t.Parallel()
	c := &counted{Store: testenv.Store(t)}
	one := &ratelimit.Blocks{Counter: c}
	if got := admit(t, "solo", 600, minute, one); got != 600 {
		t.Fatalf("one process admitted %d of 600", got)
	}
	// 1+2+4+8 then blocks of 10 (585 = 58 blocks and 5 singles), and
	// the refused block and single at the end.
	if w := c.writes.Load(); w > 70 {
		t.Errorf("%d counter writes for 600 starts, want at most 70", w)
	}
	if got := admit(t, "solo", 600, minute.Add(time.Minute), one); got != 600 {
		t.Fatalf("the next minute admitted %d of 600", got)
	}
	procs := []*ratelimit.Blocks{{Counter: c}, {Counter: c}, {Counter: c}}
	got := admit(t, "shared", 600, minute, procs...)
	if got > 600 || got < 600-len(procs)*(ratelimit.MaxBlock-1) {
		t.Fatalf("three processes admitted %d of 600, want 600 less at most %d", got, len(procs)*(ratelimit.MaxBlock-1))
	}
	small := []*ratelimit.Blocks{{Counter: c}, {Counter: c}}
	if got := admit(t, "small", 19, minute, small...); got != 19 {
		t.Fatalf("a limit under 20 is exact (blocks of one): admitted %d of 19", got)
	}
}
