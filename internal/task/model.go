package task

import (
	"time"

	"enterprise-automation/internal/auth"
)

// Task is a unit of work as the domain sees it. Its fields and their JSON form are those
// of the stored row, so the task record cache keeps reading entries written before.
type Task struct {
	ID          int64
	Title       string
	Description string
	Status      Status
	Priority    Priority
	AssigneeID  *int64 // nil: unassigned
	CreatedBy   *int64 // nil: the creator was deleted
	DueAt       *time.Time
	Tags        []string
	// Metadata is the JSON object's text as PostgreSQL returns jsonb, never decoded, so
	// numbers keep every digit they were stored with.
	Metadata    []byte
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CompletedAt *time.Time // set while the status is terminal
	Version     int64      // increases with every change; the ETag
}

// Status is where a task stands in its life cycle.
type Status string

// The statuses.
const (
	StatusPending    Status = "pending"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
)

// Statuses lists every status, in life-cycle order.
var Statuses = []Status{StatusPending, StatusInProgress, StatusCompleted, StatusFailed, StatusCancelled}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// Priority orders tasks by urgency.
type Priority string

// The priorities, from least to most urgent.
const (
	PriorityLow    Priority = "low"
	PriorityMedium Priority = "medium"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

// Valid reports whether p is one of the priorities.
func (p Priority) Valid() bool {
	switch p {
	case PriorityLow, PriorityMedium, PriorityHigh, PriorityUrgent:
		return true
	}
	return false
}

// transitions lists the legal status changes.
var transitions = map[Status][]Status{
	StatusPending:    {StatusInProgress, StatusCancelled},
	StatusInProgress: {StatusPending, StatusCompleted, StatusFailed, StatusCancelled},
	StatusCompleted:  {StatusPending},
	StatusFailed:     {StatusPending},
	StatusCancelled:  {StatusPending},
}

// CanTransition reports whether a task may move from one status to another. Staying in
// the same status is not a transition and is always allowed.
func CanTransition(from, to Status) bool {
	if from == to {
		return true
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// IsTerminal reports whether a status ends the task's work (completed_at is set).
func IsTerminal(s Status) bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Visible reports whether actor may see (and so change) t.
func Visible(actor auth.Principal, t Task) bool {
	return actor.IsAdmin || is(t.CreatedBy, actor.UserID) || is(t.AssigneeID, actor.UserID)
}

func is(id *int64, want int64) bool { return id != nil && *id == want }
