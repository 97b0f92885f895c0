package gormstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestPoolResolve: zero fields take the database's defaults, MaxIdle follows MaxOpen and never
// exceeds it, negative values lift a limit.
func TestPoolResolve(t *testing.T) {
	for _, c := range []struct {
		name string
		d    dialect
		in   Pool
		want Pool
	}{
		{"postgres defaults", dialectPostgres, Pool{}, Pool{10, 10, 30 * time.Minute, 5 * time.Minute}},
		{"mysql defaults", dialectMySQL, Pool{}, Pool{10, 10, 3 * time.Minute, time.Minute}},
		{"sqlite keeps database/sql's", dialectSQLite, Pool{}, Pool{-1, 2, -1, -1}},
		{"idle follows open", dialectPostgres, Pool{MaxOpen: 4}, Pool{4, 4, 30 * time.Minute, 5 * time.Minute}},
		{"idle capped at open", dialectMySQL, Pool{MaxOpen: 4, MaxIdle: 9}, Pool{4, 4, 3 * time.Minute, time.Minute}},
		{"unlimited open keeps 2 idle", dialectPostgres, Pool{MaxOpen: -1}, Pool{-1, 2, 30 * time.Minute, 5 * time.Minute}},
		{"no idle, no lifetimes", dialectPostgres, Pool{MaxIdle: -1, MaxLifetime: -1, MaxIdleTime: -1}, Pool{10, -1, -1, -1}},
	} {
		if got := c.in.resolve(c.d); got != c.want {
			t.Errorf("%s: %+v → %+v, want %+v", c.name, c.in, got, c.want)
		}
	}
}

// TestPoolApplied: Open sizes the pool with the database's defaults and WithPool's fields; New
// leaves a caller's pool alone unless WithPool is given; an in-memory SQLite database keeps its
// single connection.
func TestPoolApplied(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			s := openT(t, dsn)
			sqlDB, err := s.DB().DB()
			must(t, err)
			want := defaultPool(s.dialect).resolve(s.dialect).MaxOpen
			if b.name == "SQLiteMemory" {
				want = 1
			}
			if got := sqlDB.Stats().MaxOpenConnections; got != max(want, 0) {
				t.Errorf("Open: MaxOpenConnections = %d, want %d", got, want)
			}
			if b.name == "SQLiteMemory" {
				return
			}
			s2 := openT(t, dsn, WithPool(Pool{MaxOpen: 3}))
			sqlDB2, err := s2.DB().DB()
			must(t, err)
			if got := sqlDB2.Stats().MaxOpenConnections; got != 3 {
				t.Errorf("WithPool(MaxOpen 3): MaxOpenConnections = %d", got)
			}
			// New on a handle of the caller's: its pool stays as the caller set it.
			sqlDB.SetMaxOpenConns(7)
			if _, err := New(context.Background(), s.DB()); err != nil {
				t.Fatal(err)
			}
			if got := sqlDB.Stats().MaxOpenConnections; got != 7 {
				t.Errorf("New without WithPool changed the caller's pool: MaxOpenConnections = %d", got)
			}
			if _, err := New(context.Background(), s.DB(), WithPool(Pool{MaxOpen: 5})); err != nil {
				t.Fatal(err)
			}
			if got := sqlDB.Stats().MaxOpenConnections; got != 5 {
				t.Errorf("New with WithPool(MaxOpen 5): MaxOpenConnections = %d", got)
			}
		})
	}
}

// burst drives s with the token endpoint's writes and reads from many goroutines at once:
// token rows (group commit), JWT IDs, existence checks, client reads outside the cache and a
// transaction now and then. It returns the first error.
func burst(s *Store, ops int) error {
	ctx := context.Background()
	prefix := uniqueName()
	client := benchClient()
	if err := s.SaveClient(ctx, client); err != nil {
		return err
	}
	const workers = 48
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	go func() {
		for i := range ops {
			next <- i
		}
		close(next)
	}()
	for range workers {
		wg.Go(func() {
			for i := range next {
				sig := fmt.Sprint(prefix, i)
				var err error
				switch i % 8 {
				case 0:
					err = s.UseJTI(ctx, sig, time.Now().Add(time.Hour))
				case 1:
					_, err = s.AccessTokenExists(ctx, fmt.Sprint(prefix, i-1))
				case 2:
					_, err = s.readClient(ctx, client.ID)
				case 3:
					var tx context.Context
					if tx, err = s.BeginTX(ctx); err == nil {
						if err = s.CreateRefreshTokenSession(tx, sig, "", tokenReq(client)); err == nil {
							err = s.Commit(tx)
						} else {
							_ = s.Rollback(tx)
						}
					}
				default:
					err = s.CreateAccessTokenSession(ctx, sig, tokenReq(client))
				}
				if err != nil {
					errs <- fmt.Errorf("op %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for range next { // a worker that failed left the rest
	}
	return <-errs
}

// freshPostgresDatabase creates a database of its own (sessions are counted per database) and
// returns its name and a DSN for it.
func freshPostgresDatabase(t *testing.T) (string, string) {
	t.Helper()
	u, err := url.Parse(envDSN(t, envPostgres))
	if err != nil {
		t.Fatal(err)
	}
	adm := adminDB(t, envPostgres)
	name := uniqueName()
	if err := adm.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() { adm.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u.Path = "/" + name
	return name, u.String()
}

// TestPoolSessionsPostgres counts the server sessions a store opens over its life, from Open
// through a burst of concurrent writes and reads to Close (pg_stat_database.sessions of a
// database of its own; a session's count is flushed at the latest when it ends): at most the
// pool's size and the change listener, however many tokens the burst writes. The control run
// keeps no idle connection, as database/sql's small default does under load, and opens a
// session for nearly every statement: it shows that the counter sees what the bound rules out.
func TestPoolSessionsPostgres(t *testing.T) {
	name, dsn := freshPostgresDatabase(t)
	admin := adminDB(t, envPostgres)
	sessions := func() int64 {
		var n int64
		must(t, admin.Raw("SELECT sessions FROM pg_stat_database WHERE datname = ?", name).Row().Scan(&n))
		return n
	}
	run := func(p Pool, ops int) int64 {
		before := sessions()
		s, err := Open(context.Background(), dsn, WithPool(p))
		must(t, err)
		err = burst(s, ops)
		must(t, s.Close())
		must(t, err)
		return sessions() - before
	}
	const size = 6
	for _, ops := range []int{400, 4000} {
		if n := run(Pool{MaxOpen: size}, ops); n > size+1 {
			t.Errorf("%d operations opened %d sessions; the pool holds %d (and one listener)", ops, n, size)
		} else {
			t.Logf("%d operations: %d sessions (pool %d, one listener)", ops, n, size)
		}
	}
	if n := run(Pool{MaxOpen: size, MaxIdle: -1}, 400); n <= 4*size {
		t.Errorf("control without idle connections opened only %d sessions for 400 operations: the counter does not count", n)
	} else {
		t.Logf("control, no idle connections: 400 operations opened %d sessions", n)
	}
}

// TestPoolSessionsMySQL runs the burst as an account that MariaDB lets open only as many
// sessions per hour as the pool holds (MAX_CONNECTIONS_PER_HOUR): one session more fails the
// burst with error 1226. The server's Connections status (global, so other clients count too)
// is logged. The control run, without idle connections, must hit the limit.
func TestPoolSessionsMySQL(t *testing.T) {
	dsn := freshMySQL(t)
	admin := adminDB(t, envMySQL)
	cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
	must(t, err)
	const size = 6
	account := func(limit int) string {
		user := uniqueName()
		must(t, admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw-%s' WITH MAX_CONNECTIONS_PER_HOUR %d", user, user, limit)).Error)
		t.Cleanup(func() { admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
		must(t, admin.Exec(fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", cfg.DBName, user)).Error)
		c := cfg.Clone()
		c.User, c.Passwd = user, "pw-"+user
		return "mysql://" + c.FormatDSN()
	}
	connections := func() int64 {
		var name string
		var n int64
		must(t, admin.Raw("SHOW GLOBAL STATUS LIKE 'Connections'").Row().Scan(&name, &n))
		return n
	}
	openAndBurst := func(dsn string, p Pool, ops int) error {
		s, err := Open(context.Background(), dsn, WithPool(p))
		if err != nil {
			return err
		}
		err = burst(s, ops)
		return errors.Join(err, s.Close())
	}
	for _, ops := range []int{400, 4000} {
		before := connections()
		if err := openAndBurst(account(size), Pool{MaxOpen: size}, ops); err != nil {
			t.Errorf("%d operations with a pool of %d, at most %d sessions allowed: %v", ops, size, size, err)
		}
		t.Logf("%d operations: the server's Connections counter grew by %d (all clients)", ops, connections()-before)
	}
	err = openAndBurst(account(size), Pool{MaxOpen: size, MaxIdle: -1}, 400)
	var my *mysqldrv.MySQLError
	if !errors.As(err, &my) || my.Number != 1226 {
		t.Errorf("control without idle connections: %v, want error 1226 (more sessions than the limit)", err)
	}
}

// TestPoolBoundedNoDeadlock: a small pool under the burst finishes, with a handle from Open and
// with a caller's gorm handle that prepares statements (gorm's statement cache can deadlock a
// bounded pool; the store's own statements bypass it).
func TestPoolBoundedNoDeadlock(t *testing.T) {
	for _, b := range []backend{{"Postgres", freshPostgres}, {"MySQL", freshMySQL}} {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			d, target, err := parseDSN(dsn)
			must(t, err)
			dial := postgres.Open(target)
			if d == dialectMySQL {
				dial = mysql.Open(target)
			}
			db, err := gorm.Open(dial, &gorm.Config{PrepareStmt: true, Logger: logger.Discard})
			must(t, err)
			t.Cleanup(func() {
				if sqlDB, err := db.DB(); err == nil {
					sqlDB.Close()
				}
			})
			wrapped, err := New(context.Background(), db, WithPool(Pool{MaxOpen: 2}))
			must(t, err)
			t.Cleanup(func() { wrapped.Close() })
			for name, s := range map[string]*Store{"Open": openT(t, dsn, WithPool(Pool{MaxOpen: 2})), "New": wrapped} {
				done := make(chan error, 1)
				go func() { done <- burst(s, 2000) }()
				select {
				case err := <-done:
					must(t, err)
				case <-time.After(2 * time.Minute): // a liveness bound, not a speed one
					// Fail at once: the deadlocked store could not even be closed.
					panic(fmt.Sprintf("%s: the burst on a pool of 2 did not finish in 2 minutes: deadlock", name))
				}
			}
		})
	}
}
