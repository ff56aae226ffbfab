package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/api"
	"enterprise-automation/internal/httpapi/taskjson"
	"enterprise-automation/internal/task"
)

// awkwardStrings escape differently in careless encoders.
var awkwardStrings = []string{
	"", "plain", `quote " and backslash \`, "tab\tnew\nline\rreturn", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "line\u2028separator\u2029", "émoji 🎉 中文", "bad \xff\xfe utf-8", "\xed\xa0\x80",
	"trailing \\", "/slash/",
}

// TestTaskJSONMatchesTheGeneratedEncoding checks the hand-written task encoder against
// encoding/json on the generated api.Task: the same object for awkward strings, nullable
// fields set and unset, times in other zones with nanoseconds, and metadata as PostgreSQL
// returns jsonb.
func TestTaskJSONMatchesTheGeneratedEncoding(t *testing.T) {
	paris := time.FixedZone("Paris", 3600)
	due := time.Date(2026, 12, 1, 17, 0, 0, 123456789, paris)
	id7, id0 := int64(7), int64(0)
	tasks := []task.Task{
		{ID: 1, Title: "t", Status: task.StatusPending, Priority: task.PriorityLow, Metadata: []byte(`{}`),
			CreatedAt: time.Unix(0, 0).UTC(), UpdatedAt: time.Unix(1, 5).In(paris), Version: 1},
		{ID: 1<<53 + 1, Title: "x", Status: task.StatusCompleted, Priority: task.PriorityUrgent, Tags: []string{"a", "b"},
			AssigneeID: &id7, CreatedBy: &id0, DueAt: &due, CompletedAt: &due,
			Metadata:  []byte(`{"a": 1, "list": [1, 2.5, "three", null, true], "nested": {"k": "v \" \\ \n"}, "unicode": "é\u2028"}`),
			CreatedAt: due, UpdatedAt: due, Version: 1<<62 + 3},
	}
	for i, s := range awkwardStrings {
		meta, err := json.Marshal(map[string]any{s: s, "n": i})
		require.NoError(t, err)
		tasks = append(tasks, task.Task{ID: int64(i), Title: s, Description: s, Tags: []string{s, s + "x"},
			Status: task.StatusInProgress, Priority: task.PriorityMedium, Metadata: meta, CreatedAt: due, UpdatedAt: due})
	}
	for _, tk := range tasks {
		got, err := taskjson.AppendTask(nil, tk)
		require.NoError(t, err)
		require.True(t, json.Valid(got), "%s", got)
		gen, err := toTask(tk)
		require.NoError(t, err)
		want, err := json.Marshal(gen)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got))

		var back, wantBack api.Task
		require.NoError(t, json.Unmarshal(got, &back), "the generated type reads it back")
		require.NoError(t, json.Unmarshal(want, &wantBack))
		require.Equal(t, wantBack, back)
	}
}

// TestTaskPageJSON checks the page encoder: the fields of api.TaskPage, an empty page as
// an empty list, and the headers.
func TestTaskPageJSON(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, items := range [][]task.Task{nil, {
		{ID: 1, Title: "a", Status: task.StatusPending, Priority: task.PriorityLow, Metadata: []byte(`{"k": [1]}`), CreatedAt: now, UpdatedAt: now},
		{ID: 2, Title: "b", Status: task.StatusFailed, Priority: task.PriorityHigh, Metadata: []byte(`{}`), CreatedAt: now, UpdatedAt: now},
	}} {
		for _, cursor := range []string{"", "eyJzIjoiLWNyZWF0ZWRfYXQi-_0"} {
			w := httptest.NewRecorder()
			require.NoError(t, taskPageResponse{Items: items, Page: 2, PageSize: 20, Total: 12345, TotalPages: 618, TotalIsEstimate: true,
				NextCursor: cursor}.VisitListTasksResponse(w))
			require.Equal(t, 200, w.Code)
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
			want := api.TaskPage{Items: []api.Task{}, Page: 2, PageSize: 20, Total: 12345, TotalPages: 618, TotalIsEstimate: true,
				NextCursor: nextCursor(cursor)}
			for _, tk := range items {
				gt, err := toTask(tk)
				require.NoError(t, err)
				want.Items = append(want.Items, gt)
			}
			wantJSON, err := json.Marshal(want)
			require.NoError(t, err)
			require.JSONEq(t, string(wantJSON), w.Body.String())
		}
	}

	w := httptest.NewRecorder()
	require.Error(t, taskResponse{task: task.Task{ID: 9, Metadata: []byte(`{"broken"`)}, etag: `"1"`}.VisitGetTaskResponse(w),
		"unreadable stored metadata is an error, not a response")
	require.Empty(t, w.Body.String())
}
