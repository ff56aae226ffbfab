package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
)

// DefaultRetrySchedule is the delay before each retry after a failed attempt: the first
// attempt and nine retries over about three days.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// MaxRetryAfter bounds how long a receiver's Retry-After may put the next attempt off.
const MaxRetryAfter = 24 * time.Hour

// MaxKeptResponse is how much of a receiver's answer the delivery log keeps.
const MaxKeptResponse = 4 << 10

// Metrics receives the outcome and duration of each attempt (a *metrics.Webhooks).
type Metrics interface {
	WebhookAttempt(outcome string, d time.Duration)
}

// DelivererOptions configure a Deliverer.
type DelivererOptions struct {
	Guard *Guard
	// Timeout bounds one attempt, from connecting to the end of the answer's headers.
	Timeout time.Duration
	// Schedule is the delay before each retry; its length is the number of retries.
	Schedule []time.Duration
	// Jitter spreads each delay by up to ± this fraction of it (0.1: ±10 %).
	Jitter float64
	// EndpointConcurrency caps this process's attempts in flight to one endpoint; beyond,
	// an attempt waits (Attempt asks for a short snooze) and leaves the worker to others.
	EndpointConcurrency int
	// UserAgent is sent with every attempt.
	UserAgent string
	// Busy reports whether the process's foreground work (the API) keeps its CPUs busy;
	// nil: never. While it does, attempts start at most BusyRate per second.
	Busy     func() bool
	BusyRate float64
	Metrics  Metrics
	Logger   *slog.Logger
}

// Deliverer makes delivery attempts.
type Deliverer struct {
	store    queries
	client   *http.Client
	opts     DelivererOptions
	mu       sync.Mutex
	inFlight map[int64]int
	now      func() time.Time
	log      *recorder
	pacer    *rate.Limiter // nil: never paced
}

// NewDeliverer builds a Deliverer over the store's queries.
func NewDeliverer(s queries, opts DelivererOptions) *Deliverer {
	if opts.Guard == nil {
		opts.Guard = &Guard{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Schedule == nil {
		opts.Schedule = DefaultRetrySchedule
	}
	if opts.EndpointConcurrency <= 0 {
		opts.EndpointConcurrency = 10
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "EnterpriseAutomation-Webhooks"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Guard.DialTimeout == 0 {
		opts.Guard.DialTimeout = opts.Timeout
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial on our behalf, past the guard
		DialContext:           opts.Guard.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   opts.EndpointConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// Redirects are not followed: a 3xx is an answer like any other non-2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	d := &Deliverer{store: s, client: client, opts: opts, inFlight: map[int64]int{}, now: time.Now, log: &recorder{store: s}}
	if opts.Busy != nil && opts.BusyRate > 0 {
		d.pacer = rate.NewLimiter(rate.Limit(opts.BusyRate), max(1, int(opts.BusyRate/20)))
	}
	return d
}

// Result is what an attempt asks of its job.
type Result struct {
	// Retry is the delay until the next attempt; 0 when the delivery is over.
	Retry time.Duration
	// Busy says the endpoint had as many attempts in flight as allowed: nothing was
	// sent, try again after Retry.
	Busy bool
}

// Attempt makes one attempt of delivery id and records its outcome. A delivery that is
// gone (its endpoint was deleted) or over is left alone. Its errors are the
// database's.
func (d *Deliverer) Attempt(ctx context.Context, id int64) (Result, error) {
	r, err := d.store.WebhookDeliveryForAttempt(ctx, id)
	if apperr.Is(err, apperr.NotFound) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("webhook: attempt %d: %w", id, err)
	}
	if r.Status == string(StatusSucceeded) || r.Status == string(StatusFailed) {
		return Result{}, nil
	}
	if !r.IsActive {
		msg := "endpoint is inactive"
		return Result{}, d.record(ctx, attemptOutcome{ID: id, Status: string(StatusFailed), LastError: &msg})
	}
	if !d.acquire(r.EndpointID) {
		return Result{Busy: true, Retry: d.jitter(250 * time.Millisecond)}, nil
	}
	out := d.send(ctx, r)
	d.release(r.EndpointID)

	rec := attemptOutcome{ID: id, LastError: out.err, LastResponseBody: out.body}
	if out.status != 0 {
		code := int32(out.status)
		rec.LastStatusCode = &code
	}
	var res Result
	outcome := "succeeded"
	switch {
	case out.status >= 200 && out.status < 300:
		rec.Status = string(StatusSucceeded)
	case out.status == http.StatusGone:
		rec.Status, outcome = string(StatusFailed), "gone"
		reason := "the endpoint answered 410 Gone"
		if err := d.store.WebhookDisable(ctx, db.WebhookDisableParams{ID: r.EndpointID, Reason: &reason}); err != nil {
			return Result{}, fmt.Errorf("webhook: disable %d: %w", r.EndpointID, err)
		}
		d.opts.Logger.WarnContext(ctx, "webhook endpoint deactivated: it answered 410 Gone", "webhook_id", r.EndpointID)
	case int(r.Attempts) >= len(d.opts.Schedule):
		rec.Status, outcome = string(StatusFailed), "failed"
	default:
		delay := max(d.jitter(d.opts.Schedule[r.Attempts]), min(out.retryAfter, MaxRetryAfter))
		next := d.now().Add(delay).UTC()
		rec.Status, rec.NextAttemptAt, outcome = string(StatusRetrying), &next, "retrying"
		res.Retry = delay
	}
	if d.opts.Metrics != nil {
		d.opts.Metrics.WebhookAttempt(outcome, out.took)
	}
	return res, d.record(ctx, rec)
}

// record stores an attempt's outcome and returns once it is committed (so that a job
// never completes before its delivery's log says what happened).
func (d *Deliverer) record(ctx context.Context, o attemptOutcome) error {
	if err := d.log.record(ctx, o); err != nil {
		return fmt.Errorf("webhook: record attempt of %d: %w", o.ID, err)
	}
	return nil
}

// Pace waits, while the foreground is busy, for the attempt's turn at BusyRate: the
// deliveries yield the CPU to requests and catch up when the load drops. Its error is
// ctx's.
func (d *Deliverer) Pace(ctx context.Context) error {
	if d.pacer == nil {
		return nil
	}
	for d.opts.Busy() {
		// A turn further away than paceStep is not kept: the load may drop meanwhile,
		// and then the attempt goes at once.
		r := d.pacer.Reserve()
		wait := r.Delay()
		if wait == 0 {
			return nil
		}
		kept := wait <= paceStep
		if !kept {
			r.Cancel()
			wait = paceStep
		}
		select {
		case <-ctx.Done():
			if kept {
				r.Cancel()
			}
			return ctx.Err()
		case <-time.After(wait):
		}
		if kept {
			return nil
		}
	}
	return nil
}

// paceStep is how often an attempt waiting for its turn checks whether the API is
// still busy.
const paceStep = 50 * time.Millisecond

func (d *Deliverer) acquire(endpointID int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[endpointID] >= d.opts.EndpointConcurrency {
		return false
	}
	d.inFlight[endpointID]++
	return true
}

func (d *Deliverer) release(endpointID int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[endpointID]--; d.inFlight[endpointID] <= 0 {
		delete(d.inFlight, endpointID)
	}
}

// jitter spreads a delay by up to ± the configured fraction.
func (d *Deliverer) jitter(delay time.Duration) time.Duration {
	if d.opts.Jitter <= 0 {
		return delay
	}
	f := 1 + d.opts.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(delay) * f)
}

// outcome is what one HTTP exchange gave.
type outcome struct {
	status     int
	err        *string
	body       *string
	retryAfter time.Duration
	took       time.Duration
}

func (d *Deliverer) send(ctx context.Context, r db.WebhookDeliveryForAttemptRow) (out outcome) {
	fail := func(msg string) outcome { out.err = &msg; return out }
	at := d.now()
	secrets := []string{r.Secret}
	if r.PreviousSecret != nil && r.PreviousSecretExpiresAt != nil && at.Before(*r.PreviousSecretExpiresAt) {
		secrets = append(secrets, *r.PreviousSecret)
	}
	sig, err := Sign(r.MsgID, at, []byte(r.Body), secrets...)
	if err != nil {
		return fail("signing failed")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Url, strings.NewReader(r.Body))
	if err != nil {
		return fail("invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opts.UserAgent)
	SetHeaders(req.Header, r.MsgID, at, sig)
	start := time.Now()
	res, err := d.client.Do(req)
	defer func() { out.took = time.Since(start) }()
	if err != nil {
		return fail(describe(err))
	}
	defer res.Body.Close()
	out.status = res.StatusCode
	kept, err := io.ReadAll(io.LimitReader(res.Body, MaxKeptResponse))
	if len(kept) > 0 {
		s := strings.ToValidUTF8(string(kept), string(utf8.RuneError))
		out.body = &s
	}
	if err != nil {
		msg := "reading the answer: " + describe(err)
		out.err = &msg
	}
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		msg := fmt.Sprintf("the endpoint answered %d", res.StatusCode)
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			msg += " (redirects are not followed)"
		}
		out.err = &msg
		out.retryAfter = retryAfter(res.Header.Get("Retry-After"), at)
	}
	return out
}

// describe turns a transport error into a line for the delivery log, without the
// request's URL (the endpoint's owner sees it, and it may carry a token in its path).
func describe(err error) string {
	switch {
	case errors.Is(err, ErrRefusedAddress):
		return ErrRefusedAddress.Error()
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no answer within the timeout"
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// retryAfter reads a Retry-After header: seconds or an HTTP date; 0 when absent or bad.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Depth counts the unfinished deliveries of each endpoint (for metrics).
func (d *Deliverer) Depth(ctx context.Context) (map[int64]int64, error) {
	rows, err := d.store.WebhookDeliveryDepth(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.EndpointID] = r.Deliveries
	}
	return out, nil
}
