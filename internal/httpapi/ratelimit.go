package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/user"
)

// RateLimits configures request rate limiting; a zero quota turns a policy off.
type RateLimits struct {
	Limiter cache.Limiter
	// PerMinute is the general quota of every /api/v1 operation, per user (per client IP
	// when anonymous).
	PerMinute int
	// LoginPerMinute limits password guessing: login attempts per client IP, and failed
	// password checks (logins and current_password alike) per account.
	LoginPerMinute int
}

// loginOperation is the operation whose attempts the login policies count.
const loginOperation = "POST /api/v1/auth/token"

// passwordCheckingOps are the operations that check a password (the login, and updates
// of the caller's own user that carry current_password): a wrong one spends the
// account's login-account budget.
var passwordCheckingOps = map[string]bool{
	loginOperation:                 true,
	"PATCH /api/v1/users/me":       true,
	"PATCH /api/v1/users/:user_id": true,
	"PUT /api/v1/users/:user_id":   true,
}

// check applies the named policies to their keys, in order, and sets the IETF
// RateLimit-Policy and RateLimit headers (draft-ietf-httpapi-ratelimit-headers) for
// each. It answers 429 with Retry-After when any policy is exhausted.
func (s *Server) checkLimits(c echo.Context, checks ...limitCheck) error {
	h := c.Response().Header()
	var retry time.Duration
	var refused string
	for _, chk := range checks {
		d, err := s.limits.Limiter.Allow(c.Request().Context(), chk.key, chk.limit)
		if err != nil {
			// The limiters degrade rather than fail; should one fail anyway, serve.
			s.log.WarnContext(c.Request().Context(), "rate limiter failed; request let through", "policy", chk.limit.Name, "error", err)
			continue
		}
		name := strconv.Quote(chk.limit.Name)
		h.Add("RateLimit-Policy", name+";q="+strconv.Itoa(chk.limit.Quota)+";w="+strconv.Itoa(int(chk.limit.Window/time.Second)))
		h.Add("RateLimit", name+";r="+strconv.Itoa(d.Remaining)+";t="+strconv.Itoa(ceilSeconds(d.Reset)))
		if !d.Allowed && d.RetryAfter > retry {
			retry, refused = d.RetryAfter, chk.limit.Name
		}
	}
	if refused == "" {
		return nil
	}
	s.metrics.RateLimited(refused)
	return &apperr.Error{
		Kind:       apperr.RateLimited,
		Message:    "rate limit exceeded (policy " + refused + "); retry in " + strconv.Itoa(ceilSeconds(retry)) + " seconds",
		RetryAfter: retry,
	}
}

type limitCheck struct {
	key   string
	limit cache.Limit
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// rateLimit applies the general policy to every operation whose contract declares a 429,
// keyed by user (authentication ran first) or else by client IP, and the per-IP login
// policy to logins.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.limits.Limiter == nil {
			return next(c)
		}
		op, ok := s.operationOf(c)
		if !ok || !op.rateLimited {
			return next(c)
		}
		var checks []limitCheck
		if s.limits.PerMinute > 0 {
			if p, ok := auth.PrincipalFrom(c.Request().Context()); ok {
				checks = append(checks, limitCheck{"user:" + strconv.FormatInt(p.UserID, 10),
					cache.Limit{Name: "user", Quota: s.limits.PerMinute, Window: time.Minute}})
			} else {
				checks = append(checks, limitCheck{"ip:" + clientKey(c),
					cache.Limit{Name: "ip", Quota: s.limits.PerMinute, Window: time.Minute}})
			}
		}
		if s.limits.LoginPerMinute > 0 && routeKey(c.Request().Method, c.Path()) == loginOperation {
			checks = append(checks, limitCheck{"login-ip:" + clientKey(c),
				cache.Limit{Name: "login-ip", Quota: s.limits.LoginPerMinute, Window: time.Minute}})
		}
		if err := s.checkLimits(c, checks...); err != nil {
			return err
		}
		return next(c)
	}
}

// clientKey names the client a per-client limit counts: its IPv4 address, or the /64
// of its IPv6 address (one subscriber's network, inside which an address costs nothing
// to change). IPv4-mapped IPv6 addresses count as the IPv4 address.
func clientKey(c echo.Context) string {
	ip := c.RealIP()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// passwordGuard limits password guessing per account, on logins and on current_password
// checks alike (one budget of LoginPerMinute per account and minute). The budget is
// spent by failures, so that failures from one client cannot lock the owner out of the
// account from another: a client that failed on an account within the last minute or
// two is suspect, and each of its further attempts spends the budget before the
// password is checked (429 once it is spent, even with the right password); any other
// client's attempt is checked and spends the budget only when it fails. Guessing from
// many addresses is bounded by the per-client login policy. It runs after validation,
// so the form or body is sound.
func (s *Server) passwordGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.limits.Limiter == nil || s.limits.LoginPerMinute <= 0 {
			return next(c)
		}
		account, failed := s.passwordAttempt(c)
		if account == "" {
			return next(c)
		}
		ctx := c.Request().Context()
		budget := limitCheck{"login-account:" + account,
			cache.Limit{Name: "login-account", Quota: s.limits.LoginPerMinute, Window: time.Minute}}
		suspect := "login-suspect:" + account + ":" + clientKey(c)
		spent := s.isSuspect(ctx, suspect)
		if spent {
			if err := s.checkLimits(c, budget); err != nil {
				return err
			}
		}
		err := next(c)
		if err != nil && failed(err) {
			if !spent {
				if _, lerr := s.limits.Limiter.Allow(ctx, budget.key, budget.limit); lerr != nil {
					s.log.WarnContext(ctx, "rate limiter failed; failed password not counted", "error", lerr)
				}
			}
			s.markSuspect(ctx, suspect)
		}
		return err
	}
}

// passwordAttempt tells whose password the request has checked (a hash of the account's
// email, letter case ignored, so the shared store holds no addresses; "" for none) and
// which of the handler's errors means the password was wrong.
func (s *Server) passwordAttempt(c echo.Context) (account string, failed func(error) bool) {
	req := c.Request()
	key := routeKey(req.Method, c.Path())
	switch {
	case !passwordCheckingOps[key]:
		return "", nil
	case key == loginOperation:
		return accountKey(c.FormValue("username")), func(err error) bool { return apperr.Is(err, apperr.Unauthorized) }
	default: // an update of the caller's own user that may carry current_password
		p, ok := auth.PrincipalFrom(req.Context())
		if !ok || (c.Param("user_id") != "" && c.Param("user_id") != strconv.FormatInt(p.UserID, 10)) {
			return "", nil
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return "", nil // the handler meets the same error
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var b struct {
			CurrentPassword *string `json:"current_password"`
		}
		if json.Unmarshal(body, &b) != nil || b.CurrentPassword == nil {
			return "", nil
		}
		return accountKey(p.Email), func(err error) bool { return errors.Is(err, user.ErrWrongCurrentPassword) }
	}
}

// accountKey is the limiter's name for the account with email ("" for none).
func accountKey(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(email))
	return hex.EncodeToString(sum[:16])
}

// The suspect marks live in the limiter, as keys whose theoretical arrival time lies in
// the future: markSuspect spends half of a two-minute quota of two (a mark lasts one to
// two minutes from the last failure), and isSuspect asks for a one-millisecond quota of
// one, which is refused exactly while a mark lasts (and otherwise leaves a mark of one
// millisecond, which markSuspect's quota absorbs).
var (
	suspectMark  = cache.Limit{Name: "login-suspect", Quota: 2, Window: 2 * time.Minute}
	suspectProbe = cache.Limit{Name: "login-suspect", Quota: 1, Window: time.Millisecond}
)

func (s *Server) markSuspect(ctx context.Context, key string) {
	if _, err := s.limits.Limiter.Allow(ctx, key, suspectMark); err != nil {
		s.log.WarnContext(ctx, "rate limiter failed; failed password not marked", "error", err)
	}
}

func (s *Server) isSuspect(ctx context.Context, key string) bool {
	d, err := s.limits.Limiter.Allow(ctx, key, suspectProbe)
	// Should the limiter fail, the account's budget applies to everyone.
	return err != nil || !d.Allowed
}
