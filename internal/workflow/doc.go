// Package workflow defines workflow definitions: named steps whose
// depends_on edges form a DAG. It validates user input against the
// documented limits, applies defaults, and computes the stable dependency
// order in which a run stores its steps. It does no I/O.
package workflow
