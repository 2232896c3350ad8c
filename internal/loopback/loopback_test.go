package loopback_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"stepflow/internal/loopback"
)

func TestHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:8080", true},
		{"LocalHost:8080", true},
		{"localhost.:8080", true},
		{"app.localhost", true},
		{"a.b.localhost:3000", true},
		{"127.0.0.1", true},
		{"127.0.0.1:8080", true},
		{"127.1.2.3:80", true},
		{"[::1]", true},
		{"[::1]:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{"", false},
		{":8080", false},
		{"evil.example", false},
		{"evil.example:8080", false},
		{"localhost.evil.example", false},
		{"evillocalhost", false},
		{"localhost.example:8080", false},
		{"127.0.0.1.evil.example", false},
		{"0.0.0.0:8080", false},
		{"192.168.1.5:8080", false},
		{"[::]:8080", false},
		{"[2001:db8::1]:8080", false},
		{"2130706433", false}, // 127.0.0.1 as a number: browsers rewrite it, a raw Host is refused
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			if got := loopback.Host(tt.host); got != tt.want {
				t.Errorf("Host(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestHostsAllows(t *testing.T) {
	t.Parallel()
	named := loopback.Hosts{Names: []string{"Stepflow.Test", "box.lan:9000"}}
	tests := []struct {
		name  string
		hosts loopback.Hosts
		host  string
		want  bool
	}{
		{"zero value: loopback", loopback.Hosts{}, "localhost:8080", true},
		{"zero value: no IP", loopback.Hosts{}, "192.168.1.5:8080", false},
		{"zero value: no name", loopback.Hosts{}, "evil.example", false},
		{"IPs: any IPv4", loopback.Hosts{IPs: true}, "192.168.1.5:8080", true},
		{"IPs: any IPv6", loopback.Hosts{IPs: true}, "[2001:db8::1]:8080", true},
		{"IPs: still no name", loopback.Hosts{IPs: true}, "evil.example:8080", false},
		{"IPs: still loopback", loopback.Hosts{IPs: true}, "localhost", true},
		{"name, any case and port", named, "stepflow.test:8080", true},
		{"name with a final dot", named, "STEPFLOW.TEST.", true},
		{"name given with a port", named, "box.lan:8080", true},
		{"subdomain of a name", named, "a.stepflow.test", false},
		{"names: no IP", named, "10.0.0.1", false},
		{"names: still loopback", named, "[::1]:1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.hosts.Allows(tt.host); got != tt.want {
				t.Errorf("%+v.Allows(%q) = %v, want %v", tt.hosts, tt.host, got, tt.want)
			}
		})
	}
}

func TestGuardAndNoBrowsers(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	tests := []struct {
		name    string
		h       http.Handler
		host    string
		headers map[string]string
		want    int
	}{
		{"Only: loopback passes", loopback.Only(ok), "127.0.0.1:8080", nil, http.StatusTeapot},
		{"Only: other name refused", loopback.Only(ok), "evil.example:8080", nil, http.StatusMisdirectedRequest},
		{"Guard: allowed name passes", loopback.Guard(loopback.Hosts{Names: []string{"box.lan"}}, ok), "box.lan", nil, http.StatusTeapot},
		{"NoBrowsers: SDK passes", loopback.NoBrowsers(ok), "127.0.0.1:1", nil, http.StatusTeapot},
		{"NoBrowsers: Origin refused", loopback.NoBrowsers(ok), "127.0.0.1:1", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"NoBrowsers: Sec-Fetch-Site refused", loopback.NoBrowsers(ok), "127.0.0.1:1", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("Action=SendMessage"))
			req.Host = tt.host
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if rec.Code == http.StatusTeapot {
				return
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Fatalf("refusal is not a JSON error (%v): %s", err, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
		})
	}
}

func ExampleGuard() {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	h := loopback.Guard(loopback.Hosts{Names: []string{"devbox.lan"}}, api)
	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "devbox.lan:8080", "evil.example:8080"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(host, rec.Code)
	}
	// Output:
	// 127.0.0.1:8080 200
	// localhost:8080 200
	// devbox.lan:8080 200
	// evil.example:8080 421
}
