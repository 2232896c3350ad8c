// Package httpstep runs the steps of type "http": it calls an HTTP endpoint
// and classifies the result for the engine, which has already rendered the
// step's configuration into a Request.
//
//	c := httpstep.New(policy)                    // one per process; safe for concurrent use
//	out, err := c.Do(ctx, httpstep.Request{...}) // out: the step's output
//
// Do's error is one of:
//
//   - a *RetryableError: 408, 429, 5xx, a timeout or a connection error; the
//     next attempt waits at least its After (from Retry-After);
//   - an error wrapping ErrPermanent: any other 4xx, a 3xx that is not
//     followed, a body over MaxOutputBytes, an invalid request or an address
//     the Policy refuses; retrying cannot help;
//   - an error wrapping the caller's context error, when ctx ended first:
//     the caller decides.
//
// # Server-side request forgery
//
// A workflow author chooses the URL, so the engine must not become a way
// into the network it runs in (the instance metadata service at
// 169.254.169.254, databases, internal admin pages). A Policy lists what may
// be called. The client resolves a host once per connection, checks every
// address it got, and dials the checked address itself, so a name that
// resolves to a public address when checked and to an internal one a moment
// later (DNS rebinding) cannot slip through; every redirect hop is checked
// the same way. TLS still verifies the certificate against the host name.
// Proxies from the environment are ignored.
//
// Deployed stacks use the operator's allow-list with AllowLocal false,
// Policy{Allow: list}; the local stack (stepflow dev) uses LocalPolicy,
// which calls anything, local addresses included.
//
// Error messages never hold request header values, the request body or the
// URL's query string, which may carry secrets.
package httpstep
