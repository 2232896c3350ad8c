package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"stepflow/internal/store"
	"stepflow/internal/workflow"
)

// httpError is an error with the status and client-facing message to send.
type httpError struct {
	status int
	msg    string
	field  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(field, msg string) *httpError {
	return &httpError{status: http.StatusBadRequest, field: field, msg: msg}
}

func unprocessable(field, msg string) *httpError {
	return &httpError{status: http.StatusUnprocessableEntity, field: field, msg: msg}
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeError sends err as a JSON error. Errors the client caused carry their
// message and field; anything else is logged and reported as a bare 500.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *httpError
	var fe *workflow.FieldError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &fe):
		he = unprocessable(fe.Field, fe.Error())
	case errors.Is(err, store.ErrNotFound):
		he = &httpError{status: http.StatusNotFound, msg: "not found"}
	case errors.Is(err, store.ErrConflict):
		he = &httpError{status: http.StatusConflict, msg: "conflict with the current state"}
	default:
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", loggedPath(r.URL.Path), "error", err)
		he = &httpError{status: http.StatusInternalServerError, msg: "internal error"}
	}
	writeJSON(w, he.status, errorBody{Error: he.msg, Field: he.field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
