package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
)

// RateLimits configures request rate limiting; a zero quota turns a policy off.
type RateLimits struct {
	Limiter cache.Limiter
	// PerMinute is the general quota of every /api/v1 operation, per user (per client IP
	// when anonymous).
	PerMinute int
	// LoginPerMinute limits logins, separately per client IP and per account, against
	// password guessing.
	LoginPerMinute int
}

// loginOperation is the operation whose attempts the login policies count.
const loginOperation = "POST /api/v1/auth/token"

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
		key := routeKey(c.Request().Method, c.Path())
		op, ok := s.ops[key]
		if !ok || !op.rateLimited {
			return next(c)
		}
		var checks []limitCheck
		if s.limits.PerMinute > 0 {
			if p, ok := auth.PrincipalFrom(c.Request().Context()); ok {
				checks = append(checks, limitCheck{"user:" + strconv.FormatInt(p.UserID, 10),
					cache.Limit{Name: "user", Quota: s.limits.PerMinute, Window: time.Minute}})
			} else {
				checks = append(checks, limitCheck{"ip:" + c.RealIP(),
					cache.Limit{Name: "ip", Quota: s.limits.PerMinute, Window: time.Minute}})
			}
		}
		if key == loginOperation && s.limits.LoginPerMinute > 0 {
			checks = append(checks, limitCheck{"login-ip:" + c.RealIP(),
				cache.Limit{Name: "login-ip", Quota: s.limits.LoginPerMinute, Window: time.Minute}})
		}
		if err := s.checkLimits(c, checks...); err != nil {
			return err
		}
		return next(c)
	}
}

// loginAccountLimit counts login attempts per account (the submitted email, letter case
// ignored), whichever IP they come from. It runs after validation, so the form is sound.
func (s *Server) loginAccountLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.limits.Limiter == nil || s.limits.LoginPerMinute <= 0 ||
			routeKey(c.Request().Method, c.Path()) != loginOperation {
			return next(c)
		}
		email := strings.ToLower(strings.TrimSpace(c.FormValue("username")))
		if email == "" {
			return next(c)
		}
		// The email is hashed so that the shared store holds no addresses.
		sum := sha256.Sum256([]byte(email))
		if err := s.checkLimits(c, limitCheck{"login-account:" + hex.EncodeToString(sum[:16]),
			cache.Limit{Name: "login-account", Quota: s.limits.LoginPerMinute, Window: time.Minute}}); err != nil {
			return err
		}
		return next(c)
	}
}
