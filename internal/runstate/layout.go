package runstate

import "strconv"

// A run's step slots are split over items so that each item stays under
// 1 KB, DynamoDB's unit of write cost: the header holds the first
// HeaderSlots steps next to the run's metadata, and each chunk the next
// ChunkSlots. A running slot, the largest, is at most about 33 bytes with its
// name, so a header of about 350 bytes of metadata plus 12 slots, and a chunk
// of 24 slots, both fit.
const (
	HeaderSlots = 12
	ChunkSlots  = 24
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
