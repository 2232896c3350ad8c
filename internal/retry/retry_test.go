package retry

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestCeilingDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Cap: 10 * time.Second, Rand: func() float64 { return 0.5 }}
	want := []time.Duration{0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for n, w := range want {
		if got := p.Ceiling(n); got != w {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w)
		}
	}
	if got := p.Ceiling(5000); got != p.Cap {
		t.Errorf("Ceiling(5000) = %v, want the cap", got)
	}
}

func TestDelayIsFullJitterWithinTheCeiling(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	p := Policy{Base: 2 * time.Second, Cap: 60 * time.Second, Rand: r.Float64}
	for failures := 1; failures <= 8; failures++ {
		ceil := p.Ceiling(failures)
		var lo, hi time.Duration = ceil, 0
		for range 2000 {
			d := p.Delay(failures)
			if d < 0 || d > ceil || d%time.Second != 0 {
				t.Fatalf("Delay(%d) = %v outside [0, %v] or not whole seconds", failures, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole range, not just near the top.
		if lo > ceil/4 || hi < ceil*3/4-time.Second {
			t.Errorf("failures %d: delays span [%v, %v] of [0, %v]", failures, lo, hi, ceil)
		}
	}
	fixed := Policy{Base: 4 * time.Second, Cap: 60 * time.Second, Rand: func() float64 { return 0.99 }}
	if got := fixed.Delay(3); got != 15*time.Second {
		t.Errorf("Delay(3) at 0.99 of 16s = %v, want 15s", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	r := func() float64 { return 0 }
	tests := []struct {
		p  Policy
		ok bool
	}{
		{Default(r), true},
		{Policy{Base: time.Second, Cap: MaxCap, Rand: r}, true},
		{Policy{Base: 0, Cap: time.Second, Rand: r}, false},
		{Policy{Base: time.Minute, Cap: time.Second, Rand: r}, false},
		{Policy{Base: time.Second, Cap: MaxCap + time.Second, Rand: r}, false},
		{Policy{Base: time.Second, Cap: time.Minute}, false},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v", tt.p, err)
		}
	}
}
