package task

import (
	"bytes"
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

// storedTask is a task row as the statement that created it recorded it: the source of
// the task.created webhook event.
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

// storedFields is how many values TaskCreate's jsonb_build_array records.
const storedFields = 14

// FromStored maps a task row as its creating statement recorded it to the domain: the
// data of a task.created webhook event. The statement records an array of the row's
// values (TaskCreate); events recorded by earlier versions hold to_jsonb's object.
func FromStored(source []byte) (Task, error) {
	var r storedTask
	var err error
	if s := bytes.TrimLeft(source, " \t\r\n"); len(s) > 0 && s[0] == '[' {
		// Each element is decoded in place, into the field at its position. A Go array
		// one longer than the row tells a short or long JSON array: the elements past the
		// JSON array's end are set to nil, and an extra one fills the last slot.
		var values [storedFields + 1]any
		for i, p := range []any{&r.ID, &r.Title, &r.Description, &r.Status, &r.Priority, &r.AssigneeID, &r.CreatedBy,
			&r.DueAt, &r.Tags, &r.Metadata, &r.CreatedAt, &r.UpdatedAt, &r.CompletedAt, &r.Version} {
			values[i] = p
		}
		values[storedFields] = new(json.RawMessage)
		err = json.Unmarshal(source, &values)
		if short, long := values[storedFields-1] == nil, values[storedFields] != nil; err == nil && (short || long) {
			err = fmt.Errorf("want an array of %d values", storedFields)
		}
	} else {
		err = json.Unmarshal(source, &r)
	}
	if err != nil {
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
