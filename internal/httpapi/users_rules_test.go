package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

func TestUsersRules(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("creating a user whose email differs only in letter case is a conflict", func(t *testing.T) {
		t.Parallel()
		first := usersCreateWith(t, f, "Bob", "Bob@Example-Case.com", false)
		require.Equal(t, "Bob@Example-Case.com", string(first.Email))
		for _, email := range []string{"bob@example-case.com", "BOB@EXAMPLE-CASE.COM", "Bob@Example-Case.com"} {
			res, err := f.admin.CreateUserWithResponse(t.Context(), nil, client.UserCreate{
				Name: "Other Bob", Email: openapi_types.Email(email), Password: usersPassword,
			})
			require.NoError(t, err)
			apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
		}
		require.EqualValues(t, 1, usersTotal(t, f, apitest.Ptr("example-case.com")))
	})

	t.Run("changing a user's email to another user's in any case is a conflict", func(t *testing.T) {
		t.Parallel()
		a := usersNew(t, f, "Owner", false)
		b := f.env.CreateUser(t, "Taker", false)
		before := usersSnap(t, f, b.Id)
		taken := openapi_types.Email(strings.ToUpper(string(a.Email)))

		r1, err := f.admin.UpdateUserWithResponse(t.Context(), b.Id, nil, client.UserUpdate{Email: &taken})
		require.NoError(t, err)
		apitest.RequireProblem(t, r1, http.StatusConflict, "conflict")
		r2, err := f.admin.ReplaceUserWithResponse(t.Context(), b.Id, nil, client.UserUpdate{Email: &a.Email})
		require.NoError(t, err)
		apitest.RequireProblem(t, r2, http.StatusConflict, "conflict")
		r3, err := b.Client.UpdateCurrentUserWithResponse(t.Context(), nil, client.UserUpdate{
			Email: &taken, CurrentPassword: apitest.Ptr(b.Password),
		})
		require.NoError(t, err)
		apitest.RequireProblem(t, r3, http.StatusConflict, "conflict")
		usersRequireUnchanged(t, f, before)
	})

	t.Run("changing only the letter case of a user's own email is allowed", func(t *testing.T) {
		t.Parallel()
		u := usersNew(t, f, "Caser", false)
		upper := openapi_types.Email(strings.ToUpper(string(u.Email)))
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Email: &upper})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, upper, res.JSON200.Email)
	})

	t.Run("an admin deleting themselves gets 409 and still exists", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "RootSelf", true)
		res, err := root.Client.DeleteUserWithResponse(t.Context(), root.Id, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
		status, _, _ := usersGet(t, f, root.Id)
		require.Equal(t, http.StatusOK, status)

		res, err = f.admin.DeleteUserWithResponse(t.Context(), f.adminID, &client.DeleteUserParams{IfMatch: apitest.Ptr("*")})
		require.NoError(t, err)
		apitest.RequireProblem(t, res, http.StatusConflict, "conflict")
	})

	t.Run("an unknown user id is 404 for get, update, replace and delete", func(t *testing.T) {
		t.Parallel()
		const unknown = int64(987654321)
		g, err := f.admin.GetUserWithResponse(t.Context(), unknown, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, g, http.StatusNotFound, "not-found")
		p, err := f.admin.UpdateUserWithResponse(t.Context(), unknown, nil, client.UserUpdate{Name: apitest.Ptr("Ghost")})
		require.NoError(t, err)
		apitest.RequireProblem(t, p, http.StatusNotFound, "not-found")
		r, err := f.admin.ReplaceUserWithResponse(t.Context(), unknown, nil, client.UserUpdate{Name: apitest.Ptr("Ghost")})
		require.NoError(t, err)
		apitest.RequireProblem(t, r, http.StatusNotFound, "not-found")
		d, err := f.admin.DeleteUserWithResponse(t.Context(), unknown, nil)
		require.NoError(t, err)
		apitest.RequireProblem(t, d, http.StatusNotFound, "not-found")
	})

	t.Run("changing your own password or email needs your correct current_password", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Careful", false)
		before := usersSnap(t, f, u.Id)
		newEmail := openapi_types.Email(usersEmail("careful-new"))
		for _, c := range []struct {
			name string
			body client.UserUpdate
		}{
			{"password without current_password", client.UserUpdate{Password: apitest.Ptr("brand-new-password")}},
			{"email without current_password", client.UserUpdate{Email: &newEmail}},
			{"password with wrong current_password", client.UserUpdate{Password: apitest.Ptr("brand-new-password"), CurrentPassword: apitest.Ptr("wrong-password")}},
			{"email with wrong current_password", client.UserUpdate{Email: &newEmail, CurrentPassword: apitest.Ptr("wrong-password")}},
			{"name and password with wrong current_password", client.UserUpdate{Name: apitest.Ptr("Changed"), Password: apitest.Ptr("brand-new-password"), CurrentPassword: apitest.Ptr("wrong-password")}},
		} {
			res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, c.body)
			require.NoError(t, err, c.name)
			p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "body", "current_password")
			usersRequireUnchanged(t, f, before)
		}
		f.env.Login(t, string(u.Email), u.Password) // the old password still works

		res, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), nil, client.UserUpdate{
			Password: apitest.Ptr("brand-new-password"), Email: &newEmail, CurrentPassword: apitest.Ptr(u.Password),
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.Equal(t, newEmail, res.JSON200.Email)
		usersRequireNoPassword(t, res.Body)

		f.env.Login(t, string(newEmail), "brand-new-password")
		old, err := f.env.Client.CreateTokenWithFormdataBodyWithResponse(t.Context(), client.TokenRequest{
			Username: string(newEmail), Password: u.Password,
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, old.StatusCode(), "the old password must stop working")
	})

	t.Run("an admin changing their own password through /users/{id} also needs current_password", func(t *testing.T) {
		t.Parallel()
		root := f.env.CreateUser(t, "RootPw", true)
		res, err := root.Client.UpdateUserWithResponse(t.Context(), root.Id, nil, client.UserUpdate{Password: apitest.Ptr("another-password")})
		require.NoError(t, err)
		p := apitest.RequireProblem(t, res, http.StatusUnprocessableEntity, "validation")
		apitest.RequireExactFieldErrors(t, p, "body", "current_password")
		f.env.Login(t, string(root.Email), root.Password)
	})

	t.Run("an admin resets another user's password without knowing it", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Forgetful", false)
		res, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Password: apitest.Ptr("reset-by-admin")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		usersRequireNoPassword(t, res.Body)
		f.env.Login(t, string(u.Email), "reset-by-admin")
	})
}
