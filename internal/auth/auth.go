// Package auth authenticates API callers with bearer tokens and decides
// what their role allows.
//
// A token is "sft_<id>_<secret>": id names the token's record, secret is
// 32 random bytes (base64url). The server stores only the SHA-256 of the
// secret, so a leaked table does not leak usable tokens; a high-entropy
// secret needs no slow hash. Tokens have a role, an optional expiry, and can
// be revoked.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"stepflow/internal/id"
)

// Role is what a token may do.
type Role string

const (
	// Reader may read workflows, runs and orders.
	Reader Role = "reader"
	// Operator may also create workflows and orders, start, cancel and
	// retry runs, and redrive dead letters.
	Operator Role = "operator"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == Reader || r == Operator }

// Allows reports whether a caller with role r may make a request with the
// given HTTP method: reads for everyone, writes for operators.
func (r Role) Allows(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Valid()
	}
	return r == Operator
}

// Errors Authenticate returns; all of them mean 401 to a client.
var (
	ErrMissing   = errors.New("no credentials")
	ErrMalformed = errors.New("malformed credentials")
	ErrUnknown   = errors.New("unknown or wrong token")
	ErrExpired   = errors.New("token expired")
	ErrRevoked   = errors.New("token revoked")
)

// Token is a stored token record. SecretHash is hex SHA-256 of the secret.
type Token struct {
	ID         string     `json:"id" dynamodbav:"id"`
	Name       string     `json:"name" dynamodbav:"name"`
	Role       Role       `json:"role" dynamodbav:"role"`
	SecretHash string     `json:"-" dynamodbav:"secret_hash"`
	CreatedAt  time.Time  `json:"created_at" dynamodbav:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty" dynamodbav:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty" dynamodbav:"revoked_at,omitempty"`
}

const prefix = "sft_"

// secretLen is the length of the encoded 32-byte secret.
var secretLen = base64.RawURLEncoding.EncodedLen(32)

// New makes a token: the record to store and the credential to hand out
// (shown once).
func New(ids *id.Generator, name string, role Role, now time.Time, ttl time.Duration) (Token, string, error) {
	if !role.Valid() {
		return Token{}, "", fmt.Errorf("unknown role %q", role)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, "", fmt.Errorf("make token secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	t := Token{ID: ids.New("tok"), Name: name, Role: role, SecretHash: hash(secret), CreatedAt: now.UTC()}
	if ttl > 0 {
		exp := now.Add(ttl).UTC()
		t.ExpiresAt = &exp
	}
	return t, prefix + t.ID + "_" + secret, nil
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ParseHeader extracts the token id and secret from an Authorization
// header value ("Bearer sft_<id>_<secret>").
func ParseHeader(h string) (tokenID, secret string, err error) {
	if h == "" {
		return "", "", ErrMissing
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", "", ErrMalformed
	}
	cred = strings.TrimSpace(cred)
	rest, ok := strings.CutPrefix(cred, prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	// The id itself contains one underscore ("tok_..."); the secret is
	// the fixed-length tail.
	if len(rest) < secretLen+2 || rest[len(rest)-secretLen-1] != '_' {
		return "", "", ErrMalformed
	}
	tokenID, secret = rest[:len(rest)-secretLen-1], rest[len(rest)-secretLen:]
	if !id.Valid("tok", tokenID) {
		return "", "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", ErrMalformed
	}
	return tokenID, secret, nil
}

// Lookup finds a token record by id; it returns an error wrapping
// ErrUnknown when there is none.
type Lookup interface {
	GetToken(ctx context.Context, id string) (Token, error)
}

// Authenticator checks Authorization headers against stored tokens.
type Authenticator struct {
	Tokens Lookup
	Now    func() time.Time
}

// Authenticate returns the token a header value proves, or one of the
// package's errors.
func (a Authenticator) Authenticate(ctx context.Context, header string) (Token, error) {
	tokenID, secret, err := ParseHeader(header)
	if err != nil {
		return Token{}, err
	}
	t, err := a.Tokens.GetToken(ctx, tokenID)
	if err != nil {
		return Token{}, err
	}
	if subtle.ConstantTimeCompare([]byte(hash(secret)), []byte(t.SecretHash)) != 1 {
		return Token{}, ErrUnknown
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	switch {
	case t.RevokedAt != nil:
		return Token{}, ErrRevoked
	case t.ExpiresAt != nil && !now().Before(*t.ExpiresAt):
		return Token{}, ErrExpired
	}
	return t, nil
}
