package task_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
	"enterprise-automation/internal/apperr"
	"enterprise-automation/internal/auth"
	"enterprise-automation/internal/dbtest"
	"enterprise-automation/internal/page"
	"enterprise-automation/internal/store"
	"enterprise-automation/internal/task"
)

// listSeed is the default seed of the property test; TASK_LIST_SEED overrides it to
// replay or explore other cases.
const listSeed uint64 = 20240611

const (
	listTasks = 300
	listCases = 400
)

// listWords make up titles and descriptions: LIKE wildcards, quotes, backslashes, mixed
// case and non-ASCII letters, so that a q used as a pattern, or compared with case, gives
// a different answer than a literal case-insensitive substring.
var listWords = []string{
	"Deploy", "deploy", "DEPLOY", "Über", "über", "ÜBER", "naïve", "NAÏVE", "Ωmega",
	"50%", "100_000", "1000", "a_c", "abc", "a%c", "aXc", "%", "_", "it's", "O'Brien",
	"''", `back\slash`, `C:\temp`, `\`, `"quoted"`, "MiXeD", "mixed",
}

// listQueries are q values chosen to tell literal matching from pattern matching.
var listQueries = []string{
	"%", "_", "'", `\`, "%%", "a_c", "a%c", "50%", "0_0", "it's", "o'b", "O'BRIEN", "''",
	`k\s`, `C:\T`, "über", "ÜBER", "Über", "übe", "naïve", "NAÏ", "ωMEGA", "mixed", "MIXED",
	"deploy ", "nothing-matches", "", " ",
}

var listTags = []string{"backend", "frontend", "ops", "data", "security"}

var listStatuses = []task.Status{
	task.StatusPending, task.StatusInProgress, task.StatusCompleted, task.StatusFailed, task.StatusCancelled,
}

var listPriorities = []task.Priority{
	task.PriorityLow, task.PriorityMedium, task.PriorityHigh, task.PriorityUrgent,
}

// listSorts are the documented orders, plus "" for the default.
var listSorts = []string{"created_at", "-created_at", "updated_at", "-updated_at", "due_at", "-due_at", "priority", "-priority", ""}

var priorityRank = map[task.Priority]int{
	task.PriorityLow: 0, task.PriorityMedium: 1, task.PriorityHigh: 2, task.PriorityUrgent: 3,
}

// listWorld is the seeded data and what the model needs to know about it.
type listWorld struct {
	admin auth.Principal
	users []auth.Principal // not administrators
	rows  []task.Task      // every task, as stored
	dues  []time.Time      // the due dates tasks draw from (so many are equal)
}

func (w *listWorld) userIDs() []int64 {
	ids := []int64{w.admin.UserID}
	for _, u := range w.users {
		ids = append(ids, u.UserID)
	}
	return ids
}

func listRand(t *testing.T) (*rand.Rand, uint64) {
	t.Helper()
	seed := listSeed
	if s := os.Getenv("TASK_LIST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TASK_LIST_SEED")
		seed = v
	}
	t.Logf("seed %d (set TASK_LIST_SEED to replay)", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func ptr[T any](v T) *T { return &v }

func words(rng *rand.Rand, lo, hi int) string {
	n := lo + rng.IntN(hi-lo+1)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = pick(rng, listWords)
	}
	return strings.Join(ws, " ")
}

// seedListWorld creates users and tasks through the service, then gives the tasks random
// statuses and timestamps (from small sets, so that sort keys tie) directly in SQL.
func seedListWorld(t *testing.T, ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand) *listWorld {
	t.Helper()
	st := store.New(pool)
	svc := task.NewService(st)
	w := &listWorld{}
	admin, err := st.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "not-a-hash", IsAdmin: true})
	require.NoError(t, err)
	w.admin = auth.Principal{UserID: admin.ID, Email: admin.Email, IsAdmin: true}
	for i := range 4 {
		u, err := st.UserCreate(ctx, db.UserCreateParams{Name: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("user%d@example.test", i), PasswordHash: "not-a-hash"})
		require.NoError(t, err)
		w.users = append(w.users, auth.Principal{UserID: u.ID, Email: u.Email})
	}
	base := time.Date(2031, 3, 1, 9, 0, 0, 0, time.UTC)
	for k := range 8 {
		w.dues = append(w.dues, base.Add(time.Duration(k)*6*time.Hour))
	}
	actors := append([]auth.Principal{w.admin}, w.users...)
	ids := w.userIDs()

	created := time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC)
	batch := &pgx.Batch{}
	for range listTasks {
		p := task.CreateParams{Title: words(rng, 1, 3), Description: words(rng, 0, 4)}
		if rng.IntN(5) > 0 {
			p.Priority = pick(rng, listPriorities)
		} // else the default, medium
		if rng.IntN(10) < 7 {
			p.AssigneeID = ptr(pick(rng, ids))
		}
		if rng.IntN(10) < 7 {
			p.DueAt = ptr(pick(rng, w.dues))
		}
		for _, tag := range listTags {
			if rng.IntN(10) < 3 {
				p.Tags = append(p.Tags, tag)
			}
		}
		tk, err := svc.Create(ctx, pick(rng, actors), p)
		require.NoError(t, err)

		status := pick(rng, listStatuses)
		createdAt := created.Add(time.Duration(rng.IntN(30)) * time.Minute)
		updatedAt := createdAt.Add(time.Duration(rng.IntN(4)) * time.Hour)
		var completedAt *time.Time
		if task.IsTerminal(status) {
			completedAt = &updatedAt
		}
		orphan := rng.IntN(20) == 0 // as if the creator had been deleted
		batch.Queue(`UPDATE tasks SET status = $2, created_at = $3, updated_at = $4, completed_at = $5,
			created_by = CASE WHEN $6 THEN NULL ELSE created_by END WHERE id = $1`,
			tk.ID, string(status), createdAt, updatedAt, completedAt, orphan)
	}
	require.NoError(t, pool.SendBatch(ctx, batch).Close())

	rows, err := pool.Query(ctx, `SELECT id, title, description, status, priority, assignee_id, created_by, due_at,
		tags, metadata, created_at, updated_at, completed_at, version FROM tasks ORDER BY id`)
	require.NoError(t, err)
	w.rows, err = pgx.CollectRows(rows, pgx.RowToStructByPos[task.Task])
	require.NoError(t, err)
	require.Len(t, w.rows, listTasks)
	return w
}

// randomListCase draws an actor and list parameters.
func randomListCase(rng *rand.Rand, w *listWorld) (auth.Principal, task.ListParams) {
	actor := w.admin
	if rng.IntN(4) > 0 {
		actor = pick(rng, w.users)
	}
	var p task.ListParams
	if rng.IntN(2) == 0 {
		for _, s := range listStatuses {
			if rng.IntN(5) < 2 {
				p.Statuses = append(p.Statuses, s)
			}
		}
	}
	if rng.IntN(4) == 0 {
		p.Priority = ptr(pick(rng, listPriorities))
	}
	ids := append(w.userIDs(), 987654321) // and nobody
	if rng.IntN(5) == 0 {
		p.AssigneeID = ptr(pick(rng, ids))
	}
	if rng.IntN(5) == 0 {
		p.CreatedBy = ptr(pick(rng, ids))
	}
	if rng.IntN(5) == 0 {
		p.Tag = ptr(pick(rng, append(slices.Clone(listTags), "Backend", "missing")))
	}
	if rng.IntN(5) < 2 {
		p.Q = ptr(randomQuery(rng, w))
	}
	if rng.IntN(6) == 0 {
		p.DueBefore = ptr(randomDue(rng, w))
	}
	if rng.IntN(6) == 0 {
		p.DueAfter = ptr(randomDue(rng, w))
	}
	p.Sort = pick(rng, listSorts)
	p.Page.Limit = pick(rng, []int32{1, 2, 3, 5, 10, 25, 100, 1000})
	switch rng.IntN(5) {
	case 0, 1:
		p.Page.Skip = 0
	case 2, 3:
		p.Page.Skip = int32(rng.IntN(60))
	default:
		p.Page.Skip = int32(rng.IntN(2 * listTasks)) // often past the end
	}
	return actor, p
}

func randomQuery(rng *rand.Rand, w *listWorld) string {
	if rng.IntN(2) == 0 {
		return pick(rng, listQueries)
	}
	row := pick(rng, w.rows)
	text := []rune(row.Title)
	if rng.IntN(2) == 0 && row.Description != "" {
		text = []rune(row.Description)
	}
	i := rng.IntN(len(text))
	j := i + 1 + rng.IntN(min(6, len(text)-i))
	q := string(text[i:j])
	switch rng.IntN(3) {
	case 0:
		q = strings.ToUpper(q)
	case 1:
		q = strings.ToLower(q)
	}
	return q
}

func randomDue(rng *rand.Rand, w *listWorld) time.Time {
	return pick(rng, w.dues).Add(pick(rng, []time.Duration{0, 0, time.Second, -time.Second, 3 * time.Hour, -48 * time.Hour}))
}

// containsFold is the contract's q: a case-insensitive substring match, every character literal.
func containsFold(s, q string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(q)) }

// expectedList is the brute-force model of List: every matching visible task in order.
func expectedList(w *listWorld, actor auth.Principal, p task.ListParams) []task.Task {
	var out []task.Task
	for _, r := range w.rows {
		switch {
		case !actor.IsAdmin && !eqID(r.CreatedBy, actor.UserID) && !eqID(r.AssigneeID, actor.UserID),
			len(p.Statuses) > 0 && !slices.Contains(p.Statuses, r.Status),
			p.Priority != nil && r.Priority != *p.Priority,
			p.AssigneeID != nil && !eqID(r.AssigneeID, *p.AssigneeID),
			p.CreatedBy != nil && !eqID(r.CreatedBy, *p.CreatedBy),
			p.Tag != nil && !slices.Contains(r.Tags, *p.Tag),
			p.Q != nil && !containsFold(r.Title, *p.Q) && !containsFold(r.Description, *p.Q),
			p.DueBefore != nil && (r.DueAt == nil || !r.DueAt.Before(*p.DueBefore)),
			p.DueAfter != nil && (r.DueAt == nil || !r.DueAt.After(*p.DueAfter)):
			continue
		}
		out = append(out, r)
	}
	sortKey := cmp.Or(p.Sort, "-created_at")
	slices.SortFunc(out, func(a, b task.Task) int { return compareTasks(a, b, sortKey) })
	return out
}

func eqID(id *int64, want int64) bool { return id != nil && *id == want }

// compareTasks orders by the sort key, ties broken by id in the same direction, tasks
// without a due date last in both directions of due_at.
func compareTasks(a, b task.Task, sortKey string) int {
	var c int
	switch strings.TrimPrefix(sortKey, "-") {
	case "created_at":
		c = a.CreatedAt.Compare(b.CreatedAt)
	case "updated_at":
		c = a.UpdatedAt.Compare(b.UpdatedAt)
	case "priority":
		c = cmp.Compare(priorityRank[a.Priority], priorityRank[b.Priority])
	case "due_at":
		switch {
		case a.DueAt == nil && b.DueAt != nil:
			return 1
		case a.DueAt != nil && b.DueAt == nil:
			return -1
		case a.DueAt != nil:
			c = a.DueAt.Compare(*b.DueAt)
		}
	default:
		panic("unknown sort " + sortKey)
	}
	if c == 0 {
		c = cmp.Compare(a.ID, b.ID)
	}
	if strings.HasPrefix(sortKey, "-") {
		c = -c
	}
	return c
}

func describeList(actor auth.Principal, p task.ListParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, "actor=%d admin=%t sort=%q skip=%d limit=%d", actor.UserID, actor.IsAdmin, p.Sort, p.Page.Skip, p.Page.Limit)
	if len(p.Statuses) > 0 {
		fmt.Fprintf(&b, " statuses=%v", p.Statuses)
	}
	if p.Priority != nil {
		fmt.Fprintf(&b, " priority=%s", *p.Priority)
	}
	if p.AssigneeID != nil {
		fmt.Fprintf(&b, " assignee_id=%d", *p.AssigneeID)
	}
	if p.CreatedBy != nil {
		fmt.Fprintf(&b, " created_by=%d", *p.CreatedBy)
	}
	if p.Tag != nil {
		fmt.Fprintf(&b, " tag=%q", *p.Tag)
	}
	if p.Q != nil {
		fmt.Fprintf(&b, " q=%q", *p.Q)
	}
	if p.DueBefore != nil {
		fmt.Fprintf(&b, " due_before=%s", p.DueBefore.Format(time.RFC3339))
	}
	if p.DueAfter != nil {
		fmt.Fprintf(&b, " due_after=%s", p.DueAfter.Format(time.RFC3339))
	}
	return b.String()
}

func taskIDs(ts []task.Task) []int64 {
	ids := make([]int64, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

// TestListMatchesBruteForceModel checks List against a filter-and-sort over every stored
// task, for random actors, filters, sorts and pages, under the production pool settings
// (custom plans) and under PostgreSQL's default plan cache mode (generic plans after a
// few executions of the same prepared statement).
func TestListMatchesBruteForceModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.URL(t)
	custom, err := store.Open(ctx, url, 4)
	require.NoError(t, err)
	t.Cleanup(custom.Close)
	auto, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(auto.Close)

	rng, seed := listRand(t)
	w := seedListWorld(t, ctx, custom, rng)
	var cases []struct {
		actor auth.Principal
		p     task.ListParams
	}
	for range listCases {
		a, p := randomListCase(rng, w)
		cases = append(cases, struct {
			actor auth.Principal
			p     task.ListParams
		}{a, p})
	}

	for _, mode := range []struct {
		name string
		pool *pgxpool.Pool
	}{{"force custom plans", custom}, {"default plan cache mode", auto}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			svc := task.NewService(store.New(mode.pool))
			var nonEmpty, empty, pastEnd, withQ int
			for i, c := range cases {
				msg := fmt.Sprintf("seed %d case %d: %s", seed, i, describeList(c.actor, c.p))
				want := expectedList(w, c.actor, c.p)
				got, err := svc.List(ctx, c.actor, c.p)
				require.NoError(t, err, msg)

				total := int64(len(want))
				start := min(int(c.p.Page.Skip), len(want))
				end := min(start+int(c.p.Page.Limit), len(want))
				wantItems := slices.Clone(want[start:end])
				if wantItems == nil {
					wantItems = []task.Task{}
				}
				require.Equal(t, taskIDs(wantItems), taskIDs(got.Items), msg)
				require.Equal(t, wantItems, got.Items, msg)
				require.Equal(t, total, got.Total, msg)
				require.Equal(t, c.p.Page.Skip/c.p.Page.Limit+1, got.Page, msg)
				require.Equal(t, c.p.Page.Limit, got.PageSize, msg)
				require.Equal(t, int32((total+int64(c.p.Page.Limit)-1)/int64(c.p.Page.Limit)), got.TotalPages, msg)
				if total == 0 {
					require.Zero(t, got.TotalPages, msg)
				}

				switch {
				case total == 0:
					empty++
				case int64(c.p.Page.Skip) >= total:
					pastEnd++
				default:
					nonEmpty++
				}
				if c.p.Q != nil && total > 0 {
					withQ++
				}
			}
			// The generator must exercise every shape, or the comparison proves little.
			require.Greater(t, nonEmpty, listCases/4, "seed %d: cases with a non-empty page", seed)
			require.Greater(t, empty, 10, "seed %d: cases with no match", seed)
			require.Greater(t, pastEnd, 10, "seed %d: cases skipping past the end", seed)
			require.Greater(t, withQ, 20, "seed %d: q cases with matches", seed)
		})
	}
}

// TestListQueryIsLiteralAndCaseInsensitive pins the q examples that tell a literal,
// case-insensitive substring apart from a LIKE pattern, independently of the random model.
func TestListQueryIsLiteralAndCaseInsensitive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := store.Open(ctx, dbtest.URL(t), 2)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool)
	svc := task.NewService(st)
	u, err := st.UserCreate(ctx, db.UserCreateParams{Name: "Admin", Email: "admin@example.test", PasswordHash: "not-a-hash", IsAdmin: true})
	require.NoError(t, err)
	admin := auth.Principal{UserID: u.ID, IsAdmin: true}
	titles := []string{"a_c", "abc", "a%c", "50% off", "500 off", "O'Brien", `C:\temp`, "C:temp", "Über uns", "uber"}
	idOf := map[string]int64{}
	for _, title := range titles {
		tk, err := svc.Create(ctx, admin, task.CreateParams{Title: title})
		require.NoError(t, err)
		idOf[title] = tk.ID
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"a_c", []string{"a_c"}},
		{"A%C", []string{"a%c"}},
		{"%", []string{"a%c", "50% off"}},
		{"_", []string{"a_c"}},
		{"0% ", []string{"50% off"}},
		{"o'b", []string{"O'Brien"}},
		{"'", []string{"O'Brien"}},
		{`:\T`, []string{`C:\temp`}},
		{`\`, []string{`C:\temp`}},
		{"über", []string{"Über uns"}},
		{"ÜBER", []string{"Über uns"}},
		{"UBER", []string{"uber"}},
	} {
		got, err := svc.List(ctx, admin, task.ListParams{Q: ptr(tc.q), Sort: "created_at", Page: page.Request{Limit: 100}})
		require.NoError(t, err, "q=%q", tc.q)
		var want []int64
		for _, title := range tc.want {
			want = append(want, idOf[title])
		}
		slices.Sort(want)
		gotIDs := taskIDs(got.Items)
		slices.Sort(gotIDs)
		require.Equal(t, want, gotIDs, "q=%q", tc.q)
		require.Equal(t, int64(len(want)), got.Total, "q=%q", tc.q)
	}
}

func TestListRejectsUnknownSort(t *testing.T) {
	t.Parallel()
	svc := task.NewService(store.New(dbtest.Pool(t)))
	_, err := svc.List(context.Background(), auth.Principal{UserID: 1, IsAdmin: true},
		task.ListParams{Sort: "title", Page: page.Request{Limit: 10}})
	require.True(t, apperr.Is(err, apperr.Invalid), "got %v", err)
	fields := apperr.As(err).Fields
	require.Len(t, fields, 1)
	require.Equal(t, "query", fields[0].Location)
	require.Equal(t, "sort", fields[0].Field)
	require.Contains(t, fields[0].Message, "-priority")
}
