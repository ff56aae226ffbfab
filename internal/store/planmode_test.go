package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"enterprise-automation/gen/db"
)

// recordingDBTX records the statements the generated queries send and fails each one,
// so every query can be called without a database.
type recordingDBTX struct {
	sql  string
	args []any
}

var errRecorded = errors.New("recorded, not run")

func (r *recordingDBTX) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.CommandTag{}, errRecorded
}

func (r *recordingDBTX) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return nil, errRecorded
}

func (r *recordingDBTX) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.sql, r.args = sql, args
	return failedRow{}
}

type failedRow struct{}

func (failedRow) Scan(...any) error { return errRecorded }

// TestCustomPlanQueriesExistAndRunUnprepared calls every generated query through the
// store's connection wrapper and checks that exactly the queries of customPlanQueries are
// sent as unnamed statements (planned for their values): a listed query that was renamed
// or removed in db/queries fails here instead of silently losing its custom plan.
func TestCustomPlanQueriesExistAndRunUnprepared(t *testing.T) {
	t.Parallel()
	querier := reflect.TypeFor[db.Querier]()
	for _, name := range customPlanQueries {
		_, ok := querier.MethodByName(name)
		require.True(t, ok, "customPlanQueries lists %s, which gen/db no longer has", name)
	}

	rec := &recordingDBTX{}
	queries := reflect.ValueOf(db.New(translating{rec}))
	for i := range querier.NumMethod() {
		name := querier.Method(i).Name
		t.Run(name, func(t *testing.T) {
			method := queries.MethodByName(name)
			in := make([]reflect.Value, method.Type().NumIn())
			in[0] = reflect.ValueOf(context.Background())
			for j := 1; j < len(in); j++ {
				in[j] = reflect.Zero(method.Type().In(j))
			}
			*rec = recordingDBTX{}
			method.Call(in)

			require.True(t, strings.HasPrefix(rec.sql, "-- name: "+name+" :"), "the generated SQL starts with its name line: %.60q", rec.sql)
			unprepared := len(rec.args) > 0 && rec.args[0] == pgx.QueryExecModeExec
			require.Equal(t, slices.Contains(customPlanQueries, name), unprepared,
				"%s runs unprepared exactly when customPlanQueries lists it", name)
		})
	}
}
