// Command bench is the benchmark harness behind `make bench`: it seeds a private
// PostgreSQL with a realistic data set, starts the real server binary, drives load at
// fixed concurrency and compares every scenario with the same SQL run directly. See
// internal/bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"enterprise-automation/internal/bench"
)

func main() {
	// A closed stdout or stderr (bench | head) must not kill the process before it has
	// stopped the server and PostgreSQL: writes then just fail.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := bench.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
