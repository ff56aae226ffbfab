package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/oapi-codegen/nullable"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

func TestAgentETag(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	ag := agtNewAgent(t, f)
	get, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, get.StatusCode())
	tag := get.HTTPResponse.Header.Get("ETag")
	require.NotEmpty(t, tag)

	notModified, err := f.admin.GetAgentWithResponse(ctx, ag.Id, &client.GetAgentParams{IfNoneMatch: &tag})
	require.NoError(t, err)
	require.Equal(t, http.StatusNotModified, notModified.StatusCode())
	require.Equal(t, tag, notModified.HTTPResponse.Header.Get("ETag"))

	stale := `"999"`
	r := f.env.Do(t, http.MethodPatch, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, `{"description":"nope"}`, "If-Match", stale)
	apitest.RequireProblem(t, r, http.StatusPreconditionFailed)

	upd, err := f.admin.UpdateAgentWithResponse(ctx, ag.Id, &client.UpdateAgentParams{IfMatch: &tag}, client.AgentUpdate{Description: apitest.Ptr("v2"), MaxOutputTokens: nullable.NewNullableWithValue[int32](256)})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, upd.StatusCode(), "%s", upd.Body)
	newTag := upd.HTTPResponse.Header.Get("ETag")
	require.NotEqual(t, tag, newTag)
	require.Equal(t, "v2", upd.JSON200.Description)
	require.Equal(t, int32(256), upd.JSON200.MaxOutputTokens.MustGet())
	require.Equal(t, ag.Name, upd.JSON200.Name, "fields left out keep their value")
	require.Equal(t, ag.Tools, upd.JSON200.Tools)

	cleared, err := f.admin.UpdateAgentWithResponse(ctx, ag.Id, nil, client.AgentUpdate{MaxOutputTokens: nullable.NewNullNullable[int32]()})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, cleared.StatusCode(), "%s", cleared.Body)
	require.True(t, cleared.JSON200.MaxOutputTokens.IsNull(), "null clears the limit")
	require.Equal(t, "v2", cleared.JSON200.Description)
	current := cleared.HTTPResponse.Header.Get("ETag")

	for _, old := range []string{tag, newTag} {
		r := f.env.Do(t, http.MethodPatch, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, `{"description":"lost update"}`, "If-Match", old)
		apitest.RequireProblem(t, r, http.StatusPreconditionFailed)
		r = f.env.Do(t, http.MethodDelete, fmt.Sprintf("/api/v1/agents/%d", ag.Id), f.adminToken, "", "If-Match", old)
		apitest.RequireProblem(t, r, http.StatusPreconditionFailed)
	}
	still, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, "v2", still.JSON200.Description)

	user := f.env.CreateUser(t, "Max", false)
	run := agtStartRun(t, user.Client, ag.Id, client.AgentRunCreate{Input: "soon gone"})
	del, err := f.admin.DeleteAgentWithResponse(ctx, ag.Id, &client.DeleteAgentParams{IfMatch: &current})
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, del.StatusCode(), "%s", del.Body)
	gone, err := f.admin.GetAgentWithResponse(ctx, ag.Id, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, gone.StatusCode())
	runGone, err := user.Client.GetAgentRunWithResponse(ctx, run.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, runGone.StatusCode(), "the agent's runs are deleted with it")
}

func TestAgentRunIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := agtSetup(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	user := f.env.CreateUser(t, "Nia", false)
	other := f.env.CreateUser(t, "Oto", false)
	ag := agtNewAgent(t, f)
	key := "run-key-4711"
	params := &client.CreateAgentRunParams{IdempotencyKey: &key}
	body := client.AgentRunCreate{Input: "only once"}

	first, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, first.StatusCode(), "%s", first.Body)
	require.Empty(t, first.HTTPResponse.Header.Get("Idempotent-Replayed"))
	second, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, second.StatusCode(), "%s", second.Body)
	require.Equal(t, "true", second.HTTPResponse.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.JSON202.Id, second.JSON202.Id, "the replay is the same run")
	require.Equal(t, first.HTTPResponse.Header.Get("Location"), second.HTTPResponse.Header.Get("Location"))

	list, err := user.Client.ListAgentRunsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), list.JSON200.Total, "only one run exists")

	changed, err := user.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, client.AgentRunCreate{Input: "something else"})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, changed.StatusCode(), "the same key with another body: %s", changed.Body)

	theirs, err := other.Client.CreateAgentRunWithResponse(ctx, ag.Id, params, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, theirs.StatusCode(), "%s", theirs.Body)
	require.NotEqual(t, first.JSON202.Id, theirs.JSON202.Id, "keys belong to one user")
	require.Empty(t, theirs.HTTPResponse.Header.Get("Idempotent-Replayed"))

	list, err = user.Client.ListAgentRunsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), list.JSON200.Total)
}
