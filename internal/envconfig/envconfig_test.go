package envconfig

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", time.Minute, true},
		{"90s", 90 * time.Second, true},
		{"90", 0, false},
		{"-1s", 0, false},
		{"0s", 0, false},
	}
	for _, tt := range tests {
		t.Setenv("STEPFLOW_TEST_DURATION", tt.value)
		got, err := Duration("STEPFLOW_TEST_DURATION", time.Minute)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %v, %v", tt.value, got, err)
		}
	}
}

func TestRequiredAndInt(t *testing.T) {
	t.Setenv("STEPFLOW_TEST_A", "a")
	t.Setenv("STEPFLOW_TEST_B", "")
	if v, err := Required("STEPFLOW_TEST_A"); err != nil || v[0] != "a" {
		t.Fatalf("Required(A) = %v, %v", v, err)
	}
	if _, err := Required("STEPFLOW_TEST_A", "STEPFLOW_TEST_B", "STEPFLOW_TEST_C"); err == nil ||
		err.Error() != "STEPFLOW_TEST_B, STEPFLOW_TEST_C must be set" {
		t.Fatalf("Required with two unset: %v", err)
	}
	for value, want := range map[string]int{"": 60, "5": 5, "0": 0, "x": 0} {
		t.Setenv("STEPFLOW_TEST_N", value)
		got, err := Int("STEPFLOW_TEST_N", 60)
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("Int(%q) = %d, %v", value, got, err)
		}
	}
}
