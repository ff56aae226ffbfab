// Package idempotency makes POST requests safe to retry, after the IETF httpapi
// Idempotency-Key draft and Stripe's API: the first response to a key is stored for a
// day and replayed for retries with the same request; a different request with the same
// key is rejected, and so is a retry while the first request is still running.
package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
)

// Defaults for a Service.
const (
	DefaultTTL = 24 * time.Hour
	// DefaultStaleAfter is how long a first request may run before its key is considered
	// abandoned (the process died) and may be taken over by a retry.
	DefaultStaleAfter = 2 * time.Minute
)

// Response is a stored first response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// queries is what the service asks of the database: the idempotency-key queries.
type queries interface {
	IdempotencyKeyAcquire(ctx context.Context, arg db.IdempotencyKeyAcquireParams) (int64, error)
	IdempotencyKeyGet(ctx context.Context, arg db.IdempotencyKeyGetParams) (db.IdempotencyKey, error)
	IdempotencyKeyComplete(ctx context.Context, arg db.IdempotencyKeyCompleteParams) error
	IdempotencyKeyRelease(ctx context.Context, arg db.IdempotencyKeyReleaseParams) error
	IdempotencyKeyDeleteExpired(ctx context.Context) (int64, error)
}

// Service stores keys and responses in PostgreSQL.
type Service struct {
	store      queries
	ttl        time.Duration
	staleAfter time.Duration
	now        func() time.Time
}

// NewService builds a Service with the default TTL and staleness bound.
func NewService(s queries) *Service {
	return &Service{store: s, ttl: DefaultTTL, staleAfter: DefaultStaleAfter, now: time.Now}
}

// Begin claims key for a request whose method, path and body hash to requestHash. It
// returns (nil, nil) when the caller now owns the key and must call Complete or Release;
// the stored Response when the key was already used for the same request; Invalid when
// it was used for a different request; Conflict while the first request is in flight.
func (s *Service) Begin(ctx context.Context, userID int64, key string, requestHash []byte) (*Response, error) {
	for range 3 {
		now := s.now()
		_, err := s.store.IdempotencyKeyAcquire(ctx, db.IdempotencyKeyAcquireParams{
			UserID: userID, Key: key, RequestHash: requestHash,
			ExpiresAt: now.Add(s.ttl), StaleBefore: now.Add(-s.staleAfter),
		})
		if err == nil {
			return nil, nil
		}
		if !apperr.Is(err, apperr.NotFound) {
			return nil, fmt.Errorf("idempotency: acquire: %w", err)
		}
		k, err := s.store.IdempotencyKeyGet(ctx, db.IdempotencyKeyGetParams{UserID: userID, Key: key})
		if apperr.Is(err, apperr.NotFound) {
			continue // released between our two statements: try to claim it again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: get: %w", err)
		}
		if !bytes.Equal(k.RequestHash, requestHash) {
			return nil, apperr.Validation(apperr.FieldError{Location: "header", Field: "Idempotency-Key",
				Message: "was already used with a different request; use a new key"})
		}
		if k.StatusCode == nil {
			return nil, apperr.E(apperr.Conflict, "a request with this Idempotency-Key is still being processed; retry later")
		}
		header := http.Header{}
		if len(k.ResponseHeaders) > 0 {
			if err := json.Unmarshal(k.ResponseHeaders, &header); err != nil {
				return nil, apperr.Wrap(apperr.Internal, err, "idempotency: stored headers")
			}
		}
		return &Response{Status: int(*k.StatusCode), Header: header, Body: k.ResponseBody}, nil
	}
	return nil, apperr.E(apperr.Conflict, "a request with this Idempotency-Key is still being processed; retry later")
}

// Complete stores the response to replay for key.
func (s *Service) Complete(ctx context.Context, userID int64, key string, r Response) error {
	header, err := json.Marshal(r.Header)
	if err != nil {
		return apperr.Wrap(apperr.Internal, err, "idempotency: encode headers")
	}
	status := int32(r.Status)
	err = s.store.IdempotencyKeyComplete(ctx, db.IdempotencyKeyCompleteParams{
		UserID: userID, Key: key, StatusCode: &status, ResponseHeaders: header, ResponseBody: r.Body,
	})
	if err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	return nil
}

// Release forgets key after a failure that should not be replayed, so it can be retried.
func (s *Service) Release(ctx context.Context, userID int64, key string) error {
	if err := s.store.IdempotencyKeyRelease(ctx, db.IdempotencyKeyReleaseParams{UserID: userID, Key: key}); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}

// Purge deletes expired keys and reports how many.
func (s *Service) Purge(ctx context.Context) (int64, error) {
	n, err := s.store.IdempotencyKeyDeleteExpired(ctx)
	if err != nil {
		return 0, fmt.Errorf("idempotency: purge: %w", err)
	}
	return n, nil
}
