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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
