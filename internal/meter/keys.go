package meter

import (
	"cmp"
	"slices"
	"time"
)

// KeyLoad is what landed on one partition key: the write units, the
// writes (an item or index write each, failed ones included), and the
// write units of each wall-clock second.
type KeyLoad struct {
	WU     float64
	Writes int
	// seconds holds WU by Unix second, in order, the seconds with none
	// left out.
	seconds []second
}

type second struct {
	at int64
	wu float64
}

func (k *KeyLoad) add(at int64, wu float64) {
	k.WU += wu
	k.Writes++
	n := len(k.seconds)
	switch {
	case n > 0 && k.seconds[n-1].at == at:
		k.seconds[n-1].wu += wu
	case n == 0 || k.seconds[n-1].at < at:
		k.seconds = append(k.seconds, second{at, wu})
	default: // the clock stepped back
		i, found := slices.BinarySearchFunc(k.seconds, at, func(s second, at int64) int { return cmp.Compare(s.at, at) })
		if found {
			k.seconds[i].wu += wu
		} else {
			k.seconds = slices.Insert(k.seconds, i, second{at, wu})
		}
	}
}

// plus returns the sum of two loads of one key, their seconds merged.
func (k KeyLoad) plus(o KeyLoad) KeyLoad {
	r := KeyLoad{WU: k.WU + o.WU, Writes: k.Writes + o.Writes, seconds: make([]second, 0, len(k.seconds)+len(o.seconds))}
	a, b := k.seconds, o.seconds
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].at < b[0].at):
			r.seconds, a = append(r.seconds, a[0]), a[1:]
		case len(a) == 0 || b[0].at < a[0].at:
			r.seconds, b = append(r.seconds, b[0]), b[1:]
		default:
			r.seconds, a, b = append(r.seconds, second{a[0].at, a[0].wu + b[0].wu}), a[1:], b[1:]
		}
	}
	return r
}

// Peak returns the most write units the key took in one wall-clock
// second, and that second (zero if none).
func (k KeyLoad) Peak() (time.Time, float64) {
	var at time.Time
	peak := 0.0
	for _, s := range k.seconds {
		if s.wu > peak {
			at, peak = time.Unix(s.at, 0), s.wu
		}
	}
	return at, peak
}
