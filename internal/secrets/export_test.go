package secrets

// Waiters returns how many callers wait on the call in progress for name.
func (s *SSM) Waiters(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.inflight[name]; ok {
		return f.waiters
	}
	return 0
}

// Cached returns how many names the cache holds.
func (s *SSM) Cached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cache)
}

const MaxEntries = maxEntries
