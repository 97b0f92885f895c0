package gormstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/ory/fosite"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/storagetest"
)

// Environment variables naming the test databases. The DSN's user must be allowed to create
// and drop schemas (PostgreSQL) or databases (MySQL/MariaDB): every store under test gets its
// own, dropped afterwards.
const (
	envPostgres = "MANDATE_TEST_POSTGRES_DSN" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	envMySQL    = "MANDATE_TEST_MYSQL_DSN"    // e.g. mysql://root@tcp(127.0.0.1:3306)/test
)

// backend opens fresh, empty stores of one kind.
type backend struct {
	name  string
	fresh func(t testing.TB) string // a DSN of an empty database private to t
}

func backends() []backend {
	return []backend{
		{"SQLiteFile", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "mandate.db") }},
		{"SQLiteMemory", func(testing.TB) string { return "sqlite::memory:" }},
		{"Postgres", freshPostgres},
		{"MySQL", freshMySQL},
	}
}

// unavailable skips locally and fails in CI, where .ci/run provides every database.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: every database must be available)", msg)
	}
	t.Skipf("%s; skipping", msg)
}

func envDSN(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		unavailable(t, "%s is not set", name)
	}
	return v
}

func uniqueName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "mandate_t_" + hex.EncodeToString(b[:])
}

// adminDB connects to the database named by the environment variable env, without migrating
// it (the shared test database is no store's: only schemas and databases are created in it),
// closed when the test ends; it skips (fails in CI) when the variable is unset or the server
// unreachable.
func adminDB(t testing.TB, env string) *gorm.DB {
	t.Helper()
	dsn := envDSN(t, env)
	d, target, err := parseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	dial := postgres.Open(target)
	if d == dialectMySQL {
		dial = mysql.Open(target)
	}
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard})
	if err == nil {
		if sqlDB, derr := db.DB(); derr == nil {
			sqlDB.SetMaxOpenConns(2)
			err = sqlDB.Ping()
			t.Cleanup(func() { sqlDB.Close() })
		}
	}
	if err != nil {
		unavailable(t, "%s: server unreachable: %v", env, err)
	}
	return db
}

// freshPostgres creates a schema of its own and returns a DSN whose search_path selects it.
func freshPostgres(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(envDSN(t, envPostgres))
	if err != nil {
		t.Fatalf("%s: malformed URL", envPostgres)
	}
	adm := adminDB(t, envPostgres)
	name := uniqueName()
	if err := adm.Exec("CREATE SCHEMA " + name).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := adm.Exec("DROP SCHEMA " + name + " CASCADE").Error; err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// freshMySQL creates a database of its own and returns a DSN for it.
func freshMySQL(t testing.TB) string {
	t.Helper()
	cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(envDSN(t, envMySQL), "mysql://"))
	if err != nil {
		t.Fatalf("%s: malformed DSN", envMySQL)
	}
	adm := adminDB(t, envMySQL)
	name := uniqueName()
	if err := adm.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").Error; err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := adm.Exec("DROP DATABASE " + name).Error; err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN()
}

func openT(t testing.TB, dsn string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			b.fresh(t) // skip (or fail in CI) early when the database is missing
			storagetest.Run(t, func(t *testing.T) storage.Store { return openT(t, b.fresh(t)) })
		})
	}
}

// TestMigrations runs the migrations twice in a row and then from several stores (separate
// pools) at once on the same database.
func TestMigrations(t *testing.T) {
	for _, b := range backends() {
		if b.name == "SQLiteMemory" {
			continue // private to one pool
		}
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			ctx := context.Background()
			first := openT(t, dsn)
			must(t, first.SaveClient(ctx, &storage.Client{ID: "survivor"}))
			openT(t, dsn) // second start: nothing to do, nothing lost

			const n = 4
			errs := make(chan error, n)
			for range n {
				go func() {
					s, err := Open(ctx, dsn)
					if err == nil {
						err = s.Close()
					}
					errs <- err
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Errorf("concurrent migration: %v", err)
				}
			}
			v, err := first.Version(ctx)
			must(t, err)
			if v != SchemaVersion {
				t.Errorf("Version = %d, want %d", v, SchemaVersion)
			}
			var rows int
			must(t, first.DB().Raw("SELECT COUNT(*) FROM mandate_schema_version").Row().Scan(&rows))
			if rows != len(migrations) {
				t.Errorf("mandate_schema_version has %d rows, want %d", rows, len(migrations))
			}
			if _, err := first.Client(ctx, "survivor"); err != nil {
				t.Errorf("data lost across restarts: %v", err)
			}
		})
	}
}

// TestUseJTIAcrossPools claims one jti from two stores with separate connection pools on the
// same database, as two server instances would.
func TestUseJTIAcrossPools(t *testing.T) {
	for _, b := range backends() {
		if b.name == "SQLiteMemory" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			s1, s2 := openT(t, dsn), openT(t, dsn)
			ctx := context.Background()
			for round := range 5 {
				jti := fmt.Sprintf("iss|jti-%d", round)
				const n = 32
				errs := make(chan error, n)
				start := make(chan struct{})
				for i := range n {
					s := s1
					if i%2 == 1 {
						s = s2
					}
					go func() { <-start; errs <- s.UseJTI(ctx, jti, time.Now().Add(time.Hour)) }()
				}
				close(start)
				won := 0
				for range n {
					err := <-errs
					switch {
					case err == nil:
						won++
					case !errors.Is(err, storage.ErrJTIUsed):
						t.Errorf("UseJTI: %v", err)
					}
				}
				if won != 1 {
					t.Fatalf("round %d: %d winners across two pools, want exactly 1", round, won)
				}
			}
		})
	}
}

// TestSQLiteConcurrentWriters proves that concurrent write transactions and single writes on a
// SQLite file never surface SQLITE_BUSY: every one of them succeeds.
func TestSQLiteConcurrentWriters(t *testing.T) {
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "busy.db"))
	ctx := context.Background()
	must(t, s.SaveClient(ctx, &storage.Client{ID: "c"}))
	client, err := s.Client(ctx, "c")
	must(t, err)
	const writers, each = 32, 20
	errs := make(chan error, writers*each)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				req := fosite.NewRequest()
				req.Client = client
				req.Session = &storage.Session{Subject: "u"}
				sig := fmt.Sprintf("w%d-%d", w, i)
				if w%2 == 0 {
					errs <- s.CreateAccessTokenSession(ctx, sig, req)
					continue
				}
				tx, err := s.BeginTX(ctx)
				if err != nil {
					errs <- err
					continue
				}
				if _, err := s.Keys(tx); err != nil { // read, then write in the same transaction
					errs <- err
					_ = s.Rollback(tx)
					continue
				}
				if err := s.CreateRefreshTokenSession(tx, sig, sig, req); err != nil {
					errs <- err
					_ = s.Rollback(tx)
					continue
				}
				errs <- s.Commit(tx)
			}
		}()
	}
	for range writers {
		<-done
	}
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed < 5 {
				t.Errorf("concurrent write: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent writes failed", failed, writers*each)
	}
	var rows int
	must(t, s.DB().Raw("SELECT COUNT(*) FROM mandate_tokens").Row().Scan(&rows))
	if rows != writers*each {
		t.Errorf("%d token rows, want %d", rows, writers*each)
	}
}

// TestClosedStore: every method of a closed store returns an error and none panics.
func TestClosedStore(t *testing.T) {
	s, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "closed.db"))
	must(t, err)
	must(t, s.Close())
	ctx := context.Background()
	req := fosite.NewRequest()
	req.Session = &storage.Session{}
	calls := map[string]func() error{
		"Client":          func() error { _, err := s.Client(ctx, "x"); return err },
		"SaveClient":      func() error { return s.SaveClient(ctx, &storage.Client{ID: "x"}) },
		"ResourceServers": func() error { _, err := s.ResourceServers(ctx); return err },
		"Trusts":          func() error { _, err := s.Trusts(ctx, "x"); return err },
		"UseJTI":          func() error { return s.UseJTI(ctx, "x", time.Now()) },
		"UpdateKeys": func() error {
			return s.UpdateKeys(ctx, func(k []storage.Key) ([]storage.Key, error) { return k, nil })
		},
		"CreateAccessTokenSession": func() error { return s.CreateAccessTokenSession(ctx, "x", req) },
		"GetAccessTokenSession":    func() error { _, err := s.GetAccessTokenSession(ctx, "x", nil); return err },
		"RotateRefreshToken":       func() error { return s.RotateRefreshToken(ctx, "r", "x") },
		"DeleteExpired":            func() error { _, err := s.DeleteExpired(ctx, time.Now(), 0); return err },
		"BeginTX":                  func() error { _, err := s.BeginTX(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s on a closed store = %v, want a database error", name, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"", "nope://x", "sqlite:", "sqlite:bad\x00path", "mysql://user:pass@bad(((", "postgres://%zz",
		"sqlite:" + filepath.Join(t.TempDir(), "missing-dir", "x.db"),
	} {
		t.Run(fmt.Sprintf("%q", dsn), func(t *testing.T) {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", dsn)
			}
			if strings.Contains(err.Error(), "pass") && strings.Contains(dsn, "pass") {
				t.Errorf("error leaks the DSN: %v", err)
			}
		})
	}
}

func TestTransactionMisuse(t *testing.T) {
	s := openT(t, "sqlite::memory:")
	ctx := context.Background()
	tx, err := s.BeginTX(ctx)
	must(t, err)
	if _, err := s.BeginTX(tx); err == nil {
		t.Error("nested BeginTX succeeded")
	}
	must(t, s.Commit(tx))
	if err := s.Commit(tx); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := s.Rollback(tx); err == nil {
		t.Error("Rollback after Commit succeeded")
	}
	// Another store's transaction is not this store's.
	other := openT(t, "sqlite::memory:")
	otx, err := other.BeginTX(ctx)
	must(t, err)
	defer other.Rollback(otx)
	if err := s.Commit(otx); err == nil {
		t.Error("Commit of another store's transaction succeeded")
	}
}

func TestInvalidUTF8Refused(t *testing.T) {
	s := openT(t, "sqlite::memory:")
	err := s.SaveClient(context.Background(), &storage.Client{ID: "ok", Scopes: []string{"\xff"}})
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("SaveClient with invalid UTF-8 = %v, want ErrInvalidInput", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
