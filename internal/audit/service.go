package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
)

// queries are the sqlc queries the service calls.
type queries interface {
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
	AuditEventList(ctx context.Context, arg db.AuditEventListParams) ([]db.AuditEvent, error)
}

// store is what the service needs of the database: its queries, and transactions.
type store interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// Service reads the audit log and applies its retention.
type Service struct {
	store  store
	secret []byte
	now    func() time.Time
}

// NewService builds a Service over s; secret signs list cursors (SECRET_KEY).
func NewService(s store, secret []byte) *Service {
	return &Service{store: s, secret: secret, now: time.Now}
}

// Filter selects events; nil fields match everything. Until is exclusive.
type Filter struct {
	ActorUserID  *int64
	Action       *string
	ResourceType *string
	ResourceID   *int64
	Since        *time.Time
	Until        *time.Time
}

// Page is one page of events, newest first; NextCursor is empty after the last one.
type Page struct {
	Items      []Event
	NextCursor string
}

// MaxLimit is the largest page List returns.
const MaxLimit = 500

// List returns up to limit events matching f, newest first, after cursor (empty: from
// the newest). The page ends where the previous one did even while events are appended
// (keyset on id). Malformed for a malformed or tampered cursor.
func (s *Service) List(ctx context.Context, f Filter, limit int, cursor string) (Page, error) {
	before, err := s.decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	limit = min(max(limit, 1), MaxLimit)
	rows, err := s.store.AuditEventList(ctx, listParams(f, before, int32(limit+1)))
	if err != nil {
		return Page{}, fmt.Errorf("audit: list: %w", err)
	}
	var pg Page
	if len(rows) > limit {
		rows = rows[:limit]
		pg.NextCursor = s.encodeCursor(rows[limit-1].ID)
	}
	pg.Items = make([]Event, len(rows))
	for i, r := range rows {
		pg.Items[i] = eventFromRow(r)
	}
	return pg, nil
}

// streamChunk is how many events Stream holds in memory at once.
const streamChunk = 500

// Stream calls fn with every event matching f, newest first, reading them in bounded
// chunks so that memory stays flat however many there are. It stops at fn's first error
// and returns it; other errors are the database's.
func (s *Service) Stream(ctx context.Context, f Filter, fn func(Event) error) error {
	var before *int64
	for {
		rows, err := s.store.AuditEventList(ctx, listParams(f, before, streamChunk))
		if err != nil {
			return fmt.Errorf("audit: stream: %w", err)
		}
		for _, r := range rows {
			if err := fn(eventFromRow(r)); err != nil {
				return err
			}
		}
		if len(rows) < streamChunk {
			return nil
		}
		last := rows[len(rows)-1].ID
		before = &last
	}
}

func listParams(f Filter, before *int64, n int32) db.AuditEventListParams {
	return db.AuditEventListParams{
		BeforeID: before, ActorUserID: f.ActorUserID, Action: f.Action, ResourceType: f.ResourceType,
		ResourceID: f.ResourceID, Since: f.Since, Until: f.Until, MaxRows: n,
	}
}

// cursorMACBytes is how much of the HMAC a cursor carries.
const cursorMACBytes = 16

// encodeCursor makes the opaque cursor that continues after event id: the id and an
// HMAC of it under the secret, base64url.
func (s *Service) encodeCursor(id int64) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(id))
	return base64.RawURLEncoding.EncodeToString(append(b, s.mac(b)...))
}

func (s *Service) mac(b []byte) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("audit-cursor:"))
	h.Write(b)
	return h.Sum(nil)[:cursorMACBytes]
}

var errCursor = apperr.E(apperr.Malformed,
	"the cursor is not one this server issued; use next_cursor from a previous page")

func (s *Service) decodeCursor(c string) (*int64, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 8+cursorMACBytes || !hmac.Equal(b[8:], s.mac(b[:8])) {
		return nil, errCursor
	}
	id := int64(binary.BigEndian.Uint64(b[:8]))
	return &id, nil
}
