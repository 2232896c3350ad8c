package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"stepflow/internal/auth"
	"stepflow/internal/store"
	"stepflow/internal/testenv"
)

// TestTokenTable stores, reads, lists and revokes tokens in their own table.
func TestTokenTable(t *testing.T) {
	t.Parallel()
	tokens := testenv.Tokens(t)
	ctx := context.Background()
	first, _, err := auth.New(ids, "ci", auth.Operator, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := auth.New(ids, "viewer", auth.Reader, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []auth.Token{second, first} {
		if err := tokens.PutTokenIfAbsent(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	other := first
	other.SecretHash = second.SecretHash
	if err := tokens.PutTokenIfAbsent(ctx, other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("another token under an existing id: %v, want ErrConflict", err)
	}
	if err := tokens.PutTokenIfAbsent(ctx, first); err != nil {
		t.Errorf("the same token again (a put whose answer was lost): %v, want it recognised", err)
	}
	got, err := tokens.GetToken(ctx, second.ID)
	if err != nil || got.SecretHash != second.SecretHash || got.Role != auth.Reader || got.ExpiresAt == nil || !got.ExpiresAt.Equal(*second.ExpiresAt) {
		t.Fatalf("GetToken = %+v, %v; want %+v", got, err, second)
	}
	if _, err := tokens.GetToken(ctx, "tok_01KAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, auth.ErrUnknown) {
		t.Errorf("unknown token: %v, want auth.ErrUnknown", err)
	}
	for _, at := range []time.Time{now.Add(time.Minute), now.Add(time.Hour)} {
		if err := tokens.RevokeToken(ctx, first.ID, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokens.RevokeToken(ctx, "tok_01KAAAAAAAAAAAAAAAAAAAAAAA", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke of an unknown token: %v, want ErrNotFound", err)
	}
	list, err := tokens.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != first.ID || list[1].ID != second.ID {
		t.Fatalf("ListTokens = %+v; want %s then %s", list, first.ID, second.ID)
	}
	if r := list[0].RevokedAt; r == nil || !r.Equal(now.Add(time.Minute)) {
		t.Errorf("revoked at %v; want the first revocation, %v", r, now.Add(time.Minute))
	}
}
