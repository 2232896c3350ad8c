// Package demoservice is a small in-memory stand-in for the outside
// services an order workflow calls over HTTP: payments, shipments and
// notifications. It exists to show what a receiving service does with the
// Idempotency-Key header Stepflow sends on every request of an "http"
// step, whose value is the same on every attempt and redelivery of one
// step in one run.
//
// The service records each key with the first answer it gave and answers
// a repeat of the key with that answer (same status and body, and the
// header Idempotent-Replay: true) without doing anything again, so a
// payment is captured once however often the caller retries. A repeat
// that arrives while the first request is still being answered waits for
// it and then replays it. A key used again with another request (another
// path, or a body that means something else) is refused with 422.
//
// Failures can be injected: a share of requests (Config.FailRate) is
// answered 500 before anything is done or recorded, so a retry with the
// same key does the work later; another share (Config.SlowRate) is
// answered only after Config.Delay. A slow request does its work and
// records its answer first and only then waits, so a caller that gives up
// and retries gets the first answer back: the lost answer an
// Idempotency-Key is for. Requests that are invalid (400, 413, 415, 422)
// are refused before any injection and never record their key.
//
// Everything lives in memory, keys included, for the life of the Service.
// "stepflow demo-services" serves it on a loopback address.
package demoservice
