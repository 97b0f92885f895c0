package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/storage"
)

// legacyMySQL opens a fresh MySQL database at schema version v (tables as that release made
// them) and returns its DSN and a store on it that has not migrated further.
func legacyMySQL(t *testing.T, v int) (string, *Store) {
	t.Helper()
	dsn := freshMySQL(t)
	_, target, err := parseDSN(dsn)
	must(t, err)
	db, err := gorm.Open(mysql.Open(target), &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard})
	must(t, err)
	return dsn, legacyOn(t, db, dialectMySQL, v)
}

// indexColumns returns the columns of every index of mandate_tokens, by index name, and which
// of them are unique.
func indexColumns(t *testing.T, s *Store) (cols map[string]string, unique map[string]bool) {
	t.Helper()
	rows, err := s.DB().Raw(`SELECT index_name, column_name, non_unique FROM information_schema.statistics
		WHERE table_schema = DATABASE() AND table_name = 'mandate_tokens' ORDER BY index_name, seq_in_index`).Rows()
	must(t, err)
	defer rows.Close()
	cols, unique = map[string]string{}, map[string]bool{}
	for rows.Next() {
		var name, col string
		var nonUnique int
		must(t, rows.Scan(&name, &col, &nonUnique))
		if cols[name] != "" {
			cols[name] += ","
		}
		cols[name] += strings.ToLower(col)
		unique[name] = nonUnique == 0
	}
	must(t, rows.Err())
	return cols, unique
}

// TestMySQLClusteredByExpiry: schema step 8 moves a version-7 MySQL table, rows and all, to the
// expiry-ordered primary key with (kind, signature) unique beside it and the request index on
// request_key; every row is still found, a grant's tokens are still revoked together, a
// duplicate signature is still a conflict, and a step whose ALTER ran but whose version was not
// recorded (MySQL commits DDL by itself) is recorded at the next start instead of failing it.
func TestMySQLClusteredByExpiry(t *testing.T) {
	ctx := context.Background()
	dsn, old := legacyMySQL(t, 7)
	client := benchClient()
	must(t, old.SaveClient(ctx, client))
	one := tokenReq(client)
	one.ID = "at-alone" // a grant of one token: its request ID is its signature
	must(t, old.CreateAccessTokenSession(ctx, "at-alone", one))
	shared := tokenReq(client)
	shared.ID = "grant-1"
	must(t, old.CreateAccessTokenSession(ctx, "at-1", shared))
	must(t, old.CreateAccessTokenSession(ctx, "at-2", shared))
	must(t, old.CreateRefreshTokenSession(ctx, "rt-1", "at-1", shared))
	cols, _ := indexColumns(t, old)
	if cols["PRIMARY"] != "kind,signature" {
		t.Fatalf("version 7 primary key: %q", cols["PRIMARY"])
	}
	must(t, old.Close())

	s := openT(t, dsn)
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion || SchemaVersion < 8 {
		t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion)
	}
	cols, unique := indexColumns(t, s)
	want := map[string]string{
		"PRIMARY":                "expires_at,kind,signature",
		"mandate_tokens_key":     "kind,signature",
		"mandate_tokens_request": "kind,request_key",
	}
	for name, c := range want {
		if cols[name] != c {
			t.Errorf("index %s: %q, want %q (all: %v)", name, cols[name], c, cols)
		}
	}
	if !unique["mandate_tokens_key"] || len(cols) != len(want) {
		t.Errorf("indexes %v (unique %v)", cols, unique)
	}
	for _, sig := range []string{"at-alone", "at-1", "at-2"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, &storage.Session{}); err != nil {
			t.Errorf("%s after the migration: %v", sig, err)
		}
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt-1", &storage.Session{}); err != nil {
		t.Errorf("rt-1 after the migration: %v", err)
	}
	// The generated column tells the two kinds of grant apart.
	var nulls int
	must(t, s.DB().Raw("SELECT COUNT(*) FROM mandate_tokens WHERE request_key IS NULL").Row().Scan(&nulls))
	if nulls != 1 {
		t.Errorf("%d rows with a NULL request_key, want 1 (at-alone)", nulls)
	}
	if err := s.CreateAccessTokenSession(ctx, "at-1", shared); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate signature: %v, want ErrConflict", err)
	}
	must(t, s.RevokeAccessToken(ctx, "grant-1"))
	must(t, s.RevokeAccessToken(ctx, "at-alone"))
	for _, sig := range []string{"at-alone", "at-1", "at-2"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, &storage.Session{}); !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("%s after revocation: %v, want ErrNotFound", sig, err)
		}
	}
	must(t, s.RevokeRefreshToken(ctx, "grant-1"))
	if _, err := s.GetRefreshTokenSession(ctx, "rt-1", &storage.Session{}); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("rt-1 after revocation: %v, want ErrInactiveToken", err)
	}

	// The ALTER ran, its version was not recorded: the next start records it.
	must(t, s.DB().Exec("DELETE FROM mandate_schema_version WHERE version = 8").Error)
	again := openT(t, dsn)
	if v, err := again.Version(ctx); err != nil || v != SchemaVersion {
		t.Fatalf("Version after the half-recorded step = %d, %v", v, err)
	}
}

// TestMySQLQueryPlans: on MySQL too, the statements on a grant's token rows and the collector's
// delete go through an index, never a scan of the table.
func TestMySQLQueryPlans(t *testing.T) {
	s := grantsStore(t, freshMySQL(t))
	must(t, s.DB().Exec("ANALYZE TABLE mandate_tokens").Error)
	type stmt struct {
		q    string
		args []any
	}
	var stmts []stmt
	for _, q := range requestStmts(s) {
		stmts = append(stmts, stmt{q, []any{kindAccess, key("x")}})
	}
	stmts = append(stmts,
		// An existing row: a missing one ends the plan at "Impossible WHERE" without naming a key.
		stmt{`SELECT active, request, session FROM mandate_tokens WHERE kind = ? AND signature = ?`, []any{kindAccess, key("at-1")}},
		stmt{`DELETE FROM mandate_tokens WHERE expires_at <> 0 AND expires_at < ? LIMIT ?`, []any{int64(1), 100}},
	)
	for _, st := range stmts {
		rows, err := s.DB().Raw("EXPLAIN "+st.q, st.args...).Rows()
		must(t, err)
		names, err := rows.Columns()
		must(t, err)
		for rows.Next() {
			vals := make([]sql.NullString, len(names))
			ptrs := make([]any, len(names))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(t, rows.Scan(ptrs...))
			plan := map[string]string{}
			for i, n := range names {
				plan[strings.ToLower(n)] = vals[i].String
			}
			if plan["type"] == "ALL" || plan["key"] == "" {
				t.Errorf("plan of %q: %v", st.q, plan)
			}
		}
		must(t, rows.Err())
		rows.Close()
	}
}
