package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/etag"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

// Tool is a function the model may call. Run acts with the permissions of the run's
// creator, through the same task service as the HTTP API.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any // JSON Schema of the arguments
	// Changes, for a tool that writes, returns the id of the task a call would change (0
	// for a new task); nil for a tool that only reads.
	Changes func(args json.RawMessage) int64
	Run     func(ctx context.Context, tasks Tasks, actor auth.Principal, args json.RawMessage) (any, error)
}

// Tools is the built-in registry, by name. The contract's AgentTool enum lists the same names.
var Tools = map[string]Tool{
	"get_task": {
		Name:        "get_task",
		Description: "Read one task by id.",
		Parameters: object(map[string]any{
			"task_id": map[string]any{"type": "integer", "minimum": 1},
		}, "task_id"),
		Run: func(ctx context.Context, tasks Tasks, actor auth.Principal, raw json.RawMessage) (any, error) {
			var args struct {
				TaskID int64 `json:"task_id"`
			}
			if err := decodeArgs(raw, &args); err != nil {
				return nil, err
			}
			t, err := tasks.Get(ctx, actor, args.TaskID)
			if err != nil {
				return nil, err
			}
			return TaskView(t), nil
		},
	},
	"search_tasks": {
		Name:        "search_tasks",
		Description: "List tasks, newest first, optionally filtered by text and status.",
		Parameters: object(map[string]any{
			"q":      map[string]any{"type": "string", "description": "case-insensitive text in the title or description"},
			"status": map[string]any{"type": "string", "enum": statusNames()},
			"limit":  map[string]any{"type": "integer", "minimum": 1, "maximum": 20},
		}),
		Run: func(ctx context.Context, tasks Tasks, actor auth.Principal, raw json.RawMessage) (any, error) {
			var args struct {
				Q      *string `json:"q"`
				Status *string `json:"status"`
				Limit  *int32  `json:"limit"`
			}
			if err := decodeArgs(raw, &args); err != nil {
				return nil, err
			}
			limit := int32(10)
			if args.Limit != nil && *args.Limit >= 1 && *args.Limit <= 20 {
				limit = *args.Limit
			}
			p := task.ListParams{Page: page.Request{Limit: limit}}
			if args.Q != nil && strings.TrimSpace(*args.Q) != "" {
				p.Q = args.Q
			}
			if args.Status != nil {
				st := task.Status(*args.Status)
				if !st.Valid() {
					return nil, apperr.E(apperr.Invalid, "unknown status %q", *args.Status)
				}
				p.Statuses = []task.Status{st}
			}
			res, err := tasks.List(ctx, actor, p)
			if err != nil {
				return nil, err
			}
			views := make([]map[string]any, len(res.Items))
			for i, t := range res.Items {
				views[i] = TaskView(t)
			}
			return map[string]any{"total": res.Total, "tasks": views}, nil
		},
	},
	"create_task": {
		Name:        "create_task",
		Description: "Create a task owned by the user who started this run.",
		Parameters: object(map[string]any{
			"title":       map[string]any{"type": "string", "minLength": 1, "maxLength": 200},
			"description": map[string]any{"type": "string", "maxLength": 10000},
			"priority":    map[string]any{"type": "string", "enum": []string{"low", "medium", "high", "urgent"}},
		}, "title"),
		Changes: func(json.RawMessage) int64 { return 0 },
		Run: func(ctx context.Context, tasks Tasks, actor auth.Principal, raw json.RawMessage) (any, error) {
			var args struct {
				Title       string  `json:"title"`
				Description string  `json:"description"`
				Priority    *string `json:"priority"`
			}
			if err := decodeArgs(raw, &args); err != nil {
				return nil, err
			}
			p := task.CreateParams{Title: args.Title, Description: args.Description}
			if args.Priority != nil {
				p.Priority = task.Priority(*args.Priority)
				if !p.Priority.Valid() {
					return nil, apperr.E(apperr.Invalid, "unknown priority %q", *args.Priority)
				}
			}
			if len(p.Title) > 200 || len(p.Description) > 10000 {
				return nil, apperr.E(apperr.Invalid, "title must be at most 200 and description at most 10000 characters")
			}
			t, err := tasks.Create(ctx, actor, p)
			if err != nil {
				return nil, err
			}
			return TaskView(t), nil
		},
	},
	"update_task_status": {
		Name:        "update_task_status",
		Description: "Move a task to another status. Allowed: pending→in_progress|cancelled; in_progress→pending|completed|failed|cancelled; completed|failed|cancelled→pending.",
		Parameters: object(map[string]any{
			"task_id": map[string]any{"type": "integer", "minimum": 1},
			"status":  map[string]any{"type": "string", "enum": statusNames()},
		}, "task_id", "status"),
		Changes: taskIDArg,
		Run: func(ctx context.Context, tasks Tasks, actor auth.Principal, raw json.RawMessage) (any, error) {
			var args struct {
				TaskID int64  `json:"task_id"`
				Status string `json:"status"`
			}
			if err := decodeArgs(raw, &args); err != nil {
				return nil, err
			}
			st := task.Status(args.Status)
			if !st.Valid() {
				return nil, apperr.E(apperr.Invalid, "unknown status %q", args.Status)
			}
			t, err := tasks.Update(ctx, actor, args.TaskID, task.UpdateParams{Status: &st}, etag.Condition{})
			if err != nil {
				return nil, err
			}
			return TaskView(t), nil
		},
	},
}

// ToolNames lists the registry's tool names, sorted.
func ToolNames() []string {
	names := make([]string, 0, len(Tools))
	for n := range Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func statusNames() []string {
	return []string{"pending", "in_progress", "completed", "failed", "cancelled"}
}

func object(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// taskIDArg returns a call's task_id argument (0 when it has none).
func taskIDArg(raw json.RawMessage) int64 {
	var args struct {
		TaskID int64 `json:"task_id"`
	}
	if decodeArgs(raw, &args) != nil {
		return 0
	}
	return args.TaskID
}

func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return apperr.Wrap(apperr.Invalid, err, "the arguments are not valid JSON for this tool")
	}
	return nil
}

// TaskView is how a task is shown to the model.
func TaskView(t task.Task) map[string]any {
	v := map[string]any{
		"id": t.ID, "title": t.Title, "description": t.Description, "status": t.Status,
		"priority": t.Priority, "tags": t.Tags, "assignee_id": t.AssigneeID, "created_by": t.CreatedBy,
	}
	if t.DueAt != nil {
		v["due_at"] = t.DueAt.UTC().Format(time.RFC3339)
	}
	return v
}

// toolError is what the model sees when a tool fails: the message only, never internals.
func toolError(err error) map[string]any {
	msg := "the tool failed"
	if e := apperr.As(err); e != nil && e.Kind != apperr.Internal && e.Kind != apperr.Unavailable {
		msg = e.Message
		for _, f := range e.Fields {
			msg += fmt.Sprintf("; %s %s", f.Field, f.Message)
		}
	}
	return map[string]any{"error": msg}
}
