package secrets

import (
	"context"
	"fmt"
	"os"
)

// EnvPrefix is the prefix of the variables Env reads: the secret NAME is
// the variable STEPFLOW_SECRET_NAME.
const EnvPrefix = "STEPFLOW_SECRET_"

// Env reads secrets from environment variables, for the local stack and
// tests. A variable that is set but empty counts as missing: Parameter
// Store cannot hold an empty value either, and an empty credential is a
// mistake that is better reported than sent.
type Env struct {
	// Lookup reads a variable; nil means os.LookupEnv.
	Lookup func(key string) (string, bool)
}

var _ Source = Env{}

// Get returns the value of STEPFLOW_SECRET_<name>.
func (e Env) Get(_ context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	key := EnvPrefix + name
	if v, ok := lookup(key); ok && v != "" {
		return v, nil
	}
	return "", fmt.Errorf("secret %s (variable %s): %w", name, key, ErrNotFound)
}
