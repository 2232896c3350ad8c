// Package callback derives the tokens that let an outside system complete
// or fail a waiting approval step without a bearer token (POST
// /callbacks/{token}), like Step Functions' task tokens.
//
// A token is an HMAC-SHA256, under a secret key, of the run, the step, and
// the attempt and start of the wait it answers (the waiting slot's own
// fields, whatever generation the wait lands in), so it is unguessable,
// differs for each wait, and can be shown again to an operator without
// being stored. Storage keeps only its hash (Hash), which names the
// waiting step.
package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenLen is the length of a token: 32 bytes in unpadded base64url.
const TokenLen = 43

// Token returns the callback token of the wait of step step (by index) of
// run runID that attempt attempt began at start (to the millisecond, as
// the waiting slot stores it), under key.
func Token(key []byte, runID string, step, attempt int, start time.Time) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "stepflow-callback\x00%s\x00%d\x00%d\x00%d", runID, step, attempt, start.UnixMilli())
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Hash returns the hash storage keeps of a token.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// WellFormed reports whether s has a token's shape: TokenLen characters of
// the base64url alphabet.
func WellFormed(s string) bool {
	if len(s) != TokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}
