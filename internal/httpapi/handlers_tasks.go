package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/oapi-codegen/nullable"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/httpapi/taskjson"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

// toTask converts a task to the generated type (for the responses the strict handler
// encodes; GET answers are written by taskjson).
func toTask(t task.Task) (api.Task, error) {
	meta := api.TaskMetadata{}
	if err := json.Unmarshal(t.Metadata, &meta); err != nil {
		return api.Task{}, apperr.Wrap(apperr.Internal, err, "task %d: stored metadata", t.ID)
	}
	out := api.Task{
		Id: t.ID, Title: t.Title, Description: t.Description, Status: api.TaskStatus(t.Status),
		Priority: api.TaskPriority(t.Priority), Tags: t.Tags, Metadata: meta,
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(), Version: t.Version,
		AssigneeId: nullableOf(t.AssigneeID), CreatedBy: nullableOf(t.CreatedBy),
		DueAt: nullableTime(t.DueAt), CompletedAt: nullableTime(t.CompletedAt),
	}
	if out.Tags == nil {
		out.Tags = api.TaskTags{}
	}
	return out, nil
}

func nullableOf[T any](v *T) nullable.Nullable[T] {
	if v == nil {
		return nullable.NewNullNullable[T]()
	}
	return nullable.NewNullableWithValue(*v)
}

func nullableTime(t *time.Time) nullable.Nullable[time.Time] {
	if t == nil {
		return nullable.NewNullNullable[time.Time]()
	}
	return nullable.NewNullableWithValue(t.UTC())
}

// optional converts a nullable request field: absent, null or a value.
func optional[T any](n nullable.Nullable[T]) task.Optional[T] {
	if !n.IsSpecified() {
		return task.Optional[T]{}
	}
	if n.IsNull() {
		return task.Optional[T]{Set: true}
	}
	v := n.MustGet()
	return task.Optional[T]{Set: true, Value: &v}
}

func metadataJSON(m *api.TaskMetadata) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, apperr.Wrap(apperr.Invalid, err, "metadata is not serializable")
	}
	return b, nil
}

// CreateTask implements POST /api/v1/tasks.
func (s *Server) CreateTask(ctx context.Context, req api.CreateTaskRequestObject) (api.CreateTaskResponseObject, error) {
	b := req.Body
	meta, err := metadataJSON(b.Metadata)
	if err != nil {
		return nil, err
	}
	p := task.CreateParams{Title: b.Title, Metadata: meta}
	if b.Description != nil {
		p.Description = *b.Description
	}
	if b.Priority != nil {
		p.Priority = task.Priority(*b.Priority)
	}
	if b.Tags != nil {
		p.Tags = *b.Tags
	}
	p.AssigneeID = optional(b.AssigneeId).Value
	p.DueAt = optional(b.DueAt).Value
	t, err := s.tasks.Create(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	out, err := toTask(t)
	if err != nil {
		return nil, err
	}
	return api.CreateTask201JSONResponse{Body: out, Headers: api.CreateTask201ResponseHeaders{
		ETag: ptr(etag.Format(t.Version)), Location: ptr("/api/v1/tasks/" + strconv.FormatInt(t.ID, 10)),
	}}, nil
}

// ListTasks implements GET /api/v1/tasks.
func (s *Server) ListTasks(ctx context.Context, req api.ListTasksRequestObject) (api.ListTasksResponseObject, error) {
	q := req.Params
	pr, err := page.NewCursorRequest(q.Skip, q.Limit, q.Cursor)
	if err != nil {
		return nil, err
	}
	p := task.ListParams{
		Page: pr, AssigneeID: q.AssigneeId, CreatedBy: q.CreatedBy, Tag: q.Tag, Q: q.Q,
		DueBefore: q.DueBefore, DueAfter: q.DueAfter,
	}
	if q.Status != nil {
		for _, st := range *q.Status {
			p.Statuses = append(p.Statuses, task.Status(st))
		}
	}
	if q.Priority != nil {
		pr := task.Priority(*q.Priority)
		p.Priority = &pr
	}
	if q.Sort != nil {
		p.Sort = string(*q.Sort)
	}
	res, err := s.tasks.List(ctx, actor(ctx), p)
	if err != nil {
		return nil, err
	}
	return taskPageResponse(res), nil
}

// GetTask implements GET /api/v1/tasks/{task_id}.
func (s *Server) GetTask(ctx context.Context, req api.GetTaskRequestObject) (api.GetTaskResponseObject, error) {
	t, err := s.tasks.Get(ctx, actor(ctx), req.TaskId)
	if err != nil {
		return nil, err
	}
	tag := ptr(etag.Format(t.Version))
	if etag.IfNoneMatch(req.Params.IfNoneMatch).Matches(t.Version) {
		return api.GetTask304Response{Headers: api.GetTask304ResponseHeaders{ETag: tag}}, nil
	}
	return taskResponse{task: t, etag: *tag}, nil
}

// UpdateTask implements PATCH /api/v1/tasks/{task_id}.
func (s *Server) UpdateTask(ctx context.Context, req api.UpdateTaskRequestObject) (api.UpdateTaskResponseObject, error) {
	b := req.Body
	meta, err := metadataJSON(b.Metadata)
	if err != nil {
		return nil, err
	}
	p := task.UpdateParams{
		Title: b.Title, Description: b.Description, Metadata: meta,
		AssigneeID: optional(b.AssigneeId), DueAt: optional(b.DueAt),
	}
	if b.Status != nil {
		st := task.Status(*b.Status)
		p.Status = &st
	}
	if b.Priority != nil {
		pr := task.Priority(*b.Priority)
		p.Priority = &pr
	}
	if b.Tags != nil {
		tags := []string(*b.Tags)
		p.Tags = &tags
	}
	t, err := s.tasks.Update(ctx, actor(ctx), req.TaskId, p, etag.IfMatch(req.Params.IfMatch))
	if err != nil {
		return nil, err
	}
	out, err := toTask(t)
	if err != nil {
		return nil, err
	}
	return api.UpdateTask200JSONResponse{Body: out, Headers: api.UpdateTask200ResponseHeaders{ETag: ptr(etag.Format(t.Version))}}, nil
}

// DeleteTask implements DELETE /api/v1/tasks/{task_id}.
func (s *Server) DeleteTask(ctx context.Context, req api.DeleteTaskRequestObject) (api.DeleteTaskResponseObject, error) {
	if err := s.tasks.Delete(ctx, actor(ctx), req.TaskId, etag.IfMatch(req.Params.IfMatch)); err != nil {
		return nil, err
	}
	return api.DeleteTask204Response{}, nil
}

// taskResponse answers GET /api/v1/tasks/{task_id} with 200, written by taskjson.
type taskResponse struct {
	task task.Task
	etag string
}

func (r taskResponse) VisitGetTaskResponse(w http.ResponseWriter) error {
	b, err := taskjson.AppendTask(make([]byte, 0, taskjson.TaskSizeHint), r.task)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", r.etag)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(b, '\n'))
	return err
}

// taskPageResponse answers GET /api/v1/tasks with 200, written by taskjson.
type taskPageResponse page.Page[task.Task]

func (r taskPageResponse) VisitListTasksResponse(w http.ResponseWriter) error {
	b, err := taskjson.AppendPage(make([]byte, 0, taskjson.PageSizeHint(len(r.Items))), page.Page[task.Task](r))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(b, '\n'))
	return err
}
