package callback

import (
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	t0 := time.UnixMilli(1_800_000_000_000)
	base := Token(key, "run_1", 2, 0, t0)
	if !WellFormed(base) {
		t.Fatalf("token %q is not well formed", base)
	}
	if Token(key, "run_1", 2, 0, t0.Add(300*time.Microsecond)) != base {
		t.Fatal("a token is not stable")
	}
	for name, other := range map[string]string{
		"another run":     Token(key, "run_2", 2, 0, t0),
		"another step":    Token(key, "run_1", 3, 0, t0),
		"another attempt": Token(key, "run_1", 2, 1, t0),
		"another start":   Token(key, "run_1", 2, 0, t0.Add(time.Millisecond)),
		"another key":     Token([]byte("fedcba9876543210fedcba9876543210"), "run_1", 2, 0, t0),
		// The fields are separated: "run_1" step 23 is not "run_12" step 3.
		"shifted fields": Token(key, "run_12", 3, 0, t0),
	} {
		if other == base {
			t.Errorf("%s gives the same token", name)
		}
	}
	if h := Hash(base); h == base || len(h) != 64 || Hash(Token(key, "run_1", 2, 0, t0)) != h {
		t.Errorf("hash %q", Hash(base))
	}
	for _, bad := range []string{"", "short", base + "x", base[:42] + "!"} {
		if WellFormed(bad) {
			t.Errorf("WellFormed(%q)", bad)
		}
	}
}
