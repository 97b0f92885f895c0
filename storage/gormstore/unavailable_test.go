package gormstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

func TestIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("syntax error at or near"), false},
		{"not found", storage.ErrNotFound, false},
		{"conflict", storage.ErrConflict, false},
		{"jti used", storage.ErrJTIUsed, false},
		{"fosite serialization failure", fosite.ErrSerializationFailure, false},
		{"context canceled", context.Canceled, false},
		{"context deadline", context.DeadlineExceeded, false},
		{"wrapped context deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"already marked", fmt.Errorf("x: %w", storage.ErrUnavailable), true},
		{"bad conn", driver.ErrBadConn, true},
		{"EOF", io.EOF, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"connection refused", refused, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}, true},
		{"bare ECONNRESET", fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"broken pipe", fmt.Errorf("x: %w", syscall.EPIPE), true},
		{"net.Error", &net.DNSError{Err: "no such host", Name: "db", IsNotFound: true}, true},
		{"pgx connect error", &pgconn.ConnectError{Config: &pgconn.Config{}}, true},
		{"pgx conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{"pg admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"pg crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"pg cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"pg connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"pg connection exception", &pgconn.PgError{Code: "08000"}, true},
		{"pg too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"pg unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"pg serialization failure", &pgconn.PgError{Code: "40001"}, false},
		{"pg undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"pg query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"mysql invalid connection", mysqldrv.ErrInvalidConn, true},
		{"mysql server shutdown", &mysqldrv.MySQLError{Number: 1053}, true},
		{"mysql too many connections", &mysqldrv.MySQLError{Number: 1040}, true},
		{"mysql cannot connect (socket)", &mysqldrv.MySQLError{Number: 2002}, true},
		{"mysql cannot connect", &mysqldrv.MySQLError{Number: 2003}, true},
		{"mysql gone away", &mysqldrv.MySQLError{Number: 2006}, true},
		{"mysql lost connection", &mysqldrv.MySQLError{Number: 2013}, true},
		{"mariadb connection killed", &mysqldrv.MySQLError{Number: 1927}, true},
		{"mysql duplicate", &mysqldrv.MySQLError{Number: 1062}, false},
		{"mysql deadlock", &mysqldrv.MySQLError{Number: 1213}, false},
		{"mysql syntax", &mysqldrv.MySQLError{Number: 1064}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isUnavailable(tc.err); got != tc.want {
				t.Errorf("isUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if tc.err == nil {
				return
			}
			if _, ok := tc.err.(*pgconn.ConnectError); ok {
				return // its Error method needs the unexported cause
			}
			err := wrap("op", tc.err)
			if got := errors.Is(err, storage.ErrUnavailable); got != tc.want {
				t.Errorf("errors.Is(wrap(%v), ErrUnavailable) = %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("wrap lost the original error %v: %v", tc.err, err)
			}
			if !strings.HasPrefix(err.Error(), "gormstore: op: ") {
				t.Errorf("wrap = %q, want the package and operation first", err)
			}
		})
	}
}

// TestWrapMarksOnce: an error wrapped again (a method calling another) is marked once, and the
// driver's error stays reachable with errors.As.
func TestWrapMarksOnce(t *testing.T) {
	inner := wrap("inner", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"})
	outer := wrap("outer", inner)
	if got := strings.Count(outer.Error(), storage.ErrUnavailable.Error()); got != 1 {
		t.Errorf("%q carries the mark %d times, want once", outer, got)
	}
	var pg *pgconn.PgError
	if !errors.As(outer, &pg) || pg.Code != "57P01" {
		t.Errorf("the driver's error is not in the chain of %v", outer)
	}
	if got := markUnavailable(outer); got != outer {
		t.Errorf("markUnavailable changed a marked error: %v", got)
	}
	plain := errors.New("plain")
	if got := markUnavailable(plain); got != plain {
		t.Errorf("markUnavailable changed an unrelated error: %v", got)
	}
}

// TestOpenUnreachableIsUnavailable: Open against a port where nothing listens, and a SQLite
// file in a directory that does not exist, fail with storage.ErrUnavailable.
func TestOpenUnreachableIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	must(t, ln.Close()) // the port now refuses connections
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=5",
		"mysql://root@tcp(" + addr + ")/test?timeout=5s",
		"sqlite:" + filepath.Join(t.TempDir(), "missing", "dir", "mandate.db"),
	} {
		t.Run(strings.SplitN(dsn, ":", 2)[0], func(t *testing.T) {
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("Open = %v, want storage.ErrUnavailable", err)
			}
		})
	}
}

// tcpProxy forwards connections to a database server. Stopping it closes its listener and
// every connection it carries — to the store behind it, the server has stopped — without
// touching the server, which other tests share.
type tcpProxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close(); c.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

// track records a proxied pair, or closes it if the proxy was stopped meanwhile.
func (p *tcpProxy) track(c ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, x := range c {
			x.Close()
		}
		return false
	}
	for _, x := range c {
		p.conns[x] = struct{}{}
	}
	return true
}

// stop refuses new connections and breaks every open one.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// start listens again on the same address.
func (p *tcpProxy) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	must(t, err)
	p.serve(ln)
}

// TestUnavailableThroughOutage: a store on PostgreSQL or MariaDB whose server stops answering
// (a proxy in between is stopped, which the store cannot tell from a server restart) returns
// storage.ErrUnavailable from every method — with the driver's error in the chain, never
// ErrNotFound — and works again, by itself, once the server is back.
func TestUnavailableThroughOutage(t *testing.T) {
	for _, b := range backends() {
		if !strings.HasPrefix(b.name, "Postgres") && !strings.HasPrefix(b.name, "MySQL") {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			var proxied string
			var proxy *tcpProxy
			if b.name == "Postgres" {
				u, err := url.Parse(dsn)
				must(t, err)
				proxy = newTCPProxy(t, u.Host)
				u.Host = proxy.addr
				proxied = u.String()
			} else {
				cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
				must(t, err)
				proxy = newTCPProxy(t, cfg.Addr)
				cfg.Addr = proxy.addr
				proxied = "mysql://" + cfg.FormatDSN()
			}
			s := openT(t, proxied, WithCache(0))
			ctx := context.Background()
			must(t, s.SaveClient(ctx, &storage.Client{ID: "x"}))

			proxy.stop()
			for name, call := range storeCalls(s) {
				err := call()
				if !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s while the database is down = %v, want storage.ErrUnavailable", name, err)
				}
			}

			proxy.start(t)
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := s.Client(ctx, "x")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the store did not recover within 10 s: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, name := range []string{"SaveClient", "Keys", "UseJTI", "CreateAccessTokenSession"} {
				if err := storeCalls(s)[name](); err != nil {
					t.Errorf("%s after recovery: %v", name, err)
				}
			}
			txCtx, err := s.BeginTX(ctx)
			must(t, err)
			must(t, s.Rollback(txCtx))
		})
	}
}
