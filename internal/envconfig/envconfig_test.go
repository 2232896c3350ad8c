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
