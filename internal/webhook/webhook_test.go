package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/webhook"
)

var admin = auth.Principal{UserID: 1, IsAdmin: true}

type testBundle struct {
	ctx   context.Context
	store *store.DB
	svc   *webhook.Service
	guard *webhook.Guard
}

// setup builds the service over a fresh database; resolve answers for host names.
func setup(t *testing.T, allowPrivate bool, resolve webhook.ResolveFunc) testBundle {
	t.Helper()
	s := store.New(dbtest.Pool(t))
	g := &webhook.Guard{AllowPrivate: allowPrivate, Resolve: resolve}
	return testBundle{ctx: context.Background(), store: s, guard: g, svc: webhook.NewService(s, webhook.Options{Guard: g})}
}

func TestSignInteroperatesWithTheStandardWebhooksVerifier(t *testing.T) {
	t.Parallel()
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	next, err := webhook.NewSecret()
	require.NoError(t, err)
	body := []byte(`{"type":"webhook.test","timestamp":"2026-12-06T10:00:00Z","data":{}}`)
	at := time.Now()

	for _, secrets := range [][]string{{secret}, {next, secret}} {
		sig, err := webhook.Sign("msg_1", at, body, secrets...)
		require.NoError(t, err)
		require.Len(t, strings.Split(sig, " "), len(secrets))
		h := http.Header{}
		webhook.SetHeaders(h, "msg_1", at, sig)
		for _, s := range secrets {
			wh, err := standardwebhooks.NewWebhook(s)
			require.NoError(t, err)
			require.NoError(t, wh.Verify(body, h), "verified with each secret that signed")
		}
		tampered := append([]byte{}, body...)
		tampered[10] ^= 1
		wh, _ := standardwebhooks.NewWebhook(secrets[0])
		require.ErrorIs(t, wh.Verify(tampered, h), standardwebhooks.ErrNoMatchingSignature)
	}
	other, _ := webhook.NewSecret()
	sig, err := webhook.Sign("msg_1", at, body, secret)
	require.NoError(t, err)
	h := http.Header{}
	webhook.SetHeaders(h, "msg_1", at, sig)
	wh, _ := standardwebhooks.NewWebhook(other)
	require.Error(t, wh.Verify(body, h), "another endpoint's secret does not verify")
}

func TestGuardAllowed(t *testing.T) {
	t.Parallel()
	g := &webhook.Guard{}
	for _, a := range []string{"127.0.0.1", "127.9.9.9", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
		"fe80::1", "100.64.0.1", "100.127.255.254", "224.0.0.1", "ff02::1", "0.0.0.0", "0.1.2.3", "::", "255.255.255.255",
		"fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"} {
		require.False(t, g.Allowed(netip.MustParseAddr(a)), a)
	}
	for _, a := range []string{"8.8.8.8", "203.0.113.7", "100.128.0.1", "2001:4860:4860::8888"} {
		require.True(t, g.Allowed(netip.MustParseAddr(a)), a)
	}
	require.True(t, (&webhook.Guard{AllowPrivate: true}).Allowed(netip.MustParseAddr("127.0.0.1")))
}

func TestGuardRefusesAtConnectTime(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := &webhook.Guard{Resolve: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}}
	_, err := g.DialContext(context.Background(), "tcp", "rebind.test:"+port)
	require.ErrorIs(t, err, webhook.ErrRefusedAddress, "a name resolving to loopback is refused")
	_, err = g.DialContext(context.Background(), "tcp", "127.0.0.1:"+port)
	require.ErrorIs(t, err, webhook.ErrRefusedAddress, "so is the address itself")
	require.Zero(t, hits.Load())

	open := &webhook.Guard{AllowPrivate: true, Resolve: g.Resolve}
	c, err := open.DialContext(context.Background(), "tcp", "rebind.test:"+port)
	require.NoError(t, err, "allowed for development")
	require.NoError(t, c.Close())
}

func TestCreateChecksTheURL(t *testing.T) {
	t.Parallel()
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "loopback.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("10.0.0.5")}, nil
		case "public.test":
			return []netip.Addr{netip.MustParseAddr("203.0.113.5")}, nil
		}
		return nil, errors.New("no such host")
	}
	b := setup(t, false, resolve)
	for _, u := range []string{"http://loopback.test/x", "https://mixed.test/x", "gopher://public.test/", "http://u:p@public.test/",
		"http://public.test/#frag", "http:///nohost", "not a url at all", "http://[::1]:80/"} {
		_, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: u, Events: []webhook.EventType{webhook.Wildcard}})
		require.True(t, apperr.Is(err, apperr.Invalid), "%s: %v", u, err)
	}
	for _, ev := range [][]webhook.EventType{nil, {}, {"task.exploded"}, {webhook.TaskCreated, "nope"}} {
		_, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "https://public.test/x", Events: ev})
		require.True(t, apperr.Is(err, apperr.Invalid), "%v: %v", ev, err)
	}
	c, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "https://public.test/x", Events: []webhook.EventType{webhook.TaskCreated, webhook.TaskCreated}})
	require.NoError(t, err)
	require.Equal(t, []webhook.EventType{webhook.TaskCreated}, c.Events, "duplicates are dropped")
	_, err = b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "https://unknown.test/x", Events: []webhook.EventType{webhook.Wildcard}})
	require.NoError(t, err, "a name that does not resolve yet is accepted: the connect-time check applies")
	_, err = b.svc.Create(b.ctx, auth.Principal{UserID: 2}, webhook.CreateParams{URL: "https://public.test/x", Events: []webhook.EventType{webhook.Wildcard}})
	require.True(t, apperr.Is(err, apperr.Forbidden))
}

func TestEmitIsPartOfTheChangesTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	hook, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9/x", Events: []webhook.EventType{webhook.TaskCreated}})
	require.NoError(t, err)
	_, err = b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9/y", Events: []webhook.EventType{webhook.UserDeleted}})
	require.NoError(t, err)
	count := func() (events, deliveries int) {
		require.NoError(t, b.store.Pool().QueryRow(b.ctx, "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM webhook_deliveries)").Scan(&events, &deliveries))
		return
	}

	rollback := errors.New("the change failed")
	err = b.store.InTx(b.ctx, func(q db.Querier) error {
		require.NoError(t, b.svc.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": 1}))
		return rollback
	})
	require.ErrorIs(t, err, rollback)
	e, d := count()
	require.Zero(t, e+d, "a change that rolls back emits nothing")

	require.NoError(t, b.store.InTx(b.ctx, func(q db.Querier) error {
		return b.svc.Emit(b.ctx, q, webhook.TaskUpdated, map[string]any{"id": 1})
	}))
	e, d = count()
	require.Zero(t, e+d, "no subscribed endpoint: nothing is written")

	require.NoError(t, b.store.InTx(b.ctx, func(q db.Querier) error {
		return b.svc.Emit(b.ctx, q, webhook.TaskCreated, map[string]any{"id": 1})
	}))
	e, d = count()
	require.Equal(t, 1, e)
	require.Zero(t, d, "the change's transaction writes the event only")
	n, err := b.svc.Dispatch(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	e, d = count()
	require.Equal(t, 1, e)
	require.Equal(t, 1, d, "one delivery, to the one subscribed endpoint")
	pg, err := b.svc.ListDeliveries(b.ctx, admin, hook.ID, webhook.DeliveryListParams{Page: pageOf(10)})
	require.NoError(t, err)
	require.Len(t, pg.Items, 1)
	require.Equal(t, webhook.StatusPending, pg.Items[0].Status)
}

// TestDeliveryRefusesARebindingName: the name resolved to a public address when the
// endpoint was created and to loopback when the delivery connects.
func TestDeliveryRefusesARebindingName(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	var rebound atomic.Bool
	resolve := func(context.Context, string) ([]netip.Addr, error) {
		if rebound.Load() {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("203.0.113.9")}, nil
	}
	b := setup(t, false, resolve)
	hook, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: fmt.Sprintf("http://rebind.test:%s/x", port), Events: []webhook.EventType{webhook.Wildcard}})
	require.NoError(t, err)
	d, err := b.svc.SendTest(b.ctx, admin, hook.ID)
	require.NoError(t, err)
	rebound.Store(true)

	dl := webhook.NewDeliverer(b.store, webhook.DelivererOptions{Guard: b.guard, Timeout: 2 * time.Second, Schedule: []time.Duration{time.Minute}})
	res, err := dl.Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, time.Minute, res.Retry)
	got, err := b.svc.GetDelivery(b.ctx, admin, hook.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusRetrying, got.Status)
	require.Equal(t, webhook.ErrRefusedAddress.Error(), *got.LastError)
	require.Nil(t, got.LastStatusCode)
	require.Zero(t, hits.Load(), "nothing reached the loopback receiver")

	// The same delivery with private networks allowed (development) gets through.
	open := &webhook.Guard{AllowPrivate: true, Resolve: resolve}
	_, err = webhook.NewDeliverer(b.store, webhook.DelivererOptions{Guard: open, Timeout: 2 * time.Second}).Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	got, err = b.svc.GetDelivery(b.ctx, admin, hook.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusSucceeded, got.Status)
	require.Equal(t, int32(2), got.Attempts)
	require.Equal(t, int32(1), hits.Load())
}

func TestRetryDelays(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	var retryAfter atomic.Value
	retryAfter.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if v := retryAfter.Load().(string); v != "" {
			w.Header().Set("Retry-After", v)
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	hook, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: srv.URL, Events: []webhook.EventType{webhook.Wildcard}})
	require.NoError(t, err)
	schedule := []time.Duration{10 * time.Second, time.Minute}
	dl := webhook.NewDeliverer(b.store, webhook.DelivererOptions{Guard: b.guard, Schedule: schedule, Jitter: 0.1})

	d, err := b.svc.SendTest(b.ctx, admin, hook.ID)
	require.NoError(t, err)
	res, err := dl.Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	require.InDelta(t, float64(10*time.Second), float64(res.Retry), float64(time.Second), "the schedule, jittered by at most 10 %%")

	retryAfter.Store("7200")
	res, err = dl.Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, res.Retry, "a longer Retry-After wins")

	res, err = dl.Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	require.Zero(t, res.Retry, "after the schedule's last retry the delivery fails")
	got, err := b.svc.GetDelivery(b.ctx, admin, hook.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusFailed, got.Status)
	require.Equal(t, int32(3), got.Attempts)
	require.Equal(t, int32(http.StatusTooManyRequests), *got.LastStatusCode)

	res, err = dl.Attempt(b.ctx, d.ID)
	require.NoError(t, err)
	require.Zero(t, res, "a finished delivery is left alone (a duplicate job)")
	got, err = b.svc.GetDelivery(b.ctx, admin, hook.ID, d.ID)
	require.NoError(t, err)
	require.Equal(t, int32(3), got.Attempts)
}

func TestWantsFollowsSubscriptions(t *testing.T) {
	t.Parallel()
	b := setup(t, true, nil)
	other := webhook.NewService(b.store, webhook.Options{Guard: b.guard}) // another process's copy
	// Wants never waits for the database: until it knows, it answers "may" (the outbox
	// statement decides), then it answers from its copy.
	require.True(t, b.svc.Wants(b.ctx, webhook.TaskCreated), "not known yet")
	require.Eventually(t, func() bool { return !b.svc.Wants(b.ctx, webhook.TaskCreated) }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return !other.Wants(b.ctx, webhook.TaskCreated) }, 5*time.Second, 10*time.Millisecond)

	h, err := b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9/", Events: []webhook.EventType{webhook.UserCreated}})
	require.NoError(t, err)
	require.True(t, b.svc.Wants(b.ctx, webhook.UserCreated), "a change through this process applies at once")
	require.Eventually(t, func() bool { return !b.svc.Wants(b.ctx, webhook.TaskCreated) }, 5*time.Second, 10*time.Millisecond)
	require.True(t, b.svc.Wants(b.ctx, webhook.UserCreated))
	require.Eventually(t, func() bool { return other.Wants(b.ctx, webhook.UserCreated) }, 5*time.Second, 50*time.Millisecond,
		"another process sees it within SubscriptionTTL")

	off := false
	_, err = b.svc.Update(b.ctx, admin, h.ID, webhook.UpdateParams{IsActive: &off}, etagAny())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !b.svc.Wants(b.ctx, webhook.UserCreated) }, 5*time.Second, 10*time.Millisecond,
		"inactive endpoints want nothing")
	_, err = b.svc.Create(b.ctx, admin, webhook.CreateParams{URL: "http://127.0.0.1:9/", Events: []webhook.EventType{webhook.Wildcard}})
	require.NoError(t, err)
	require.True(t, b.svc.Wants(b.ctx, webhook.AgentRunExpired), "the wildcard wants every type")
	time.Sleep(100 * time.Millisecond)
	require.True(t, b.svc.Wants(b.ctx, webhook.AgentRunExpired), "and keeps wanting it once the copy is read again")
}
