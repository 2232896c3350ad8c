package runstate

import (
	"slices"
	"strconv"

	"stepflow/internal/workflow"
)

// A run's step slots are split over items so that each item stays under
// 1 KB, DynamoDB's unit of write cost: the header holds the first
// HeaderSlots steps next to the run's metadata, and each chunk the next
// ChunkSlots. A step takes at most about 53 bytes there: its slot (a running
// one, the largest, about 36 bytes with its name and the inline mark) and, once committed, its
// commit record (RecordName, about 20 bytes). So a header of about 400 bytes
// of metadata plus 10 steps, and a chunk of 16, both fit.
const (
	HeaderSlots = 10
	ChunkSlots  = 16
)

// Items returns how many items hold the slots of a run of n steps: the
// header and its chunks.
func Items(n int) int {
	if n <= HeaderSlots {
		return 1
	}
	return 1 + (n-HeaderSlots+ChunkSlots-1)/ChunkSlots
}

// ItemOf returns the item holding step i's slot: 0 for the header, k >= 1
// for chunk k.
func ItemOf(i int) int {
	if i < HeaderSlots {
		return 0
	}
	return 1 + (i-HeaderSlots)/ChunkSlots
}

// ItemSteps returns the steps [lo, hi) whose slots item k of a run of n
// steps holds.
func ItemSteps(k, n int) (lo, hi int) {
	if k == 0 {
		return 0, min(n, HeaderSlots)
	}
	lo = HeaderSlots + (k-1)*ChunkSlots
	return lo, min(n, lo+ChunkSlots)
}

// SlotName is the attribute holding step i's slot.
func SlotName(i int) string { return "s" + strconv.Itoa(i) }

// RecordName is the attribute holding step i's commit record, for a step
// with no order effect: it lives in the item that holds the step's slot,
// which the commit writes anyway.
func RecordName(i int) string { return "d" + strconv.Itoa(i) }

// ItemsFor returns the items a runner reads to decide about steps: those
// holding the steps' slots, their parents' and their dependents'. For
// a chain or a diamond that is one or two items whatever the run's size.
func ItemsFor(p workflow.Plan, steps []int) []int {
	var out []int
	for _, i := range steps {
		if i < 0 || i >= len(p) {
			continue
		}
		out = appendItem(out, ItemOf(i))
		for _, j := range p[i].Parents {
			out = appendItem(out, ItemOf(j))
		}
		for _, j := range p[i].Dependents {
			out = appendItem(out, ItemOf(j))
		}
	}
	slices.Sort(out)
	return out
}
