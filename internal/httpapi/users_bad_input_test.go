package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

type usersBadCase struct {
	name        string
	contentType string
	body        []byte
	status      int
	typ         string
	fields      []string // body fields that errors must name
	probe       string   // for creates: a q that would find the user had one been created
}

func usersJSON(s string) []byte { return []byte(s) }

// usersBadBodies are invalid bodies for the operations taking a UserCreate (create) or a
// UserUpdate. Every create body carries its own email, so that a wrongly accepted one can
// be found (probe) without depending on the other cases.
func usersBadBodies(create bool) []usersBadCase {
	const ct = "application/json"
	// body returns a valid body with field set to the raw JSON value (or removed when
	// value is ""), and the email it carries.
	body := func(field, value, extra string) ([]byte, string) {
		if !create {
			if field == "" {
				return usersJSON(`{"name":"Valid Name"` + extra + `}`), ""
			}
			return usersJSON(`{"` + field + `":` + value + extra + `}`), ""
		}
		email := usersEmail("bad-input")
		m := map[string]json.RawMessage{
			"name":     json.RawMessage(`"Valid Name"`),
			"email":    json.RawMessage(strconv.Quote(email)),
			"password": json.RawMessage(`"long-enough-pw"`),
		}
		if field != "" {
			if value == "" {
				delete(m, field)
			} else {
				m[field] = json.RawMessage(value)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		if extra != "" {
			b = append(b[:len(b)-1], []byte(extra+"}")...)
		}
		if field == "email" && value != "" {
			var s string
			if json.Unmarshal([]byte(value), &s) == nil {
				email = s
			}
		}
		return b, email
	}
	bad := func(name, field, value, extra string, status int, typ string, fields ...string) usersBadCase { //nolint:unparam // each case states its status
		b, probe := body(field, value, extra)
		return usersBadCase{name: name, contentType: ct, body: b, status: status, typ: typ, fields: fields, probe: probe}
	}
	withCT := func(name, contentType string, b []byte, probe string, status int, typ string) usersBadCase {
		return usersBadCase{name: name, contentType: contentType, body: b, status: status, typ: typ, probe: probe}
	}

	validBody, validEmail := body("", "", "")
	garbage, garbageEmail := body("", "", "")
	garbage = append(garbage, []byte(` {"is_admin":true}`)...)
	huge := append(append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 2<<20)...), []byte(`"}`)...)
	wrongTypes, wrongTypesEmail := body("name", `123`, `,"is_admin":"yes"`)
	if !create {
		wrongTypes = usersJSON(`{"name":123,"is_admin":"yes"}`)
	}
	formEmail := usersEmail("bad-form")

	cases := []usersBadCase{
		withCT("truncated JSON", ct, usersJSON(`{"name":`), "", 400, "malformed-request"),
		withCT("not JSON at all", ct, usersJSON(`name=Ada`), "", 400, "malformed-request"),
		withCT("a JSON object followed by more data", ct, garbage, garbageEmail, 400, "malformed-request"),
		withCT("an array instead of an object", ct, usersJSON(`[]`), "", 422, "validation"),
		withCT("a string instead of an object", ct, usersJSON(`"Ada"`), "", 422, "validation"),
		{name: "wrong types (name 123, is_admin \"yes\")", contentType: ct, body: wrongTypes, status: 422, typ: "validation",
			fields: []string{"name", "is_admin"}, probe: wrongTypesEmail},
		bad("an unknown field", "", "", `,"nickname":"Addie"`, 422, "validation", "nickname"),
		bad("a name of 101 characters", "name", strconv.Quote(strings.Repeat("n", 101)), "", 422, "validation", "name"),
		bad("an empty name", "name", `""`, "", 422, "validation", "name"),
		bad("a blank name", "name", `"   "`, "", 422, "validation", "name"),
		bad("a name containing a NUL character", "name", `"Ada\u0000Lovelace"`, "", 422, "validation", "name"),
		bad("an email without @", "email", `"not-an-email"`, "", 422, "validation", "email"),
		bad("an email without a dot in the domain", "email", `"a@b"`, "", 422, "validation", "email"),
		bad("an email with a display name", "email", `"Ada <ada-display@example.com>"`, "", 422, "validation", "email"),
		bad("an email of 255 characters", "email", strconv.Quote(strings.Repeat("a", 243)+"@example.com"), "", 422, "validation", "email"),
		bad("a password of 7 characters", "password", `"1234567"`, "", 422, "validation", "password"),
		bad("a password of 129 characters", "password", strconv.Quote(strings.Repeat("p", 129)), "", 422, "validation", "password"),
		bad("a null name", "name", `null`, "", 422, "validation", "name"),
		bad("a null email", "email", `null`, "", 422, "validation", "email"),
		bad("a null is_admin", "is_admin", `null`, "", 422, "validation", "is_admin"),
		withCT("no body", ct, nil, "", 422, "validation"),
		withCT("a body of 2 MiB", ct, huge, "", 413, "payload-too-large"),
		withCT("a text/plain body", "text/plain", validBody, validEmail, 415, "unsupported-media-type"),
		withCT("a form-encoded body", "application/x-www-form-urlencoded",
			usersJSON("name=Ada&email="+url.QueryEscape(formEmail)+"&password=long-enough-pw"), formEmail, 415, "unsupported-media-type"),
		withCT("a body without content type", "", validBody, validEmail, 415, "unsupported-media-type"),
	}
	if create {
		cases = append(cases,
			withCT("an empty object (every required field missing)", ct, usersJSON(`{}`), "", 422, "validation"),
			bad("a missing password", "password", "", "", 422, "validation", "password"),
			bad("a missing email", "email", "", "", 422, "validation", "email"),
			bad("a missing name", "name", "", "", 422, "validation", "name"),
		)
		cases[len(cases)-4].fields = []string{"name", "email", "password"}
	} else {
		cases = append(cases,
			bad("a null password", "password", `null`, "", 422, "validation", "password"),
			bad("a null is_active", "is_active", `null`, "", 422, "validation", "is_active"),
			withCT("an empty current_password", ct, usersJSON(`{"password":"long-enough-pw","current_password":""}`), "", 422, "validation"),
		)
		cases[len(cases)-1].fields = []string{"current_password"}
	}
	return cases
}

func TestUsersRejectBadInput(t *testing.T) {
	t.Parallel()
	f := usersStart(t)
	keeper := usersNew(t, f, "Keeper", false)
	keeperPath := "/api/v1/users/" + strconv.FormatInt(keeper.Id, 10)

	// Creates: nothing may be created, and no existing user may change.
	for _, c := range usersBadBodies(true) {
		t.Run("createUser rejects "+c.name, func(t *testing.T) {
			t.Parallel()
			before := usersSnap(t, f, keeper.Id)
			r := usersDo(t, f.env, apitest.Request{Method: http.MethodPost, Path: "/api/v1/users", Token: f.adminToken, ContentType: c.contentType, Body: c.body})
			p := apitest.RequireProblem(t, r, c.status, c.typ)
			apitest.RequireExactFieldErrors(t, p, "body", c.fields...)
			if c.status == http.StatusUnprocessableEntity {
				require.NotEmpty(t, p.Errors, "a 422 lists the bad fields")
			}
			if probe := c.probe; probe != "" {
				if len(probe) > 200 { // q is limited to 200 characters
					probe = probe[len(probe)-200:]
				}
				require.Zero(t, usersTotal(t, f, &probe), "a user was created anyway")
			}
			usersRequireUnchanged(t, f, before)
		})
	}

	// Updates: each case has its own victim, which must stay exactly as it was.
	updates := []struct {
		op, method string
		self       bool // the victim acts on itself through /users/me
	}{
		{"updateCurrentUser", http.MethodPatch, true},
		{"updateUser", http.MethodPatch, false},
		{"replaceUser", http.MethodPut, false},
	}
	for _, op := range updates {
		for _, c := range usersBadBodies(false) {
			t.Run(op.op+" rejects "+c.name, func(t *testing.T) {
				t.Parallel()
				var victim int64
				path, token := "", f.adminToken
				if op.self {
					u := f.env.CreateUser(t, "Victim", false)
					victim, path, token = u.Id, "/api/v1/users/me", u.Token
				} else {
					victim = usersNew(t, f, "Victim", false).Id
					path = "/api/v1/users/" + strconv.FormatInt(victim, 10)
				}
				before := usersSnap(t, f, victim)
				r := usersDo(t, f.env, apitest.Request{Method: op.method, Path: path, Token: token, ContentType: c.contentType, Body: c.body})
				p := apitest.RequireProblem(t, r, c.status, c.typ)
				apitest.RequireExactFieldErrors(t, p, "body", c.fields...)
				if c.status == http.StatusUnprocessableEntity {
					require.NotEmpty(t, p.Errors, "a 422 lists the bad fields")
				}
				usersRequireUnchanged(t, f, before)
			})
		}
	}

	t.Run("listUsers rejects bad query parameters with 422 naming each", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			query  string
			fields []string
		}{
			{"skip=-1", []string{"skip"}},
			{"skip=abc", []string{"skip"}},
			{"skip=1.5", []string{"skip"}},
			{"skip=1000000001", []string{"skip"}},
			{"limit=0", []string{"limit"}},
			{"limit=-5", []string{"limit"}},
			{"limit=1001", []string{"limit"}},
			{"limit=abc", []string{"limit"}},
			{"limit=99999999999", []string{"limit"}},
			{"skip=-1&limit=0", []string{"skip", "limit"}},
			{"is_active=maybe", []string{"is_active"}},
			{"is_admin=2", []string{"is_admin"}},
			{"q=", []string{"q"}},
			{"q=" + strings.Repeat("x", 201), []string{"q"}},
		} {
			r := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users?" + c.query, Token: f.adminToken})
			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "query", c.fields...)
		}
	})

	t.Run("listUsers rejects a malformed query string with 400", func(t *testing.T) {
		t.Parallel()
		r := usersDo(t, f.env, apitest.Request{Method: http.MethodGet, Path: "/api/v1/users?limit=%zz", Token: f.adminToken})
		apitest.RequireProblem(t, r, http.StatusBadRequest, "malformed-request")
	})

	t.Run("operations on /users/{user_id} reject a bad id with 422 naming the path parameter", func(t *testing.T) {
		t.Parallel()
		before := usersSnap(t, f, keeper.Id)
		for _, id := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
			for _, m := range []struct {
				method string
				body   []byte
			}{
				{http.MethodGet, nil},
				{http.MethodPatch, usersJSON(`{"name":"Bad Id"}`)},
				{http.MethodPut, usersJSON(`{"name":"Bad Id"}`)},
				{http.MethodDelete, nil},
			} {
				ct := ""
				if m.body != nil {
					ct = "application/json"
				}
				r := usersDo(t, f.env, apitest.Request{Method: m.method, Path: "/api/v1/users/" + id, Token: f.adminToken, ContentType: ct, Body: m.body})
				p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
				apitest.RequireExactFieldErrors(t, p, "path", "user_id")
			}
		}
		require.Zero(t, usersTotal(t, f, apitest.Ptr("Bad Id")))
		usersRequireUnchanged(t, f, before)
	})

	t.Run("conditional headers longer than 200 characters are 422 naming the header", func(t *testing.T) {
		t.Parallel()
		u := f.env.CreateUser(t, "Headed", false)
		victim := usersNew(t, f, "Victim", false)
		victimPath := "/api/v1/users/" + strconv.FormatInt(victim.Id, 10)
		beforeSelf, beforeVictim := usersSnap(t, f, u.Id), usersSnap(t, f, victim.Id)
		long := `"` + strings.Repeat("9", 200) + `"`
		for _, c := range []struct {
			method, path, header, token string
			body                        []byte
		}{
			{http.MethodGet, keeperPath, "If-None-Match", f.adminToken, nil},
			{http.MethodGet, "/api/v1/users/me", "If-None-Match", u.Token, nil},
			{http.MethodPatch, victimPath, "If-Match", f.adminToken, usersJSON(`{"name":"Header"}`)},
			{http.MethodPut, victimPath, "If-Match", f.adminToken, usersJSON(`{"name":"Header"}`)},
			{http.MethodPatch, "/api/v1/users/me", "If-Match", u.Token, usersJSON(`{"name":"Header"}`)},
			{http.MethodDelete, victimPath, "If-Match", f.adminToken, nil},
		} {
			ct := ""
			if c.body != nil {
				ct = "application/json"
			}
			r := usersDo(t, f.env, apitest.Request{Method: c.method, Path: c.path, Token: c.token, ContentType: ct, Body: c.body,
				Header: map[string]string{c.header: long}})
			p := apitest.RequireProblem(t, r, http.StatusUnprocessableEntity, "validation")
			apitest.RequireExactFieldErrors(t, p, "header", c.header)
		}
		usersRequireUnchanged(t, f, beforeSelf)
		usersRequireUnchanged(t, f, beforeVictim)
	})
}
