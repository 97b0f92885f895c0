package gormstore

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestMigrateSQLiteV1 opens a SQLite database written by a version-1 store (mandate_tokens a
// WITHOUT ROWID table) holding live sessions: the version-2 step rebuilds the table as a rowid
// table with its indexes, and every session, flag and expiry survives.
func TestMigrateSQLiteV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")

	// A version-1 database, created by the version-1 statements exactly.
	db, err := openSQLite(path, &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard})
	must(t, err)
	v1 := &Store{db: db, dialect: dialectSQLite, now: time.Now, owned: true}
	must(t, v1.db.Exec(v1.ddl(`CREATE TABLE IF NOT EXISTS mandate_schema_version (
		version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL){OPTS}`)).Error)
	for _, stmt := range migrations[0].stmts {
		if q := v1.ddl(stmt); q != "" {
			must(t, v1.db.Exec(q).Error)
		}
	}
	must(t, v1.db.Exec("INSERT INTO mandate_schema_version (version, applied_at) VALUES (1, 0)").Error)
	if got := tableSQL(t, v1, "mandate_tokens"); !strings.Contains(got, "WITHOUT ROWID") {
		t.Fatalf("version-1 table is not WITHOUT ROWID: %s", got)
	}
	client := benchClient()
	must(t, v1.SaveClient(ctx, client))
	live, revoked := tokenReq(client), tokenReq(client)
	must(t, v1.CreateAccessTokenSession(ctx, "live-at", live))
	must(t, v1.CreateRefreshTokenSession(ctx, "live-rt", "live-at", live))
	must(t, v1.CreateRefreshTokenSession(ctx, "revoked-rt", "", revoked))
	must(t, v1.RevokeRefreshToken(ctx, revoked.GetID()))
	must(t, v1.Close())

	s := openT(t, "sqlite:"+path)
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion {
		t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion)
	}
	if got := tableSQL(t, s, "mandate_tokens"); strings.Contains(got, "WITHOUT ROWID") {
		t.Fatalf("mandate_tokens is still WITHOUT ROWID: %s", got)
	}
	for _, idx := range []string{"mandate_tokens_request", "mandate_tokens_expires"} {
		var n int
		must(t, s.DB().Raw("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ? AND tbl_name = 'mandate_tokens'", idx).Row().Scan(&n))
		if n != 1 {
			t.Errorf("index %s missing after the migration", idx)
		}
	}
	if n := countTokens(t, s); n != 3 {
		t.Fatalf("%d token rows after the migration, want 3", n)
	}
	got, err := s.GetAccessTokenSession(ctx, "live-at", nil)
	if err != nil || got.GetID() != live.GetID() || got.GetClient().GetID() != client.ID {
		t.Fatalf("access session after the migration: %v, %v", got, err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "live-rt", nil); err != nil {
		t.Fatalf("live refresh session after the migration: %v", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "revoked-rt", nil); err == nil {
		t.Fatal("revoked refresh token active after the migration")
	}
	// Lookups by grant still work (the request index), and so does garbage collection.
	must(t, s.RevokeAccessToken(ctx, live.GetID()))
	if _, err := s.GetAccessTokenSession(ctx, "live-at", nil); err == nil {
		t.Fatal("access session not revoked by request id after the migration")
	}
	must(t, s.Close())

	// Opening again is a no-op.
	again := openT(t, "sqlite:"+path)
	if n := countTokens(t, again); n != 2 {
		t.Fatalf("%d token rows after reopening, want 2", n)
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
