package secrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Source gives the value of a secret by name.
//
// Get returns an error wrapping [ErrInvalidName] for a name that
// [ValidName] rejects (before any lookup), [ErrNotFound] when no secret has
// that name, and [ErrNotSecureString] when an SSM parameter of that name is
// not encrypted; these are permanent until an operator acts, so a step
// should fail rather than retry at once. Any other error (throttling, a
// network error, access denied) may be retried. No error carries a value.
// Implementations are safe for concurrent use.
type Source interface {
	Get(ctx context.Context, name string) (string, error)
}

var (
	// ErrInvalidName: the name does not match ^[A-Z][A-Z0-9_]{0,63}$.
	ErrInvalidName = errors.New("invalid secret name (want ^[A-Z][A-Z0-9_]{0,63}$)")
	// ErrNotFound: no secret has the name.
	ErrNotFound = errors.New("not found")
	// ErrNotSecureString: the SSM parameter exists but is a String or a
	// StringList, readable without KMS; store it as a SecureString.
	ErrNotSecureString = errors.New("not a SecureString parameter")
)

var namePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// ValidName reports whether name may name a secret: an upper-case letter,
// then up to 63 upper-case letters, digits and underscores.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// checkName returns an error wrapping ErrInvalidName for an invalid name.
func checkName(name string) error {
	if ValidName(name) {
		return nil
	}
	const max = 80 // a name from a template can be anything; keep errors short
	if len(name) > max {
		name = name[:max] + "..."
	}
	return fmt.Errorf("secret %q: %w", name, ErrInvalidName)
}
