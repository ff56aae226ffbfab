package app

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
)

// serveProfiles serves Go's profiling endpoints on addr (PPROF_ADDR) until the returned
// stop is called; with no addr it serves nothing. CPU and allocation profiles of the real
// server under load are how its performance work is guided.
func serveProfiles(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveAside("PPROF_ADDR", addr, mux, log)
}
