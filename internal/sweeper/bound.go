package sweeper

import "time"

// Bound is the longest time between two visits of one active run (and
// from a run's creation to its first visit), for active runs A = active,
// W = workers, pages of b = batch runs, a per-run sweep time t = perRun (a
// worker's wall time per run, its share of listing included), a budget B
// and a pass every P = period, with B + leaseSlack below P and no pass
// failing:
//
//	C = W·⌊B/t⌋            runs one pass sweeps at least, unless its cycle ends
//	L = ⌈A/C⌉               passes a cycle takes at most
//	bound = (2L−1)·P + B + b·t
//
// A cycle starts with a pass, so a run visited in the first pass of one
// cycle is visited again, at the latest, by the end of the last pass of the
// next: 2L−1 periods later, plus that pass's budget and the page under way
// when it ran out. It returns 0 when W·⌊B/t⌋ is 0: no pass is sure to sweep
// anything.
func Bound(active, workers, batch int, perRun, budget, period time.Duration) time.Duration {
	if perRun <= 0 || workers < 1 {
		return 0
	}
	c := workers * int(budget/perRun)
	if c < 1 {
		return 0
	}
	l := max((active+c-1)/c, 1)
	return time.Duration(2*l-1)*period + budget + time.Duration(batch)*perRun
}
