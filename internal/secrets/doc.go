// Package secrets resolves the values of the {{secrets.NAME}} templates of
// http steps at run time, from environment variables locally ([Env]) and
// from SecureString parameters of SSM Parameter Store on AWS ([SSM]).
//
// Safety argument: a name must match [ValidName]
// (^[A-Z][A-Z0-9_]{0,63}$) before any lookup, so a template cannot name a
// variable or a parameter outside the deployment's own (no "/", no "."; a
// parameter is always <prefix><NAME>, and the step runner's IAM policy
// covers that prefix alone). Values appear in no error and no log line:
// errors name the secret and where it was looked for, never what was found.
// [SSM] keeps values in memory for a TTL (5 minutes by default), so a step
// does not call Parameter Store per request (its default quota is 40
// GetParameter calls a second per account and region, shared by every
// caller); concurrent misses of one name make a single call, and a missing
// parameter is remembered only briefly (10 s by default) so that creating
// it takes effect soon.
package secrets
