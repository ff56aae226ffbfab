package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// ---------------------------------------------------------------------------------------
// Authorization matrix generated from the contract: every operation of openapi.yaml, as
// each of four principals, with the expected outcome derived from its x-required-role.
// Helpers are prefixed with "azm" so they cannot clash with other files of the package.
// ---------------------------------------------------------------------------------------

// The four principals.
const (
	azmAnonymous = "anonymous" // no Authorization header
	azmUser      = "user"      // ordinary user owning the resources involved (or the user in the path)
	azmOther     = "other"     // another ordinary user who owns nothing involved
	azmAdmin     = "admin"     // the seeded administrator
)

var azmPrincipals = []string{azmAnonymous, azmUser, azmOther, azmAdmin}

// The roles an operation may declare in x-required-role.
var azmRoles = []string{"public", "user", "self-or-admin", "admin"}

// azmScope says what `other` gets on an operation whose role is `user`.
type azmScope int

const (
	_ azmScope = iota // the zero value: an entry that forgot to say (the matrix test fails on it)
	// azmUnscoped: a collection or unscoped operation (listing, reading an agent, creating
	// a task, acting on oneself): other succeeds like the user.
	azmUnscoped
	// azmOwned: the operation targets a resource owned by user (a task, an agent run);
	// such resources are invisible to others: 404, not 403.
	azmOwned
	// azmOwnedInBody: the body refers to a resource owned by user (createAgentRun's
	// task_id); a reference to something you cannot see is a field error: 422.
	azmOwnedInBody
)

// azmCall is one request, built against the operation's method and path template.
type azmCall struct {
	token       string           // bearer token; "" sends no Authorization header
	apiKey      string           // sent in X-API-Key when set (the scope walk)
	params      map[string]int64 // path parameters of the template
	query       url.Values       // optional query string
	body        string           // request body; sent as JSON unless contentType says otherwise
	contentType string           // defaults to application/json when body is set
	// after, when set, checks the effect (or the absence of one) once the response is in;
	// allowed reports whether the status was one of the operation's success statuses.
	after func(t *testing.T, allowed bool, res *apitest.Response)
}

// azmOp is the matrix entry of one operationId.
type azmOp struct {
	success []int    // the statuses that mean "allowed" for this operation
	other   azmScope // what `other` gets when the role is `user`
	build   func(t *testing.T, f *azmFixture, p string) azmCall
}

// azmAccount is a user the fixture can log in as.
type azmAccount struct {
	id       int64
	email    string
	password string
	token    string
}

// azmFixture is the shared environment: one server, the principals and the read-only
// resources owned by `user`. Mutating operations make their own fresh resources.
type azmFixture struct {
	env   *apitest.Env
	admin *client.ClientWithResponses
	// accounts of the authenticated principals (user, other, admin)
	accounts map[string]azmAccount
	userC    *client.ClientWithResponses
	agent    client.Agent         // an active agent (created by admin)
	task     client.Task          // created by user
	run      client.AgentRun      // user's run on task, ended
	key      client.ApiKeyCreated // an API key of user
	seq      atomic.Int64
}

// token returns the bearer token of principal p ("" for anonymous).
func (f *azmFixture) token(p string) string {
	if p == azmAnonymous {
		return ""
	}
	return f.accounts[p].token
}

// login returns the credentials principal p logs in with; anonymous uses user's account
// (public operations work without a token, but a login still needs an account).
func (f *azmFixture) login(p string) azmAccount {
	if p == azmAnonymous {
		return f.accounts[azmUser]
	}
	return f.accounts[p]
}

func (f *azmFixture) next() int64 { return f.seq.Add(1) }

// newUser creates an ordinary user through the API (as the admin) and logs it in.
func (f *azmFixture) newUser(t *testing.T, name string) azmAccount {
	t.Helper()
	n := f.next()
	email := fmt.Sprintf("azm-%s-%d-%d@example.com", strings.ToLower(name), n, time.Now().UnixNano())
	pw := "azm-password-" + strconv.FormatInt(n, 10)
	no := false
	res, err := f.admin.CreateUserWithResponse(context.Background(), nil, client.UserCreate{
		Name: name, Email: openapi_types.Email(email), Password: pw, IsAdmin: &no,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create user: %s", res.Body)
	tok := f.env.Login(t, email, pw).AccessToken
	return azmAccount{id: res.JSON201.Id, email: email, password: pw, token: tok}
}

// subjectToken is the token principal p sends when the operation's subject (the user in
// the path, or the caller of a /me operation) is subject: user acts as the subject itself.
func (f *azmFixture) subjectToken(p string, subject azmAccount) string {
	if p == azmUser {
		return subject.token
	}
	return f.token(p)
}

func (f *azmFixture) newTask(t *testing.T, title string) client.Task {
	t.Helper()
	res, err := f.userC.CreateTaskWithResponse(context.Background(), nil, client.TaskCreate{Title: title})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create task: %s", res.Body)
	return *res.JSON201
}

// newKey creates an API key with the given scopes as the holder of c.
func (f *azmFixture) newKey(t *testing.T, c *client.ClientWithResponses, name string, scopes ...string) client.ApiKeyCreated {
	t.Helper()
	body := client.ApiKeyCreate{Name: name}
	for _, sc := range scopes {
		body.Scopes = append(body.Scopes, client.Scope(sc))
	}
	res, err := c.CreateApiKeyWithResponse(context.Background(), body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create key: %s", res.Body)
	return *res.JSON201
}

func (f *azmFixture) newAgent(t *testing.T) client.Agent {
	t.Helper()
	res, err := f.admin.CreateAgentWithResponse(context.Background(), client.AgentCreate{Name: fmt.Sprintf("azm-agent-%d", f.next())})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create agent: %s", res.Body)
	return *res.JSON201
}

func (f *azmFixture) newRun(t *testing.T, body client.AgentRunCreate) client.AgentRun {
	t.Helper()
	res, err := f.userC.CreateAgentRunWithResponse(context.Background(), f.agent.Id, nil, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "create run: %s", res.Body)
	return *res.JSON202
}

func (f *azmFixture) getRun(t *testing.T, id int64) client.AgentRun {
	t.Helper()
	res, err := f.userC.GetAgentRunWithResponse(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode(), "get run %d: %s", id, res.Body)
	return *res.JSON200
}

// newWebhook subscribes an inactive endpoint as the admin (nothing is ever sent to it).
func (f *azmFixture) newWebhook(t *testing.T) int64 {
	t.Helper()
	res, err := f.admin.CreateWebhookWithResponse(context.Background(), client.WebhookCreate{Url: "https://203.0.113.10/hook",
		Events: []client.WebhookSubscription{"task.created"}, IsActive: apitest.Ptr(false)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "create webhook: %s", res.Body)
	return res.JSON201.Id
}

// finishedDelivery returns an inactive endpoint and a delivery to it that has ended
// (failed: the worker does not send to inactive endpoints), so that it may be redelivered.
func (f *azmFixture) finishedDelivery(t *testing.T) (hookID, deliveryID int64) {
	t.Helper()
	hookID = f.newWebhook(t)
	res, err := f.admin.SendWebhookTestWithResponse(context.Background(), hookID)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	require.Eventually(t, func() bool {
		got := f.adminGet(t, fmt.Sprintf("/api/v1/webhooks/%d/deliveries?status=failed", hookID))
		return got.Status == http.StatusOK && len(azmItemIDs(t, got.Body)) == 1
	}, 30*time.Second, 20*time.Millisecond, "the test delivery to an inactive endpoint fails")
	return hookID, res.JSON202.Id
}

// adminGet reads a path as the admin and returns its status and body.
func (f *azmFixture) adminGet(t *testing.T, path string) *apitest.Response {
	t.Helper()
	return azmSend(t, f.env, http.MethodGet, path, azmCall{token: f.accounts[azmAdmin].token})
}

func azmRunEnded(s client.AgentRunStatus) bool {
	switch s {
	case client.AgentRunStatusCompleted, client.AgentRunStatusFailed, client.AgentRunStatusCancelled, client.AgentRunStatusIncomplete:
		return true
	}
	return false
}

func azmJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// azmItemIDs decodes the ids of a page's items.
func azmItemIDs(t *testing.T, body []byte) []int64 {
	t.Helper()
	var page struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(body, &page), "page: %s", body)
	ids := make([]int64, len(page.Items))
	for i, it := range page.Items {
		ids[i] = it.ID
	}
	return ids
}

// azmField decodes one string field of a JSON object.
func azmField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "body: %s", body)
	s, _ := m[field].(string)
	return s
}

// azmPath fills the operation's path template with the call's parameters.
func azmPath(t *testing.T, template string, params map[string]int64) string {
	t.Helper()
	path := template
	for name, v := range params {
		placeholder := "{" + name + "}"
		require.Contains(t, template, placeholder, "path %s has no parameter %s", template, name)
		path = strings.ReplaceAll(path, placeholder, strconv.FormatInt(v, 10))
	}
	require.NotContains(t, path, "{", "path parameters of %s left unfilled", template)
	return path
}

// azmSend sends one request through the contract-validating client and reads the answer.
func azmSend(t *testing.T, env *apitest.Env, method, path string, c azmCall) *apitest.Response {
	t.Helper()
	if len(c.query) > 0 {
		path += "?" + c.query.Encode()
	}
	r := apitest.Request{Method: method, Path: path, Token: c.token}
	if c.body != "" {
		r.Body, r.ContentType = c.body, c.contentType
		if r.ContentType == "" {
			r.ContentType = apitest.JSON
		}
	}
	if c.apiKey != "" {
		r.Header = map[string]string{"X-API-Key": c.apiKey}
	}
	return env.Send(t, r)
}

// azmExpected derives the statuses principal p may get from the operation's role.
func azmExpected(role string, op azmOp, p string) ([]int, error) {
	switch role {
	case "public":
		return op.success, nil
	case "user":
		switch p {
		case azmAnonymous:
			return []int{http.StatusUnauthorized}, nil
		case azmUser, azmAdmin:
			return op.success, nil
		}
		switch op.other {
		case azmUnscoped:
			return op.success, nil
		case azmOwned:
			return []int{http.StatusNotFound}, nil
		case azmOwnedInBody:
			return []int{http.StatusUnprocessableEntity}, nil
		}
		return nil, fmt.Errorf("role user but the matrix entry does not declare what `other` gets")
	case "self-or-admin":
		switch p {
		case azmAnonymous:
			return []int{http.StatusUnauthorized}, nil
		case azmOther:
			return []int{http.StatusForbidden}, nil
		}
		return op.success, nil
	case "admin":
		switch p {
		case azmAnonymous:
			return []int{http.StatusUnauthorized}, nil
		case azmUser, azmOther:
			return []int{http.StatusForbidden}, nil
		}
		return op.success, nil
	}
	return nil, fmt.Errorf("unknown x-required-role %q", role)
}

// azmOps is the matrix: one entry per operationId of the contract.
func azmOps() map[string]azmOp {
	ok := []int{http.StatusOK}
	created := []int{http.StatusCreated}
	noContent := []int{http.StatusNoContent}
	public := func(success []int) azmOp {
		return azmOp{success: success, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p)} // a token must not matter on a public operation
		}}
	}
	// Mutations of a user by id (admin only): a fresh subject per case, who is `user`.
	userMutation := func(method string, success []int) azmOp {
		return azmOp{success: success, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			subject := f.newUser(t, "Subject")
			name := fmt.Sprintf("Renamed by %s %d", p, f.next())
			c := azmCall{token: f.subjectToken(p, subject), params: map[string]int64{"user_id": subject.id}}
			if method != http.MethodDelete {
				c.body = azmJSON(t, map[string]any{"name": name})
			}
			c.after = func(t *testing.T, allowed bool, _ *apitest.Response) {
				got := f.adminGet(t, "/api/v1/users/"+strconv.FormatInt(subject.id, 10))
				if method == http.MethodDelete {
					require.Equal(t, allowed, got.Status == http.StatusNotFound, "deleted only when allowed (status %d)", got.Status)
					return
				}
				require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
				require.Equal(t, allowed, azmField(t, got.Body, "name") == name, "renamed only when allowed")
			}
			return c
		}}
	}
	return map[string]azmOp{
		// meta
		"getRoot":        public(ok),
		"getHealth":      public(ok),
		"getReadiness":   public(ok),
		"getOpenAPIYAML": public(ok),
		"getOpenAPIJSON": public(ok),
		// Without DEBUG the documentation UIs are not served: 404 for everyone, never 401/403.
		"getDocs":    public([]int{http.StatusNotFound}),
		"getRedoc":   public([]int{http.StatusNotFound}),
		"getMetrics": public(ok),

		// auth
		"createToken": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			acc := f.login(p)
			form := url.Values{"grant_type": {"password"}, "username": {acc.email}, "password": {acc.password}}
			return azmCall{token: f.token(p), body: form.Encode(), contentType: "application/x-www-form-urlencoded",
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.NotEmpty(t, azmField(t, res.Body, "access_token"))
					}
				}}
		}},
		"refreshToken": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			acc := f.login(p)
			pair := f.env.Login(t, acc.email, acc.password) // a fresh login: refresh tokens work once
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]string{"refresh_token": pair.RefreshToken})}
		}},
		"logout": {success: noContent, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			acc := f.login(p)
			pair := f.env.Login(t, acc.email, acc.password)
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]string{"refresh_token": pair.RefreshToken})}
		}},

		// users
		"createUser": {success: created, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			n := f.next()
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]any{
				"name": "Made by " + p, "email": fmt.Sprintf("azm-new-%s-%d-%d@example.com", p, n, time.Now().UnixNano()),
				"password": "a-long-password-123",
			})}
		}},
		"listUsers": {success: ok, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p)}
		}},
		"listAuditEvents": {success: ok, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p)}
		}},

		// webhooks (administrators only; inactive endpoints, so nothing is ever sent)
		"createWebhook": {success: created, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]any{"url": "https://203.0.113.10/hook",
				"events": []string{"task.created"}, "is_active": false, "description": "made by " + p})}
		}},
		"listWebhooks": {success: ok, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p)}
		}},
		"getWebhook": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": f.newWebhook(t)}}
		}},
		"updateWebhook": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			id := f.newWebhook(t)
			desc := fmt.Sprintf("changed by %s %d", p, f.next())
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": id}, body: azmJSON(t, map[string]any{"description": desc}),
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/webhooks/"+strconv.FormatInt(id, 10))
					require.Equal(t, allowed, azmField(t, got.Body, "description") == desc, "changed only when allowed")
				}}
		}},
		"deleteWebhook": {success: noContent, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			id := f.newWebhook(t)
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": id},
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/webhooks/"+strconv.FormatInt(id, 10))
					require.Equal(t, allowed, got.Status == http.StatusNotFound, "deleted only when allowed")
				}}
		}},
		"rotateWebhookSecret": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": f.newWebhook(t)}}
		}},
		"sendWebhookTest": {success: []int{http.StatusAccepted}, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": f.newWebhook(t)}}
		}},
		"listWebhookDeliveries": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": f.newWebhook(t)}}
		}},
		"redeliverWebhookDelivery": {success: []int{http.StatusAccepted}, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			id, delivery := f.finishedDelivery(t)
			return azmCall{token: f.token(p), params: map[string]int64{"webhook_id": id, "delivery_id": delivery}}
		}},
		// /me operations act on the caller: every authenticated principal succeeds.
		"getCurrentUser": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p)}
		}},
		"updateCurrentUser": {success: ok, other: azmUnscoped, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			tok := f.token(p)
			if p == azmUser || p == azmOther {
				tok = f.newUser(t, "Me").token // a fresh account to change
			}
			name := fmt.Sprintf("Self-renamed %s %d", p, f.next())
			if p == azmAdmin {
				name = "Administrator" // the shared admin: a harmless rename
			}
			return azmCall{token: tok, body: azmJSON(t, map[string]string{"name": name}),
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Equal(t, name, azmField(t, res.Body, "name"))
					}
				}}
		}},
		"getUser": {success: ok, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"user_id": f.accounts[azmUser].id}}
		}},
		"updateUser":  userMutation(http.MethodPatch, ok),
		"replaceUser": userMutation(http.MethodPut, ok),
		"deleteUser":  userMutation(http.MethodDelete, noContent),

		// agents
		"createAgent": {success: created, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]string{"name": fmt.Sprintf("azm-made-by-%s-%d", p, f.next())})}
		}},
		"listAgents": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), query: url.Values{"limit": {"1000"}},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Contains(t, azmItemIDs(t, res.Body), f.agent.Id)
					}
				}}
		}},
		"getAgent": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"agent_id": f.agent.Id}}
		}},
		"updateAgent": {success: ok, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newAgent(t)
			desc := fmt.Sprintf("changed by %s %d", p, f.next())
			return azmCall{token: f.token(p), params: map[string]int64{"agent_id": target.Id},
				body: azmJSON(t, map[string]string{"description": desc}),
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/agents/"+strconv.FormatInt(target.Id, 10))
					require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
					require.Equal(t, allowed, azmField(t, got.Body, "description") == desc, "changed only when allowed")
				}}
		}},
		"deleteAgent": {success: noContent, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newAgent(t)
			return azmCall{token: f.token(p), params: map[string]int64{"agent_id": target.Id},
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/agents/"+strconv.FormatInt(target.Id, 10))
					require.Equal(t, allowed, got.Status == http.StatusNotFound, "deleted only when allowed (status %d)", got.Status)
				}}
		}},

		// agent runs (no LLM is configured: runs fail at once with llm_not_configured,
		// which does not matter for authorization)
		"createAgentRun": {success: []int{http.StatusAccepted}, other: azmOwnedInBody, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"agent_id": f.agent.Id},
				body: azmJSON(t, map[string]any{"input": "matrix run by " + p, "task_id": f.task.Id})}
		}},
		"listAgentRuns": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), query: url.Values{"limit": {"1000"}, "task_id": {strconv.FormatInt(f.task.Id, 10)}},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Equal(t, p != azmOther, slices.Contains(azmItemIDs(t, res.Body), f.run.Id),
							"only the owner and administrators see the run")
					}
				}}
		}},
		"getAgentRun": {success: ok, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"run_id": f.run.Id}}
		}},
		// A fresh run per case; it may already have failed by the time the cancel
		// arrives (409): allowed means anything but 401/403/404.
		"cancelAgentRun": {success: []int{http.StatusOK, http.StatusConflict}, other: azmOwned, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newRun(t, client.AgentRunCreate{Input: "to cancel"})
			return azmCall{token: f.token(p), params: map[string]int64{"run_id": target.Id},
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					if !allowed {
						require.NotEqual(t, client.AgentRunStatusCancelled, f.getRun(t, target.Id).Status, "cancelled although denied")
					}
				}}
		}},
		// The run has ended: whoever may decide on it is told it is not waiting (409).
		"submitAgentRunApprovals": {success: []int{http.StatusConflict}, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"run_id": f.run.Id},
				body: `{"decisions":[{"tool_call_id":"call_1","decision":"approve"}]}`}
		}},
		// The run has ended, so the stream replays its events and ends.
		"streamAgentRunEvents": {success: ok, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"run_id": f.run.Id},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream"), "content type %q", res.Header.Get("Content-Type"))
						require.Contains(t, string(res.Body), "event: run.")
					}
				}}
		}},

		// api keys (own keys; administrators see anyone's; others get 404)
		"createApiKey": {success: created, other: azmUnscoped, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]any{"name": "made by " + p, "scopes": []string{"tasks:read"}}),
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.True(t, strings.HasPrefix(azmField(t, res.Body, "key"), "eak_"))
					}
				}}
		}},
		"listApiKeys": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), query: url.Values{"limit": {"1000"}},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Equal(t, p == azmUser, slices.Contains(azmItemIDs(t, res.Body), f.key.Id), "a list holds the caller's own keys")
					}
				}}
		}},
		"getApiKey": {success: ok, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"key_id": f.key.Id}}
		}},
		"revokeApiKey": {success: noContent, other: azmOwned, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newKey(t, f.userC, "to revoke", "tasks:read")
			return azmCall{token: f.token(p), params: map[string]int64{"key_id": target.Id},
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/api-keys/"+strconv.FormatInt(target.Id, 10))
					require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
					var k client.ApiKey
					require.NoError(t, json.Unmarshal(got.Body, &k))
					require.Equal(t, allowed, !k.RevokedAt.IsNull(), "revoked only when allowed")
				}}
		}},

		// tasks
		"createTask": {success: created, other: azmUnscoped, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), body: azmJSON(t, map[string]string{"title": "Made by " + p})}
		}},
		"listTasks": {success: ok, other: azmUnscoped, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), query: url.Values{"limit": {"1000"}, "created_by": {strconv.FormatInt(f.accounts[azmUser].id, 10)}},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Equal(t, p != azmOther, slices.Contains(azmItemIDs(t, res.Body), f.task.Id),
							"only the owner and administrators see the task")
					}
				}}
		}},
		"getTask": {success: ok, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"task_id": f.task.Id}}
		}},
		"updateTask": {success: ok, other: azmOwned, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newTask(t, "To update")
			title := fmt.Sprintf("Updated by %s %d", p, f.next())
			return azmCall{token: f.token(p), params: map[string]int64{"task_id": target.Id},
				body: azmJSON(t, map[string]string{"title": title}),
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/tasks/"+strconv.FormatInt(target.Id, 10))
					require.Equal(t, http.StatusOK, got.Status, "%s", got.Body)
					require.Equal(t, allowed, azmField(t, got.Body, "title") == title, "changed only when allowed")
				}}
		}},
		"deleteTask": {success: noContent, other: azmOwned, build: func(t *testing.T, f *azmFixture, p string) azmCall {
			target := f.newTask(t, "To delete")
			return azmCall{token: f.token(p), params: map[string]int64{"task_id": target.Id},
				after: func(t *testing.T, allowed bool, _ *apitest.Response) {
					got := f.adminGet(t, "/api/v1/tasks/"+strconv.FormatInt(target.Id, 10))
					require.Equal(t, allowed, got.Status == http.StatusNotFound, "deleted only when allowed (status %d)", got.Status)
				}}
		}},
		"listTaskRuns": {success: ok, other: azmOwned, build: func(_ *testing.T, f *azmFixture, p string) azmCall {
			return azmCall{token: f.token(p), params: map[string]int64{"task_id": f.task.Id},
				after: func(t *testing.T, allowed bool, res *apitest.Response) {
					if allowed {
						require.Contains(t, azmItemIDs(t, res.Body), f.run.Id)
					}
				}}
		}},
	}
}

// azmSpecOp is one operation of the contract.
type azmSpecOp struct {
	id, method, path, role string
}

// TestAuthorizationMatrix sends every operation of the contract as anonymous, user, other
// and admin, and requires the outcome its x-required-role implies. An operation without a
// (known) role, or without a matrix entry, fails the test; so does an entry for an
// operation the contract does not have.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	start := time.Now()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	ops := azmOps()

	var spec []azmSpecOp // the operations the matrix can run
	seen := map[string]bool{}
	total := 0
	paths := doc.Paths.Map()
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		item := paths[path]
		methods := item.Operations()
		for _, method := range slices.Sorted(maps.Keys(methods)) {
			op := methods[method]
			total++
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
				continue
			}
			seen[op.OperationID] = true
			role, _ := op.Extensions["x-required-role"].(string)
			switch {
			case role == "":
				t.Errorf("%s (%s %s) has no x-required-role", op.OperationID, method, path)
				continue
			case !slices.Contains(azmRoles, role):
				t.Errorf("%s (%s %s) has an unknown x-required-role %q (want one of %v)", op.OperationID, method, path, role, azmRoles)
				continue
			}
			entry, ok := ops[op.OperationID]
			if !ok {
				t.Errorf("%s (%s %s, role %s) has no entry in the authorization matrix: add a request builder to azmOps", op.OperationID, method, path, role)
				continue
			}
			for _, p := range azmPrincipals {
				if _, err := azmExpected(role, entry, p); err != nil {
					t.Errorf("%s as %s: %v", op.OperationID, p, err)
				}
			}
			if len(entry.success) == 0 || entry.build == nil {
				t.Errorf("%s: matrix entry declares no success status or no builder", op.OperationID)
				continue
			}
			spec = append(spec, azmSpecOp{id: op.OperationID, method: method, path: path, role: role})
		}
	}
	for id := range ops {
		if !seen[id] {
			t.Errorf("the authorization matrix has an entry for %s, which the contract does not have", id)
		}
	}
	require.NotEmpty(t, spec)

	f := azmSetup(t)
	var cases atomic.Int64
	t.Cleanup(func() {
		t.Logf("authorization matrix: %d operations × %d principals = %d cases (%d run) in %s",
			total, len(azmPrincipals), total*len(azmPrincipals), cases.Load(), time.Since(start).Round(time.Millisecond))
	})
	for _, so := range spec {
		entry := ops[so.id]
		t.Run(so.id, func(t *testing.T) {
			t.Parallel()
			for _, p := range azmPrincipals {
				t.Run(p, func(t *testing.T) {
					t.Parallel()
					cases.Add(1)
					want, err := azmExpected(so.role, entry, p)
					require.NoError(t, err)
					call := entry.build(t, f, p)
					require.Equal(t, p == azmAnonymous, call.token == "", "anonymous, and only anonymous, sends no token")
					res := azmSend(t, f.env, so.method, azmPath(t, so.path, call.params), call)
					require.Contains(t, want, res.Status, "%s %s (%s, role %s) as %s: got %d, want one of %v\nbody: %s",
						so.method, so.path, so.id, so.role, p, res.Status, want, res.Body)
					if so.role == "public" {
						require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.Status, "a public operation")
					}
					if res.Status == http.StatusUnauthorized {
						require.True(t, strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer"),
							"401 needs WWW-Authenticate: Bearer, got %q", res.Header.Get("WWW-Authenticate"))
					}
					if call.after != nil {
						call.after(t, slices.Contains(entry.success, res.Status), res)
					}
				})
			}
		})
	}
}

// azmSetup starts the shared server and makes the principals and the resources user owns.
func azmSetup(t *testing.T) *azmFixture {
	t.Helper()
	env := apitest.Start(t)
	adminTok := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	f := &azmFixture{env: env, admin: env.As(adminTok)}
	me, err := f.admin.GetCurrentUserWithResponse(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
	f.accounts = map[string]azmAccount{
		azmAdmin: {id: me.JSON200.Id, email: apitest.AdminEmail, password: apitest.AdminPassword, token: adminTok},
	}
	f.accounts[azmUser] = f.newUser(t, "Owner")
	f.accounts[azmOther] = f.newUser(t, "Other")
	f.userC = env.As(f.accounts[azmUser].token)

	f.agent = f.newAgent(t)
	f.task = f.newTask(t, "Owner's task")
	f.key = f.newKey(t, f.userC, "owner's key", "tasks:read")
	// user's run on the task, ended (failed for want of an LLM, or cancelled) so that its
	// event stream ends.
	run := f.newRun(t, client.AgentRunCreate{Input: "matrix", TaskId: nullable.NewNullableWithValue(f.task.Id)})
	res, err := f.userC.CancelAgentRunWithResponse(context.Background(), run.Id)
	require.NoError(t, err)
	require.Contains(t, []int{http.StatusOK, http.StatusConflict}, res.StatusCode(), "%s", res.Body)
	require.Eventually(t, func() bool {
		res, err := f.userC.GetAgentRunWithResponse(context.Background(), run.Id)
		return err == nil && res.JSON200 != nil && azmRunEnded(res.JSON200.Status)
	}, 30*time.Second, 50*time.Millisecond, "run %d did not end", run.Id)
	f.run = f.getRun(t, run.Id)
	return f
}

// TestAuthorizationMatrixScopes walks every operation that declares x-required-scope with
// the administrator's API keys (so that roles never stand in the way): a key with exactly
// that scope passes the scope check, a key without it gets 403 insufficient-scope naming
// the scope. Key management refuses keys whatever their scopes (403 forbidden).
func TestAuthorizationMatrixScopes(t *testing.T) {
	t.Parallel()
	doc, err := httpapi.LoadContract()
	require.NoError(t, err)
	ops := azmOps()
	f := azmSetup(t)
	keys := map[string]string{} // scope → a key holding only that scope
	for _, sc := range []string{"users:read", "users:write", "tasks:read", "tasks:write", "agents:read", "agents:write",
		"runs:read", "runs:write", "webhooks:read", "webhooks:write", "audit:read"} {
		keys[sc] = f.newKey(t, f.admin, "only "+sc, sc).Key
	}
	walked := 0
	paths := doc.Paths.Map()
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		methods := paths[path].Operations()
		for _, method := range slices.Sorted(maps.Keys(methods)) {
			op := methods[method]
			scope, _ := op.Extensions["x-required-scope"].(string)
			secured := op.Security == nil || len(*op.Security) > 0
			if !secured || !strings.HasPrefix(path, "/api/v1/") {
				require.Empty(t, scope, "%s: an operation open to anonymous callers declares no scope", op.OperationID)
				continue
			}
			require.Contains(t, keys, scope, "%s: a secured /api/v1 operation declares a known x-required-scope", op.OperationID)
			acceptsKey := op.Security == nil // the global requirement accepts keys; overrides (key management) do not
			if op.Security != nil {
				for _, req := range *op.Security {
					if _, ok := req["ApiKeyAuth"]; ok {
						acceptsKey = true
					}
				}
			}
			entry, ok := ops[op.OperationID]
			require.True(t, ok, "%s has a matrix entry", op.OperationID)
			walked++
			other := "audit:read"
			if scope == other {
				other = "tasks:read"
			}
			t.Run(op.OperationID, func(t *testing.T) {
				t.Parallel()
				t.Run("with "+scope, func(t *testing.T) {
					t.Parallel()
					call := entry.build(t, f, azmAdmin)
					call.token, call.apiKey = "", keys[scope]
					res := azmSend(t, f.env, method, azmPath(t, path, call.params), call)
					if acceptsKey {
						require.Contains(t, entry.success, res.Status, "%s %s with a %s key: %s", method, path, scope, res.Body)
					} else {
						require.Equal(t, http.StatusForbidden, res.Status, "%s", res.Body)
						require.Equal(t, "/problems/forbidden", azmField(t, res.Body, "type"), "key management needs a password session")
					}
					if call.after != nil {
						call.after(t, slices.Contains(entry.success, res.Status), res)
					}
				})
				t.Run("without", func(t *testing.T) {
					t.Parallel()
					call := entry.build(t, f, azmAdmin)
					call.token, call.apiKey = "", keys[other]
					res := azmSend(t, f.env, method, azmPath(t, path, call.params), call)
					require.Equal(t, http.StatusForbidden, res.Status, "%s %s with a %s key: %s", method, path, other, res.Body)
					require.Equal(t, "/problems/insufficient-scope", azmField(t, res.Body, "type"))
					require.Contains(t, azmField(t, res.Body, "detail"), scope)
					if call.after != nil {
						call.after(t, false, res)
					}
				})
			})
		}
	}
	require.Positive(t, walked)
}
