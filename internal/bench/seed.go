package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"enterprise-automation/internal/password"
)

// UserPassword is the password of every seeded user (hashed once, the hash reused).
const UserPassword = "bench-password-1"

const userEmailDomain = "bench.example"

// Weighted choices of the seeded tasks.
var (
	statusWeights = []weighted{
		{"pending", 30}, {"in_progress", 20}, {"completed", 40}, {"failed", 5}, {"cancelled", 5},
	}
	priorityWeights = []weighted{{"low", 25}, {"medium", 45}, {"high", 22}, {"urgent", 8}}
	// Statuses is every task status, for the list scenario's filter.
	taskStatuses = []string{"pending", "in_progress", "completed", "failed", "cancelled"}
	priorities   = []string{"low", "medium", "high", "urgent"}
	tagSet       = []string{"billing", "ops", "security", "customer", "infra", "legal", "hr", "sales", "urgent-review", "q3", "q4", "migration"}
	verbs        = []string{"Reconcile", "Review", "Update", "Prepare", "Audit", "Migrate", "Approve", "Draft", "Investigate", "Close", "Archive", "Escalate"}
	objects      = []string{"invoices", "vendor contracts", "access rights", "quarterly report", "payroll run", "customer ticket", "server inventory",
		"expense claims", "onboarding checklist", "backup policy", "release notes", "purchase order"}
	descriptions = []string{
		"Cross-check the figures against the ledger and flag any mismatch.",
		"Customer reported a discrepancy; confirm with the account owner.",
		"Follow the runbook and attach the evidence to this task.",
		"Needs sign-off from finance before the end of the month.",
		"Collect the documents from the shared drive and summarise the findings.",
		"Blocked until the vendor sends the updated contract.",
		"Automate this if it comes up again next quarter.",
		"Escalate to the team lead when the deadline is at risk.",
	}
)

type weighted struct {
	value  string
	weight int
}

func pick(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.weight {
			return w.value
		}
		n -= w.weight
	}
	return ws[len(ws)-1].value
}

// dataSet is what the scenarios need to know about the seeded data.
type dataSet struct {
	userIDs      []int64 // every seeded user, ascending
	activeIDs    []int64 // the active ones (the others cannot log in or be assigned)
	activeEmails []string
	minTaskID    int64
	maxTaskID    int64
	seeding      Seeding
}

func userEmail(i int) string { return fmt.Sprintf("user%06d@%s", i, userEmailDomain) }

// userActive makes about 1% of the seeded users inactive.
func userActive(i int) bool { return i%100 != 99 }

// seedData loads users and tasks with COPY. The tasks' secondary indexes and foreign keys
// are dropped first and restored afterwards (indexes several at a time), which is how
// bulk loads are done; the schema ends exactly as migrated, which is checked.
func seedData(ctx context.Context, dbURL string, users, tasks int, seed uint64, log *logger) (*dataSet, error) {
	start := time.Now()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("seed: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range []string{"SET maintenance_work_mem = '256MB'", "SET synchronous_commit = off"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("seed: %s: %w", s, err)
		}
	}
	for _, name := range []string{"task_status", "task_priority"} {
		t, err := conn.LoadType(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("seed: load type %s: %w", name, err)
		}
		conn.TypeMap().RegisterType(t)
	}
	hash, err := password.Hash(UserPassword, password.DefaultParams)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	r := rand.New(rand.NewPCG(seed, 0x5eed))

	// Users.
	ds := &dataSet{}
	userStart := time.Now()
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"users"},
		[]string{"name", "email", "password_hash", "is_admin", "is_active", "created_at", "updated_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= users {
				return nil, nil
			}
			i++
			created := now.Add(-time.Duration(r.Int64N(int64(2 * 365 * 24 * time.Hour))))
			return []any{fmt.Sprintf("Bench User %d", i), userEmail(i), hash, false, userActive(i), created, created}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("seed: copy users: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT id, email, is_active FROM users WHERE email LIKE 'user%@"+userEmailDomain+"' ORDER BY id")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			id     int64
			email  string
			active bool
		)
		if err := rows.Scan(&id, &email, &active); err != nil {
			return nil, err
		}
		ds.userIDs = append(ds.userIDs, id)
		if active {
			ds.activeIDs = append(ds.activeIDs, id)
			ds.activeEmails = append(ds.activeEmails, email)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ds.userIDs) != users {
		return nil, fmt.Errorf("seed: %d users after COPY, want %d (is the database fresh?)", len(ds.userIDs), users)
	}
	ds.seeding.UsersSeconds = time.Since(userStart).Seconds()
	log.printf("seeded %d users in %.1fs", users, ds.seeding.UsersSeconds)

	// Tasks: drop the secondary indexes and the foreign keys, COPY, restore them.
	indexes, err := secondaryIndexes(ctx, conn, "tasks")
	if err != nil {
		return nil, err
	}
	fkeys, err := foreignKeys(ctx, conn, "tasks")
	if err != nil {
		return nil, err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, "DROP INDEX "+pgx.Identifier{ix.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("seed: drop index %s: %w", ix.name, err)
		}
	}
	for _, fk := range fkeys {
		if _, err := conn.Exec(ctx, "ALTER TABLE tasks DROP CONSTRAINT "+pgx.Identifier{fk.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("seed: drop constraint %s: %w", fk.name, err)
		}
	}
	copyStart := time.Now()
	gen := taskGenerator{r: r, now: now, users: ds.userIDs}
	n := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"tasks"},
		[]string{"title", "description", "status", "priority", "assignee_id", "created_by", "due_at", "tags", "metadata", "created_at", "updated_at", "completed_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if n >= tasks {
				return nil, nil
			}
			n++
			return gen.row(n), nil
		}))
	if err != nil {
		return nil, fmt.Errorf("seed: copy tasks: %w", err)
	}
	ds.seeding.TasksCopySeconds = time.Since(copyStart).Seconds()
	log.printf("copied %d tasks in %.1fs; restoring %d foreign keys and %d indexes", tasks, ds.seeding.TasksCopySeconds, len(fkeys), len(indexes))

	indexStart := time.Now()
	if len(fkeys) > 0 {
		// One statement validates every foreign key with one scan each.
		adds := make([]string, len(fkeys))
		for i, fk := range fkeys {
			adds[i] = "ADD CONSTRAINT " + pgx.Identifier{fk.name}.Sanitize() + " " + fk.def
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE tasks "+strings.Join(adds, ", ")); err != nil {
			return nil, fmt.Errorf("seed: restore foreign keys: %w", err)
		}
	}
	if err := createIndexes(ctx, dbURL, indexes); err != nil {
		return nil, err
	}
	ds.seeding.IndexSeconds = time.Since(indexStart).Seconds()
	afterIx, err := secondaryIndexes(ctx, conn, "tasks")
	if err != nil {
		return nil, err
	}
	afterFK, err := foreignKeys(ctx, conn, "tasks")
	if err != nil {
		return nil, err
	}
	if fmt.Sprint(afterIx, afterFK) != fmt.Sprint(indexes, fkeys) {
		return nil, fmt.Errorf("seed: the tasks schema differs after the load:\nbefore %v %v\nafter  %v %v", indexes, fkeys, afterIx, afterFK)
	}

	// Visibility map and statistics, as on a table that autovacuum has seen.
	vacuumStart := time.Now()
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) users, tasks"); err != nil {
		return nil, fmt.Errorf("seed: vacuum: %w", err)
	}
	ds.seeding.VacuumSeconds = time.Since(vacuumStart).Seconds()
	if err := conn.QueryRow(ctx, "SELECT min(id), max(id) FROM tasks").Scan(&ds.minTaskID, &ds.maxTaskID); err != nil {
		return nil, err
	}
	if got := ds.maxTaskID - ds.minTaskID + 1; got != int64(tasks) {
		return nil, fmt.Errorf("seed: task ids span %d, want %d (is the database fresh?)", got, tasks)
	}
	var size int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return nil, err
	}
	ds.seeding.DatabaseMB = float64(size) / (1 << 20)
	ds.seeding.Users = users
	ds.seeding.Tasks = tasks
	ds.seeding.Seconds = time.Since(start).Seconds()
	log.printf("foreign keys and indexes restored in %.1fs, vacuum analyze %.1fs; seeding took %.1fs in all (database %.0f MB)",
		ds.seeding.IndexSeconds, ds.seeding.VacuumSeconds, ds.seeding.Seconds, ds.seeding.DatabaseMB)
	return ds, nil
}

// taskGenerator makes the seeded tasks' rows.
type taskGenerator struct {
	r     *rand.Rand
	now   time.Time
	users []int64
}

func (g *taskGenerator) row(n int) []any {
	r := g.r
	const day = 24 * time.Hour
	created := g.now.Add(-time.Duration(r.Int64N(int64(365 * day))))
	age := g.now.Sub(created)
	updated := created.Add(time.Duration(r.Int64N(int64(min(age, 30*day)) + 1)))
	status := pick(r, statusWeights)
	var completed any
	if status == "completed" || status == "failed" || status == "cancelled" {
		completed = updated // the CHECK constraint wants it exactly for these
	}
	var assignee any
	if r.IntN(100) < 85 {
		assignee = g.users[r.IntN(len(g.users))]
	}
	creator := g.users[r.IntN(len(g.users))]
	var due any
	if r.IntN(100) >= 20 {
		due = g.now.Add(time.Duration(r.Int64N(int64(120*day))) - 60*day)
	}
	tags := []string{}
	for k := r.IntN(4); len(tags) < k; {
		t := tagSet[r.IntN(len(tagSet))]
		if !containsString(tags, t) {
			tags = append(tags, t)
		}
	}
	meta := "{}"
	if r.IntN(100) < 30 {
		meta = fmt.Sprintf(`{"source": "import", "batch": %d}`, r.IntN(500))
	}
	desc := ""
	if r.IntN(100) < 60 {
		desc = descriptions[r.IntN(len(descriptions))]
	}
	title := fmt.Sprintf("%s %s #%d", verbs[r.IntN(len(verbs))], objects[r.IntN(len(objects))], n)
	return []any{title, desc, status, pick(r, priorityWeights), assignee, creator, due, tags, meta, created, updated, completed}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// index is an index or constraint: its name and its definition.
type index struct{ name, def string }

func (ix index) String() string { return ix.def }

// secondaryIndexes lists a table's indexes that back no constraint, by name.
func secondaryIndexes(ctx context.Context, conn *pgx.Conn, table string) ([]index, error) {
	rows, err := conn.Query(ctx, `
		SELECT i.indexname, i.indexdef
		FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename = $1
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)
		ORDER BY i.indexname`, table)
	if err != nil {
		return nil, fmt.Errorf("seed: list indexes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index, error) {
		var ix index
		return ix, row.Scan(&ix.name, &ix.def)
	})
	if err != nil {
		return nil, fmt.Errorf("seed: list indexes: %w", err)
	}
	return out, nil
}

// foreignKeys lists a table's validated foreign keys (name and definition).
func foreignKeys(ctx context.Context, conn *pgx.Conn, table string) ([]index, error) {
	rows, err := conn.Query(ctx, `
		SELECT conname, pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
		FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY conname`, table)
	if err != nil {
		return nil, fmt.Errorf("seed: list foreign keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index, error) {
		var fk index
		return fk, row.Scan(&fk.name, &fk.def)
	})
	if err != nil {
		return nil, fmt.Errorf("seed: list foreign keys: %w", err)
	}
	return out, nil
}

// createIndexes rebuilds indexes on as many connections as there are CPUs, the biggest
// (GIN) first.
func createIndexes(ctx context.Context, dbURL string, indexes []index) error {
	todo := make([]index, len(indexes))
	copy(todo, indexes)
	sort.SliceStable(todo, func(i, j int) bool {
		return strings.Contains(todo[i].def, "USING gin") && !strings.Contains(todo[j].def, "USING gin")
	})
	next := make(chan index, len(todo))
	for _, ix := range todo {
		next <- ix
	}
	close(next)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range max(1, min(runtime.NumCPU(), len(todo))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				conn, err := pgx.Connect(ctx, dbURL)
				if err != nil {
					return err
				}
				defer conn.Close(context.WithoutCancel(ctx))
				if _, err := conn.Exec(ctx, "SET maintenance_work_mem = '256MB'"); err != nil {
					return err
				}
				for ix := range next {
					if _, err := conn.Exec(ctx, ix.def); err != nil {
						return fmt.Errorf("seed: %s: %w", ix.def, err)
					}
				}
				return nil
			}()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}
