package deploy_test

import (
	"testing"

	"stepflow/internal/deploy"
)

// The secret source's own tests check that it takes these prefixes
// (internal/secrets TestNewSSMPrefix); this package stays free of the SDK
// because infra/ imports it.
func TestSecretsPrefix(t *testing.T) {
	t.Parallel()
	for stack, want := range map[string]string{
		"Stepflow":   "/stepflow/Stepflow/secrets/",
		"my-stack-2": "/stepflow/my-stack-2/secrets/",
	} {
		if got := deploy.SecretsPrefix(stack); got != want {
			t.Errorf("SecretsPrefix(%q) = %q, want %q", stack, got, want)
		}
	}
}
