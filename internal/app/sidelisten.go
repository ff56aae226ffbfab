package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serveAside serves h on addr, apart from the API and its middleware, until the returned
// stop is called; with no addr it serves nothing. name is the setting that chose addr,
// for errors and logs. Every answer carries nosniff.
func serveAside(name, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", name, addr, err)
	}
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("listener stopped", "setting", name, "error", err)
		}
	}()
	log.Info("serving on a private address; keep it private", "setting", name, "addr", ln.Addr().String())
	return func() { _ = hs.Shutdown(context.Background()) }, nil
}
