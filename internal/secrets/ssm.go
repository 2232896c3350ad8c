package secrets

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// GetParameterAPIClient is the one call SSM makes; *ssm.Client has it.
// GetParameter must return *types.ParameterNotFound (possibly wrapped) for
// a parameter that does not exist, as the SDK does.
type GetParameterAPIClient interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ GetParameterAPIClient = (*ssm.Client)(nil)

// Defaults of SSMConfig.
const (
	DefaultTTL     = 5 * time.Minute
	DefaultMissTTL = 10 * time.Second
)

// maxEntries bounds the cache. Names come from workflow definitions, so a
// deployment uses a few; past the bound, expired entries are dropped, then
// any.
const maxEntries = 1024

// SSMConfig configures an SSM source.
type SSMConfig struct {
	// Prefix is put before each name: the secret NAME is the parameter
	// <Prefix>NAME. It starts and ends with "/" (the stack uses
	// /stepflow/<stack name>/secrets/).
	Prefix string
	// TTL is how long a value is used before it is read again; 0 means
	// DefaultTTL. A rotated secret takes effect within TTL.
	TTL time.Duration
	// MissTTL is how long a permanent failure (no such parameter, or not a
	// SecureString) is remembered; 0 means DefaultMissTTL. Other errors
	// are not remembered.
	MissTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var prefixPattern = regexp.MustCompile(`^/([A-Za-z0-9_.-]+/)+$`)

// SSM reads secrets from SecureString parameters of SSM Parameter Store,
// decrypted, and keeps them in memory for a TTL. It is safe for concurrent
// use; concurrent Gets of a name that is not cached make one call.
type SSM struct {
	client  GetParameterAPIClient
	prefix  string
	ttl     time.Duration
	missTTL time.Duration
	now     func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*fetch
}

var _ Source = (*SSM)(nil)

// cached is a value, or a permanent error, until expires.
type cached struct {
	value   string
	err     error
	expires time.Time
}

// fetch is a call to Parameter Store in progress; done is closed when its
// result is set.
type fetch struct {
	done    chan struct{}
	waiters int // callers waiting on done besides the one calling
	value   string
	err     error
	// abandoned: the caller's context ended during the call, so the
	// error is its own; waiters with live contexts call again.
	abandoned bool
}

// NewSSM returns an SSM source over client. It fails only on a malformed
// prefix.
func NewSSM(client GetParameterAPIClient, cfg SSMConfig) (*SSM, error) {
	if !prefixPattern.MatchString(cfg.Prefix) {
		return nil, fmt.Errorf("secrets prefix %q: want a parameter path that starts and ends with /, such as /stepflow/<stack>/secrets/", cfg.Prefix)
	}
	s := &SSM{
		client: client, prefix: cfg.Prefix, ttl: cfg.TTL, missTTL: cfg.MissTTL, now: cfg.Now,
		cache: map[string]cached{}, inflight: map[string]*fetch{},
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.missTTL <= 0 {
		s.missTTL = DefaultMissTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Get returns the value of the SecureString parameter <prefix><name>,
// from the cache while it is fresh.
func (s *SSM) Get(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	for {
		s.mu.Lock()
		if c, ok := s.cache[name]; ok && s.now().Before(c.expires) {
			s.mu.Unlock()
			return c.value, c.err
		}
		if f, ok := s.inflight[name]; ok {
			f.waiters++
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", fmt.Errorf("secret %s: %w", name, ctx.Err())
			}
			if f.abandoned && ctx.Err() == nil {
				continue
			}
			return f.value, f.err
		}
		f := &fetch{done: make(chan struct{})}
		s.inflight[name] = f
		s.mu.Unlock()

		f.value, f.err = s.read(ctx, name)

		s.mu.Lock()
		delete(s.inflight, name)
		switch {
		case f.err == nil:
			s.put(name, cached{value: f.value, expires: s.now().Add(s.ttl)})
		case errors.Is(f.err, ErrNotFound), errors.Is(f.err, ErrNotSecureString):
			s.put(name, cached{err: f.err, expires: s.now().Add(s.missTTL)})
		case ctx.Err() != nil:
			f.abandoned = true
		}
		s.mu.Unlock()
		close(f.done)
		return f.value, f.err
	}
}

// read calls Parameter Store once.
func (s *SSM) read(ctx context.Context, name string) (string, error) {
	param := s.prefix + name
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(param), WithDecryption: aws.Bool(true)})
	if nf := (*types.ParameterNotFound)(nil); errors.As(err, &nf) {
		return "", fmt.Errorf("secret %s (parameter %s): %w", name, param, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("secret %s (parameter %s): %w", name, param, err)
	}
	p := out.Parameter
	if p == nil || p.Value == nil {
		return "", fmt.Errorf("secret %s (parameter %s): the answer has no value", name, param)
	}
	if p.Type != types.ParameterTypeSecureString {
		return "", fmt.Errorf("secret %s (parameter %s is a %s): %w", name, param, p.Type, ErrNotSecureString)
	}
	return *p.Value, nil
}

// put caches c under name; s.mu is held.
func (s *SSM) put(name string, c cached) {
	if _, ok := s.cache[name]; !ok && len(s.cache) >= maxEntries {
		now := s.now()
		for k, old := range s.cache {
			if !now.Before(old.expires) {
				delete(s.cache, k)
			}
		}
		for k := range s.cache {
			if len(s.cache) < maxEntries {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[name] = c
}
