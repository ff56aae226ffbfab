// Command automation is the Enterprise Automation API server and its tooling.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"enterprise-automation/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run runs the program until it ends or SIGINT/SIGTERM asks it to stop gracefully.
func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
}
