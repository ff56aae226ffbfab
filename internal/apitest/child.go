package apitest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"enterprise-automation/internal/app"
	"enterprise-automation/internal/password"
)

// RunChild is the body of a test that re-executes its own binary as a real server or
// worker process, so that the parent can signal or kill it. Unless envVar is "1" it skips.
// Otherwise it runs the program with args in this process, stops on SIGTERM or SIGINT as
// cmd/automation does (or when the parent closes stdin, even by dying), and prints
// "<marker> <addr>" to stdout once the program is ready.
func RunChild(t *testing.T, envVar, marker string, params password.Params, args ...string) {
	if os.Getenv(envVar) != "1" {
		t.Skipf("only runs as a subprocess (%s=1)", envVar)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	p := &app.Program{
		Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr, PasswordParams: params,
		OnListen: func(addr string) { fmt.Fprintln(os.Stdout, marker, addr) },
	}
	if err := p.Run(ctx, args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
}
