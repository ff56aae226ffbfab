package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/client"
	"enterprise-automation/internal/apitest"
)

// ---------------------------------------------------------------------------------------
// SQL metacharacters and Unicode round-trip
// ---------------------------------------------------------------------------------------

// secNasty are strings that break naive SQL, LIKE patterns, JSON or text handling. None
// has letters whose case PostgreSQL might fold differently from Go (only ASCII letters
// have a case here), none starts or ends with white space (names and titles are trimmed)
// and none has a NUL (PostgreSQL text cannot hold it; that is a 422 elsewhere).
var secNasty = []string{
	"'; DROP TABLE tasks; --",
	`%_\`,
	`" OR 1=1 --`,
	"$1",
	"$$dollar quoted$$ and $tag$x$tag$",
	"'' doubled '' quotes",
	`back\slash \' \" \\ \n literal`,
	"/* comment */ SELECT 1; --",
	`E'\x41' U&'\0041'`,
	":name ?param @var {{tmpl}} ${env}",
	"100% of under_score",
	"emoji 🚀🔥 and skin tone 👍🏽",
	"combining e\u0301 a\u0300 n\u0303",
	"precomposed é à ñ",
	"rtl שלום עולם مرحبا \u202eevil\u202c end",
	"cjk 漢字 かな カナ 한국어",
	"4-byte 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠜎 𝄞 🀄",
	"zwj 👩\u200d💻 and 👨\u200d👩\u200d👧 family",
	"zero\u200bwidth\ufeffbom",
	"<script>alert('x')</script> \u2028 line \u2029 paragraph & end",
	"tab\there\nnewline\r\nend",
	"NULL null \\N",
}

// secContains is what a case-insensitive substring search (ILIKE with %, _ and \
// escaped) finds for these strings: only ASCII letters have a case in them.
func secContains(hay, needle string) bool {
	return strings.Contains(strings.ToLower(hay), strings.ToLower(needle))
}

func TestSQLMetacharactersAndUnicodeRoundTrip(t *testing.T) {
	t.Parallel()
	env := secStart(t, apitest.WithEnv("WORKER_CONCURRENCY", "0"))
	ctx := context.Background()
	adminToken := env.Login(t, apitest.AdminEmail, apitest.AdminPassword).AccessToken
	admin := env.As(adminToken)
	owner := env.CreateUser(t, "Quoter", false)

	// One task per string: the string is the title, part of the description, a tag, a
	// metadata key and value. Plain decoys would show up in searches where %, _ or \
	// acted as wildcards.
	type want struct {
		title, description string
		tags               []string
		metadata           map[string]any
	}
	var wants []want
	for i, s := range secNasty {
		w := want{
			title:       s,
			description: fmt.Sprintf("row %d: %s (end)", i, s),
			tags:        []string{s},
			metadata: map[string]any{
				"text":   s,
				s:        "the key is the string",
				"list":   []any{s, "plain"},
				"nested": map[string]any{"deeper": s},
			},
		}
		if utf8.RuneCountInString(s) > 50 { // tags are limited to 50 characters
			w.tags = []string{"long"}
		}
		wants = append(wants, w)
	}
	for _, d := range []string{"decoy plain", "abc", "x\\y", "100 pct", "1=1", "e", "a b c", "n"} {
		wants = append(wants, want{title: d, description: "decoy", tags: []string{"decoy-" + d}, metadata: map[string]any{}})
	}
	wants = append(wants, want{title: "wildcard tags", description: "tags that are LIKE and glob metacharacters",
		tags: []string{"%", "_", "*", "\\", "'", "?", "[a-z]"}, metadata: map[string]any{}})
	wants = append(wants, want{title: strings.Repeat("𠜎", 200), description: strings.Repeat("😀", 10000),
		tags: []string{strings.Repeat("𝄞", 50)}, metadata: map[string]any{strings.Repeat("𝄞", 100): strings.Repeat("🀄", 1000)}})

	check := func(t *testing.T, w want, got client.Task) {
		t.Helper()
		require.Equal(t, w.title, got.Title, "title")
		require.Equal(t, w.description, got.Description, "description")
		require.Equal(t, w.tags, got.Tags, "tags")
		require.Equal(t, w.metadata, map[string]any(got.Metadata), "metadata")
	}
	tasks := make([]client.Task, len(wants))
	for i, w := range wants {
		meta := client.TaskMetadata(w.metadata)
		tags := slices.Clone(w.tags)
		created := taskCreate(t, owner.Client, client.TaskCreate{Title: w.title, Description: &w.description, Tags: &tags, Metadata: &meta})
		check(t, w, created)
		tasks[i] = created
	}
	listTasks := func(t *testing.T, query url.Values) client.TaskPage {
		t.Helper()
		query.Set("limit", "1000")
		r := env.Do(t, http.MethodGet, "/api/v1/tasks?"+query.Encode(), owner.Token, "")
		require.Equal(t, http.StatusOK, r.Status, "query %q: %s", query.Encode(), r.Body)
		return secDecode[client.TaskPage](t, r)
	}

	t.Run("tasks_read_back_byte_for_byte", func(t *testing.T) {
		t.Parallel()
		for i, w := range wants {
			check(t, w, taskGet(t, owner.Client, tasks[i].Id))
		}
		page := listTasks(t, url.Values{})
		require.Len(t, page.Items, len(wants))
		byID := map[int64]client.Task{}
		for _, it := range page.Items {
			byID[it.Id] = it
		}
		for i, w := range wants {
			check(t, w, byID[tasks[i].Id])
		}
	})

	t.Run("tasks_survive_an_update_with_the_same_strings", func(t *testing.T) {
		t.Parallel()
		u := env.CreateUser(t, "Updater", false)
		task := taskCreate(t, u.Client, client.TaskCreate{Title: "to be renamed"})
		for _, s := range secNasty {
			tags := client.TaskTags{"t"}
			if utf8.RuneCountInString(s) <= 50 {
				tags = client.TaskTags{s}
			}
			meta := client.TaskMetadata{"v": s}
			got := taskUpdate(t, u.Client, task.Id, client.TaskUpdate{Title: &s, Description: &s, Tags: &tags, Metadata: &meta})
			check(t, want{title: s, description: s, tags: tags, metadata: map[string]any{"v": s}}, got)
			check(t, want{title: s, description: s, tags: tags, metadata: map[string]any{"v": s}}, taskGet(t, u.Client, task.Id))
		}
	})

	t.Run("q_finds_exactly_the_rows_containing_the_literal_string", func(t *testing.T) {
		t.Parallel()
		queries := slices.Clone(secNasty)
		queries = append(queries, "%", "_", `\`, "'", `"`, "$", "--", ";", "\u200d", "\u0301", "e\u0301", "é",
			"🚀", "👩\u200d💻", "漢字", "שלום", "𠜎", "\u202e", "%%", "__", `\\`, "_%", "[a-z]", "*", "?", "1=1", "drop table")
		for _, q := range queries {
			wantIDs := []int64{}
			for i, w := range wants {
				if secContains(w.title, q) || secContains(w.description, q) {
					wantIDs = append(wantIDs, tasks[i].Id)
				}
			}
			page := listTasks(t, url.Values{"q": {q}})
			gotIDs := taskIDs(page)
			slices.Sort(wantIDs)
			require.Equal(t, wantIDs, gotIDs, "q=%q", q)
			require.EqualValues(t, len(wantIDs), page.Total, "q=%q", q)
		}
		// The precomposed and the decomposed é are different strings.
		require.NotEqual(t, taskIDs(listTasks(t, url.Values{"q": {"é"}})), taskIDs(listTasks(t, url.Values{"q": {"e\u0301"}})))
		// And the table the first string wanted to drop is still there, whole.
		require.Len(t, listTasks(t, url.Values{}).Items, len(wants))
	})

	t.Run("tag_matches_exactly_the_literal_tag", func(t *testing.T) {
		t.Parallel()
		tags := []string{"%", "_", "*", `\`, "'", "?", "[a-z]", "decoy-e", "DECOY-E", "decoy", "long"}
		for _, w := range wants {
			tags = append(tags, w.tags...)
		}
		slices.Sort(tags)
		for _, tag := range slices.Compact(tags) {
			wantIDs := []int64{}
			for i, w := range wants {
				if slices.Contains(w.tags, tag) {
					wantIDs = append(wantIDs, tasks[i].Id)
				}
			}
			if utf8.RuneCountInString(tag) > 50 {
				continue
			}
			page := listTasks(t, url.Values{"tag": {tag}})
			slices.Sort(wantIDs)
			require.Equal(t, wantIDs, taskIDs(page), "tag=%q", tag)
		}
	})

	t.Run("user_names_round_trip_and_q_finds_exactly_the_matching_users", func(t *testing.T) {
		t.Parallel()
		created := map[int64]string{}
		for i, s := range secNasty {
			name := s
			if utf8.RuneCountInString(name) > 100 {
				name = string([]rune(name)[:100])
			}
			email := fmt.Sprintf("sec-nasty-%d-%s@example.com", i, secRandom(3))
			res, err := admin.CreateUserWithResponse(ctx, nil, client.UserCreate{Name: name, Email: openapi_types.Email(email), Password: "long-enough-pw"})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "name %q: %s", name, res.Body)
			require.Equal(t, name, res.JSON201.Name)
			created[res.JSON201.Id] = name
		}
		for id, name := range created {
			res, err := admin.GetUserWithResponse(ctx, id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
			require.Equal(t, name, res.JSON200.Name, "user %d", id)
		}
		listUsers := func(q string) client.UserPage {
			v := url.Values{"limit": {"1000"}}
			if q != "" {
				v.Set("q", q)
			}
			r := env.Do(t, http.MethodGet, "/api/v1/users?"+v.Encode(), adminToken, "")
			require.Equal(t, http.StatusOK, r.Status, "q=%q: %s", q, r.Body)
			return secDecode[client.UserPage](t, r)
		}
		// Other subtests create users concurrently; they are named plainly and their
		// emails have no metacharacters, so they only match plain queries, which are
		// checked against the users listed at the same time.
		all := listUsers("")
		for id, name := range created {
			i := slices.IndexFunc(all.Items, func(u client.User) bool { return u.Id == id })
			require.GreaterOrEqual(t, i, 0, "user %d is listed", id)
			require.Equal(t, name, all.Items[i].Name)
		}
		for _, q := range append(slices.Clone(secNasty), "%", "_", `\`, "'", "\u200d", "é", "e\u0301", "𠜎", "漢字") {
			page := listUsers(q)
			var gotIDs, wantIDs []int64
			for _, u := range page.Items {
				gotIDs = append(gotIDs, u.Id)
				require.True(t, secContains(u.Name, q) || secContains(string(u.Email), q), "q=%q matched %q <%s>", q, u.Name, u.Email)
			}
			for id, name := range created {
				if secContains(name, q) {
					wantIDs = append(wantIDs, id)
				}
			}
			for _, id := range wantIDs {
				require.Contains(t, gotIDs, id, "q=%q misses user %d %q", q, id, created[id])
			}
		}
	})

	t.Run("agent_names_descriptions_and_instructions_round_trip", func(t *testing.T) {
		t.Parallel()
		for i, s := range secNasty {
			name := fmt.Sprintf("a%d %s", i, s)
			if utf8.RuneCountInString(name) > 100 {
				name = string([]rune(name)[:100])
			}
			desc := "description: " + s
			instr := "You are careful.\n" + s + "\n-- end of instructions --"
			res, err := admin.CreateAgentWithResponse(ctx, client.AgentCreate{Name: name, Description: &desc, Instructions: &instr})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "name %q: %s", name, res.Body)
			a := *res.JSON201
			require.Equal(t, name, a.Name)
			got, err := admin.GetAgentWithResponse(ctx, a.Id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, got.StatusCode(), "body: %s", got.Body)
			require.Equal(t, name, got.JSON200.Name)
			require.Equal(t, desc, got.JSON200.Description)
			require.Equal(t, instr, got.JSON200.Instructions)

			// The same strings through an update.
			newInstr := s + "\n" + s
			up, err := admin.UpdateAgentWithResponse(ctx, a.Id, nil, client.AgentUpdate{Instructions: &newInstr, Description: &s})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, up.StatusCode(), "body: %s", up.Body)
			require.Equal(t, newInstr, up.JSON200.Instructions)
			require.Equal(t, s, up.JSON200.Description)
		}
		res, err := admin.ListAgentsWithResponse(ctx, &client.ListAgentsParams{Limit: apitest.Ptr[client.Limit](1000)})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode(), "body: %s", res.Body)
		require.EqualValues(t, len(secNasty), res.JSON200.Total)
	})
}
