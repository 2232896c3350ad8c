package wire

import (
	"encoding/json"
	"testing"
)

func TestAmountJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"19.99", "0.1", "1000000"} {
		var a Amount
		if err := json.Unmarshal([]byte(in), &a); err != nil || string(a) != in {
			t.Fatalf("Unmarshal(%s) = %q, %v", in, a, err)
		}
		out, err := json.Marshal(a)
		if err != nil || string(out) != in {
			t.Fatalf("Marshal(%q) = %s, %v", a, out, err)
		}
	}
	var a Amount
	if err := json.Unmarshal([]byte(`"12"`), &a); err == nil {
		t.Fatal("a string was accepted as an amount")
	}
}
