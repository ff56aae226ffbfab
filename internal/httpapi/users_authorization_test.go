package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
	"enterprise-automation/internal/httpapi"
)

// ---------------------------------------------------------------------------------------
// Authorization matrix
// ---------------------------------------------------------------------------------------

// usersMatrixOp is one users operation as the matrix exercises it.
type usersMatrixOp struct {
	key      string // "METHOD /path" in Echo syntax, as httpapi.Server.RequiredRoles names it
	targeted bool   // acts on /users/{user_id}
	success  int
	// call performs the operation; marker makes names and emails it writes recognisable.
	call func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error)
	// effect checks what the call did (ok: it succeeded) to the user whose id is given.
	effect func(t *testing.T, f *usersFixture, whose int64, marker string, ok bool, body []byte)
}

func usersRenamed(marker string) string { return "Renamed " + marker }

func usersMatrixOps() []usersMatrixOp {
	requireName := func(t *testing.T, f *usersFixture, whose int64, marker string, ok bool, body []byte) {
		t.Helper()
		if whose == 0 {
			return
		}
		status, u, _ := usersGet(t, f, whose)
		require.Equal(t, http.StatusOK, status)
		if ok {
			require.Equal(t, usersRenamed(marker), u.Name, "the update did not happen")
			var got client.User
			require.NoError(t, json.Unmarshal(body, &got))
			require.Equal(t, u, got)
		} else {
			require.NotEqual(t, usersRenamed(marker), u.Name, "a refused update changed the user")
		}
	}
	requireRead := func(t *testing.T, _ *usersFixture, whose int64, _ string, ok bool, body []byte) {
		t.Helper()
		if !ok {
			return
		}
		var got client.User
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, whose, got.Id)
	}
	return []usersMatrixOp{
		{
			key: "POST /api/v1/users", success: http.StatusCreated,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, marker string) (*http.Response, []byte, error) {
				r, err := c.CreateUserWithResponse(ctx, nil, client.UserCreate{
					Name: usersRenamed(marker), Email: openapi_types.Email(marker + "@example.com"), Password: usersPassword,
				})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, f *usersFixture, _ int64, marker string, ok bool, _ []byte) {
				t.Helper()
				want := int64(0)
				if ok {
					want = 1
				}
				require.Equal(t, want, usersTotal(t, f, apitest.Ptr(marker)), "users created")
			},
		},
		{
			key: "GET /api/v1/users", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, _ string) (*http.Response, []byte, error) {
				r, err := c.ListUsersWithResponse(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, _ *usersFixture, _ int64, _ string, ok bool, body []byte) {
				t.Helper()
				if ok {
					var p client.UserPage
					require.NoError(t, json.Unmarshal(body, &p))
					require.NotEmpty(t, p.Items)
				}
			},
		},
		{
			key: "GET /api/v1/users/me", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, _ string) (*http.Response, []byte, error) {
				r, err := c.GetCurrentUserWithResponse(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireRead,
		},
		{
			key: "PATCH /api/v1/users/me", success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, _ int64, marker string) (*http.Response, []byte, error) {
				r, err := c.UpdateCurrentUserWithResponse(ctx, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "GET /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, _ string) (*http.Response, []byte, error) {
				r, err := c.GetUserWithResponse(ctx, target, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireRead,
		},
		{
			key: "PATCH /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error) {
				r, err := c.UpdateUserWithResponse(ctx, target, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "PUT /api/v1/users/:user_id", targeted: true, success: http.StatusOK,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, marker string) (*http.Response, []byte, error) {
				r, err := c.ReplaceUserWithResponse(ctx, target, nil, client.UserUpdate{Name: apitest.Ptr(usersRenamed(marker))})
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: requireName,
		},
		{
			key: "DELETE /api/v1/users/:user_id", targeted: true, success: http.StatusNoContent,
			call: func(ctx context.Context, c *client.ClientWithResponses, target int64, _ string) (*http.Response, []byte, error) {
				r, err := c.DeleteUserWithResponse(ctx, target, nil)
				if err != nil {
					return nil, nil, err
				}
				return r.HTTPResponse, r.Body, nil
			},
			effect: func(t *testing.T, f *usersFixture, whose int64, _ string, ok bool, _ []byte) {
				t.Helper()
				status, _, _ := usersGet(t, f, whose)
				if ok {
					require.Equal(t, http.StatusNotFound, status, "the delete did not happen")
				} else {
					require.Equal(t, http.StatusOK, status, "a refused delete removed the user")
				}
			},
		},
	}
}

type usersActor string

const (
	usersAnonymous    usersActor = "anonymous"
	usersBadToken     usersActor = "invalid token"
	usersSelf         usersActor = "non-admin on self"
	usersOther        usersActor = "non-admin on another user"
	usersAdminOnOther usersActor = "admin"
)

// usersExpectedStatus derives the expected status from the operation's declared
// x-required-role.
func usersExpectedStatus(t *testing.T, role string, a usersActor, success int) int {
	t.Helper()
	switch a {
	case usersAnonymous, usersBadToken:
		return http.StatusUnauthorized
	case usersAdminOnOther:
		return success
	}
	switch role {
	case "admin":
		return http.StatusForbidden
	case "user":
		return success
	case "self-or-admin":
		if a == usersSelf {
			return success
		}
		return http.StatusForbidden
	}
	t.Fatalf("unknown x-required-role %q", role)
	return 0
}

func TestUsersAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	srv, err := httpapi.New(httpapi.Options{})
	require.NoError(t, err)
	roles := srv.RequiredRoles()
	ops := usersMatrixOps()

	// Every users operation of the contract is in the matrix, with a declared role.
	covered := map[string]bool{}
	for _, op := range ops {
		covered[op.key] = true
		require.NotEmpty(t, roles[op.key], "operation %s has no x-required-role", op.key)
	}
	for key := range roles {
		if strings.Contains(key, " /api/v1/users") {
			require.True(t, covered[key], "users operation %s is missing from the authorization matrix", key)
		}
	}

	f := usersStart(t)
	for _, op := range ops {
		actors := []usersActor{usersAnonymous, usersBadToken, usersSelf, usersAdminOnOther}
		if op.targeted {
			actors = append(actors, usersOther)
		}
		for _, a := range actors {
			role := roles[op.key]
			t.Run(fmt.Sprintf("%s by %s", op.key, a), func(t *testing.T) {
				t.Parallel()
				marker := fmt.Sprintf("matrix-%d-x", usersSeq.Add(1))
				var (
					c      *client.ClientWithResponses
					target int64 // the {user_id}
					whose  int64 // the user the operation acts on
				)
				switch a {
				case usersAnonymous, usersBadToken:
					c = f.env.Client
					if a == usersBadToken {
						c = f.env.As("not-a-valid-token")
					}
					if op.targeted {
						target = usersNew(t, f, "Target", false).Id
						whose = target
					}
				case usersSelf:
					u := f.env.CreateUser(t, "Subject", false)
					c, target, whose = u.Client, u.Id, u.Id
				case usersOther:
					u := f.env.CreateUser(t, "Subject", false)
					c = u.Client
					target = usersNew(t, f, "Target", false).Id
					whose = target
				case usersAdminOnOther:
					c = f.admin
					whose = f.adminID
					if op.targeted {
						target = usersNew(t, f, "Target", false).Id
						whose = target
					}
				}
				want := usersExpectedStatus(t, role, a, op.success)

				res, body, err := op.call(t.Context(), c, target, marker)
				require.NoError(t, err)
				require.Equal(t, want, res.StatusCode, "%s by %s (role %s): %s", op.key, a, role, body)
				switch want {
				case http.StatusUnauthorized:
					require.True(t, strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer"),
						"401 needs WWW-Authenticate: Bearer, got %q", res.Header.Get("WWW-Authenticate"))
					apitest.RequireProblem(t, apitest.ResponseOf(res, body), want, "unauthorized")
				case http.StatusForbidden:
					apitest.RequireProblem(t, apitest.ResponseOf(res, body), want, "forbidden")
				}
				op.effect(t, f, whose, marker, want == op.success, body)
			})
		}
	}
}

// ---------------------------------------------------------------------------------------
// 2b. Who may set is_admin / is_active
// ---------------------------------------------------------------------------------------

func TestUsersPrivilegeRules(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("a non-admin setting is_admin or is_active on themselves gets 403 and nothing changes", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Climber", false)
		before := usersSnap(t, f, u.Id)
		for _, body := range []client.UserUpdate{
			{IsAdmin: apitest.Ptr(true)},
			{IsAdmin: apitest.Ptr(false)},
			{IsActive: apitest.Ptr(false)},
			{IsActive: apitest.Ptr(true)},
			{Name: apitest.Ptr("Sneaky"), IsAdmin: apitest.Ptr(true)},
		} {
			res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, res, http.StatusForbidden, "forbidden")
			usersRequireUnchanged(t, f, before)
		}
		// Still not an administrator.
		l, err := u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode())
	})

	t.Run("an admin cannot demote or deactivate themselves (409) by any route", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "Root", true)
		before := usersSnap(t, f, root.Id)
		demote := client.UserUpdate{IsAdmin: apitest.Ptr(false)}
		deactivate := client.UserUpdate{IsActive: apitest.Ptr(false)}
		for _, body := range []client.UserUpdate{demote, deactivate} {
			r1, err := root.Client.UpdateCurrentUserWithResponse(t.Context(), nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r1, http.StatusConflict, "conflict")
			r2, err := root.Client.UpdateUserWithResponse(t.Context(), root.Id, nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r2, http.StatusConflict, "conflict")
			r3, err := root.Client.ReplaceUserWithResponse(t.Context(), root.Id, nil, body)
			require.NoError(t, err)
			apitest.RequireProblem(t, r3, http.StatusConflict, "conflict")
			usersRequireUnchanged(t, f, before)
		}
		l, err := root.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, l.StatusCode(), "the admin must still be an active admin")
	})

	t.Run("an admin promotes a user, who then has admin rights, and demotes them again", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Promoted", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.True(t, res.JSON200.IsAdmin)
		l, err := u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, l.StatusCode(), "a promoted user's token carries admin rights")

		res, err = f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsAdmin: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.False(t, res.JSON200.IsAdmin)
		l, err = u.Client.ListUsersWithResponse(t.Context(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, l.StatusCode(), "a demoted user loses admin rights at once")
	})

	t.Run("an admin deactivates a user, whose token stops working until reactivated", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Sleeper", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(false)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.False(t, res.JSON200.IsActive)
		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, me, http.StatusUnauthorized, "unauthorized")

		res, err = f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{IsActive: apitest.Ptr(true)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.True(t, res.JSON200.IsActive)
		f.env.Login(t, string(u.Email), u.Password)
	})
}
