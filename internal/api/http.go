package api

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"stepflow/internal/id"
	"stepflow/internal/store"
)

// page reads ?limit= and ?cursor= for a list of IDs with the given prefix
// (with prefix "", the caller checks the cursor).
func page(r *http.Request, prefix string) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: DefaultLimit, Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return p, badRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit))
		}
		p.Limit = n
	}
	if p.Cursor != "" && prefix != "" && !id.Valid(prefix, p.Cursor) {
		return p, badRequest("cursor", "cursor is not valid for this list; use the URL from the Link header")
	}
	return p, nil
}

// writeList sends one page of a list, with a Link header to the next page.
func writeList[T any](w http.ResponseWriter, r *http.Request, s *server, items []T, next string, err error) {
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if next != "" {
		q := r.URL.Query()
		q.Set("cursor", next)
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, u.String()))
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, items)
}

// cors allows the configured origins to call the API from a browser, and
// exposes the Link header used for paging.
func cors(origins []string, next http.Handler) http.Handler {
	any := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (any || slices.Contains(origins, origin))
		// Answers differ by Origin, so caches must key on it either way.
		w.Header().Add("Vary", "Origin")
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Link, "+UnreadableHeader)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeJSON(w, http.StatusForbidden, errorBody{Error: "origin not allowed"})
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireJSON refuses with 415 a write (POST, PUT, PATCH, DELETE) that
// carries a body without Content-Type: application/json (parameters such as
// charset allowed). Browsers send a cross-origin form post or a text/plain
// body as a "simple" request, with no CORS preflight; a JSON body always
// takes a preflight, which only the allowed origins pass. A write without a
// body (POST /runs/{id}/cancel from curl without -d) needs no Content-Type.
func requireJSON(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if hasBody(r) && !isJSON(r.Header.Get("Content-Type")) {
				if r.Method == http.MethodPost {
					w.Header().Set("Accept-Post", "application/json")
				}
				writeError(w, r, log, &httpError{status: http.StatusUnsupportedMediaType,
					msg: "a request body must be JSON: send the header Content-Type: application/json"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hasBody reports whether r announced a body: a length above zero, or
// chunked (unknown length).
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// isJSON reports whether a Content-Type header is application/json, in any
// case and with any parameters.
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == "application/json"
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// logRequests logs one line per request: method, path, status, duration.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if sw.code >= 500 {
			level = slog.LevelError
		}
		log.Log(r.Context(), level, "request", "method", r.Method, "path", loggedPath(r.URL.Path),
			"status", sw.code, "duration_ms", time.Since(start).Milliseconds())
	})
}

// loggedPath is the path as logged: a callback token, a capability, is
// left out.
func loggedPath(p string) string {
	if strings.HasPrefix(p, "/callbacks/") {
		return "/callbacks/[token]"
	}
	return p
}

// SplitOrigins parses a comma-separated origin list.
func SplitOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimRight(o, "/"))
		}
	}
	return out
}
