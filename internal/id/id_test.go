package id

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestIDsSortByCreationTime(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := NewGenerator(func() time.Time { return clock }, nil)
	var ids []string
	for i := 0; i < 500; i++ {
		if i%7 == 0 {
			clock = clock.Add(time.Millisecond)
		}
		ids = append(ids, g.New("run"))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in order do not sort in order")
	}
	seen := map[string]bool{}
	for _, s := range ids {
		if seen[s] {
			t.Fatalf("duplicate id %s", s)
		}
		seen[s] = true
		if !Valid("run", s) {
			t.Fatalf("Valid(%q) = false for a generated id", s)
		}
	}
}

func TestEncodeKnownValue(t *testing.T) {
	t.Parallel()
	// All-zero input encodes to all zeros; max timestamp starts with '7'.
	if got := encode(0, [10]byte{}); got != "00000000000000000000000000" {
		t.Fatalf("encode zero = %s", got)
	}
	var ff [10]byte
	for i := range ff {
		ff[i] = 0xff
	}
	if got := encode(1<<48-1, ff); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Fatalf("encode max = %s", got)
	}
	// The timestamp occupies the first 10 characters.
	a := encode(1, [10]byte{})
	b := encode(2, [10]byte{})
	if a[:10] == b[:10] || a >= b {
		t.Fatalf("timestamps not ordered: %s %s", a, b)
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	g := NewGenerator(nil, bytes.NewReader(bytes.Repeat([]byte{1}, 100)))
	good := g.New("wf")
	tests := []struct {
		prefix, s string
		want      bool
	}{
		{"wf", good, true},
		{"run", good, false},
		{"wf", "wf_", false},
		{"wf", good + "0", false},
		{"wf", "wf_0000000000000000000000000U", false},
		{"wf", "wf_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", false},
		{"wf", "wf_0000000000000000000000000i", false},
	}
	for _, tt := range tests {
		if got := Valid(tt.prefix, tt.s); got != tt.want {
			t.Errorf("Valid(%q, %q) = %v, want %v", tt.prefix, tt.s, got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	g := NewGenerator(nil, nil)
	seen := map[string]bool{}
	for range 1000 {
		tok := g.Token(8)
		if len(tok) != 8 || strings.Trim(tok, alphabet) != "" {
			t.Fatalf("token %q", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated within 1000", tok)
		}
		seen[tok] = true
	}
}
