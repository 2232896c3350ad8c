// Package id generates identifiers that sort by creation time.
//
// An ID is a type prefix, an underscore and 26 Crockford base32 characters:
// 48 bits of Unix milliseconds followed by 80 random bits (the ULID layout).
// Within one Generator, IDs made in the same millisecond still sort in the
// order they were made, because the random part is incremented instead of
// redrawn.
package id

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Len is the length of the encoded part after the prefix and underscore.
const Len = 26

// Generator makes time-ordered IDs. It is safe for concurrent use.
type Generator struct {
	mu      sync.Mutex
	now     func() time.Time
	rand    io.Reader
	lastMS  uint64
	lastRnd [10]byte
}

// NewGenerator returns a Generator that reads time from now and randomness
// from r. Nil arguments select time.Now and crypto/rand.
func NewGenerator(now func() time.Time, r io.Reader) *Generator {
	if now == nil {
		now = time.Now
	}
	if r == nil {
		r = rand.Reader
	}
	return &Generator{now: now, rand: r}
}

// New returns a new ID with the given prefix, such as "run".
func (g *Generator) New(prefix string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(g.now().UnixMilli())
	if ms <= g.lastMS {
		// Same (or earlier, if the clock stepped back) millisecond: keep the
		// previous timestamp and increment the random part so order holds.
		ms = g.lastMS
		increment(&g.lastRnd)
	} else {
		if _, err := io.ReadFull(g.rand, g.lastRnd[:]); err != nil {
			panic(fmt.Sprintf("id: read random source: %v", err))
		}
		g.lastMS = ms
	}
	return prefix + "_" + encode(ms, g.lastRnd)
}

func increment(b *[10]byte) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return
		}
	}
}

func encode(ms uint64, rnd [10]byte) string {
	var raw [16]byte
	for i := 0; i < 6; i++ {
		raw[i] = byte(ms >> (8 * (5 - i)))
	}
	copy(raw[6:], rnd[:])
	// 128 bits -> 26 base32 digits (130 bits, the top two are zero).
	var out [Len]byte
	var acc uint64
	bits := 2 // two leading zero bits pad 128 to 130
	j := 0
	for _, b := range raw {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[j] = alphabet[(acc>>uint(bits))&31]
			j++
		}
	}
	return string(out[:])
}

// Valid reports whether s is an ID with the given prefix.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != Len || rest[0] > '7' {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(alphabet, rune(rest[i])) {
			return false
		}
	}
	return true
}

// Token returns n random Crockford base32 characters from the generator's
// random source: a short tag that is unique enough to tell claims apart,
// where an ID would be too long.
func (g *Generator) Token(n int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := make([]byte, n)
	if _, err := io.ReadFull(g.rand, b); err != nil {
		panic(fmt.Sprintf("id: read random source: %v", err))
	}
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b)
}
