package llmtest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScriptPathAppendsRepliesFromJSON(t *testing.T) {
	t.Parallel()
	s := New(t)
	res, err := http.Post(s.URL+ScriptPath, "application/json",
		strings.NewReader(`[{"content":["scripted from outside"],"tool_calls":[{"id":"c1","name":"get_task","arguments":"{\"task_id\":7}"}]}]`))
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusNoContent, res.StatusCode)

	req, err := http.NewRequest(http.MethodPost, s.BaseURL()+"chat/completions", strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+APIKey)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Contains(t, string(body), "scripted from outside")
	require.Contains(t, string(body), `"name":"get_task"`)

	res, err = http.Post(s.URL+ScriptPath, "application/json", strings.NewReader(`{"not":"a list"}`))
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
}
