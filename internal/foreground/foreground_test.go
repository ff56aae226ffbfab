package foreground_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/foreground"
)

func TestGaugeCountsRequestsInFlight(t *testing.T) {
	t.Parallel()
	var g foreground.Gauge
	release := make(chan struct{})
	started := make(chan struct{}, 64)
	h := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		started <- struct{}{}
		<-release
	}))
	busyAt := 2 * runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	serve := func(accept string) {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept", accept)
			h.ServeHTTP(httptest.NewRecorder(), r)
		})
		<-started
	}
	serve("text/event-stream")
	require.Zero(t, g.InFlight(), "event streams are not counted")
	for i := range busyAt {
		require.False(t, g.Busy(), "%d in flight", i)
		serve("application/json")
	}
	require.Equal(t, int64(busyAt), g.InFlight())
	require.True(t, g.Busy())
	close(release)
	wg.Wait()
	require.Zero(t, g.InFlight())
	require.False(t, g.Busy())
}
