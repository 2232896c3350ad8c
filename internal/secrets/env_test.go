package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"stepflow/internal/secrets"
)

func TestEnv(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"STEPFLOW_SECRET_API_KEY":                    "s3cr3t-value",
		"STEPFLOW_SECRET_A":                          "one",
		"STEPFLOW_SECRET_EMPTY":                      "",
		"STEPFLOW_SECRET_" + strings.Repeat("B", 64): "long",
		"UNPREFIXED":                                 "unprefixed", // not STEPFLOW_SECRET_: not a secret
	}
	env := secrets.Env{Lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	tests := []struct {
		name    string
		want    string
		wantErr error
	}{
		{"API_KEY", "s3cr3t-value", nil},
		{"A", "one", nil},
		{strings.Repeat("B", 64), "long", nil},
		{"MISSING", "", secrets.ErrNotFound},
		{"EMPTY", "", secrets.ErrNotFound},
		{"UNPREFIXED", "", secrets.ErrNotFound},
		{"", "", secrets.ErrInvalidName},
		{"api_key", "", secrets.ErrInvalidName},
		{"1KEY", "", secrets.ErrInvalidName},
		{"_KEY", "", secrets.ErrInvalidName},
		{"API-KEY", "", secrets.ErrInvalidName},
		{"API.KEY", "", secrets.ErrInvalidName},
		{"../API_KEY", "", secrets.ErrInvalidName},
		{"API_KEY ", "", secrets.ErrInvalidName},
		{"API_KEY\n", "", secrets.ErrInvalidName},
		{strings.Repeat("B", 65), "", secrets.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			t.Parallel()
			got, err := env.Get(context.Background(), tt.name)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Get(%q) = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.wantErr)
			}
			if err != nil && errors.Is(err, secrets.ErrNotFound) {
				if !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), "STEPFLOW_SECRET_"+tt.name) {
					t.Errorf("error %q does not name the secret and its variable", err)
				}
			}
			if err != nil {
				for _, v := range vars {
					if v != "" && strings.Contains(err.Error(), v) {
						t.Errorf("error %q contains a value", err)
					}
				}
			}
		})
	}
}

// TestEnvDefaultLookup reads the process environment when Lookup is nil.
func TestEnvDefaultLookup(t *testing.T) {
	t.Setenv("STEPFLOW_SECRET_FROM_PROCESS", "v")
	if got, err := (secrets.Env{}).Get(context.Background(), "FROM_PROCESS"); got != "v" || err != nil {
		t.Fatalf("Get = %q, %v; want v", got, err)
	}
}

func ExampleEnv() {
	env := secrets.Env{Lookup: func(k string) (string, bool) {
		return map[string]string{"STEPFLOW_SECRET_API_KEY": "xyz"}[k], true
	}}
	v, _ := env.Get(context.Background(), "API_KEY")
	fmt.Println(v)
	_, err := env.Get(context.Background(), "OTHER")
	fmt.Println(err)
	_, err = env.Get(context.Background(), "../other")
	fmt.Println(errors.Is(err, secrets.ErrInvalidName))
	// Output:
	// xyz
	// secret OTHER (variable STEPFLOW_SECRET_OTHER): not found
	// true
}
