// Package task implements the task use cases: visibility and authorization, the status
// transition table, and optimistic concurrency on every write.
package task

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/audit"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/cache"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/webhook"
)

// MaxMetadataBytes bounds a task's metadata once serialized as JSON.
const MaxMetadataBytes = 64 << 10

// queries are the sqlc queries the service calls.
type queries interface {
	TaskCreate(ctx context.Context, arg db.TaskCreateParams) (db.TaskCreateRow, error)
	TaskGetByID(ctx context.Context, id int64) (db.Task, error)
	TaskGetByIDForUpdate(ctx context.Context, id int64) (db.Task, error)
	TaskUpdate(ctx context.Context, arg db.TaskUpdateParams) (db.Task, error)
	TaskDelete(ctx context.Context, arg db.TaskDeleteParams) (int64, error)
	TaskList(ctx context.Context, arg db.TaskListParams) ([]db.Task, error)
	TaskCount(ctx context.Context, arg db.TaskCountParams) (int64, error)
	TaskCountUpTo(ctx context.Context, arg db.TaskCountUpToParams) (int64, error)
	TaskCountSample(ctx context.Context, arg db.TaskCountSampleParams) (int64, error)
	TaskPage(ctx context.Context, arg db.TaskPageParams) ([]db.TaskPageRow, error)
	TaskPageSkip(ctx context.Context, arg db.TaskPageSkipParams) ([]db.TaskPageSkipRow, error)
	UserGetByID(ctx context.Context, id int64) (db.User, error)
	AuditEventCreate(ctx context.Context, arg db.AuditEventCreateParams) error
}

// store is what the service needs of the database: its queries, and transactions whose
// Querier it uses as queries.
type store interface {
	queries
	InTx(ctx context.Context, fn func(q db.Querier) error) error
}

// Service implements the task use cases.
type Service struct {
	store      store
	now        func() time.Time
	cache      *cache.Entity[Task]
	exactTotal int64
	// changed, in a service bound to a caller's transaction (Within), collects the tasks
	// it changed, whose cached records are dropped once that transaction commits.
	changed *[]int64
	parent  *Service
	events  Events
}

// DefaultExactTotalLimit is how many matching tasks a list counts exactly; beyond, its
// total is estimated (see List).
const DefaultExactTotalLimit = 10_000

// NewService builds a Service over s (a *store.DB in production).
func NewService(s store) *Service {
	return &Service{store: s, now: time.Now, exactTotal: DefaultExactTotalLimit}
}

// WithExactTotalLimit sets how many matching tasks a list counts exactly (0: always).
func (s *Service) WithExactTotalLimit(n int) *Service {
	s.exactTotal = int64(n)
	return s
}

// WithCache makes Get read through the task record cache; every change through the
// service invalidates the task's record. Visibility is checked on every read, cached
// or not, so a cached record is never shown to someone who may not see it.
func (s *Service) WithCache(tasks *cache.Entity[Task]) *Service {
	s.cache = tasks
	return s
}

// CreateParams are the fields of a new task.
type CreateParams struct {
	Title       string
	Description string
	Priority    Priority // empty means medium
	AssigneeID  *int64
	DueAt       *time.Time
	Tags        []string
	Metadata    []byte // a JSON object; nil means {}
}

// Create adds a task created by actor. Invalid when the assignee is not an active user
// or the metadata is too large.
func (s *Service) Create(ctx context.Context, actor auth.Principal, p CreateParams) (Task, error) {
	if err := checkMetadata(p.Metadata); err != nil {
		return Task{}, err
	}
	if strings.TrimSpace(p.Title) == "" {
		return Task{}, errBlankTitle
	}
	if err := checkDue(p.DueAt); err != nil {
		return Task{}, err
	}
	if p.AssigneeID != nil {
		if err := s.checkAssignee(ctx, s.store, *p.AssigneeID); err != nil {
			return Task{}, err
		}
	}
	if p.Priority == "" {
		p.Priority = PriorityMedium
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if p.Metadata == nil {
		p.Metadata = []byte("{}")
	}
	params := db.TaskCreateParams{
		Title: strings.TrimSpace(p.Title), Description: p.Description, Priority: db.TaskPriority(p.Priority),
		AssigneeID: p.AssigneeID, CreatedBy: &actor.UserID, DueAt: utc(p.DueAt), Tags: p.Tags, Metadata: p.Metadata,
	}
	// The audit event is appended by the insert statement itself: no transaction or round
	// trip of its own on the hottest write.
	ev, ok, err := audit.Params(ctx, audit.Entry{Resource: "task"})
	if err != nil {
		return Task{}, err
	}
	if ok {
		params.AuditActorType, params.AuditActorUserID, params.AuditActorApiKeyID = &ev.ActorType, ev.ActorUserID, ev.ActorApiKeyID
		params.AuditActorAgentRunID, params.AuditAction, params.AuditRequestID, params.AuditIp = ev.ActorAgentRunID, &ev.Action, ev.RequestID, ev.Ip
	}
	// The webhook event too, with the task as stored (the dispatcher renders its body):
	// it exists if and only if the insert commits, with no transaction of its own.
	stored := s.events != nil && s.events.Wants(ctx, webhook.TaskCreated)
	if stored {
		id := webhook.NewMessageID()
		params.EventMsgID = &id
	}
	row, err := s.store.TaskCreate(ctx, params)
	t, err := fromRow(db.Task(row), err)
	if err != nil {
		return Task{}, fmt.Errorf("task: create: %w", assigneeGone(err))
	}
	if stored {
		s.events.Stored(webhook.TaskCreated)
	}
	return t, nil
}

// Get returns a task visible to actor; NotFound otherwise (so ids don't leak).
func (s *Service) Get(ctx context.Context, actor auth.Principal, id int64) (Task, error) {
	t, err := s.cache.Get(ctx, id, s.load)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return Task{}, fmt.Errorf("task: get: %w", err)
	}
	if err != nil || !Visible(actor, t) {
		return Task{}, apperr.E(apperr.NotFound, "task %d not found", id)
	}
	return t, nil
}

// load reads a task from the database (the cache's loader).
func (s *Service) load(ctx context.Context, id int64) (Task, error) {
	return fromRow(s.store.TaskGetByID(ctx, id))
}

// Sorts lists the accepted sort orders; the first is the default.
var Sorts = []string{"-created_at", "created_at", "updated_at", "-updated_at", "due_at", "-due_at", "priority", "-priority"}

// ListParams filter, sort and page a task list.
type ListParams struct {
	Page       page.Request
	Statuses   []Status
	Priority   *Priority
	AssigneeID *int64
	CreatedBy  *int64
	Tag        *string
	Q          *string
	DueBefore  *time.Time
	DueAfter   *time.Time
	Sort       string // one of Sorts; empty means the default
}

// List returns the page of tasks visible to actor that match p. Invalid for an unknown sort.
func (s *Service) List(ctx context.Context, actor auth.Principal, p ListParams) (page.Page[Task], error) {
	if p.Sort == "" {
		p.Sort = Sorts[0]
	}
	if !validSort(p.Sort) {
		return page.Page[Task]{}, apperr.Validation(apperr.FieldError{Location: "query", Field: "sort",
			Message: "must be one of: " + strings.Join(Sorts, ", ")})
	}
	f := db.TaskCountParams{
		Statuses: statusStrings(p.Statuses), Priority: dbPriority(p.Priority), AssigneeID: p.AssigneeID,
		CreatedBy: p.CreatedBy, Tag: p.Tag, DueBefore: p.DueBefore, DueAfter: p.DueAfter,
	}
	if !actor.IsAdmin {
		f.VisibleTo = &actor.UserID
	}
	if p.Q != nil {
		q := page.EscapeLike(*p.Q)
		f.Q = &q
	}
	filter := page.Fingerprint(fingerprintParts(f)...)
	cur, err := page.ParseCursor(p.Page, p.Sort, filter)
	if err != nil {
		return page.Page[Task]{}, err
	}
	pos := int64(p.Page.Skip)
	args := db.TaskPageParams{
		CountLimit: s.countLimit(),
		VisibleTo:  f.VisibleTo, Statuses: f.Statuses, Priority: f.Priority, AssigneeID: f.AssigneeID,
		CreatedBy: f.CreatedBy, Tag: f.Tag, Q: f.Q, DueBefore: f.DueBefore, DueAfter: f.DueAfter,
		Sort: p.Sort, SkipRows: p.Page.Skip, MaxRows: p.Page.Limit + 1,
	}
	if cur != nil {
		pos = cur.Pos
		if err := setAfter(&args, cur); err != nil {
			return page.Page[Task]{}, err
		}
	}
	// Count and page in one statement (its snapshot serves both); only a page past the
	// end needs a second statement for the total.
	res, err := s.page(ctx, args)
	var total int64
	var estimated bool
	if err == nil && len(res) > 0 {
		total, estimated = res[0].Counted, res[0].Counted >= args.CountLimit
		if estimated {
			total = max(total, res[0].Sampled*100)
		}
	} else if err == nil && pos > 0 {
		total, estimated, err = s.count(ctx, f)
	}
	if err != nil {
		return page.Page[Task]{}, fmt.Errorf("task: list: %w", err)
	}
	rows := make([]db.Task, len(res))
	for i, r := range res {
		rows[i] = r.Task
	}
	sort := p.Sort
	pg := page.NewKeyset(tasksFromRows(rows), total, p.Page, pos, func(last Task) page.Cursor {
		return cursorAfter(last, sort, filter)
	})
	pg.TotalIsEstimate = estimated
	return pg, nil
}

// page runs TaskPage, or TaskPageSkip for a page that skips tasks without a keyset
// position: it skips them in the order's index and reads only the page's rows.
func (s *Service) page(ctx context.Context, args db.TaskPageParams) ([]db.TaskPageRow, error) {
	if args.AfterID != nil || args.SkipRows == 0 {
		return s.store.TaskPage(ctx, args)
	}
	res, err := s.store.TaskPageSkip(ctx, db.TaskPageSkipParams{
		CountLimit: args.CountLimit,
		VisibleTo:  args.VisibleTo, Statuses: args.Statuses, Priority: args.Priority, AssigneeID: args.AssigneeID,
		CreatedBy: args.CreatedBy, Tag: args.Tag, Q: args.Q, DueBefore: args.DueBefore, DueAfter: args.DueAfter,
		Sort: args.Sort, SkipRows: args.SkipRows, MaxRows: args.MaxRows,
	})
	rows := make([]db.TaskPageRow, len(res))
	for i, r := range res {
		rows[i] = db.TaskPageRow(r)
	}
	return rows, err
}

// countLimit is TaskPage's count_limit: one more than the exact-total limit, so that
// reaching it tells the total is larger (no limit when every total is exact).
func (s *Service) countLimit() int64 {
	if s.exactTotal <= 0 {
		return math.MaxInt64
	}
	return s.exactTotal + 1
}

// count counts the matching tasks exactly up to the exact-total limit. Beyond it, counting
// row by row would cost more than the page itself (about 100 ms per million rows), so
// the total is estimated from a 1 % block sample of the table, and never below what was
// counted.
func (s *Service) count(ctx context.Context, f db.TaskCountParams) (total int64, estimated bool, err error) {
	if s.exactTotal <= 0 {
		total, err = s.store.TaskCount(ctx, f)
		return total, false, err
	}
	n, err := s.store.TaskCountUpTo(ctx, db.TaskCountUpToParams{
		VisibleTo: f.VisibleTo, Statuses: f.Statuses, Priority: f.Priority, AssigneeID: f.AssigneeID,
		CreatedBy: f.CreatedBy, Tag: f.Tag, Q: f.Q, DueBefore: f.DueBefore, DueAfter: f.DueAfter,
		MaxRows: s.exactTotal + 1,
	})
	if err != nil || n <= s.exactTotal {
		return n, false, err
	}
	sample, err := s.store.TaskCountSample(ctx, db.TaskCountSampleParams(f))
	if err != nil {
		return 0, false, err
	}
	return max(n, sample*100), true, nil
}

func validSort(s string) bool {
	for _, v := range Sorts {
		if v == s {
			return true
		}
	}
	return false
}

// Optional is a field of a partial update that can be left out, set, or set to null.
type Optional[T any] struct {
	Set   bool
	Value *T // nil with Set means null
}

// UpdateParams are the fields to change; nil (or an unset Optional) leaves a field as it is.
type UpdateParams struct {
	Title       *string
	Description *string
	Status      *Status
	Priority    *Priority
	AssigneeID  Optional[int64]
	DueAt       Optional[time.Time]
	Tags        *[]string
	Metadata    []byte // nil leaves it
}

// Update changes a task visible to actor. NotFound when invisible; Forbidden when a
// non-creator non-admin changes the assignee; Conflict for an illegal status transition;
// Invalid for a blank title, an inactive assignee or oversized metadata;
// PreconditionFailed when ifMatch does not match. The task is locked while it changes,
// so concurrent updates apply one after the other and none is lost.
func (s *Service) Update(ctx context.Context, actor auth.Principal, id int64, p UpdateParams, ifMatch etag.Condition) (Task, error) {
	if err := checkMetadata(p.Metadata); err != nil {
		return Task{}, err
	}
	if p.Title != nil && strings.TrimSpace(*p.Title) == "" {
		return Task{}, errBlankTitle
	}
	if err := checkDue(p.DueAt.Value); err != nil {
		return Task{}, err
	}
	var out Task
	err := s.store.InTx(ctx, func(q db.Querier) error {
		cur, err := s.getForUpdate(ctx, q, actor, id)
		if err != nil {
			return err
		}
		if !ifMatch.Allows(cur.Version) {
			return errChanged(id)
		}
		next, err := s.apply(ctx, q, actor, cur, p)
		if err != nil {
			return err
		}
		out, err = fromRow(q.TaskUpdate(ctx, updateParams(next)))
		if err != nil {
			return assigneeGone(err)
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "task", ID: &id, Changes: diff(cur, out)}); err != nil {
			return err
		}
		return s.emit(ctx, q, webhook.TaskUpdated, out)
	})
	if err != nil {
		return Task{}, fmt.Errorf("task: update: %w", err)
	}
	s.forget(ctx, id)
	return out, nil
}

func (s *Service) getForUpdate(ctx context.Context, q queries, actor auth.Principal, id int64) (Task, error) {
	t, err := fromRow(q.TaskGetByIDForUpdate(ctx, id))
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return Task{}, err
	}
	if err != nil || !Visible(actor, t) {
		return Task{}, apperr.E(apperr.NotFound, "task %d not found", id)
	}
	return t, nil
}

// apply computes the task's new fields from the current state and checks the rules. The
// result keeps cur's version, which the write checks.
func (s *Service) apply(ctx context.Context, q queries, actor auth.Principal, cur Task, p UpdateParams) (Task, error) {
	next := cur
	if p.Title != nil {
		next.Title = strings.TrimSpace(*p.Title)
	}
	if p.Description != nil {
		next.Description = *p.Description
	}
	if p.Priority != nil {
		next.Priority = *p.Priority
	}
	if p.Tags != nil {
		next.Tags = *p.Tags
	}
	if p.Metadata != nil {
		next.Metadata = p.Metadata
	}
	if p.DueAt.Set {
		next.DueAt = utc(p.DueAt.Value)
	}
	if p.AssigneeID.Set && !sameID(p.AssigneeID.Value, cur.AssigneeID) {
		if !actor.IsAdmin && !is(cur.CreatedBy, actor.UserID) {
			return next, apperr.E(apperr.Forbidden, "only the task's creator or an administrator may change its assignee")
		}
		if p.AssigneeID.Value != nil {
			if err := s.checkAssignee(ctx, q, *p.AssigneeID.Value); err != nil {
				return next, err
			}
		}
		next.AssigneeID = p.AssigneeID.Value
	}
	if p.Status != nil && *p.Status != cur.Status {
		if !CanTransition(cur.Status, *p.Status) {
			return next, apperr.E(apperr.Conflict, "cannot change task status from %s to %s", cur.Status, *p.Status)
		}
		next.Status = *p.Status
		if IsTerminal(next.Status) {
			now := s.now().UTC()
			next.CompletedAt = &now
		} else {
			next.CompletedAt = nil
		}
	}
	return next, nil
}

// Delete removes a task. NotFound when invisible to actor; Forbidden unless actor created
// it or is an admin; PreconditionFailed when ifMatch does not match.
func (s *Service) Delete(ctx context.Context, actor auth.Principal, id int64, ifMatch etag.Condition) error {
	err := s.store.InTx(ctx, func(q db.Querier) error {
		cur, err := s.getForUpdate(ctx, q, actor, id)
		if err != nil {
			return err
		}
		if !actor.IsAdmin && !is(cur.CreatedBy, actor.UserID) {
			return apperr.E(apperr.Forbidden, "only the task's creator or an administrator may delete it")
		}
		if !ifMatch.Allows(cur.Version) {
			return errChanged(id)
		}
		if _, err = q.TaskDelete(ctx, db.TaskDeleteParams{ID: id, Version: cur.Version}); err != nil {
			return err
		}
		if err := audit.Record(ctx, q, audit.Entry{Resource: "task", ID: &id}); err != nil {
			return err
		}
		return s.emit(ctx, q, webhook.TaskDeleted, cur)
	})
	if err != nil {
		return fmt.Errorf("task: delete: %w", err)
	}
	s.forget(ctx, id)
	return nil
}

func (s *Service) checkAssignee(ctx context.Context, q queries, id int64) error {
	u, err := q.UserGetByID(ctx, id)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return fmt.Errorf("task: assignee: %w", err)
	}
	if err != nil || !u.IsActive {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "assignee_id", Message: fmt.Sprintf("user %d is not an active user", id)})
	}
	return nil
}

// assigneeConstraint is the foreign key from a task to its assignee.
const assigneeConstraint = "tasks_assignee_id_fkey"

// assigneeGone reports a failure of the assignee's foreign key (the assignee was deleted
// meanwhile) as a field error.
func assigneeGone(err error) error {
	if apperr.Is(err, apperr.Invalid) && apperr.ConstraintOf(err) == assigneeConstraint {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "assignee_id", Message: "is not an active user"})
	}
	return err
}

// checkDue refuses due dates outside the years 1 to 9999 in UTC, which RFC 3339 (and so
// every response) cannot represent, although an offset can carry them past the edge.
func checkDue(t *time.Time) error {
	if t == nil {
		return nil
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "due_at",
			Message: "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"})
	}
	return nil
}

func checkMetadata(m []byte) error {
	if len(m) > MaxMetadataBytes {
		return apperr.Validation(apperr.FieldError{Location: "body", Field: "metadata",
			Message: fmt.Sprintf("must be at most %d bytes as JSON (got %d)", MaxMetadataBytes, len(m))})
	}
	return nil
}

var errBlankTitle = apperr.Validation(apperr.FieldError{Location: "body", Field: "title", Message: "must not be blank"})

func errChanged(id int64) error {
	return apperr.E(apperr.PreconditionFailed, "task %d has changed since the ETag in If-Match; fetch it again", id)
}

func sameID(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// diff is the audit record of an update: each field that changed, from and to.
func diff(a, b Task) audit.Changes {
	c := audit.Changes{}
	c.Set("title", a.Title, b.Title)
	c.Set("description", a.Description, b.Description)
	c.Set("status", a.Status, b.Status)
	c.Set("priority", a.Priority, b.Priority)
	c.Set("assignee_id", a.AssigneeID, b.AssigneeID)
	c.Set("due_at", a.DueAt, b.DueAt)
	c.Set("tags", a.Tags, b.Tags)
	if string(a.Metadata) != string(b.Metadata) {
		c["metadata"] = audit.Change{From: json.RawMessage(a.Metadata), To: json.RawMessage(b.Metadata)}
	}
	return c
}
