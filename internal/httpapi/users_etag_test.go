package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// ETags
// ---------------------------------------------------------------------------------------

func TestUsersETags(t *testing.T) {
	t.Parallel()
	f := usersStart(t)

	t.Run("GET carries the ETag and If-None-Match with it answers 304 without a body", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Cached", false)
		res, err := f.admin.GetUserWithResponse(t.Context(), u.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		tag := res.HTTPResponse.Header.Get("ETag")
		require.Equal(t, `"1"`, tag)

		for _, inm := range []string{tag, `W/"1"`, `"9", "1"`, "*"} {
			nm, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(inm)})
			require.NoError(t, err)
			require.Equal(t, http.StatusNotModified, nm.StatusCode(), "If-None-Match: %s", inm)
			require.Empty(t, nm.Body)
			require.Equal(t, tag, nm.HTTPResponse.Header.Get("ETag"))
		}
		other, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(`"2"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, other.StatusCode())

		// The same on /me.
		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), &client.GetCurrentUserParams{IfNoneMatch: apitest.Ptr(tag)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotModified, me.StatusCode())
		require.Empty(t, me.Body)
		require.Equal(t, tag, me.HTTPResponse.Header.Get("ETag"))
	})

	t.Run("an update changes the ETag and the old one no longer answers 304", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Changing", false)
		up, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("Changed")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		newTag := up.HTTPResponse.Header.Get("ETag")
		require.NotEqual(t, `"1"`, newTag)

		res, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(`"1"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		require.Equal(t, "Changed", res.JSON200.Name)
		require.Equal(t, newTag, res.HTTPResponse.Header.Get("ETag"))

		me, err := u.Client.GetCurrentUserWithResponse(t.Context(), &client.GetCurrentUserParams{IfNoneMatch: apitest.Ptr(`"1"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode())
		require.Equal(t, newTag, me.HTTPResponse.Header.Get("ETag"))

		nm, err := f.admin.GetUserWithResponse(t.Context(), u.Id, &client.GetUserParams{IfNoneMatch: apitest.Ptr(newTag)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNotModified, nm.StatusCode())
	})

	t.Run("PATCH, PUT and DELETE with a stale or weak If-Match get 412 and change nothing", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Contended", false)
		up, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, nil, client.UserUpdate{Name: apitest.Ptr("Version Two")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, up.StatusCode())
		require.Equal(t, `"2"`, up.HTTPResponse.Header.Get("ETag"))
		before := usersSnap(t, f, u.Id)

		for _, stale := range []string{`"1"`, `W/"2"`, `"3"`} {
			p, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, p, http.StatusPreconditionFailed, "precondition-failed")
			require.Empty(t, p.HTTPResponse.Header.Get("ETag"))

			r, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, r, http.StatusPreconditionFailed, "precondition-failed")

			me, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), &client.UpdateCurrentUserParams{IfMatch: apitest.Ptr(stale)},
				client.UserUpdate{Name: apitest.Ptr("Lost Update")})
			require.NoError(t, err)
			apitest.RequireProblem(t, me, http.StatusPreconditionFailed, "precondition-failed")

			d, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr(stale)})
			require.NoError(t, err)
			apitest.RequireProblem(t, d, http.StatusPreconditionFailed, "precondition-failed")

			usersRequireUnchanged(t, f, before)
		}
	})

	t.Run("PATCH, PUT and DELETE with the current ETag or * succeed", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Agreed", false)

		p, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(`"1"`)},
			client.UserUpdate{Name: apitest.Ptr("Two")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, p.StatusCode(), "%s", p.Body)
		require.Equal(t, `"2"`, p.HTTPResponse.Header.Get("ETag"))

		r, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr(`"2"`)},
			client.UserUpdate{Name: apitest.Ptr("Three")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode(), "%s", r.Body)
		require.Equal(t, `"3"`, r.HTTPResponse.Header.Get("ETag"))

		me, err := u.Client.UpdateCurrentUserWithResponse(t.Context(), &client.UpdateCurrentUserParams{IfMatch: apitest.Ptr(`"3"`)},
			client.UserUpdate{Name: apitest.Ptr("Four")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode(), "%s", me.Body)
		require.Equal(t, `"4"`, me.HTTPResponse.Header.Get("ETag"))

		star, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr("*")},
			client.UserUpdate{Name: apitest.Ptr("Five")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, star.StatusCode(), "%s", star.Body)
		require.Equal(t, "Five", star.JSON200.Name)

		starPut, err := f.admin.ReplaceUserWithResponse(t.Context(), u.Id, &client.ReplaceUserParams{IfMatch: apitest.Ptr("*")},
			client.UserUpdate{Name: apitest.Ptr("Six")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, starPut.StatusCode(), "%s", starPut.Body)
		require.Equal(t, `"6"`, starPut.HTTPResponse.Header.Get("ETag"))

		list, err := f.admin.UpdateUserWithResponse(t.Context(), u.Id, &client.UpdateUserParams{IfMatch: apitest.Ptr(`"1", "6"`)},
			client.UserUpdate{Name: apitest.Ptr("Seven")})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode(), "If-Match with a list including the current tag: %s", list.Body)

		d, err := f.admin.DeleteUserWithResponse(t.Context(), u.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr(`"7"`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, d.StatusCode(), "%s", d.Body)
		status, _, _ := usersGet(t, f, u.Id)
		require.Equal(t, http.StatusNotFound, status)

		v := usersNew(t, f, "Starred", false)
		d, err = f.admin.DeleteUserWithResponse(t.Context(), v.Id, &client.DeleteUserParams{IfMatch: apitest.Ptr("*")})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, d.StatusCode(), "%s", d.Body)
		status, _, _ = usersGet(t, f, v.Id)
		require.Equal(t, http.StatusNotFound, status)
	})
}
