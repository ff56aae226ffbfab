package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// hookRequest is one request a receiver got.
type hookRequest struct {
	Header http.Header
	Body   []byte
}

// receiver is a real local HTTP server that records what it is sent and answers with
// its handler (200 by default).
type receiver struct {
	*httptest.Server
	got     chan hookRequest
	mu      sync.Mutex
	all     []hookRequest
	handler http.HandlerFunc
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{got: make(chan hookRequest, 10000), handler: h}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		hr := hookRequest{Header: req.Header.Clone(), Body: body}
		r.mu.Lock()
		r.all = append(r.all, hr)
		r.mu.Unlock()
		r.got <- hr
		if r.handler != nil {
			r.handler(w, req)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

// next waits for the next request.
func (r *receiver) next(t *testing.T) hookRequest {
	t.Helper()
	select {
	case hr := <-r.got:
		return hr
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver got nothing within 30s")
		return hookRequest{}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// hookEnv starts a server that may deliver to local receivers, with a short retry
// schedule and timeout.
func hookEnv(t *testing.T, opts ...apitest.Option) *apitest.Env {
	t.Helper()
	base := []apitest.Option{
		apitest.WithEnv("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
		apitest.WithEnv("WEBHOOK_RETRY_SCHEDULE", "50ms,50ms"),
		apitest.WithEnv("WEBHOOK_TIMEOUT", "2s"),
	}
	return apitest.Start(t, append(base, opts...)...)
}

func createHook(t *testing.T, c *client.ClientWithResponses, url string, events ...client.WebhookSubscription) client.WebhookCreated {
	t.Helper()
	res, err := c.CreateWebhookWithResponse(context.Background(), client.WebhookCreate{Url: url, Events: events})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create webhook: %s", res.Body)
	return *res.JSON201
}

// verified checks a request's signature with the Standard Webhooks library and decodes
// its body.
func verified(t *testing.T, hr hookRequest, secret string) map[string]any {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(hr.Body, hr.Header), "signature of %s", hr.Body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(hr.Body, &out))
	return out
}

// requireEventMatchesContract validates a delivered body against the contract's
// WebhookEvent schema: its type, and data shaped as the API returns the resource.
func requireEventMatchesContract(t *testing.T, body []byte) {
	t.Helper()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	require.NoError(t, doc.Components.Schemas["WebhookEvent"].Value.VisitJSON(v), "event %s", body)
}

// waitDelivery polls an endpoint's delivery log until the delivery is in a final state
// (or in want when given).
func waitDelivery(t *testing.T, c *client.ClientWithResponses, hookID int64, want ...client.WebhookDeliveryStatus) client.WebhookDelivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := c.ListWebhookDeliveriesWithResponse(context.Background(), hookID, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		if len(res.JSON200.Items) > 0 {
			d := res.JSON200.Items[0]
			final := d.Status == client.WebhookDeliveryStatusSucceeded || d.Status == client.WebhookDeliveryStatusFailed
			if (len(want) == 0 && final) || (len(want) > 0 && d.Status == want[0]) {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery reached %v within 30s: %s", want, res.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	env := hookEnv(t)
	ctx := context.Background()
	admin := env.AsAdmin(t)
	rcv := newReceiver(t, nil)

	created := createHook(t, admin, rcv.URL+"/hooks", "*")
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, created.Secret)
	require.True(t, created.IsActive)

	got, err := admin.GetWebhookWithResponse(ctx, created.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode())
	require.NotContains(t, string(got.Body), created.Secret, "the secret is shown only on creation")
	list, err := admin.ListWebhooksWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), list.JSON200.Total)

	t.Run("task writes are delivered, signed, with the task as the API returns it", func(t *testing.T) {
		res, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "Hooked task"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode())
		task := res.JSON201

		hr := rcv.next(t)
		ev := verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "task.created", ev["type"])
		var apiTask map[string]any
		require.NoError(t, json.Unmarshal(res.Body, &apiTask))
		require.Equal(t, apiTask, ev["data"], "data is the task exactly as the API returned it")
		require.Regexp(t, `^msg_[0-9a-f]{32}$`, hr.Header.Get("webhook-id"))
		require.Equal(t, "application/json", hr.Header.Get("Content-Type"))
		require.Contains(t, hr.Header.Get("User-Agent"), "EnterpriseAutomation-Webhooks/2.1.0")

		st := client.TaskStatusInProgress
		up, err := admin.UpdateTaskWithResponse(ctx, task.Id, nil, client.UpdateTaskJSONRequestBody{Status: &st})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		hr = rcv.next(t)
		ev = verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "task.updated", ev["type"])
		require.Equal(t, "in_progress", ev["data"].(map[string]any)["status"])

		// A change that rolls back emits nothing: an illegal transition.
		pending := client.TaskStatusPending
		_, err = admin.UpdateTaskWithResponse(ctx, task.Id, nil, client.UpdateTaskJSONRequestBody{Status: &pending})
		require.NoError(t, err)
		hr = rcv.next(t) // in_progress → pending is legal: one event
		require.Equal(t, "task.updated", verified(t, hr, created.Secret)["type"])
		conflict, err := admin.UpdateTaskWithResponse(ctx, task.Id, nil, client.UpdateTaskJSONRequestBody{Status: apitest.Ptr(client.TaskStatusCompleted)})
		require.NoError(t, err)
		require.Equal(t, http.StatusConflict, conflict.StatusCode(), "pending → completed is illegal")

		del, err := admin.DeleteTaskWithResponse(ctx, task.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, del.StatusCode())
		hr = rcv.next(t)
		ev = verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "task.deleted", ev["type"], "the refused transition sent nothing before the deletion")
		require.Equal(t, float64(task.Id), ev["data"].(map[string]any)["id"])
	})

	t.Run("user create and delete are delivered", func(t *testing.T) {
		u := env.CreateUser(t, "Hooked", false)
		hr := rcv.next(t)
		ev := verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "user.created", ev["type"])
		require.Equal(t, float64(u.Id), ev["data"].(map[string]any)["id"])
		require.NotContains(t, string(hr.Body), "password")

		res, err := admin.DeleteUserWithResponse(ctx, u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode())
		hr = rcv.next(t)
		ev = verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "user.deleted", ev["type"])
	})

	t.Run("the delivery log names each event by its webhook-id", func(t *testing.T) {
		d := waitDelivery(t, admin, created.Id)
		require.Equal(t, client.WebhookDeliveryStatusSucceeded, d.Status)
		require.Equal(t, int32(1), d.Attempts)
		require.Equal(t, int32(200), d.LastStatusCode.MustGet())
		require.True(t, d.DeliveredAt.IsSpecified() && !d.DeliveredAt.IsNull())
		res, err := admin.ListWebhookDeliveriesWithResponse(ctx, created.Id, nil)
		require.NoError(t, err)
		ids := map[string]bool{}
		for _, it := range res.JSON200.Items {
			ids[it.EventId] = true
		}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, hr := range rcv.all {
			require.True(t, ids[hr.Header.Get("webhook-id")], "webhook-id %s is in the log", hr.Header.Get("webhook-id"))
		}
	})

	t.Run("test event", func(t *testing.T) {
		res, err := admin.SendWebhookTestWithResponse(ctx, created.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
		require.Equal(t, client.WebhookEventTypeWebhookTest, res.JSON202.EventType)
		hr := rcv.next(t)
		ev := verified(t, hr, created.Secret)
		requireEventMatchesContract(t, hr.Body)
		require.Equal(t, "webhook.test", ev["type"])
		require.Equal(t, res.JSON202.EventId, hr.Header.Get("webhook-id"))
	})

	t.Run("rotation: both secrets sign for a while", func(t *testing.T) {
		rot, err := admin.RotateWebhookSecretWithResponse(ctx, created.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, rot.StatusCode())
		require.NotEqual(t, created.Secret, rot.JSON200.Secret)
		_, err = admin.SendWebhookTestWithResponse(ctx, created.Id)
		require.NoError(t, err)
		hr := rcv.next(t)
		require.Len(t, strings.Split(hr.Header.Get("webhook-signature"), " "), 2)
		verified(t, hr, rot.JSON200.Secret)
		verified(t, hr, created.Secret)
	})

	t.Run("subscriptions filter events; inactive endpoints get nothing", func(t *testing.T) {
		only := newReceiver(t, nil)
		h := createHook(t, admin, only.URL, "user.created")
		_, err := admin.CreateTaskWithResponse(ctx, nil, client.TaskCreate{Title: "not for the user hook"})
		require.NoError(t, err)
		env.CreateUser(t, "Filtered", false)
		hr := only.next(t)
		require.Equal(t, "user.created", verified(t, hr, h.Secret)["type"])

		off := false
		up, err := admin.UpdateWebhookWithResponse(ctx, h.Id, nil, client.WebhookUpdate{IsActive: &off})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		env.CreateUser(t, "Unheard", false)
		// The wildcard endpoint hears this creation; by then the inactive one would have too.
		for {
			hr := rcv.next(t)
			if ev := verified(t, hr, created.Secret); ev["type"] == "user.created" && strings.Contains(string(hr.Body), "unheard") {
				break
			}
		}
		require.Equal(t, 1, only.count())
	})

	t.Run("delete", func(t *testing.T) {
		res, err := admin.DeleteWebhookWithResponse(ctx, created.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.StatusCode())
		g, err := admin.GetWebhookWithResponse(ctx, created.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, g.StatusCode())
	})
}

func TestWebhookBadInput(t *testing.T) {
	t.Parallel()
	// Private networks refused, as in production.
	env := apitest.Start(t)
	admin := env.AsAdmin(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		url    string
		events []client.WebhookSubscription
		field  string
	}{
		{"non-http scheme", "ftp://hooks.example.com/x", []client.WebhookSubscription{"*"}, "url"},
		{"javascript scheme", "javascript:alert(1)", []client.WebhookSubscription{"*"}, "url"},
		{"relative URL", "/hooks", []client.WebhookSubscription{"*"}, "url"},
		{"credentials in the URL", "https://user:secret@hooks.example.com/x", []client.WebhookSubscription{"*"}, "url"},
		{"loopback", "http://127.0.0.1:8080/x", []client.WebhookSubscription{"*"}, "url"},
		{"loopback IPv6", "http://[::1]/x", []client.WebhookSubscription{"*"}, "url"},
		{"private", "http://10.1.2.3/x", []client.WebhookSubscription{"*"}, "url"},
		{"link-local metadata", "http://169.254.169.254/latest", []client.WebhookSubscription{"*"}, "url"},
		{"CGNAT", "http://100.64.0.1/x", []client.WebhookSubscription{"*"}, "url"},
		{"unspecified", "http://0.0.0.0/x", []client.WebhookSubscription{"*"}, "url"},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/x", []client.WebhookSubscription{"*"}, "url"},
		{"unknown event type", "https://hooks.example.com/x", []client.WebhookSubscription{"task.exploded"}, "events.0"},
		{"empty event list", "https://hooks.example.com/x", []client.WebhookSubscription{}, "events"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := admin.CreateWebhookWithResponse(ctx, client.WebhookCreate{Url: c.url, Events: c.events})
			require.NoError(t, err)
			p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity)
			require.True(t, apitest.HasFieldError(p, "body", c.field), "field %s in %v", c.field, apitest.FieldErrors(p))
		})
	}
	t.Run("a non-admin is refused", func(t *testing.T) {
		u := env.CreateUser(t, "Plain", false)
		res, err := u.Client.CreateWebhookWithResponse(ctx, client.WebhookCreate{Url: "https://hooks.example.com/x", Events: []client.WebhookSubscription{"*"}})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusForbidden)
	})
	t.Run("a public address is accepted", func(t *testing.T) {
		createHook(t, admin, "https://203.0.113.10/x", "task.created")
	})
}

func TestWebhookFailingReceivers(t *testing.T) {
	t.Parallel()
	env := hookEnv(t, apitest.WithEnv("WEBHOOK_TIMEOUT", "300ms"))
	admin := env.AsAdmin(t)
	ctx := context.Background()

	send := func(t *testing.T, rcv *receiver) (client.WebhookCreated, client.WebhookDelivery) {
		t.Helper()
		h := createHook(t, admin, rcv.URL, "webhook.test")
		res, err := admin.SendWebhookTestWithResponse(ctx, h.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode())
		return h, waitDelivery(t, admin, h.Id)
	}

	t.Run("500 forever: retried on the schedule with the same webhook-id, then failed; redelivery starts over", func(t *testing.T) {
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
		h, d := send(t, rcv)
		require.Equal(t, client.WebhookDeliveryStatusFailed, d.Status)
		require.Equal(t, int32(3), d.Attempts, "the first attempt and two retries")
		require.Equal(t, int32(500), d.LastStatusCode.MustGet())
		require.Contains(t, d.LastResponseBody.MustGet(), "boom")
		require.Equal(t, 3, rcv.count())
		for _, hr := range rcv.all {
			require.Equal(t, d.EventId, hr.Header.Get("webhook-id"))
		}
		re, err := admin.RedeliverWebhookDeliveryWithResponse(ctx, h.Id, d.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, re.StatusCode(), "%s", re.Body)
		require.Eventually(t, func() bool { return rcv.count() == 6 }, 30*time.Second, 20*time.Millisecond)
		require.Equal(t, client.WebhookDeliveryStatusFailed, waitDelivery(t, admin, h.Id, client.WebhookDeliveryStatusFailed).Status)
	})

	t.Run("a receiver that hangs times out and is retried", func(t *testing.T) {
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		_, d := send(t, rcv)
		require.Equal(t, client.WebhookDeliveryStatusFailed, d.Status)
		require.Equal(t, int32(3), d.Attempts)
		require.Equal(t, "no answer within the timeout", d.LastError.MustGet())
		require.True(t, d.LastStatusCode.IsNull())
	})

	t.Run("a redirect is not followed", func(t *testing.T) {
		target := newReceiver(t, nil)
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusFound)
		})
		_, d := send(t, rcv)
		require.Equal(t, client.WebhookDeliveryStatusFailed, d.Status)
		require.Equal(t, int32(302), d.LastStatusCode.MustGet())
		require.Contains(t, d.LastError.MustGet(), "redirects are not followed")
		require.Zero(t, target.count())
	})

	t.Run("a 10 MB answer is read up to 4 KiB", func(t *testing.T) {
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			chunk := []byte(strings.Repeat("x", 1<<20))
			for range 10 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		_, d := send(t, rcv)
		require.Equal(t, client.WebhookDeliveryStatusSucceeded, d.Status)
		require.Len(t, d.LastResponseBody.MustGet(), 4096)
	})

	t.Run("410 Gone deactivates the endpoint at once", func(t *testing.T) {
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
		h, d := send(t, rcv)
		require.Equal(t, client.WebhookDeliveryStatusFailed, d.Status)
		require.Equal(t, int32(1), d.Attempts)
		g, err := admin.GetWebhookWithResponse(ctx, h.Id)
		require.NoError(t, err)
		require.False(t, g.JSON200.IsActive)
		require.Contains(t, g.JSON200.DisabledReason.MustGet(), "410")
		require.Equal(t, 1, rcv.count())
	})

	t.Run("Retry-After is honoured", func(t *testing.T) {
		var n atomic.Int32
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			if n.Add(1) == 1 {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		h := createHook(t, admin, rcv.URL, "webhook.test")
		_, err := admin.SendWebhookTestWithResponse(ctx, h.Id)
		require.NoError(t, err)
		d := waitDelivery(t, admin, h.Id, client.WebhookDeliveryStatusRetrying)
		// The schedule says 50 ms; the receiver asked for an hour.
		require.Equal(t, int32(503), d.LastStatusCode.MustGet())
		require.WithinDuration(t, time.Now().Add(time.Hour), d.NextAttemptAt.MustGet(), 5*time.Minute)
		require.Equal(t, 1, rcv.count())
	})
}

func TestWebhookFailingEndpointDoesNotHoldHealthyOnes(t *testing.T) {
	t.Parallel()
	env := hookEnv(t,
		apitest.WithEnv("WEBHOOK_TIMEOUT", "3s"),
		apitest.WithEnv("WEBHOOK_WORKERS", "4"),
		apitest.WithEnv("WEBHOOK_ENDPOINT_CONCURRENCY", "1"),
	)
	admin := env.AsAdmin(t)
	ctx := context.Background()
	var inFlight, maxInFlight atomic.Int32
	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	healthy := newReceiver(t, nil)
	hs := createHook(t, admin, slow.URL, "webhook.test")
	hh := createHook(t, admin, healthy.URL, "webhook.test")
	for range 8 {
		_, err := admin.SendWebhookTestWithResponse(ctx, hs.Id)
		require.NoError(t, err)
	}
	slow.next(t) // the slow endpoint holds one attempt now
	res, err := admin.SendWebhookTestWithResponse(ctx, hh.Id)
	require.NoError(t, err)
	hr := healthy.next(t)
	require.Equal(t, res.JSON202.EventId, hr.Header.Get("webhook-id"))
	// The healthy endpoint was served while the slow one still had most of its
	// deliveries waiting: the cap kept them from taking every worker.
	pending, err := admin.ListWebhookDeliveriesWithResponse(ctx, hs.Id, &client.ListWebhookDeliveriesParams{Status: apitest.Ptr(client.WebhookDeliveryStatusPending)})
	require.NoError(t, err)
	require.GreaterOrEqual(t, pending.JSON200.Total, int64(5))
	require.Equal(t, int32(1), maxInFlight.Load(), "one attempt at a time to the capped endpoint")
}

func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	env := hookEnv(t)
	admin := env.AsAdmin(t)
	release := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { <-release })
	h := createHook(t, admin, rcv.URL, "webhook.test")
	_, err := admin.SendWebhookTestWithResponse(context.Background(), h.Id)
	require.NoError(t, err)
	rcv.next(t) // the attempt is in flight: the delivery is still pending
	scrape := func() string {
		res := env.Do(t, http.MethodGet, "/metrics", "", nil)
		require.Equal(t, http.StatusOK, res.Status)
		return string(res.Body)
	}
	require.Contains(t, scrape(), fmt.Sprintf(`webhook_deliveries_pending{webhook_id="%d"} 1`, h.Id))
	close(release)
	require.Equal(t, client.WebhookDeliveryStatusSucceeded, waitDelivery(t, admin, h.Id).Status)
	text := scrape()
	require.Contains(t, text, `webhook_delivery_attempts_total{outcome="succeeded"} 1`)
	require.Contains(t, text, "webhook_delivery_duration_seconds_count 1")
	require.NotContains(t, text, fmt.Sprintf(`webhook_deliveries_pending{webhook_id="%d"}`, h.Id))
}
