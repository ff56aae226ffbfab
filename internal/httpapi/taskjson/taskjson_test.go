package taskjson

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/task"
)

// awkwardStrings escape differently in careless encoders.
var awkwardStrings = []string{
	"", "plain", `quote " and backslash \`, "tab\tnew\nline\rreturn", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "line\u2028separator\u2029", "émoji 🎉 中文", "bad \xff\xfe utf-8", "\xed\xa0\x80",
	"trailing \\", "/slash/",
}

// TestAppendStringEscapesLikeEncodingJSON compares the string encoder with encoding/json
// byte for byte, on awkward strings and on random bytes.
func TestAppendStringEscapesLikeEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	inputs := append([]string(nil), awkwardStrings...)
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendString(nil, s)), "%q", s)
	}
}

func TestAppendTaskCopiesMetadataDigitForDigit(t *testing.T) {
	t.Parallel()
	tk := task.Task{ID: 1, Metadata: []byte(`{"big": 123456789012345678901234567890, "pi": 3.14159265358979323846264338327950288}`)}
	got, err := AppendTask(nil, tk)
	require.NoError(t, err)
	require.Contains(t, string(got), `"metadata":{"big":123456789012345678901234567890,"pi":3.14159265358979323846264338327950288}`)
}

func TestAppendTaskWritesEmptyMetadataAsAnEmptyObject(t *testing.T) {
	t.Parallel()
	got, err := AppendTask(nil, task.Task{ID: 1})
	require.NoError(t, err)
	require.Contains(t, string(got), `"metadata":{}`)
	require.Contains(t, string(got), `"tags":[]`)
}

func TestAppendPageFailsOnUnreadableStoredMetadata(t *testing.T) {
	t.Parallel()
	p := page.Page[task.Task]{Items: []task.Task{{ID: 1, Metadata: []byte(`{}`)}, {ID: 9, Metadata: []byte(`{"broken"`)}}}
	_, err := AppendPage(nil, p)
	require.True(t, apperr.Is(err, apperr.Internal), "got %v", err)
	require.Contains(t, err.Error(), "task 9")
}

func TestPageSizeHintHoldsATypicalPage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	id := int64(42)
	items := make([]task.Task, 20)
	for i := range items {
		items[i] = task.Task{ID: int64(1000 + i), Title: "Reconcile November invoices", Description: "Match every invoice.",
			Status: task.StatusPending, Priority: task.PriorityMedium, AssigneeID: &id, CreatedBy: &id, Tags: []string{"billing"},
			Metadata: []byte(`{"source": "crm", "ticket": 4711}`), CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	b := make([]byte, 0, PageSizeHint(len(items)))
	got, err := AppendPage(b, page.Page[task.Task]{Items: items, Page: 1, PageSize: 20, Total: 20, TotalPages: 1})
	require.NoError(t, err)
	require.Equal(t, cap(b), cap(got), "the page fits the hinted buffer")
	require.True(t, json.Valid(got))
}
