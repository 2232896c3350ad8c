// Package loopback keeps servers meant for this machine out of reach of web
// pages on other sites, which reach them by DNS rebinding: a page at
// http://evil.example:8080/ whose name the attacker then points at
// 127.0.0.1 is, to the browser, still the origin evil.example, so it may read
// every answer of the local server it now talks to. The request it sends
// still names evil.example in its Host header, and that is what Guard checks
// before any handler runs: a server answers only a loopback name (see Host)
// or what its Hosts allows (IP addresses, which cannot be rebound, and names
// its operator chose), never a name an attacker controls. Anything else gets
// 421 Misdirected Request.
//
// NoBrowsers goes further, for a server no web page should call at all: it
// refuses every request a browser marks as its own.
//
// Both defend against browsers only: a local process can send any header it
// likes, and is not what this package is for.
package loopback

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Host reports whether host, a request's Host header with or without a
// port, is a loopback name: localhost, a name ending in .localhost (which
// browsers resolve to loopback themselves, RFC 6761), or a loopback IP
// address (127.0.0.0/8, ::1). Names are compared without case and without a
// final dot.
func Host(host string) bool {
	name, ip := split(host)
	if ip != nil {
		return ip.IsLoopback()
	}
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// Hosts lists what a server answers besides loopback names. The zero value
// allows loopback names only.
type Hosts struct {
	// IPs allows any IP address as the Host, which suits a server bound to
	// a non-loopback or an unspecified address (0.0.0.0), reached by one of
	// its addresses. DNS rebinding cannot produce such a Host: a page
	// loaded from an IP address talks to that address only.
	IPs bool
	// Names are host names allowed as well, matched exactly (without case,
	// port or final dot; a port given here is ignored): the names an
	// operator reaches the server by on purpose.
	Names []string
}

// Allows reports whether a request whose Host header is host may be
// answered.
func (h Hosts) Allows(host string) bool {
	if Host(host) {
		return true
	}
	name, ip := split(host)
	if ip != nil {
		return h.IPs
	}
	return name != "" && slices.ContainsFunc(h.Names, func(n string) bool {
		allowed, _ := split(n)
		return allowed == name
	})
}

// Only answers requests whose Host is a loopback name and refuses all
// others with 421; it is Guard with the zero Hosts.
func Only(next http.Handler) http.Handler {
	return Guard(Hosts{}, next)
}

// Guard answers requests whose Host hosts allows and refuses all others
// with 421 Misdirected Request and a JSON error, before next sees them.
func Guard(hosts Hosts, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts.Allows(r.Host) {
			refuse(w, http.StatusMisdirectedRequest,
				"host "+strconv.Quote(r.Host)+" is not served here: this local server answers only requests addressed to localhost or a loopback address (Host header)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// NoBrowsers refuses, with 403, every request a web browser sent: one with
// an Origin or a Sec-Fetch-Site header, which browsers add (to every
// cross-origin request and every POST, and to all requests in current
// browsers) and SDKs and command-line tools do not. It suits a local server
// that no web page has any business calling, such as an AWS emulator: a page
// on any site can send it a form POST (a "simple" request, with no CORS
// preflight) without DNS rebinding, knowing only its port, and an emulator
// that speaks the AWS query protocol acts on unsigned form posts.
func NoBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
			refuse(w, http.StatusForbidden, "this local server does not answer web browsers (the request has an Origin or Sec-Fetch-Site header)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse writes a JSON error body in the shape the Stepflow API uses.
func refuse(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// split returns host's name, lower-cased and without port, brackets or
// final dot, and its IP address if it is one.
func split(host string) (string, net.IP) {
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		name = host // no port
	}
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")), ".")
	return name, net.ParseIP(name)
}
