package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"stepflow/internal/id"
)

type memTokens map[string]Token

func (m memTokens) GetToken(_ context.Context, id string) (Token, error) {
	t, ok := m[id]
	if !ok {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrUnknown)
	}
	return t, nil
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ids := id.NewGenerator(nil, nil)
	op, opCred, _ := New(ids, "ci", Operator, now, 0)
	short, shortCred, _ := New(ids, "short", Reader, now, time.Hour)
	gone, goneCred, _ := New(ids, "gone", Reader, now, 0)
	revoked := now.Add(-time.Minute)
	gone.RevokedAt = &revoked
	store := memTokens{op.ID: op, short.ID: short, gone.ID: gone}
	wrongSecret := opCred[:len(opCred)-4] + "AAAA"
	if wrongSecret == opCred {
		wrongSecret = opCred[:len(opCred)-4] + "BBBB"
	}
	_, unknownCred, _ := New(ids, "never stored", Operator, now, 0)
	tests := []struct {
		name, header string
		at           time.Time
		want         error
		role         Role
	}{
		{"operator", "Bearer " + opCred, now, nil, Operator},
		{"scheme is case-insensitive", "bearer " + opCred, now, nil, Operator},
		{"reader before expiry", "Bearer " + shortCred, now.Add(59 * time.Minute), nil, Reader},
		{"missing", "", now, ErrMissing, ""},
		{"basic scheme", "Basic " + opCred, now, ErrMalformed, ""},
		{"no prefix", "Bearer " + strings.TrimPrefix(opCred, "sft_"), now, ErrMalformed, ""},
		{"truncated", "Bearer " + opCred[:len(opCred)-1], now, ErrMalformed, ""},
		{"garbage", "Bearer sft_tok_x_y", now, ErrMalformed, ""},
		{"wrong secret", "Bearer " + wrongSecret, now, ErrUnknown, ""},
		{"unknown token", "Bearer " + unknownCred, now, ErrUnknown, ""},
		{"expired", "Bearer " + shortCred, now.Add(time.Hour), ErrExpired, ""},
		{"revoked", "Bearer " + goneCred, now, ErrRevoked, ""},
	}
	for _, tt := range tests {
		a := Authenticator{Tokens: store, Now: func() time.Time { return tt.at }}
		got, err := a.Authenticate(context.Background(), tt.header)
		if !errors.Is(err, tt.want) || (err == nil && got.Role != tt.role) {
			t.Errorf("%s: got %v, %v; want %v, %v", tt.name, got.Role, err, tt.role, tt.want)
		}
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		role   Role
		method string
		want   bool
	}{
		{Reader, "GET", true}, {Reader, "POST", false}, {Operator, "GET", true}, {Operator, "POST", true},
		{Role("admin"), "GET", false}, {Role(""), "POST", false}, {Reader, "DELETE", false},
	}
	for _, tt := range tests {
		if got := tt.role.Allows(tt.method); got != tt.want {
			t.Errorf("%q.Allows(%s) = %v", tt.role, tt.method, got)
		}
	}
	if _, _, err := New(id.NewGenerator(nil, nil), "x", Role("root"), time.Now(), 0); err == nil {
		t.Error("New accepted an unknown role")
	}
}

// FuzzParseHeader: any header either parses to a well-formed id and secret
// that reassemble into the header's credential, or fails with ErrMissing
// or ErrMalformed. It never panics.
func FuzzParseHeader(f *testing.F) {
	_, cred, _ := New(id.NewGenerator(nil, nil), "seed", Operator, time.Now(), 0)
	for _, s := range []string{"Bearer " + cred, "", "Bearer ", "Bearer sft_", "Basic abc", "Bearer sft_tok_01KAAAAAAAAAAAAAAAAAAAAAAA_" + strings.Repeat("A", 43), "bearer  " + cred + " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tokenID, secret, err := ParseHeader(h)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !id.Valid("tok", tokenID) || len(secret) != secretLen {
			t.Fatalf("accepted %q as id %q secret %q", h, tokenID, secret)
		}
		if !strings.Contains(h, prefix+tokenID+"_"+secret) {
			t.Fatalf("parsed parts do not come from the header %q", h)
		}
	})
}
