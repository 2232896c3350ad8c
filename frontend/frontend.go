// Package frontend embeds the dashboard: static HTML, CSS and JavaScript
// modules with no build step. Handler serves it the way the S3 bucket does,
// plus config.json (the API base URL) and the example workflows.
package frontend

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"

	"stepflow/examples"
	"stepflow/internal/loopback"
)

//go:embed index.html ui
var files embed.FS

// CSP is the dashboard's content security policy: scripts and styles only
// from its own origin (no inline script), API calls to apiOrigin, no
// framing.
func CSP(apiOrigin string) string {
	connect := "'self'"
	if apiOrigin != "" {
		connect += " " + apiOrigin
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + connect +
		"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}

// Config is what config.json tells the dashboard.
type Config struct {
	// APIURL is the API's base URL ("" for the page's own origin).
	APIURL string `json:"api_url"`
	// Token, if set, signs the dashboard in by itself. Only the local
	// stack on a loopback address sets it.
	Token string `json:"token,omitempty"`
}

// Handler serves the dashboard at / with config.json and the examples
// under /examples/.
func Handler(c Config) http.Handler {
	static := http.FileServerFS(files)
	apiURL := c.APIURL
	cfg, _ := json.Marshal(c)
	public := c
	public.Token = ""
	cfgPublic, _ := json.Marshal(public)
	index, _ := json.Marshal(examples.Names())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP(apiURL))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch {
		case r.URL.Path == "/config.json":
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			// The token goes only to pages loaded from a loopback host name,
			// so a page on another domain that resolves to 127.0.0.1 (DNS
			// rebinding) cannot read it, even where no loopback.Guard
			// stands in front of this handler.
			if loopback.Host(r.Host) {
				_, _ = w.Write(cfg)
			} else {
				_, _ = w.Write(cfgPublic)
			}
		case r.URL.Path == "/examples/index.json":
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(index)
		case strings.HasPrefix(r.URL.Path, "/examples/"):
			http.StripPrefix("/examples/", http.FileServerFS(examples.FS)).ServeHTTP(w, r)
		default:
			static.ServeHTTP(w, r)
		}
	})
}

// Serves reports whether path belongs to the dashboard rather than the API.
func Serves(path string) bool {
	return path == "/" || path == "/index.html" || path == "/config.json" ||
		strings.HasPrefix(path, "/ui/") || strings.HasPrefix(path, "/examples/")
}

var _ fs.FS = files
