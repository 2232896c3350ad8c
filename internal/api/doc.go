// Package api is Stepflow's HTTP API: one http.Handler that runs unchanged
// behind API Gateway (through Lambda, see Lambda) and in the local stack.
// Handlers decode, call the store, and encode; writeError maps errors to
// status codes, naming the offending field for bad input and never leaking
// internal error text.
package api
