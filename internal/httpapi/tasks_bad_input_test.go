package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

type taskBadCase struct {
	name   string
	body   string
	status int
	loc    string // expected field error location ("" for none)
	field  string
	header []string
}

func TestTaskBadInput(t *testing.T) {
	t.Parallel()
	f := taskSetup(t)
	// bad only ever sends invalid creates, so it must never see a task.
	bad := f.env.CreateUser(t, "BadInput", false)
	owner := f.env.CreateUser(t, "Owner", false)
	inactive := f.env.CreateUser(t, "Inactive", false)
	f.deactivate(t, inactive.Id)
	target := taskCreate(t, owner.Client, client.TaskCreate{Title: "target", Tags: &client.TaskTags{"keep"}})
	targetPath := fmt.Sprintf("%s/%d", taskPath, target.Id)

	long := func(n int) string { return strings.Repeat("x", n) }
	tags := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("%q", "t"+strconv.Itoa(i))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	bigMetadata := `{"blob":"` + long(70_000) + `"}`
	noAssignee := strconv.FormatInt(999_999_999, 10)
	inactiveID := strconv.FormatInt(inactive.Id, 10)

	// Fields both operations share (the body gets a valid title for creates).
	shared := []taskBadCase{
		{name: "title_empty", body: `"title":""`, loc: "body", field: "title"},
		{name: "title_201_chars", body: `"title":"` + long(201) + `"`, loc: "body", field: "title"},
		{name: "title_null", body: `"title":null`, loc: "body", field: "title"},
		{name: "description_10001_chars", body: `"description":"` + long(10_001) + `"`, loc: "body", field: "description"},
		{name: "priority_critical", body: `"priority":"critical"`, loc: "body", field: "priority"},
		{name: "tags_21_items", body: `"tags":` + tags(21), loc: "body", field: "tags"},
		{name: "tag_51_chars", body: `"tags":["` + long(51) + `"]`, loc: "body", field: "tags"},
		{name: "tags_duplicate", body: `"tags":["a","b","a"]`, loc: "body", field: "tags"},
		{name: "tag_empty", body: `"tags":["a",""]`, loc: "body", field: "tags"},
		{name: "tags_not_an_array", body: `"tags":"a,b"`, loc: "body", field: "tags"},
		{name: "metadata_array", body: `"metadata":[1,2]`, loc: "body", field: "metadata"},
		{name: "metadata_string", body: `"metadata":"x"`, loc: "body", field: "metadata"},
		{name: "metadata_over_64KiB", body: `"metadata":` + bigMetadata, loc: "body", field: "metadata"},
		{name: "due_at_tomorrow", body: `"due_at":"tomorrow"`, loc: "body", field: "due_at"},
		{name: "due_at_month_13", body: `"due_at":"2026-13-01T00:00:00Z"`, loc: "body", field: "due_at"},
		{name: "assignee_id_string", body: `"assignee_id":"x"`, loc: "body", field: "assignee_id"},
		{name: "assignee_id_zero", body: `"assignee_id":0`, loc: "body", field: "assignee_id"},
		{name: "assignee_id_nonexistent", body: `"assignee_id":` + noAssignee, loc: "body", field: "assignee_id"},
		{name: "assignee_id_inactive", body: `"assignee_id":` + inactiveID, loc: "body", field: "assignee_id"},
		{name: "created_by_is_not_writable", body: `"created_by":1`, loc: "body", field: "created_by"},
		{name: "version_is_not_writable", body: `"version":99`, loc: "body", field: "version"},
		{name: "id_is_not_writable", body: `"id":1`, loc: "body", field: "id"},
		{name: "completed_at_is_not_writable", body: `"completed_at":"2026-01-01T00:00:00Z"`, loc: "body", field: "completed_at"},
	}
	createBody := func(fields string) string {
		if strings.HasPrefix(fields, `"title"`) {
			return "{" + fields + "}"
		}
		return `{"title":"bad input",` + fields + "}"
	}
	createCases := []taskBadCase{
		{name: "title_missing", body: `{}`, loc: "body", field: "title"},
		{name: "status_is_not_settable_on_create", body: `{"title":"t","status":"completed"}`, loc: "body", field: "status"},
		{name: "body_not_an_object", body: `["title"]`},
		{name: "malformed_json", body: `{"title":`, status: http.StatusBadRequest},
		{name: "not_json", body: `title=x`, status: http.StatusBadRequest},
		{name: "wrong_content_type", body: `{"title":"t"}`, status: http.StatusUnsupportedMediaType, header: []string{"Content-Type", "text/plain"}},
	}
	for _, c := range shared {
		c.body = createBody(c.body)
		createCases = append(createCases, c)
	}
	updateCases := []taskBadCase{
		{name: "status_done", body: `{"status":"done"}`, loc: "body", field: "status"},
		{name: "status_null", body: `{"status":null}`, loc: "body", field: "status"},
		{name: "created_at_is_not_writable", body: `{"created_at":"2026-01-01T00:00:00Z"}`, loc: "body", field: "created_at"},
		{name: "body_not_an_object", body: `"title"`},
		{name: "malformed_json", body: `{"title":`, status: http.StatusBadRequest},
		{name: "wrong_content_type", body: `{"title":"t"}`, status: http.StatusUnsupportedMediaType, header: []string{"Content-Type", "text/plain"}},
	}
	for _, c := range shared {
		c.body = "{" + c.body + "}"
		updateCases = append(updateCases, c)
	}
	check := func(t *testing.T, c taskBadCase, r *apitest.Response) {
		t.Helper()
		status := c.status
		if status == 0 {
			status = http.StatusUnprocessableEntity
		}
		require.Equal(t, status, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, status)
		if c.loc != "" {
			apitest.RequireFieldError(t, p, c.loc, c.field)
		}
	}

	t.Run("createTask", func(t *testing.T) {
		t.Parallel()
		for _, c := range createCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, taskPath, bad.Token, c.body, c.header...)
				check(t, c, r)
				require.Zero(t, taskVisibleTotal(t, bad.Client), "nothing is written")
			})
		}
	})
	t.Run("updateTask", func(t *testing.T) {
		t.Parallel()
		for _, c := range updateCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPatch, targetPath, owner.Token, c.body, c.header...)
				check(t, c, r)
				after := taskGet(t, owner.Client, target.Id)
				require.Equal(t, target.Version, after.Version, "nothing is written")
				require.Equal(t, target.Title, after.Title)
				require.Equal(t, target.Tags, after.Tags)
				require.True(t, after.AssigneeId.IsNull())
			})
		}
	})
	t.Run("listTasks", func(t *testing.T) {
		t.Parallel()
		cases := []struct{ query, field string }{
			{"status=bogus", "status"},
			{"status=pending&status=bogus", "status"},
			{"priority=bogus", "priority"},
			{"assignee_id=abc", "assignee_id"},
			{"assignee_id=0", "assignee_id"},
			{"created_by=abc", "created_by"},
			{"due_before=notadate", "due_before"},
			{"due_after=2026-13-01T00:00:00Z", "due_after"},
			{"limit=0", "limit"},
			{"limit=1001", "limit"},
			{"limit=abc", "limit"},
			{"skip=-1", "skip"},
			{"sort=title", "sort"},
			{"sort=bogus", "sort"},
			{"q=" + long(201), "q"},
		}
		for _, c := range cases {
			name := c.query
			if len(name) > 40 {
				name = c.field + "_too_long"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodGet, taskPath+"?"+c.query, owner.Token, "")
				require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
				p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
				apitest.RequireFieldError(t, p, "query", c.field)
			})
		}
	})
	t.Run("task_id", func(t *testing.T) {
		t.Parallel()
		type opCase struct {
			name, method, suffix, body string
		}
		ops := []opCase{
			{"getTask", http.MethodGet, "", ""},
			{"updateTask", http.MethodPatch, "", `{"title":"nope"}`},
			{"deleteTask", http.MethodDelete, "", ""},
			{"listTaskRuns", http.MethodGet, "/runs", ""},
		}
		ids := []struct {
			name, id string
			status   int
		}{
			{"abc_is_422", "abc", http.StatusUnprocessableEntity},
			{"zero_is_422", "0", http.StatusUnprocessableEntity},
			{"negative_is_422", "-1", http.StatusUnprocessableEntity},
			{"overflow_is_422", "99999999999999999999", http.StatusUnprocessableEntity},
			{"unknown_is_404", "999999999", http.StatusNotFound},
		}
		for _, o := range ops {
			for _, id := range ids {
				t.Run(o.name+"_"+id.name, func(t *testing.T) {
					t.Parallel()
					r := f.env.Do(t, o.method, taskPath+"/"+id.id+o.suffix, owner.Token, o.body)
					require.Equal(t, id.status, r.Status, "body: %s", r.Body)
					p := apitest.RequireProblem(t, r, id.status)
					if id.status == http.StatusUnprocessableEntity {
						apitest.RequireFieldError(t, p, "path", "task_id")
					}
				})
			}
		}
	})
	t.Run("metadata_under_64KiB_with_many_keys_is_accepted", func(t *testing.T) {
		t.Parallel()
		// 64 KiB counts the compact JSON a client sends (the service measures it so too);
		// PostgreSQL's jsonb text form adds a space after every ':' and ','.
		meta := client.TaskMetadata{}
		size := 2
		for i := 0; ; i++ {
			k := fmt.Sprintf("k%05d", i)
			entry := len(k) + 2 + 1 + 1 + 1 // "k": 1 ,
			if size+entry > 64_000 {
				break
			}
			meta[k] = 1
			size += entry
		}
		raw, err := json.Marshal(meta)
		require.NoError(t, err)
		require.Less(t, len(raw), 64<<10)
		res, err := owner.Client.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: "many keys", Metadata: &meta})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "metadata of %d bytes as JSON: %s", len(raw), res.Body)
		require.Len(t, res.JSON201.Metadata, len(meta))
	})
	t.Run("title_of_only_spaces_is_a_field_error", func(t *testing.T) {
		t.Parallel()
		// The service trims titles; one that trims to nothing must be reported like an
		// empty one, not as a database constraint.
		r := f.env.Do(t, http.MethodPost, taskPath, bad.Token, `{"title":"   "}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "title")
		require.Zero(t, taskVisibleTotal(t, bad.Client))
		r = f.env.Do(t, http.MethodPatch, targetPath, owner.Token, `{"title":"   "}`)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
		p = apitest.RequireProblem(t, r, http.StatusUnprocessableEntity)
		apitest.RequireFieldError(t, p, "body", "title")
		require.Equal(t, target.Version, taskGet(t, owner.Client, target.Id).Version)
	})
}
