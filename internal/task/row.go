package task

import (
	"encoding/json"
	"fmt"
	"time"

	"enterprise-automation/gen/db"
)

// This file is the one place where tasks cross between the sqlc rows and the domain.

// taskFromRow maps a stored task to the domain. It copies no slice: the task shares its
// tags and metadata with the row.
func taskFromRow(r db.Task) Task {
	return Task{
		ID: r.ID, Title: r.Title, Description: r.Description, Status: Status(r.Status), Priority: Priority(r.Priority),
		AssigneeID: r.AssigneeID, CreatedBy: r.CreatedBy, DueAt: r.DueAt, Tags: r.Tags, Metadata: r.Metadata,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt, Version: r.Version,
	}
}

// storedTask is a task row as PostgreSQL's to_jsonb renders it (the source of the
// task.created webhook event).
type storedTask struct {
	ID          int64           `json:"id"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Status      string          `json:"status"`
	Priority    string          `json:"priority"`
	AssigneeID  *int64          `json:"assignee_id"`
	CreatedBy   *int64          `json:"created_by"`
	DueAt       *time.Time      `json:"due_at"`
	Tags        []string        `json:"tags"`
	Metadata    json.RawMessage `json:"metadata"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	CompletedAt *time.Time      `json:"completed_at"`
	Version     int64           `json:"version"`
}

// FromStored maps a task row as to_jsonb renders it to the domain: the data of a
// webhook event recorded by the statement that changed the task.
func FromStored(source []byte) (Task, error) {
	var r storedTask
	if err := json.Unmarshal(source, &r); err != nil {
		return Task{}, fmt.Errorf("task: stored row: %w", err)
	}
	return taskFromRow(db.Task{
		ID: r.ID, Title: r.Title, Description: r.Description, Status: db.TaskStatus(r.Status), Priority: db.TaskPriority(r.Priority),
		AssigneeID: r.AssigneeID, CreatedBy: r.CreatedBy, DueAt: r.DueAt, Tags: r.Tags, Metadata: r.Metadata,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt, Version: r.Version,
	}), nil
}

// fromRow maps the result of a query returning one task, keeping its error.
func fromRow(r db.Task, err error) (Task, error) {
	if err != nil {
		return Task{}, err
	}
	return taskFromRow(r), nil
}

func tasksFromRows(rs []db.Task) []Task {
	if rs == nil {
		return nil
	}
	out := make([]Task, len(rs))
	for i, r := range rs {
		out[i] = taskFromRow(r)
	}
	return out
}

// updateParams writes every mutable field of t, if its version still matches.
func updateParams(t Task) db.TaskUpdateParams {
	return db.TaskUpdateParams{
		ID: t.ID, Version: t.Version, Title: t.Title, Description: t.Description, Status: db.TaskStatus(t.Status),
		Priority: db.TaskPriority(t.Priority), AssigneeID: t.AssigneeID, DueAt: t.DueAt, Tags: t.Tags,
		Metadata: t.Metadata, CompletedAt: t.CompletedAt,
	}
}

func statusStrings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func dbPriority(p *Priority) *db.TaskPriority {
	if p == nil {
		return nil
	}
	v := db.TaskPriority(*p)
	return &v
}
