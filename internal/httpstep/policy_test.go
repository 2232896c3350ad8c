package httpstep

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entry string
		ok    bool
	}{
		{"*", true},
		{"api.example.com", true},
		{"API.Example.COM.", true},
		{" api.example.com ", true},
		{"*.example.com", true},
		{"my_host.internal", true},
		{"203.0.113.7", true},
		{"::1", true},
		{"::ffff:10.0.0.1", true},
		{"10.1.0.0/16", true},
		{"10.1.2.3/16", true},
		{"2001:db8::/32", true},
		{"", false},
		{"*.", false},
		{"*.*.example.com", false},
		{"api.*.com", false},
		{"*example.com", false},
		{"https://api.example.com", false},
		{"api.example.com:443", false},
		{"api example.com", false},
		{"bücher.example", false},
		{"10.0.0.0/33", false},
		{"fe80::1%eth0", false},
		{"a..b", false},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			t.Parallel()
			err := Policy{Allow: []string{"*.ok.example", tt.entry}}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok %v", tt.entry, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "allow-list entry") {
				t.Errorf("error %q does not name the entry", err)
			}
		})
	}
}

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	const (
		notAllowed = "is not in the allow-list"
		linkLocal  = "a link-local address"
		private    = "a private address"
		loopback   = "a loopback address"
	)
	tests := []struct {
		name  string
		allow []string
		local bool
		host  string   // a name or an IP literal
		addrs []string // what the name resolves to; none for a literal
		want  string   // "" when permitted, else part of the refusal
	}{
		{"star admits a public name", []string{"*"}, false, "api.example.com", []string{"203.0.113.5"}, ""},
		{"star admits a public literal", []string{"*"}, false, "203.0.113.5", nil, ""},
		{"star refuses a private address", []string{"*"}, false, "db.example.com", []string{"10.0.0.1"}, private},
		{"star refuses the metadata address", []string{"*"}, false, "metadata.example.com", []string{"169.254.169.254"}, linkLocal},
		{"star refuses the metadata literal", []string{"*"}, false, "169.254.169.254", nil, "169.254.169.254 is a link-local address; name it in the allow-list"},
		{"star refuses a mapped metadata literal", []string{"*"}, false, "::ffff:169.254.169.254", nil, linkLocal},
		{"star refuses a NAT64 metadata literal", []string{"*"}, false, "64:ff9b::a9fe:a9fe", nil, linkLocal},
		{"star refuses loopback", []string{"*"}, false, "localhost", []string{"127.0.0.1"}, "localhost resolves to 127.0.0.1, a loopback address"},
		{"star refuses a zoned link-local", []string{"*"}, false, "fe80::1%eth0", nil, linkLocal},
		{"every candidate is checked", []string{"*"}, false, "mixed.example.com", []string{"203.0.113.5", "10.0.0.1"}, private},
		{"star with AllowLocal admits loopback", []string{"*"}, true, "localhost", []string{"127.0.0.1", "::1"}, ""},
		{"star with AllowLocal admits the metadata address", []string{"*"}, true, "169.254.169.254", nil, ""},
		{"exact name", []string{"api.example.com"}, false, "api.example.com", []string{"203.0.113.5"}, ""},
		{"exact name ignores case and trailing dot", []string{"API.Example.com."}, false, "api.EXAMPLE.com.", []string{"203.0.113.5"}, ""},
		{"exact name admits a private address", []string{"db.internal"}, false, "db.internal", []string{"10.0.0.5"}, ""},
		{"exact name admits loopback", []string{"localhost"}, false, "localhost", []string{"127.0.0.1"}, ""},
		{"other name", []string{"api.example.com"}, false, "other.example.com", []string{"203.0.113.5"}, notAllowed},
		{"other name at a local address", []string{"api.example.com"}, false, "evil.example.net", []string{"169.254.169.254"}, linkLocal},
		{"wildcard admits a subdomain", []string{"*.example.com"}, false, "a.example.com", []string{"203.0.113.5"}, ""},
		{"wildcard admits a deeper subdomain", []string{"*.example.com"}, false, "a.b.example.com", []string{"203.0.113.5"}, ""},
		{"wildcard refuses the apex", []string{"*.example.com"}, false, "example.com", []string{"203.0.113.5"}, notAllowed},
		{"wildcard refuses a look-alike", []string{"*.example.com"}, false, "badexample.com", []string{"203.0.113.5"}, notAllowed},
		{"wildcard refuses a local address", []string{"*.example.com"}, false, "a.example.com", []string{"10.0.0.1"}, private},
		{"wildcard with AllowLocal admits a local address", []string{"*.example.com"}, true, "a.example.com", []string{"10.0.0.1"}, ""},
		{"wildcard never matches a literal", []string{"*.example.com"}, false, "203.0.113.5", nil, notAllowed},
		{"ip entry admits its literal", []string{"10.0.0.7"}, false, "10.0.0.7", nil, ""},
		{"ip entry admits a name at its address", []string{"10.0.0.7"}, false, "svc.internal", []string{"10.0.0.7"}, ""},
		{"ip entry refuses its neighbour", []string{"10.0.0.7"}, false, "10.0.0.8", nil, private},
		{"ip entry admits the metadata address", []string{"169.254.169.254"}, false, "169.254.169.254", nil, ""},
		{"mapped ip entry admits the plain address", []string{"::ffff:10.0.0.7"}, false, "10.0.0.7", nil, ""},
		{"cidr admits an address inside", []string{"10.1.0.0/16"}, false, "10.1.2.3", nil, ""},
		{"cidr admits a mapped address inside", []string{"10.1.0.0/16"}, false, "::ffff:10.1.2.3", nil, ""},
		{"cidr refuses an address outside", []string{"10.1.0.0/16"}, false, "10.2.0.1", nil, private},
		{"cidr refuses a public address outside", []string{"10.1.0.0/16"}, false, "203.0.113.5", nil, notAllowed},
		{"ipv6 cidr", []string{"2001:db8::/32"}, false, "2001:db8::1", nil, ""},
		{"cidr covers only some candidates", []string{"10.1.0.0/16"}, false, "svc.internal", []string{"10.1.0.1", "10.2.0.1"}, private},
		{"empty list with AllowLocal", nil, true, "localhost", []string{"127.0.0.1"}, notAllowed},
		{"empty list", nil, false, "203.0.113.5", nil, notAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Policy{Allow: tt.allow, AllowLocal: tt.local}.compile()
			if err != nil {
				t.Fatal(err)
			}
			addrs := []netip.Addr{}
			for _, s := range tt.addrs {
				addrs = append(addrs, netip.MustParseAddr(s))
			}
			if len(addrs) == 0 {
				addrs = append(addrs, netip.MustParseAddr(tt.host))
			}
			err = r.check(tt.host, addrs)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("check(%s, %v) = %v, want permitted", tt.host, addrs, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "refused: ") {
				t.Fatalf("check(%s, %v) = %v, want a refusal holding %q", tt.host, addrs, err, tt.want)
			}
			if !errors.Is(err, ErrPermanent) {
				t.Errorf("refusal %v does not wrap ErrPermanent", err)
			}
		})
	}
}

func TestPolicyPrecheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allow []string
		host  string
		ok    bool
	}{
		{[]string{"api.example.com"}, "api.example.com", true},
		{[]string{"api.example.com"}, "evil.example.com", false},
		{[]string{"*.example.com"}, "a.example.com", true},
		{[]string{"*"}, "anything.test", true},
		// A name may resolve into a CIDR entry: only the dial can tell.
		{[]string{"10.0.0.0/8"}, "svc.internal", true},
		{[]string{"*"}, "10.0.0.1", false},
		{[]string{"10.0.0.0/8"}, "10.0.0.1", true},
		{nil, "api.example.com", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.allow, ",")+"/"+tt.host, func(t *testing.T) {
			t.Parallel()
			r, err := Policy{Allow: tt.allow}.compile()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.precheck(tt.host); (err == nil) != tt.ok {
				t.Errorf("precheck(%s) = %v, want ok %v", tt.host, err, tt.ok)
			}
		})
	}
}

func TestLocalKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1", "a loopback address"},
		{"127.255.0.9", "a loopback address"},
		{"::1", "a loopback address"},
		{"::ffff:127.0.0.1", "a loopback address"},
		{"169.254.169.254", "a link-local address"},
		{"fe80::1", "a link-local address"},
		{"fe80::1%eth0", "a link-local address"},
		{"10.0.0.1", "a private address"},
		{"172.16.0.1", "a private address"},
		{"172.31.255.255", "a private address"},
		{"192.168.1.1", "a private address"},
		{"fd00:ec2::254", "a private address"},
		{"::ffff:192.168.1.1", "a private address"},
		{"0.0.0.0", "an unspecified address"},
		{"::", "an unspecified address"},
		{"224.0.0.1", "a multicast address"},
		{"ff02::1", "a multicast address"},
		{"255.255.255.255", "a broadcast address"},
		{"100.64.0.1", "a carrier-grade NAT address"},
		{"100.127.255.255", "a carrier-grade NAT address"},
		{"64:ff9b::a9fe:a9fe", "a link-local address"},
		{"203.0.113.5", ""},
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"2606:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := localKind(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("localKind(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestLocalPolicy(t *testing.T) {
	t.Parallel()
	p := LocalPolicy()
	if err := p.Validate(); err != nil || !p.AllowLocal {
		t.Fatalf("LocalPolicy() = %+v, %v", p, err)
	}
}

func TestParseAllowList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"":                                 nil,
		" , ":                              nil,
		"api.example.com":                  {"api.example.com"},
		" *.example.com , 10.0.0.0/8,*,  ": {"*.example.com", "10.0.0.0/8", "*"},
	} {
		if got := ParseAllowList(in); !slices.Equal(got, want) {
			t.Errorf("ParseAllowList(%q) = %q, want %q", in, got, want)
		}
	}
}
