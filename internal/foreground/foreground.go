// Package foreground counts the API requests a process is serving, so that background
// work in the same process (webhook deliveries) can yield the CPU to them: while the
// API is busy, deliveries are paced; when it is not, they run at full speed.
//
// What it buys: on a machine the API saturates, task writes with webhooks on keep
// within the bench's budget of writes with webhooks off, and the deliveries catch up
// as soon as the load drops (the webhooks bench row: ratio, deliveries per second,
// commit → receipt).
package foreground

import (
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
)

// Gauge counts requests in flight through the handlers it wraps. The zero value is
// ready to use.
type Gauge struct {
	n atomic.Int64
}

// Wrap counts h's requests while they are served. Event streams are left out: they
// stay open for minutes without using the CPU.
func (g *Gauge) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			h.ServeHTTP(w, r)
			return
		}
		g.n.Add(1)
		defer g.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// InFlight returns how many counted requests are being served.
func (g *Gauge) InFlight() int64 { return g.n.Load() }

// Busy reports whether the requests in flight are at least twice the CPUs the process
// may use: enough to keep every CPU working, so that background work would take CPU
// time from requests.
func (g *Gauge) Busy() bool { return g.n.Load() >= int64(2*runtime.GOMAXPROCS(0)) }
