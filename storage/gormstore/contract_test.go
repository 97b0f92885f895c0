package gormstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// The tests in this file check contracts of issue 2 that only the gorm store itself can show:
// bounded GC batches, errors (never panics) from a closed or unreachable database, concurrent
// migrations of an empty database, the CI rule for missing databases, the single SQLite import,
// and the shape of the stored rows.

// persistent are the backends whose database outlives one connection pool.
func persistent() []backend {
	var out []backend
	for _, b := range backends() {
		if b.name != "SQLiteMemory" {
			out = append(out, b)
		}
	}
	return out
}

// countingPool records how many rows each DELETE statement removed.
type countingPool struct {
	gorm.ConnPool
	mu      sync.Mutex
	deletes []int64
}

func (p *countingPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := p.ConnPool.ExecContext(ctx, query, args...)
	if err == nil && strings.HasPrefix(strings.TrimSpace(query), "DELETE") {
		n, _ := res.RowsAffected()
		p.mu.Lock()
		p.deletes = append(p.deletes, n)
		p.mu.Unlock()
	}
	return res, err
}

// TestDeleteExpiredInBatches: garbage collection deletes in statements of at most batch rows,
// however much has expired, and removes all of it.
func TestDeleteExpiredInBatches(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := openT(t, b.fresh(t))
			ctx := context.Background()
			must(t, s.SaveClient(ctx, &storage.Client{ID: "c"}))
			client, err := s.Client(ctx, "c")
			must(t, err)
			past := time.Now().Add(-time.Hour)
			const tokens, jtis, batch = 10, 5, 3
			for i := range tokens {
				req := fosite.NewRequest()
				req.ID = fmt.Sprint("r", i)
				req.Client = client
				sess := &storage.Session{}
				sess.SetExpiresAt(fosite.AccessToken, past)
				req.Session = sess
				must(t, s.CreateAccessTokenSession(ctx, fmt.Sprint("sig-", i), req))
			}
			for i := range jtis {
				must(t, s.UseJTI(ctx, fmt.Sprint("jti-", i), past))
			}

			pool := &countingPool{ConnPool: s.db.Statement.ConnPool}
			s.db.Statement.ConnPool = pool
			n, err := s.DeleteExpired(ctx, time.Now(), batch)
			s.db.Statement.ConnPool = pool.ConnPool
			must(t, err)
			if n != tokens+jtis {
				t.Errorf("DeleteExpired removed %d rows, want %d", n, tokens+jtis)
			}
			var sum int64
			for _, d := range pool.deletes {
				if d > batch {
					t.Errorf("one DELETE removed %d rows; batches must hold at most %d", d, batch)
				}
				sum += d
			}
			// 10 tokens in batches of 3 need 4 full-or-partial statements, 5 JWT IDs 2.
			if min := (tokens+batch-1)/batch + (jtis+batch-1)/batch; len(pool.deletes) < min || sum != tokens+jtis {
				t.Errorf("DELETE statements removed %v rows; want at least %d statements summing to %d", pool.deletes, min, tokens+jtis)
			}
			var left int
			must(t, s.DB().Raw("SELECT COUNT(*) FROM mandate_tokens").Row().Scan(&left))
			if left != 0 {
				t.Errorf("%d expired token rows left", left)
			}
		})
	}
}

// storeCalls calls every method of the store once; each must return an error (not ErrNotFound,
// which would claim the record is missing) when the database is gone.
func storeCalls(s *Store) map[string]func() error {
	ctx := context.Background()
	req := fosite.NewRequest()
	req.ID = "r"
	req.Session = &storage.Session{}
	ar := fosite.NewAuthorizeRequest()
	ar.Session = &storage.Session{}
	keep := func(k []storage.Key) ([]storage.Key, error) { return k, nil }
	return map[string]func() error{
		"Client":          func() error { _, err := s.Client(ctx, "x"); return err },
		"SaveClient":      func() error { return s.SaveClient(ctx, &storage.Client{ID: "x"}) },
		"DeleteClient":    func() error { return s.DeleteClient(ctx, "x") },
		"ResourceServer":  func() error { _, err := s.ResourceServer(ctx, "https://x/"); return err },
		"ResourceServers": func() error { _, err := s.ResourceServers(ctx); return err },
		"SaveResourceServer": func() error {
			return s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://x/", Default: true})
		},
		"DeleteResourceServer":           func() error { return s.DeleteResourceServer(ctx, "https://x/") },
		"Trusts":                         func() error { _, err := s.Trusts(ctx, "x"); return err },
		"SaveTrust":                      func() error { return s.SaveTrust(ctx, &storage.Trust{Issuer: "x"}) },
		"DeleteTrust":                    func() error { return s.DeleteTrust(ctx, "x") },
		"Peer":                           func() error { _, err := s.Peer(ctx, "x"); return err },
		"Peers":                          func() error { _, err := s.Peers(ctx); return err },
		"SavePeer":                       func() error { return s.SavePeer(ctx, &storage.Peer{Issuer: "x"}) },
		"DeletePeer":                     func() error { return s.DeletePeer(ctx, "x") },
		"Keys":                           func() error { _, err := s.Keys(ctx); return err },
		"UpdateKeys":                     func() error { return s.UpdateKeys(ctx, keep) },
		"UseJTI":                         func() error { return s.UseJTI(ctx, "x", time.Now().Add(time.Hour)) },
		"JTIUsed":                        func() error { _, err := s.JTIUsed(ctx, "x"); return err },
		"CreateAuthorizeCodeSession":     func() error { return s.CreateAuthorizeCodeSession(ctx, "x", req) },
		"GetAuthorizeCodeSession":        func() error { _, err := s.GetAuthorizeCodeSession(ctx, "x", nil); return err },
		"InvalidateAuthorizeCodeSession": func() error { return s.InvalidateAuthorizeCodeSession(ctx, "x") },
		"CreateAccessTokenSession":       func() error { return s.CreateAccessTokenSession(ctx, "x", req) },
		"GetAccessTokenSession":          func() error { _, err := s.GetAccessTokenSession(ctx, "x", nil); return err },
		"DeleteAccessTokenSession":       func() error { return s.DeleteAccessTokenSession(ctx, "x") },
		"CreateRefreshTokenSession":      func() error { return s.CreateRefreshTokenSession(ctx, "x", "y", req) },
		"GetRefreshTokenSession":         func() error { _, err := s.GetRefreshTokenSession(ctx, "x", nil); return err },
		"DeleteRefreshTokenSession":      func() error { return s.DeleteRefreshTokenSession(ctx, "x") },
		"RotateRefreshToken":             func() error { return s.RotateRefreshToken(ctx, "r", "x") },
		"RevokeRefreshToken":             func() error { return s.RevokeRefreshToken(ctx, "r") },
		"RevokeAccessToken":              func() error { return s.RevokeAccessToken(ctx, "r") },
		"CreatePKCERequestSession":       func() error { return s.CreatePKCERequestSession(ctx, "x", req) },
		"GetPKCERequestSession":          func() error { _, err := s.GetPKCERequestSession(ctx, "x", nil); return err },
		"DeletePKCERequestSession":       func() error { return s.DeletePKCERequestSession(ctx, "x") },
		"DeleteExpired":                  func() error { _, err := s.DeleteExpired(ctx, time.Now(), 0); return err },
		"BeginTX":                        func() error { _, err := s.BeginTX(ctx); return err },
		"Version":                        func() error { _, err := s.Version(ctx); return err },
	}
}

// TestClosedStoreEveryMethod: on every database, every method of a store whose connection pool
// is closed returns a database error — never a panic, never a success, never ErrNotFound.
func TestClosedStoreEveryMethod(t *testing.T) {
	for _, b := range persistent() {
		t.Run(b.name, func(t *testing.T) {
			s, err := Open(context.Background(), b.fresh(t))
			must(t, err)
			// Warm the read cache: a closed store must not answer from it either.
			must(t, s.SaveClient(context.Background(), &storage.Client{ID: "x"}))
			_, _ = s.Client(context.Background(), "x")
			must(t, s.Close())
			for name, call := range storeCalls(s) {
				t.Run(name, func(t *testing.T) {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("%s on a closed store panicked: %v", name, r)
						}
					}()
					if err := call(); err == nil || errors.Is(err, storage.ErrNotFound) {
						t.Errorf("%s on a closed store = %v, want a database error", name, err)
					}
				})
			}
		})
	}
}

// TestUnreachableDatabase: Open against a server that does not answer, and New on a handle whose
// pool is already closed, return errors — they do not panic and do not hang.
func TestUnreachableDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5",
		"mysql://root@tcp(127.0.0.1:1)/test?timeout=5s",
	} {
		t.Run(strings.SplitN(dsn, ":", 2)[0], func(t *testing.T) {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open of an unreachable database succeeded")
			}
		})
	}
	t.Run("NewOnClosedPool", func(t *testing.T) {
		db, err := openSQLite(filepath.Join(t.TempDir(), "x.db"), &gorm.Config{})
		must(t, err)
		sqlDB, err := db.DB()
		must(t, err)
		must(t, sqlDB.Close())
		if s, err := New(ctx, db); err == nil || s != nil {
			t.Fatalf("New on a closed pool = %v, %v; want an error", s, err)
		}
	})
}

// TestMigrationsConcurrentFromEmpty starts many instances at once on an empty database, as a
// fleet's first deployment does: every one migrates without error, the version is recorded
// once, and the schema works.
func TestMigrationsConcurrentFromEmpty(t *testing.T) {
	for _, b := range persistent() {
		t.Run(b.name, func(t *testing.T) {
			// A brand-new SQLite file is a race of its own (the switch to WAL needs the lock the
			// others hold): several rounds make a lost race show.
			rounds := 1
			if b.name == "SQLiteFile" {
				rounds = 15
			}
			for range rounds {
				concurrentFirstStart(t, b.fresh(t))
			}
		})
	}
}

// concurrentFirstStart opens several stores on the empty database dsn at once: every one
// migrates without error, the version is recorded once, and the schema works.
func concurrentFirstStart(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(ctx, dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		} else {
			t.Cleanup(func() { stores[i].Close() })
		}
	}
	if t.Failed() {
		return
	}
	var rows, maxV int
	must(t, stores[0].DB().Raw("SELECT COUNT(*), MAX(version) FROM mandate_schema_version").Row().Scan(&rows, &maxV))
	if rows != len(migrations) || maxV != SchemaVersion {
		t.Errorf("mandate_schema_version: %d rows, max %d; want %d rows, max %d", rows, maxV, len(migrations), SchemaVersion)
	}
	for i, s := range stores {
		id := fmt.Sprint("client-", i)
		must(t, s.SaveClient(ctx, &storage.Client{ID: id}))
		if _, err := stores[(i+1)%n].Client(ctx, id); err != nil {
			t.Errorf("instance %d's write not visible to another: %v", i, err)
		}
	}
}

// recordingTB stands in for the test a database helper is given, to see whether it fails or
// skips. Both end the calling goroutine, as they do on a real test.
type recordingTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recordingTB) Helper()          {}
func (r *recordingTB) Cleanup(f func()) {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingDatabaseInCI: with CI=true a missing or unreachable PostgreSQL or MariaDB fails the
// test; without it the test is skipped with a message naming what is missing.
func TestMissingDatabaseInCI(t *testing.T) {
	for _, db := range []struct {
		env, unreachable string
		fresh            func(testing.TB) string
	}{
		{envPostgres, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5", freshPostgres},
		{envMySQL, "mysql://root@tcp(127.0.0.1:1)/test?timeout=5s", freshMySQL},
	} {
		for _, tt := range []struct {
			name, ci, dsn, mention string
			wantFail               bool
		}{
			{"unset/CI", "true", "", db.env, true},
			{"unset/local", "", "", db.env, false},
			{"unreachable/CI", "true", db.unreachable, "unreachable", true},
			{"unreachable/local", "", db.unreachable, "unreachable", false},
		} {
			t.Run(db.env+"/"+tt.name, func(t *testing.T) {
				t.Setenv("CI", tt.ci)
				t.Setenv(db.env, tt.dsn)
				r := &recordingTB{TB: t}
				done := make(chan struct{})
				go func() { defer close(done); db.fresh(r) }()
				<-done
				switch {
				case tt.wantFail && !r.failed:
					t.Errorf("CI=%q: failed=%v skipped=%v; want a failure", tt.ci, r.failed, r.skipped)
				case !tt.wantFail && !r.skipped:
					t.Errorf("CI=%q: failed=%v skipped=%v; want a skip", tt.ci, r.failed, r.skipped)
				}
				if !strings.Contains(r.msg, tt.mention) {
					t.Errorf("message %q does not mention %q", r.msg, tt.mention)
				}
			})
		}
	}
}

// moduleRoot finds the directory of go.mod above the package directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	must(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// TestSQLiteDriverImportedOnce: in the whole module only storage/gormstore/sqlite.go and its
// VFS, sqlitewal.go, import the SQLite driver (tests aside), no other SQLite driver is imported
// anywhere, and nothing the store links needs cgo (the embedded default must build with
// CGO_ENABLED=0).
func TestSQLiteDriverImportedOnce(t *testing.T) {
	root := moduleRoot(t)
	other := []string{"modernc.org/sqlite", "github.com/mattn/go-sqlite3", "github.com/glebarez/", "gorm.io/driver/sqlite"}
	var importers []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "github.com/ncruces/go-sqlite3" || strings.HasPrefix(p, "github.com/ncruces/go-sqlite3/") {
				importers = append(importers, filepath.ToSlash(rel))
			}
			for _, o := range other {
				if strings.HasPrefix(p, o) {
					t.Errorf("%s imports another SQLite driver: %s", rel, p)
				}
			}
		}
		return nil
	})
	must(t, err)
	slices.Sort(importers)
	importers = slices.Compact(importers)
	// Test files may import it too (the VFS's tests do).
	importers = slices.DeleteFunc(importers, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	if want := []string{"storage/gormstore/sqlite.go", "storage/gormstore/sqlitewal.go"}; !slices.Equal(importers, want) {
		t.Errorf("files importing the SQLite driver: %q; want only %q", importers, want)
	}

	goTool, err := osexec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := osexec.Command(goTool, "list", "-deps", "-f", "{{if .CgoFiles}}{{if not .Standard}}{{.ImportPath}}{{end}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("non-standard packages with cgo files linked by the store:\n%s", s)
	}
}

// TestBuildWithoutSQLite: with the mandate_nosqlite build tag the store links no SQLite
// package, and Open refuses a sqlite: DSN (TestOpenWithoutSQLite, run in a build with the tag);
// sqlite.go and sqlitewal.go, the only importers of the driver, carry the opposite tag.
func TestBuildWithoutSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package's tests again with the tag")
	}
	goTool, err := osexec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := osexec.Command(goTool, "list", "-deps", "-tags", "mandate_nosqlite", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "sqlite") {
			t.Errorf("built with mandate_nosqlite, the store links %s", p)
		}
	}
	out, err = osexec.Command(goTool, "test", "-tags", "mandate_nosqlite", "-count=1", "-v", "-run", "^TestOpenWithoutSQLite$", ".").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestOpenWithoutSQLite") {
		t.Fatalf("go test -tags mandate_nosqlite: %v\n%s", err, out)
	}
}

// TestStoredRowShape: token rows are keyed by fixed-length hashes (a 342-byte RS256 signature
// segment or a 64 KiB id alike), neither the signature nor the request id is stored in the
// clear (nor when they are one and the same), session and request data are JSON, and
// expires_at is indexed on the JWT ID table and, except on SQLite (see TestSQLiteQueryPlans),
// on the token table.
func TestStoredRowShape(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := openT(t, b.fresh(t))
			ctx := context.Background()
			must(t, s.SaveClient(ctx, &storage.Client{ID: "c"}))
			client, err := s.Client(ctx, "c")
			must(t, err)
			sigs := []string{strings.Repeat("S", 342), strings.Repeat("L", 64<<10)}
			for i, sig := range sigs {
				req := fosite.NewRequest()
				req.ID = fmt.Sprintf("request-id-%d-%s", i, strings.Repeat("q", 40))
				req.Client = client
				req.Session = &storage.Session{Subject: "alice"}
				must(t, s.CreateAccessTokenSession(ctx, sig, req))
			}
			// A grant of one token: its request ID is its signature.
			one := strings.Repeat("O", 86)
			req := fosite.NewRequest()
			req.ID, req.Client, req.Session = one, client, &storage.Session{}
			must(t, s.CreateAccessTokenSession(ctx, one, req))
			sigs = append(sigs, one)
			rows, err := s.DB().Raw("SELECT signature, request_hash, request, session FROM mandate_tokens").Rows()
			must(t, err)
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
				var sig, reqHash []byte
				var request, session string
				must(t, rows.Scan(&sig, &reqHash, &request, &session))
				if len(sig) != 32 || len(reqHash) != 32 {
					t.Errorf("key columns are %d and %d bytes, want 32 (a SHA-256)", len(sig), len(reqHash))
				}
				for _, raw := range sigs {
					if strings.Contains(request, raw[:64]) || strings.Contains(session, raw[:64]) {
						t.Error("the token signature is stored in the clear")
					}
				}
				if !json.Valid([]byte(request)) || !json.Valid([]byte(session)) {
					t.Errorf("request or session column is not JSON: %.80s / %.80s", request, session)
				}
			}
			must(t, rows.Err())
			if n != len(sigs) {
				t.Fatalf("%d token rows, want %d", n, len(sigs))
			}
			for _, table := range []string{"mandate_tokens", "mandate_jtis"} {
				if table == "mandate_tokens" && s.dialect == dialectSQLite {
					continue // ordered by expiry instead
				}
				var q string
				switch s.dialect {
				case dialectPostgres:
					q = "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = '" + table +
						"' AND indexdef LIKE '%(expires_at)%'"
				case dialectMySQL:
					q = "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = '" +
						table + "' AND column_name = 'expires_at' AND seq_in_index = 1"
				default:
					q = "SELECT COUNT(*) FROM sqlite_master m, pragma_index_info(m.name) i WHERE m.type = 'index' AND m.tbl_name = '" +
						table + "' AND i.name = 'expires_at' AND i.seqno = 0"
				}
				var idx int
				must(t, s.DB().Raw(q).Row().Scan(&idx))
				if idx == 0 {
					t.Errorf("%s.expires_at is not indexed", table)
				}
			}
		})
	}
}

// TestSQLiteOpenPragmas: every connection of a SQLite file store runs in WAL mode with a busy
// timeout and foreign keys on (CONTRIBUTING: "How the store opens SQLite").
func TestSQLiteOpenPragmas(t *testing.T) {
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "p.db"))
	sqlDB, err := s.DB().DB()
	must(t, err)
	ctx := context.Background()
	// Hold several connections at once so that more than one of the pool is checked.
	var conns []*sql.Conn
	for range 3 {
		c, err := sqlDB.Conn(ctx)
		must(t, err)
		conns = append(conns, c)
	}
	for i, c := range conns {
		var mode string
		var busy, fk int
		must(t, c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
		must(t, c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy))
		must(t, c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk))
		if mode != "wal" || busy < 1000 || fk != 1 {
			t.Errorf("connection %d: journal_mode=%s busy_timeout=%d foreign_keys=%d; want wal, >= 1000, 1", i, mode, busy, fk)
		}
		must(t, c.Close())
	}
}

var errInjected = errors.New("injected failure")

// faultPool fails the statements fail selects, also inside transactions begun on it.
type faultPool struct {
	gorm.ConnPool
	fail func(query string) bool
}

func (p *faultPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if p.fail(query) {
		return nil, errInjected
	}
	return p.ConnPool.ExecContext(ctx, query, args...)
}

func (p *faultPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	var (
		inner gorm.ConnPool
		err   error
	)
	switch b := p.ConnPool.(type) {
	case gorm.TxBeginner:
		inner, err = b.BeginTx(ctx, opts)
	case gorm.ConnPoolBeginner:
		inner, err = b.BeginTx(ctx, opts)
	default:
		return nil, fmt.Errorf("pool %T cannot begin transactions", p.ConnPool)
	}
	if err != nil {
		return nil, err
	}
	return &faultTx{faultPool{ConnPool: inner, fail: p.fail}}, nil
}

type faultTx struct{ faultPool }

func (t *faultTx) Commit() error   { return t.ConnPool.(gorm.TxCommitter).Commit() }
func (t *faultTx) Rollback() error { return t.ConnPool.(gorm.TxCommitter).Rollback() }

// TestInternalTransactionsAtomic: a method that writes several statements in a transaction of
// its own leaves nothing half-written when a later statement fails: RotateRefreshToken
// (deactivate, then delete the grant's access tokens) and saving a default resource server
// (clear the old default, then upsert).
func TestInternalTransactionsAtomic(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s := openT(t, b.fresh(t), WithCache(0))
			ctx := context.Background()
			must(t, s.SaveClient(ctx, &storage.Client{ID: "c"}))
			client, err := s.Client(ctx, "c")
			must(t, err)
			req := fosite.NewRequest()
			req.ID = "grant"
			req.Client = client
			req.Session = &storage.Session{}
			must(t, s.CreateAccessTokenSession(ctx, "at", req))
			must(t, s.CreateRefreshTokenSession(ctx, "rt", "at", req))
			must(t, s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://old.example/", Default: true}))

			inject := func(match string) func() {
				orig := s.db.Statement.ConnPool
				s.db.Statement.ConnPool = &faultPool{ConnPool: orig, fail: func(q string) bool {
					return strings.Contains(q, match)
				}}
				return func() { s.db.Statement.ConnPool = orig }
			}

			restore := inject("DELETE FROM mandate_tokens")
			err = s.RotateRefreshToken(ctx, "grant", "rt")
			restore()
			if !errors.Is(err, errInjected) {
				t.Fatalf("RotateRefreshToken with a failing delete = %v, want the injected error", err)
			}
			if _, err := s.GetRefreshTokenSession(ctx, "rt", nil); err != nil {
				t.Errorf("refresh token after a failed rotation: %v, want still active", err)
			}
			if _, err := s.GetAccessTokenSession(ctx, "at", nil); err != nil {
				t.Errorf("access token after a failed rotation: %v, want still there", err)
			}

			restore = inject("INSERT INTO mandate_resource_servers")
			err = s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://new.example/", Default: true})
			restore()
			if !errors.Is(err, errInjected) {
				t.Fatalf("SaveResourceServer with a failing upsert = %v, want the injected error", err)
			}
			old, err := s.ResourceServer(ctx, "https://old.example/")
			must(t, err)
			if !old.Default {
				t.Error("the old default lost its flag although the new default was not saved")
			}
			if _, err := s.ResourceServer(ctx, "https://new.example/"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("new resource server after a failed save: %v, want ErrNotFound", err)
			}

			// And the store still works afterwards.
			must(t, s.RotateRefreshToken(ctx, "grant", "rt"))
			if _, err := s.GetAccessTokenSession(ctx, "at", nil); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("access token after the real rotation: %v, want ErrNotFound", err)
			}
		})
	}
}
