package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Mass assignment
// ---------------------------------------------------------------------------------------

func TestMassAssignment(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	adminToken := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	admin := env.As(adminToken)

	type userSnap struct {
		user client.User
		etag string
	}
	snapUser := func(t *testing.T, id int64) userSnap {
		t.Helper()
		res, err := admin.GetUserWithResponse(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		return userSnap{*res.JSON200, res.HTTPResponse.Header.Get("ETag")}
	}
	totalUsers := func(t *testing.T) int64 {
		t.Helper()
		res, err := admin.ListUsersWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		return res.JSON200.Total
	}
	// refused requires a 422 (naming field when given) or, for privileged fields a
	// non-admin may not touch, a 403.
	refused := func(t *testing.T, r *apitest.Response, field string, statuses ...int) {
		t.Helper()
		if len(statuses) == 0 {
			statuses = []int{http.StatusUnprocessableEntity}
		}
		require.Contains(t, statuses, r.Status, "body: %s", r.Body)
		p := apitest.RequireProblem(t, r, r.Status)
		if r.Status == http.StatusUnprocessableEntity && field != "" {
			require.True(t, apitest.HasFieldError(p, "body", field), "want a field error for %q, got %+v", field, p.Errors)
		}
	}

	ts := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	// Read-only and unknown fields of a user, including spellings Go's encoding/json
	// would map onto is_admin (it matches keys case-insensitively, and folds "ſ" to "s").
	userFields := []struct{ field, value string }{
		{"id", "1"},
		{"created_at", `"` + ts + `"`},
		{"updated_at", `"` + ts + `"`},
		{"version", "99"},
		{"password_hash", `"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"`},
		{"role", `"admin"`},
		{"IS_ADMIN", "true"},
		{"Is_Admin", "true"},
		{"isAdmin", "true"},
		{"is_Admin", "true"},
		{"iſ_admin", "true"},
		{"IS_ACTIVE", "false"},
		{"Email", `"takeover@example.com"`},
	}

	t.Run("non_admin_patching_themselves", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Climber", false)
		for _, f := range userFields {
			before := snapUser(t, u.Id)
			for _, body := range []string{
				`{"` + f.field + `":` + f.value + `}`,
				`{"name":"Sneaky","` + f.field + `":` + f.value + `}`,
			} {
				r := env.Do(t, http.MethodPatch, "/api/v1/users/me", u.Token, body)
				refused(t, r, f.field)
				after := snapUser(t, u.Id)
				require.Equal(t, before, after, "body %s changed the user", body)
			}
		}
		// Still an ordinary user who logs in with their own password.
		l, err := u.Client.ListUsersWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode())
		env.Login(t, string(u.Email), u.Password)
	})

	t.Run("non_admin_patching_themselves_through_their_id", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Sidestep", false)
		before := snapUser(t, u.Id)
		path := "/api/v1/users/" + strconv.FormatInt(u.Id, 10)
		for _, method := range []string{http.MethodPatch, http.MethodPut} {
			for _, body := range []string{`{"is_admin":true}`, `{"IS_ADMIN":true}`, `{"name":"x","id":1}`} {
				r := env.Do(t, method, path, u.Token, body)
				refused(t, r, "", http.StatusForbidden, http.StatusUnprocessableEntity)
				require.Equal(t, before, snapUser(t, u.Id), "%s %s changed the user", method, body)
			}
		}
	})

	t.Run("admin_updates_cannot_set_read_only_fields", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Target", false)
		path := "/api/v1/users/" + strconv.FormatInt(u.Id, 10)
		for _, method := range []string{http.MethodPatch, http.MethodPut} {
			for _, f := range userFields {
				before := snapUser(t, u.Id)
				body := `{"name":"Renamed","` + f.field + `":` + f.value + `}`
				r := env.Do(t, method, path, adminToken, body)
				refused(t, r, f.field)
				require.Equal(t, before, snapUser(t, u.Id), "%s %s changed the user", method, body)
			}
		}
	})

	t.Run("admin_creates_cannot_set_read_only_fields", func(t *testing.T) {
		t.Parallel()
		for _, f := range append(slices.Clone(userFields), struct{ field, value string }{"is_active", "false"}) {
			email := "sec-mass-" + secRandom(4) + "@example.com"
			body := `{"name":"Made","email":"` + email + `","password":"long-enough-pw","` + f.field + `":` + f.value + `}`
			r := env.Do(t, http.MethodPost, "/api/v1/users", adminToken, body)
			refused(t, r, f.field)
			res, err := admin.ListUsersWithResponse(ctx, &client.ListUsersParams{Q: &email})
			require.NoError(t, err)
			require.Zero(t, res.JSON200.Total, "%s created a user", body)
		}
		require.Positive(t, totalUsers(t))
	})

	taskFields := []struct{ field, value string }{
		{"created_at", `"` + ts + `"`},
		{"updated_at", `"` + ts + `"`},
		{"ID", "1"},
		{"Version", "99"},
		{"Created_By", "1"},
		{"createdBy", "1"},
		{"CompletedAt", `"` + ts + `"`},
		{"owner_id", "1"},
		{"user_id", "1"},
		{"visible_to", "1"},
	}

	t.Run("non_admin_task_create_and_update", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Forger", false)
		victim := env.CreateUser(t, "Victim", false)
		for _, f := range append(slices.Clone(taskFields), struct{ field, value string }{"Status", `"completed"`}) {
			r := env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":"forged","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		// created_by pointing at another user is refused and nothing lands in their list.
		r := env.Do(t, http.MethodPost, taskPath, u.Token, `{"title":"planted","created_by":`+strconv.FormatInt(victim.Id, 10)+`}`)
		refused(t, r, "created_by")
		require.Zero(t, taskVisibleTotal(t, u.Client), "a refused create wrote a task")
		require.Zero(t, taskVisibleTotal(t, victim.Client), "a task was planted on the victim")

		task := taskCreate(t, u.Client, client.TaskCreate{Title: "mine"})
		path := taskPath + "/" + strconv.FormatInt(task.Id, 10)
		for _, f := range append(slices.Clone(taskFields),
			struct{ field, value string }{"created_by", strconv.FormatInt(victim.Id, 10)},
			struct{ field, value string }{"id", "999999"},
			struct{ field, value string }{"version", "0"}) {
			r := env.Do(t, http.MethodPatch, path, u.Token, `{"title":"changed","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
			require.Equal(t, task, taskGet(t, u.Client, task.Id), "field %s changed the task", f.field)
		}
		require.Zero(t, taskVisibleTotal(t, victim.Client))
	})

	t.Run("admin_agent_create_and_update", func(t *testing.T) {
		t.Parallel()
		fields := []struct{ field, value string }{
			{"id", "1"},
			{"created_by", "1"},
			{"created_at", `"` + ts + `"`},
			{"updated_at", `"` + ts + `"`},
			{"version", "5"},
			{"Name", `"shadow"`},
		}
		// Other subtests create agents in parallel: look for the refused names, not at the total.
		var refusedNames []string
		for _, f := range fields {
			name := "mass-" + secRandom(3)
			refusedNames = append(refusedNames, name)
			r := env.Do(t, http.MethodPost, "/api/v1/agents", adminToken, `{"name":"`+name+`","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		after, err := admin.ListAgentsWithResponse(ctx, &client.ListAgentsParams{Limit: apitest.Ptr(int32(1000))})
		require.NoError(t, err)
		require.Less(t, len(after.JSON200.Items), 1000, "the list holds every agent")
		for _, a := range after.JSON200.Items {
			require.NotContains(t, refusedNames, a.Name, "a refused create wrote an agent")
		}

		res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "mass-target"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		agent := *res.JSON201
		path := "/api/v1/agents/" + strconv.FormatInt(agent.Id, 10)
		for _, f := range fields {
			r := env.Do(t, http.MethodPatch, path, adminToken, `{"description":"changed","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
			got, err := admin.GetAgentWithResponse(ctx, agent.Id, nil)
			require.NoError(t, err)
			require.Equal(t, agent, *got.JSON200, "field %s changed the agent", f.field)
			require.Equal(t, `"1"`, got.HTTPResponse.Header.Get("ETag"))
		}
	})

	t.Run("non_admin_agent_run_create", func(t *testing.T) {
		t.Parallel()
		res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: "mass-runner"})
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
		u := env.CreateUser(t, "Runner", false)
		victim := env.CreateUser(t, "RunVictim", false)
		path := "/api/v1/agents/" + strconv.FormatInt(res.JSON201.Id, 10) + "/runs"
		for _, f := range []struct{ field, value string }{
			{"id", "1"},
			{"status", `"completed"`},
			{"output", `"all done"`},
			{"created_by", strconv.FormatInt(victim.Id, 10)},
			{"agent_id", "1"},
			{"model", `"gpt-5-ultra"`},
			{"attempt", "9"},
			{"usage", `{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`},
			{"steps", "[]"},
			{"error", "null"},
			{"started_at", `"` + ts + `"`},
			{"completed_at", `"` + ts + `"`},
			{"Status", `"completed"`},
		} {
			r := env.Do(t, http.MethodPost, path, u.Token, `{"input":"go","`+f.field+`":`+f.value+`}`)
			refused(t, r, f.field)
		}
		for _, who := range []apitest.User{u, victim} {
			runs, err := who.Client.ListAgentRunsWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, runs.StatusCode(), "body: %s", runs.Body)
			require.Zero(t, runs.JSON200.Total, "a refused request created a run")
		}
	})
}
