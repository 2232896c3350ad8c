// Package envconfig reads the Lambdas' settings from environment variables,
// refusing malformed values instead of silently using a default.
package envconfig

import (
	"fmt"
	"os"
	"time"
)

// Duration returns the Go duration in the variable name, or def if it is
// unset. A value that does not parse, or is not positive, is an error.
func Duration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 30s or 5m", name, v)
	}
	return d, nil
}
