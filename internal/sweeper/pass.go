package sweeper

import (
	"context"
	"errors"
	"sync"

	"stepflow/internal/store"
)

// pass is one Sweep's walk over the shards: the pages it listed and swept,
// and so where each shard's cursor stands. Workers call next for a page
// and done when they have swept it; both are safe for concurrent use.
//
// A shard's pages are listed one at a time (each listing starts after the
// last ID of the one before) but swept concurrently; the shard's cursor
// moves to the last ID of the longest prefix of its pages that were all
// swept, so a pass that stops, or a page that fails, never leaves a run
// behind the cursor unswept.
type pass struct {
	// list reads one page of a shard after a cursor (store.ListActiveRuns).
	list func(ctx context.Context, shard int, after string) (ids []string, next string, err error)
	// timeUp reports whether the budget is spent.
	timeUp func() bool

	mu     sync.Mutex
	listed *sync.Cond // signalled when a listing ends
	shards []*shardWalk
	turn   int // the shard the next page is listed from, if it can be
	// stopped: no page starts any more (the budget is spent, the context
	// is done, or the lease was lost).
	stopped, outOfTime bool
	errs               []error
}

type shardWalk struct {
	listedTo string // the last ID listed
	end      bool   // the listing reached the shard's end
	listing  bool
	failed   bool // a listing or a page failed: no more pages this pass
	pages    []*page
	swept    int    // pages[:swept] were all swept
	after    string // the cursor: the last ID of pages[:swept]
	done     bool   // the cycle swept this shard to its end
	lapEnded bool   // ... and it did so in this pass
}

type page struct {
	shard int
	ids   []string
	swept bool
}

func newPass(c store.SweepCursor) *pass {
	p := &pass{}
	p.listed = sync.NewCond(&p.mu)
	for i := range c.After {
		p.shards = append(p.shards, &shardWalk{listedTo: c.After[i], after: c.After[i], done: c.Done[i]})
	}
	return p
}

// next lists the next page to sweep, taking the shards in turn, and
// returns it; false when no page is left to start in this pass.
func (p *pass) next(ctx context.Context) (*page, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.stopped:
			return nil, false
		case ctx.Err() != nil:
			p.stopped = true
			return nil, false
		case p.timeUp():
			p.stopped, p.outOfTime = true, true
			return nil, false
		}
		k, waiting := -1, false
		for j := range p.shards {
			i := (p.turn + j) % len(p.shards)
			w := p.shards[i]
			if w.done || w.end || w.failed {
				continue
			}
			if w.listing {
				waiting = true
				continue
			}
			k = i
			break
		}
		if k < 0 {
			if !waiting {
				return nil, false
			}
			p.listed.Wait()
			continue
		}
		p.turn = k + 1
		w := p.shards[k]
		w.listing = true
		p.mu.Unlock()
		ids, next, err := p.list(ctx, k, w.listedTo)
		p.mu.Lock()
		w.listing = false
		p.listed.Broadcast()
		if err != nil {
			w.failed = true
			p.errs = append(p.errs, err)
			continue
		}
		if next == "" {
			w.end = true
		}
		if len(ids) == 0 {
			p.advance(w)
			continue
		}
		w.listedTo = ids[len(ids)-1]
		pg := &page{shard: k, ids: ids}
		w.pages = append(w.pages, pg)
		return pg, true
	}
}

// done records that pg was swept (ok) or could not be (the shard stops).
func (p *pass) done(pg *page, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.shards[pg.shard]
	if !ok {
		w.failed = true
		return
	}
	pg.swept = true
	p.advance(w)
}

// advance moves w's cursor over the pages swept, and ends its lap when the
// listing reached the end and every page was swept.
func (p *pass) advance(w *shardWalk) {
	for w.swept < len(w.pages) && w.pages[w.swept].swept {
		w.after = w.pages[w.swept].ids[len(w.pages[w.swept].ids)-1]
		w.swept++
	}
	if w.end && !w.failed && !w.done && w.swept == len(w.pages) {
		w.done, w.lapEnded = true, true
	}
}

// stop makes next start no more pages.
func (p *pass) stop(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.errs = append(p.errs, err)
	p.listed.Broadcast()
}

// cursor returns where the shards stand: c with each shard's After and
// Done as this pass left them.
func (p *pass) cursor(c store.SweepCursor) store.SweepCursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.After, c.Done = make([]string, len(p.shards)), make([]bool, len(p.shards))
	for i, w := range p.shards {
		c.After[i], c.Done[i] = w.after, w.done
	}
	return c
}

// laps counts the shards whose lap ended in this pass; cycleEnded reports
// whether every shard's lap of the cycle has ended.
func (p *pass) laps() (laps int, cycleEnded bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cycleEnded = true
	for _, w := range p.shards {
		if w.lapEnded {
			laps++
		}
		cycleEnded = cycleEnded && w.done
	}
	return laps, cycleEnded
}

// ranOutOfTime reports whether the pass stopped because its budget was
// spent.
func (p *pass) ranOutOfTime() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outOfTime
}

func (p *pass) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}
