package httpstep

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Policy says which hosts a Client may call.
//
// A host is permitted when an entry names it ("*", an exact name or a
// wildcard) or an IP or CIDR entry covers its address. Local addresses
// (loopback, link-local, private, unspecified, multicast, broadcast,
// carrier-grade NAT, reserved, and their IPv4-mapped and NAT64 IPv6 forms)
// are refused unless AllowLocal is set, an IP or CIDR entry covers the
// address, or an entry names the host exactly: an operator who names an
// internal host means it.
// "*" and wildcard entries alone never admit a local address.
//
// Deployed stacks use the operator's list with AllowLocal false; the local
// stack uses LocalPolicy.
type Policy struct {
	// Allow lists what may be called. Each entry is one of:
	//
	//	*                any host whose addresses are all public
	//	api.example.com  that host, whatever its addresses
	//	*.example.com    any subdomain of example.com, not example.com itself
	//	203.0.113.7      that address
	//	10.1.0.0/16      any address in that network
	//
	// Host names compare case-insensitively, without a trailing dot.
	Allow []string
	// AllowLocal lets "*" and wildcard entries admit local addresses.
	AllowLocal bool
}

// ParseAllowList splits a comma-separated allow-list (as the stack's
// HttpAllowList parameter holds it) into a Policy's entries, dropping
// blanks. The entries are checked by Policy.Validate.
func ParseAllowList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// LocalPolicy is the policy of the local stack (stepflow dev), where the
// endpoints a workflow calls usually run on the same machine: any host,
// local addresses included. Never use it in a deployed stack.
func LocalPolicy() Policy {
	return Policy{Allow: []string{"*"}, AllowLocal: true}
}

// Validate reports the first entry of the allow-list that is not valid.
// New accepts any policy, but a Client with an invalid one fails every
// request, so callers validate the operator's list at startup.
func (p Policy) Validate() error {
	_, err := p.compile()
	return err
}

// rules is a compiled Policy.
type rules struct {
	anyHost    bool
	names      map[string]bool
	suffixes   []string // ".example.com" for "*.example.com"
	prefixes   []netip.Prefix
	allowLocal bool
}

func (p Policy) compile() (*rules, error) {
	r := &rules{names: map[string]bool{}, allowLocal: p.AllowLocal}
	for _, e := range p.Allow {
		entry := strings.ToLower(strings.TrimSpace(e))
		if entry == "*" {
			r.anyHost = true
			continue
		}
		if rest, ok := strings.CutPrefix(entry, "*."); ok {
			name, ok := hostName(rest)
			if !ok {
				return nil, badEntry(e)
			}
			r.suffixes = append(r.suffixes, "."+name)
			continue
		}
		if addr, _, ok := strings.Cut(entry, "/"); ok {
			if _, err := netip.ParseAddr(addr); err != nil {
				return nil, badEntry(e)
			}
			pfx, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("allow-list entry %q is not a valid CIDR: %w", e, err)
			}
			r.prefixes = append(r.prefixes, unmapPrefix(pfx.Masked()))
			continue
		}
		if a, err := netip.ParseAddr(entry); err == nil {
			if a.Zone() != "" {
				return nil, badEntry(e)
			}
			a = a.Unmap()
			r.prefixes = append(r.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		name, ok := hostName(entry)
		if !ok {
			return nil, badEntry(e)
		}
		r.names[name] = true
	}
	return r, nil
}

func badEntry(e string) error {
	return fmt.Errorf("allow-list entry %q is not *, a host name, a *.domain wildcard, an IP address or a CIDR", e)
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form, as addresses are unmapped before they are compared.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// hostName returns s lower-cased without a trailing dot, and whether it is
// a valid DNS host name (ASCII letters, digits, '-' and '_').
func hostName(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s, true
}

// normHost lower-cases a host and drops its trailing dot.
func normHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// precheck refuses a host before anything is resolved or dialed: an IP
// literal is checked in full, a name when no entry could admit it.
func (r *rules) precheck(host string) error {
	host = normHost(host)
	if a, err := netip.ParseAddr(host); err == nil {
		return r.check(host, []netip.Addr{a})
	}
	if r.anyHost || r.names[host] || r.matchesSuffix(host) || len(r.prefixes) > 0 {
		return nil
	}
	return refused("%s is not in the allow-list", host)
}

// check refuses host, which resolved to addrs (an IP literal: to itself),
// unless every address may be called.
func (r *rules) check(host string, addrs []netip.Addr) error {
	host = normHost(host)
	_, err := netip.ParseAddr(host)
	literal := err == nil
	named := !literal && r.names[host]
	matched := r.anyHost || !literal && r.matchesSuffix(host)
	for _, a := range addrs {
		if named || r.covers(a) {
			continue
		}
		if kind := localKind(a); kind != "" && !r.allowLocal {
			if literal {
				return refused("%s is %s; name it in the allow-list to call it", host, kind)
			}
			return refused("%s resolves to %s, %s; name it in the allow-list to call it", host, a, kind)
		}
		if !matched {
			return refused("%s is not in the allow-list", host)
		}
	}
	return nil
}

func (r *rules) matchesSuffix(host string) bool {
	for _, s := range r.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (r *rules) covers(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range r.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// errRefused marks the policy's refusals.
var errRefused = errors.New("refused")

func refused(format string, args ...any) error {
	return permanent(fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...))
}

// localRanges are the addresses inside a deployment or a machine rather
// than on the internet, each with how an error names it. Order matters:
// broadcast comes before the reserved range that holds it.
var localRanges = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "a broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last four bytes.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// localKind names the kind of local address a is ("a loopback address"),
// or returns "" for a public one. IPv4-mapped and NAT64 forms are judged by
// the IPv4 address they carry.
func localKind(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, r := range localRanges {
		if r.prefix.Contains(a) {
			return r.kind
		}
	}
	return ""
}
