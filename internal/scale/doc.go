// Package scale holds the multi-instance tests: two API instances and two workers on one
// PostgreSQL (with and without Redis) behind haproxy behave as one service. They run the
// binary as built for the image (internal/fleet) and are run by `make test-scale`.
package scale
