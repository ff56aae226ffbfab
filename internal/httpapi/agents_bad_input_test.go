package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Bad input, ETags and idempotency
// ---------------------------------------------------------------------------------------

type agtBadCase struct {
	name   string
	body   string
	status int
	field  string // the field error expected with 422 ("" to check the status only)
}

func TestAgentBadInput(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	agtCreateAgent(t, f.admin, client.AgentCreate{Name: "Invoice-Bot"})
	victim := agtCreateAgent(t, f.admin, client.AgentCreate{Name: "victim"})
	long := strings.Repeat("n", 101)

	t.Run("create", func(t *testing.T) {
		t.Parallel()
		t.Cleanup(func() {
			res, err := f.admin.ListAgentsWithResponse(ctx, nil)
			require.NoError(t, err)
			var names []string
			for _, a := range res.JSON200.Items {
				names = append(names, a.Name)
			}
			require.ElementsMatch(t, []string{"Invoice-Bot", "victim", strings.Repeat("n", 100)}, names, "no agent was created by the bad requests")
		})
		cases := []agtBadCase{
			{"empty name", `{"name":""}`, 422, "name"},
			{"blank name", `{"name":"   "}`, 422, "name"},
			{"name of 101 characters", `{"name":"` + long + `"}`, 422, "name"},
			{"a taken name in another letter case", `{"name":"invoice-bot"}`, 409, ""},
			{"a taken name with spaces around it", `{"name":"  Invoice-Bot "}`, 409, ""},
			{"temperature above 2", `{"name":"hot","temperature":2.5}`, 422, "temperature"},
			{"negative temperature", `{"name":"cold","temperature":-1}`, 422, "temperature"},
			{"unknown tool", `{"name":"danger","tools":["rm_rf"]}`, 422, "tools"},
			{"duplicate tools", `{"name":"twice","tools":["get_task","get_task"]}`, 422, "tools"},
			{"max_output_tokens 0", `{"name":"mute","max_output_tokens":0}`, 422, "max_output_tokens"},
			{"unknown field", `{"name":"extra","colour":"red"}`, 422, ""},
			{"missing name", `{"description":"nameless"}`, 422, "name"},
			{"malformed JSON", `{"name":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, "/api/v1/agents", f.adminToken, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
		t.Run("a name of 100 characters is fine", func(t *testing.T) {
			t.Parallel()
			agtCreateAgent(t, f.admin, client.AgentCreate{Name: strings.Repeat("n", 100)})
		})
	})

	t.Run("update", func(t *testing.T) {
		t.Parallel()
		path := fmt.Sprintf("/api/v1/agents/%d", victim.Id)
		t.Cleanup(func() {
			res, err := f.admin.GetAgentWithResponse(ctx, victim.Id, nil)
			require.NoError(t, err)
			require.Equal(t, victim, *res.JSON200, "the agent is unchanged")
			require.Equal(t, `"1"`, res.HTTPResponse.Header.Get("ETag"), "no refused change bumped its version")
		})
		cases := []agtBadCase{
			{"empty name", `{"name":""}`, 422, "name"},
			{"blank name", `{"name":"   "}`, 422, "name"},
			{"name of 101 characters", `{"name":"` + long + `"}`, 422, "name"},
			{"another agent's name in another letter case", `{"name":"INVOICE-BOT"}`, 409, ""},
			{"temperature above 2", `{"temperature":3}`, 422, "temperature"},
			{"unknown tool", `{"tools":["get_task","rm_rf"]}`, 422, "tools"},
			{"duplicate tools", `{"tools":["get_task","get_task"]}`, 422, "tools"},
			{"max_output_tokens 0", `{"max_output_tokens":0}`, 422, "max_output_tokens"},
			{"blank model", `{"model":"   "}`, 422, ""},
			{"unknown field", `{"colour":"red"}`, 422, ""},
			{"malformed JSON", `{"name":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPatch, path, f.adminToken, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
	})

	t.Run("run", func(t *testing.T) {
		t.Parallel()
		user := f.env.CreateUser(t, "Lee", false)
		path := fmt.Sprintf("/api/v1/agents/%d/runs", victim.Id)
		t.Cleanup(func() {
			res, err := user.Client.ListAgentRunsWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, int64(1), res.JSON200.Total, "only the valid request created a run")
		})
		cases := []agtBadCase{
			{"empty input", `{"input":""}`, 422, "input"},
			{"input of 100001 characters", `{"input":"` + strings.Repeat("x", 100001) + `"}`, 422, "input"},
			{"missing input", `{}`, 422, "input"},
			{"task_id 0", `{"input":"x","task_id":0}`, 422, "task_id"},
			{"metadata not an object", `{"input":"x","metadata":[1]}`, 422, "metadata"},
			{"unknown field", `{"input":"x","priority":"high"}`, 422, ""},
			{"malformed JSON", `{"input":`, 400, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodPost, path, user.Token, c.body)
				p := apitest.RequireProblem(t, r, c.status)
				if c.field != "" {
					apitest.RequireFieldError(t, p, "body", c.field)
				}
			})
		}
		t.Run("input of 100000 characters is fine", func(t *testing.T) {
			t.Parallel()
			agtStartRun(t, user.Client, victim.Id, client.AgentRunCreate{Input: strings.Repeat("x", 100000)})
		})
	})

	t.Run("list and get", func(t *testing.T) {
		t.Parallel()
		user := f.env.CreateUser(t, "Mo", false)
		for _, c := range []struct{ query, field string }{
			{"status=bogus", "status"},
			{"agent_id=abc", "agent_id"},
			{"task_id=0", "task_id"},
			{"limit=0", "limit"},
		} {
			t.Run(c.query, func(t *testing.T) {
				t.Parallel()
				r := f.env.Do(t, http.MethodGet, "/api/v1/agent-runs?"+c.query, user.Token, "")
				apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "query", c.field)
			})
		}
		t.Run("run id abc", func(t *testing.T) {
			t.Parallel()
			r := f.env.Do(t, http.MethodGet, "/api/v1/agent-runs/abc", user.Token, "")
			apitest.RequireFieldError(t, apitest.RequireProblem(t, r, http.StatusUnprocessableEntity), "path", "run_id")
		})
		t.Run("unknown run", func(t *testing.T) {
			t.Parallel()
			apitest.RequireProblem(t, f.env.Do(t, http.MethodGet, "/api/v1/agent-runs/999999", user.Token, ""), http.StatusNotFound)
		})
		t.Run("unknown agent", func(t *testing.T) {
			t.Parallel()
			apitest.RequireProblem(t, f.env.Do(t, http.MethodGet, "/api/v1/agents/999999", user.Token, ""), http.StatusNotFound)
		})
	})
}
