package gormstore

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/storage"
)

// legacyStore is a SQLite database at path migrated to version v exactly, by the statements of
// its steps, as a build of that version left it.
func legacyStore(t *testing.T, path string, v int) *Store {
	t.Helper()
	db, err := openSQLite(path, &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard})
	must(t, err)
	return legacyOn(t, db, dialectSQLite, v)
}

// legacyOn is legacyStore on db, a database of any kind: the first v schema steps, applied as
// the release that ended with step v did.
func legacyOn(t *testing.T, db *gorm.DB, d dialect, v int) *Store {
	t.Helper()
	s := &Store{db: db, dialect: d, now: time.Now, owned: true}
	must(t, s.db.Exec(s.ddl(`CREATE TABLE IF NOT EXISTS mandate_schema_version (
		version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL){OPTS}`)).Error)
	for _, m := range migrations[:v] {
		for _, stmt := range m.stmts {
			if m.only != 0 && m.only != d {
				break
			}
			if q := s.ddl(stmt); q != "" {
				must(t, s.db.Exec(q).Error)
			}
		}
		must(t, s.db.Exec("INSERT INTO mandate_schema_version (version, applied_at) VALUES (?, 0)", m.version).Error)
	}
	return s
}

// changesTable creates the change counters (a later step's table) in a legacy store, whose
// writes of this build record changes there.
func changesTable(t *testing.T, s *Store) {
	t.Helper()
	for _, m := range migrations {
		if strings.Contains(m.stmts[0], "mandate_changes") {
			must(t, s.db.Exec(s.ddl(m.stmts[0])).Error)
			return
		}
	}
	t.Fatal("no step creates mandate_changes")
}

// legacyToken writes a token row the way versions 1 and 2 did (no id column).
func legacyToken(t *testing.T, s *Store, kind int, signature, accessSignature string, req fosite.Requester, exp time.Time, active int) {
	t.Helper()
	rec := recordOf(req)
	reqJSON, err := encode("request", rec)
	must(t, err)
	sess := req.GetSession().(*storage.Session)
	sess.SetExpiresAt(fosite.AccessToken, exp)
	sess.SetExpiresAt(fosite.RefreshToken, exp)
	sessJSON, err := encode("session", sess)
	must(t, err)
	var access any
	if accessSignature != "" {
		access = key(accessSignature)
	}
	must(t, s.db.Exec(`INSERT INTO mandate_tokens (kind, signature, request_hash, active, expires_at, access_signature, request, session)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, kind, key(signature), key(rec.ID), active, nanos(exp), access, string(reqJSON), string(sessJSON)).Error)
}

// TestMigrateSQLite opens SQLite databases written by version-1 and version-2 stores, holding
// live, revoked, expired and never-expiring sessions, several with the same expiry: the steps
// rebuild mandate_tokens as the expiry-ordered table with its partial request index, and every
// session, flag and expiry survives; lookups by grant and garbage collection work on the result.
func TestMigrateSQLite(t *testing.T) {
	for _, from := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(from), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "old.db")
			old := legacyStore(t, path, from)
			if got := tableSQL(t, old, "mandate_tokens"); strings.Contains(got, "WITHOUT ROWID") != (from == 1) {
				t.Fatalf("version-%d table: %s", from, got)
			}
			client := benchClient()
			// This build's SaveClient records the change in a table of a later version; the
			// step creates it only if it is missing.
			changesTable(t, old)
			must(t, old.SaveClient(ctx, client))
			now := time.Now()
			exp := now.Add(time.Hour).Truncate(time.Second)
			live, revoked, gone, forever := tokenReq(client), tokenReq(client), tokenReq(client), tokenReq(client)
			legacyToken(t, old, kindAccess, "live-at", "", live, exp, 1)
			legacyToken(t, old, kindRefresh, "live-rt", "live-at", live, exp, 1)
			legacyToken(t, old, kindRefresh, "revoked-rt", "", revoked, exp, 0)
			legacyToken(t, old, kindAccess, "expired-at", "", gone, now.Add(-time.Minute), 1)
			legacyToken(t, old, kindRefresh, "forever-rt", "", forever, time.Time{}, 1)
			must(t, old.Close())

			s := openT(t, "sqlite:"+path)
			if v, err := s.Version(ctx); err != nil || v != SchemaVersion {
				t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion)
			}
			if got := tableSQL(t, s, "mandate_tokens"); strings.Contains(got, "WITHOUT ROWID") || !strings.Contains(got, "id INTEGER PRIMARY KEY") {
				t.Fatalf("mandate_tokens after the migration: %s", got)
			}
			indexes := map[string]string{}
			rows, err := s.DB().Raw("SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mandate_tokens'").Rows()
			must(t, err)
			for rows.Next() {
				var name, def string
				must(t, rows.Scan(&name, &def))
				indexes[name] = def
			}
			must(t, rows.Err())
			if def := indexes["mandate_tokens_request"]; !strings.Contains(def, "WHERE request_hash <> signature") {
				t.Errorf("request index after the migration: %q", def)
			}
			if _, ok := indexes["mandate_tokens_expires"]; ok || len(indexes) != 2 {
				t.Errorf("indexes after the migration: %v; want the (kind, signature) key and the request index", indexes)
			}
			if n := countTokens(t, s); n != 5 {
				t.Fatalf("%d token rows after the migration, want 5", n)
			}
			// Row ids follow expiry; the never-expiring row's is negative.
			idOf := func(kind int, sig string) int64 {
				var id int64
				must(t, s.DB().Raw("SELECT id FROM mandate_tokens WHERE kind = ? AND signature = ?", kind, key(sig)).Row().Scan(&id))
				return id
			}
			if id := idOf(kindAccess, "live-at"); id>>31 != exp.Unix() {
				t.Errorf("live row id %d is not in its expiry second %d", id, exp.Unix())
			}
			if id := idOf(kindRefresh, "forever-rt"); id >= 0 {
				t.Errorf("never-expiring row id %d, want negative", id)
			}
			got, err := s.GetAccessTokenSession(ctx, "live-at", nil)
			if err != nil || got.GetID() != live.GetID() || got.GetClient().GetID() != client.ID ||
				!got.GetSession().GetExpiresAt(fosite.AccessToken).Equal(exp) {
				t.Fatalf("access session after the migration: %v, %v", got, err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "live-rt", nil); err != nil {
				t.Fatalf("live refresh session after the migration: %v", err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "revoked-rt", nil); err == nil {
				t.Fatal("revoked refresh token active after the migration")
			}
			// New rows go in beside the old ones.
			must(t, s.CreateAccessTokenSession(ctx, "new-at", tokenReq(client)))
			// Garbage collection takes the expired row only.
			if n, err := s.DeleteExpired(ctx, now, 0); err != nil || n != 1 {
				t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
			}
			if _, err := s.GetAccessTokenSession(ctx, "expired-at", nil); err == nil {
				t.Fatal("expired row kept")
			}
			if _, err := s.GetRefreshTokenSession(ctx, "forever-rt", nil); err != nil {
				t.Fatalf("never-expiring row: %v", err)
			}
			// Lookups by grant work through the request index.
			must(t, s.RevokeAccessToken(ctx, live.GetID()))
			if _, err := s.GetAccessTokenSession(ctx, "live-at", nil); err == nil {
				t.Fatal("access session not revoked by request id after the migration")
			}
			must(t, s.Close())

			// Opening again is a no-op.
			again := openT(t, "sqlite:"+path)
			if n := countTokens(t, again); n != 4 {
				t.Fatalf("%d token rows after reopening, want 4", n)
			}
		})
	}
}

func tableSQL(t *testing.T, s *Store, name string) string {
	t.Helper()
	var q string
	must(t, s.DB().Raw("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", name).Row().Scan(&q))
	return q
}

// TestCheckpointer: a file store's writes trigger background checkpoints that keep the
// write-ahead log from growing to SQLite's backstop threshold, and Close waits for a running
// one.
func TestCheckpointer(t *testing.T) {
	s, client := newBatchStore(t)
	if s.writer == nil || s.writer.ckpt == nil {
		t.Fatal("a WAL-mode SQLite file store has no checkpointer")
	}
	ctx := context.Background()
	for i := range 3 * checkpointRows {
		must(t, s.CreateAccessTokenSession(ctx, "cp-"+strconv.Itoa(i), tokenReq(client)))
	}
	s.writer.ckpt.close() // waits for a checkpoint under way
	if runs := s.writer.ckpt.runs.Load(); runs < 2 {
		t.Fatalf("%d background checkpoints after %d rows, want at least 2", runs, 3*checkpointRows)
	}
	// Everything written is in the database file once the log is checkpointed.
	var busy, logFrames, done int
	must(t, s.DB().Raw("PRAGMA wal_checkpoint(PASSIVE)").Row().Scan(&busy, &logFrames, &done))
	if busy != 0 || done != logFrames {
		t.Fatalf("checkpoint: busy %d, %d of %d frames copied", busy, done, logFrames)
	}
	if n := countTokens(t, s); n != 3*checkpointRows {
		t.Fatalf("%d rows, want %d", n, 3*checkpointRows)
	}

	mem := openT(t, "sqlite::memory:")
	if mem.writer != nil && mem.writer.ckpt != nil {
		t.Fatal("an in-memory store (no write-ahead log) has a checkpointer")
	}
}

// TestNewerSchemaRefused: a database a newer build migrated is refused with a clear error, and
// left as it was.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "newer.db")
	s := openT(t, dsn)
	must(t, s.DB().Exec("INSERT INTO mandate_schema_version (version, applied_at) VALUES (?, 0)", SchemaVersion+1).Error)
	must(t, s.Close())
	if st, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		if st != nil {
			st.Close()
		}
		t.Fatalf("Open of a newer schema = %v, want a refusal", err)
	}
	db, err := openSQLite(strings.TrimPrefix(dsn, "sqlite:"), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	raw := &Store{db: db, dialect: dialectSQLite, owned: true}
	defer raw.Close()
	if v, err := raw.Version(ctx); err != nil || v != SchemaVersion+1 {
		t.Fatalf("Version after the refusal = %d, %v; want %d, untouched", v, err, SchemaVersion+1)
	}
}

// TestSQLiteQueryPlans: every statement the store runs on SQLite's token table finds its rows
// through a key or an index — none scans the table, which holds a row per live token. Plans are
// taken on a table with rows and statistics, as a running server's.
func TestSQLiteQueryPlans(t *testing.T) {
	s := grantsStore(t, "sqlite:"+filepath.Join(t.TempDir(), "plans.db"))
	ctx := context.Background()
	client := benchClient()
	for i := range 50 {
		must(t, s.CreateRefreshTokenSession(ctx, "rt-"+strconv.Itoa(i), "at-"+strconv.Itoa(i), tokenReq(client)))
	}
	must(t, s.DB().Exec("ANALYZE").Error)

	stmts := requestStmts(s)
	stmts = append(stmts,
		`SELECT active, request, session FROM mandate_tokens WHERE kind = ? AND signature = ?`,
		`DELETE FROM mandate_tokens WHERE kind = ? AND signature = ?`,
		`UPDATE mandate_tokens SET active = 0 WHERE kind = ? AND signature = ? AND active = 1`,
	)
	h := key("x")
	args := func(q string) []any {
		if q == sqliteExpiredTokens {
			return []any{int64(1) << 40, int64(1) << 40, 10}
		}
		return []any{kindAccess, h}
	}
	for _, q := range append(stmts, sqliteExpiredTokens) {
		rows, err := s.DB().Raw("EXPLAIN QUERY PLAN "+q, args(q)...).Rows()
		must(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			must(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		must(t, rows.Err())
		all := strings.Join(plan, "; ")
		// A search on the kind alone walks every row of that kind: a scan by another name.
		if strings.Contains(all, "SCAN mandate_tokens") || !strings.Contains(all, "SEARCH mandate_tokens") ||
			strings.Contains(all, "(kind=?)") {
			t.Errorf("plan of %q:\n  %s", q, all)
		}
	}
}

// TestSQLiteRowIDTaken: a new row whose expiry-ordered id another writer took (a second process
// on the file) goes in under the next id; a duplicate signature is still a conflict.
func TestSQLiteRowIDTaken(t *testing.T) {
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "ids.db"))
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	req := tokenReq(client)
	req.Session.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	before := s.seq.Load()
	must(t, s.CreateAccessTokenSession(ctx, "first", req))
	for i := range 3 {
		s.seq.Store(before) // the next id is the one "first" has, then the ones the earlier rounds took
		must(t, s.CreateAccessTokenSession(ctx, "again-"+strconv.Itoa(i), req))
	}
	if n := countTokens(t, s); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}
	s.seq.Store(before)
	if err := s.CreateAccessTokenSession(ctx, "first", req); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate signature: %v, want ErrConflict", err)
	}
}

// TestPostgresQueryPlans: on PostgreSQL too, the statements on a grant's token rows go through
// the partial request index or the key. With sequential scans priced out, a plan that still
// scans the table has no index it could use.
func TestPostgresQueryPlans(t *testing.T) {
	s := grantsStore(t, freshPostgres(t))
	stmts := requestStmts(s)
	must(t, s.DB().Connection(func(conn *gorm.DB) error {
		must(t, conn.Exec("SET enable_seqscan = off").Error)
		for _, q := range stmts {
			var plan []string
			rows, err := conn.Raw("EXPLAIN "+q, kindAccess, key("x")).Rows()
			must(t, err)
			for rows.Next() {
				var line string
				must(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			must(t, rows.Err())
			if all := strings.Join(plan, "; "); strings.Contains(all, "Seq Scan") || !strings.Contains(all, "Index") {
				t.Errorf("plan of %q:\n  %s", q, all)
			}
		}
		return nil
	}))
}

// TestMigrateDropsPAR opens a version-6 database holding a pushed authorization request (the
// token store no longer keeps them) beside a refresh token: step 7 deletes the one and keeps
// the other.
func TestMigrateDropsPAR(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v6.db")
	old := legacyStore(t, path, 6)
	client := benchClient()
	must(t, old.SaveClient(ctx, client))
	must(t, old.createToken(ctx, 5, "urn:ietf:params:oauth:request_uri:x", "", tokenReq(client), fosite.AuthorizeCode))
	must(t, old.CreateRefreshTokenSession(ctx, "rt", "at", tokenReq(client)))
	must(t, old.Close())

	s := openT(t, "sqlite:"+path)
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion || SchemaVersion < 7 {
		t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion)
	}
	var n int64
	must(t, s.DB().Raw("SELECT COUNT(*) FROM mandate_tokens WHERE kind = 5").Scan(&n).Error)
	if n != 0 {
		t.Fatalf("%d PAR rows left", n)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "rt", nil); err != nil {
		t.Fatalf("the refresh token did not survive: %v", err)
	}
}

// grantsStore opens a store on dsn with 50 access tokens, every other one a grant of one token
// (request ID = signature), for query plan tests.
func grantsStore(t *testing.T, dsn string) *Store {
	t.Helper()
	s := openT(t, dsn)
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	for i := range 50 {
		req := tokenReq(client)
		sig := "at-" + strconv.Itoa(i)
		if i%2 == 0 {
			req.ID = sig // a grant of one token
		}
		must(t, s.CreateAccessTokenSession(ctx, sig, req))
	}
	return s
}

// requestStmts returns byRequest's statements (through the request index and through the key)
// for a DELETE and an UPDATE, as s runs them.
func requestStmts(s *Store) []string {
	var stmts []string
	for _, stmt := range []string{`DELETE FROM mandate_tokens WHERE`, `UPDATE mandate_tokens SET active = 0 WHERE active = 1 AND`} {
		indexed, keyed := s.partialByRequest(stmt)
		stmts = append(stmts, indexed, keyed)
	}
	return stmts
}
