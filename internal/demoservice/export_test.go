package demoservice

import (
	"context"
	"time"
)

// SetSleep replaces how s waits before a slow answer. Call it before s
// serves a request.
func SetSleep(s *Service, sleep func(context.Context, time.Duration)) { s.sleep = sleep }

// Waiting reports how many requests wait for the first answer of their key.
func Waiting(s *Service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}
