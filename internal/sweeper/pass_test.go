package sweeper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"stepflow/internal/store"
)

// fakeShards lists shards of IDs "s<shard>-<n>", n from 0.
type fakeShards struct {
	sizes  []int
	page   int
	failAt map[string]bool // "shard/after" listings that fail
}

func (f fakeShards) list(_ context.Context, shard int, after string) ([]string, string, error) {
	if f.failAt[fmt.Sprintf("%d/%s", shard, after)] {
		return nil, "", errors.New("listing failed")
	}
	var all []string
	for n := range f.sizes[shard] {
		all = append(all, fmt.Sprintf("s%d-%03d", shard, n))
	}
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(all, after)
		if i < len(all) && all[i] == after {
			i++
		}
	}
	ids := all[i:min(i+f.page, len(all))]
	next := ""
	if i+f.page < len(all) {
		next = ids[len(ids)-1]
	}
	return ids, next, nil
}

func cursorOf(after []string, done []bool) store.SweepCursor {
	return store.SweepCursor{After: after, Done: done}
}

// TestPassCursorCoversOnlyWhatWasSwept: pages swept out of order move a
// shard's cursor only over the prefix all swept; a page that fails holds
// it there; a shard swept to its end (even by an empty last page) ends its
// lap; a shard already done this cycle is not listed.
func TestPassCursorCoversOnlyWhatWasSwept(t *testing.T) {
	t.Parallel()
	f := fakeShards{sizes: []int{5, 4, 7, 3}, page: 2}
	p := newPass(cursorOf([]string{"", "s1-001", "", ""}, []bool{false, false, false, true}))
	p.list, p.timeUp = f.list, func() bool { return false }
	ctx := context.Background()
	take := func() *page {
		t.Helper()
		pg, ok := p.next(ctx)
		if !ok {
			t.Fatal("no page")
		}
		return pg
	}
	// Shards in turn, skipping shard 3 (done) and shards listed to their
	// end: shard 1 resumes after its cursor, and its first page is its
	// last.
	var pages []*page
	for range 6 {
		pages = append(pages, take())
	}
	var got []string
	for _, pg := range pages {
		got = append(got, fmt.Sprint(pg.shard, pg.ids))
	}
	want := "[0 [s0-000 s0-001] 1 [s1-002 s1-003] 2 [s2-000 s2-001] 0 [s0-002 s0-003] 2 [s2-002 s2-003] 0 [s0-004]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("pages %v, want %s", got, want)
	}
	p.done(pages[1], true)
	// Shard 0: its second page is swept before its first.
	p.done(pages[3], true)
	if c := p.cursor(store.SweepCursor{}); c.After[0] != "" {
		t.Fatalf("shard 0's cursor moved over an unswept page: %q", c.After[0])
	}
	p.done(pages[0], true)
	// Shard 2: its first page fails, its second is swept.
	p.done(pages[2], false)
	p.done(pages[4], true)
	c := p.cursor(store.SweepCursor{})
	if fmt.Sprint(c.After) != "[s0-003 s1-003  ]" || fmt.Sprint(c.Done) != "[false true false true]" {
		t.Fatalf("cursor %q %v", c.After, c.Done)
	}
	// Nothing is left to start: shard 0 is listed to its end, shard 2
	// stopped by its failure.
	if pg, ok := p.next(ctx); ok {
		t.Fatalf("another page: %+v", pg)
	}
	p.done(pages[5], true)
	laps, ended := p.laps()
	c = p.cursor(store.SweepCursor{})
	if laps != 2 || ended || fmt.Sprint(c.After) != "[s0-004 s1-003  ]" || fmt.Sprint(c.Done) != "[true true false true]" {
		t.Fatalf("laps %d, cycle ended %v, cursor %q %v", laps, ended, c.After, c.Done)
	}
}

// TestPassStopsWhenTheBudgetIsSpent: once the budget is spent no page
// starts, and a listing that fails stops only its shard.
func TestPassStopsWhenTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	f := fakeShards{sizes: []int{10, 10}, page: 3, failAt: map[string]bool{"1/": true}}
	p := newPass(cursorOf(make([]string, 2), make([]bool, 2)))
	spent := false
	p.list, p.timeUp = f.list, func() bool { return spent }
	ctx := context.Background()
	pg, ok := p.next(ctx)
	if !ok || pg.shard != 0 {
		t.Fatalf("first page %+v %v", pg, ok)
	}
	pg2, ok := p.next(ctx) // shard 1 fails to list; shard 0 again
	if !ok || pg2.shard != 0 || p.err() == nil {
		t.Fatalf("second page %+v %v, errors %v", pg2, ok, p.err())
	}
	spent = true
	if pg3, ok := p.next(ctx); ok {
		t.Fatalf("a page started after the budget: %+v", pg3)
	}
	p.done(pg, true)
	p.done(pg2, true)
	if c := p.cursor(store.SweepCursor{}); fmt.Sprint(c.After) != "[s0-005 ]" || !p.outOfTime {
		t.Fatalf("cursor %v, out of time %v", c.After, p.outOfTime)
	}
}

func TestBound(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		active, workers, batch int
		perRun, budget, period time.Duration
		want                   time.Duration
	}{
		// One pass covers everything: the next pass's end.
		{100, 8, 100, 10 * time.Millisecond, 45 * time.Second, time.Minute, time.Minute + 45*time.Second + time.Second},
		// 100,000 runs, 8 workers at 2 ms a run: C = 180,000, L = 1.
		{100_000, 8, 100, 2 * time.Millisecond, 45 * time.Second, time.Minute, 105*time.Second + 200*time.Millisecond},
		// 100,000 runs, 8 workers at 10 ms a run: C = 36,000, L = 3.
		{100_000, 8, 100, 10 * time.Millisecond, 45 * time.Second, time.Minute, 5*time.Minute + 46*time.Second},
		// The old sweeper: one worker at 4 ms a run, 100,000 runs: L = 9.
		{100_000, 1, 1, 4 * time.Millisecond, 45 * time.Second, time.Minute, 17*time.Minute + 45*time.Second + 4*time.Millisecond},
		// No pass is sure to sweep anything.
		{10, 1, 1, time.Minute, time.Second, time.Minute, 0},
	} {
		if got := Bound(tt.active, tt.workers, tt.batch, tt.perRun, tt.budget, tt.period); got != tt.want {
			t.Errorf("Bound(%d, %d, %d, %v, %v, %v) = %v, want %v", tt.active, tt.workers, tt.batch, tt.perRun, tt.budget, tt.period, got, tt.want)
		}
	}
}

// TestCursorAcrossPasses: a pass resumes the stored cycle, or starts a
// new one when the shard count changed (IDs hash to other shards then);
// it leaves the cycle where it stopped, or a new one when it ended it.
func TestCursorAcrossPasses(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	stored := store.SweepCursor{After: []string{"run_b", ""}, Done: []bool{false, true}, Cycles: 4, Began: t0, Runs: 50, Passes: 2}
	for _, tt := range []struct {
		name   string
		c      store.SweepCursor
		shards int
		want   string
	}{
		{"the cycle goes on", stored, 2, fmt.Sprint(stored)},
		{"never saved", store.SweepCursor{}, 2, fmt.Sprint(store.SweepCursor{After: []string{"", ""}, Done: []bool{false, false}, Began: t0.Add(time.Hour)})},
		{"shards changed", stored, 3, fmt.Sprint(store.SweepCursor{After: []string{"", "", ""}, Done: []bool{false, false, false}, Cycles: 4, Began: t0.Add(time.Hour)})},
	} {
		if got := fmt.Sprint(resume(tt.c, tt.shards, t0.Add(time.Hour))); got != tt.want {
			t.Errorf("resume, %s: %s, want %s", tt.name, got, tt.want)
		}
	}
	goesOn := stored
	goesOn.Passes = 3
	if got := conclude(stored, false); fmt.Sprint(got) != fmt.Sprint(goesOn) {
		t.Errorf("conclude a pass within the cycle: %+v", got)
	}
	if got := conclude(stored, true); fmt.Sprint(got) != fmt.Sprint(store.SweepCursor{After: []string{"", ""}, Done: []bool{false, false}, Cycles: 5}) {
		t.Errorf("conclude the pass that ended the cycle: %+v", got)
	}
}
