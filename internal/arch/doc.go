// Package arch has no code: its test enforces the import rules that ARCHITECTURE.md
// describes, so that the layers stay what the map says they are.
package arch
