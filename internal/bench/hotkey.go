package bench

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// PartitionWUPerSecond is what one DynamoDB partition takes: about 1,000
// write units a second (Developer Guide, partition key design), adaptive
// capacity and bursts aside. Each value of an index's partition key is a
// partition of that index.
const PartitionWUPerSecond = 1000

// topKeys is how many of the hottest shared keys a report lists.
const topKeys = 5

// idLabel is what an identifier a pass made stands for in a generalised
// key, and whether it belongs to one run (a run's or its order's id): a
// key holding such an id is written by that run alone.
type idLabel struct {
	label  string
	perRun bool
}

// labels names the ids of a pass: every run's and order's, each
// workflow's by its name, and the caller's (its token's id) that starts
// them all.
func labels(starts []runStart, runIDs []string, caller string) map[string]idLabel {
	ids := map[string]idLabel{caller: {"<caller id>", false}}
	for _, s := range starts {
		ids[s.workflow] = idLabel{"<" + s.name + " id>", false}
		if s.order != "" {
			ids[s.order] = idLabel{"<order id>", true}
		}
	}
	for _, id := range runIDs {
		ids[id] = idLabel{"<run id>", true}
	}
	return ids
}

// generalise replaces the ids in a partition key ("RUN#run_01…",
// "index:by_workflow/wf_01…#3") by their labels, and reports whether one
// of them belongs to a single run. Ids are whole fields between the
// separators '#', '/' and ':'.
func generalise(key string, ids map[string]idLabel) (string, bool) {
	var b strings.Builder
	perRun := false
	for key != "" {
		i := strings.IndexAny(key, "#/:")
		field, sep := key, ""
		if i >= 0 {
			field, sep, key = key[:i], key[i:i+1], key[i+1:]
		} else {
			key = ""
		}
		if l, ok := ids[field]; ok {
			field = l.label
			perRun = perRun || l.perRun
		}
		b.WriteString(field)
		b.WriteString(sep)
	}
	return b.String(), perRun
}

// HotKey is what one partition key took over a metered pass.
type HotKey struct {
	// Key is the partition key with the pass's ids generalised (see
	// generalise); each reported key is one partition.
	Key string
	// WUPerRun is its write units over the pass per run started, the
	// sweeper's at its scheduled share; Share its part of all the pass's
	// write units.
	WUPerRun, Share float64
	// SaturationRunsPerSecond is the run-start rate at which the key would
	// take PartitionWUPerSecond: PartitionWUPerSecond / WUPerRun.
	SaturationRunsPerSecond float64
	// PeakWU is the most write units it took in one wall-clock second of
	// the metered pass on the bench's endpoint (not a rate AWS would see).
	PeakWU float64
}

// HotKeys is how a metered pass's writes spread over partition keys.
type HotKeys struct {
	Runs    int
	TotalWU float64
	// Top lists the hottest keys shared by runs (keys holding no run's or
	// order's id), hottest first. A key written by one run only, such as
	// RUN#<id>, takes a run's writes however many runs start a second, so
	// it never bounds the run rate; PerRun is the hottest of those.
	Top    []HotKey
	PerRun HotKey
}

// Hottest is the hottest key shared by runs (zero if none).
func (h HotKeys) Hottest() HotKey {
	if len(h.Top) == 0 {
		return HotKey{}
	}
	return h.Top[0]
}

// hotKeys ranks the partition keys of a metered pass by the write units
// they took: the run start, the step runner, and the sweeper at its
// scheduled share (as capacity counts them), and keeps the top n shared.
func hotKeys(c result, every time.Duration, n int) HotKeys {
	h := HotKeys{Runs: c.Runs}
	if c.Runs == 0 {
		return h
	}
	share := c.sweepShare(every)
	all := c.API.Plus(c.Engine).Plus(c.Sweep) // for the seconds
	var shared []HotKey
	for part, l := range all.Keys {
		wu := c.API.Keys[part].WU + c.Engine.Keys[part].WU + share*c.Sweep.Keys[part].WU
		if wu == 0 {
			continue // written by sweeps only, none counted
		}
		h.TotalWU += wu
		key, perRun := generalise(part, c.IDs)
		_, peak := l.Peak()
		k := HotKey{Key: key, WUPerRun: wu / float64(c.Runs), PeakWU: peak}
		if perRun {
			if wu > h.PerRun.WUPerRun { // one run's key: its WU are that run's
				k.WUPerRun = wu
				h.PerRun = k
			}
			continue
		}
		shared = append(shared, k)
	}
	slices.SortFunc(shared, func(a, b HotKey) int {
		return cmp.Or(cmp.Compare(b.WUPerRun, a.WUPerRun), strings.Compare(a.Key, b.Key))
	})
	for i := range shared {
		shared[i].Share = shared[i].WUPerRun * float64(c.Runs) / h.TotalWU
		shared[i].SaturationRunsPerSecond = PartitionWUPerSecond / shared[i].WUPerRun
	}
	h.PerRun.Share = h.PerRun.WUPerRun / h.TotalWU
	h.Top = shared[:min(len(shared), n)]
	return h
}
