package task

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/page"
)

// fingerprintParts are the filters of a task list in a fixed order, for its cursors
// (page.Fingerprint): visibility included, so a cursor does not continue another
// caller's view. The order of the statuses does not matter.
func fingerprintParts(f db.TaskCountParams) []string {
	statuses := slices.Clone(f.Statuses)
	slices.Sort(statuses)
	statuses = slices.Compact(statuses)
	parts := []string{optInt(f.VisibleTo), strings.Join(statuses, ","), "", optInt(f.AssigneeID), optInt(f.CreatedBy),
		optString(f.Tag), optString(f.Q), optTime(f.DueBefore), optTime(f.DueAfter)}
	if f.Priority != nil {
		parts[2] = string(*f.Priority)
	}
	return parts
}

// cursorAfter is the cursor that continues a list in order sort after task t.
func cursorAfter(t Task, sort, filter string) page.Cursor {
	c := page.Cursor{Sort: sort, Filter: filter, ID: t.ID}
	switch strings.TrimPrefix(sort, "-") {
	case "created_at":
		c.Key = t.CreatedAt.UTC().Format(time.RFC3339Nano)
	case "updated_at":
		c.Key = t.UpdatedAt.UTC().Format(time.RFC3339Nano)
	case "due_at":
		if t.DueAt == nil {
			c.KeyNull = true
		} else {
			c.Key = t.DueAt.UTC().Format(time.RFC3339Nano)
		}
	case "priority":
		c.Key = string(t.Priority)
	}
	return c
}

// setAfter sets the keyset position of a TaskPage from a cursor of the same sort. Invalid
// when the cursor's key does not fit its sort (a cursor made by hand).
func setAfter(args *db.TaskPageParams, c *page.Cursor) error {
	args.AfterID = &c.ID
	switch strings.TrimPrefix(args.Sort, "-") {
	case "created_at", "updated_at", "due_at":
		if c.KeyNull && strings.HasSuffix(args.Sort, "due_at") {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, c.Key)
		if err != nil || c.KeyNull {
			return badCursorKey()
		}
		args.AfterTime = &t
	case "priority":
		p := db.TaskPriority(c.Key)
		if !p.Valid() || c.KeyNull {
			return badCursorKey()
		}
		args.AfterPriority = &p
	}
	return nil
}

func badCursorKey() error {
	return apperr.Validation(apperr.FieldError{Location: "query", Field: "cursor",
		Message: "is not a cursor of this list; use a next_cursor returned by it, unchanged"})
}

func optInt(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func optString(v *string) string {
	if v == nil {
		return ""
	}
	return "=" + *v
}

func optTime(v *time.Time) string {
	if v == nil {
		return ""
	}
	return v.UTC().Format(time.RFC3339Nano)
}
