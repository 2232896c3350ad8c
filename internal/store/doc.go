// Package store keeps workflows, runs, steps and orders in one DynamoDB
// table through aws-sdk-go-v2. Every state change is a conditional write;
// a failed condition is reported as ErrConflict (or a more specific
// sentinel). Lists are Queries on global secondary indexes, never Scans.
//
// The table layout is in DECISIONS.md; Schema is its single definition,
// used both by the local stack (CreateTableInput) and the CDK app.
package store
