package gormstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-dev/mandate/storage"
)

// isUnavailable reports whether err means that the database cannot be reached right now — it is
// down, restarting, shutting down or refusing connections, or the connection broke — rather
// than that the statement was wrong or the data refused it. Such a call may succeed if retried
// later; [wrap] marks it with [storage.ErrUnavailable].
//
// The caller's own context ending (the client went away, a deadline the caller set) is not an
// outage of the database, even though context.DeadlineExceeded also satisfies net.Error.
func isUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, storage.ErrUnavailable) {
		return true
	}
	// The connection, whichever driver: database/sql's "discard this connection", a stream
	// that ended mid-conversation, or a socket-level failure (refused, reset, broken pipe,
	// unreachable, a dial timeout).
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// PostgreSQL (pgx): a failed connection attempt (refused, or the server answered that it is
	// starting up or shutting down), a connection the driver already closed, and server errors of the connection-exception class or
	// those that say the server is going away.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pgUnavailable(pg.Code)
	}
	// MySQL and MariaDB (go-sql-driver): a connection the driver found broken, and server or
	// client errors that say the server is gone or going away.
	if errors.Is(err, mysqldrv.ErrInvalidConn) {
		return true
	}
	var my *mysqldrv.MySQLError
	if errors.As(err, &my) {
		return myUnavailable(my.Number)
	}
	return sqliteUnavailable(err)
}

// pgUnavailable reports the PostgreSQL SQLSTATEs of an unreachable server: class 08
// (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now (starting up, shutting down, in recovery), 53300 too_many_connections.
//
// See https://www.postgresql.org/docs/current/errcodes-appendix.html.
func pgUnavailable(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return len(code) == 5 && code[:2] == "08"
}

// myUnavailable reports the MySQL/MariaDB error numbers of an unreachable server: 1040 too many
// connections, 1053 server shutdown in progress, 1927 connection killed (MariaDB), and the
// client-side 2002 (cannot connect through the socket), 2003 (cannot connect to the host), 2006
// (server has gone away) and 2013 (lost connection during query), which proxies relay.
func myUnavailable(n uint16) bool {
	switch n {
	case 1040, 1053, 1927, 2002, 2003, 2006, 2013:
		return true
	}
	return false
}

// wrap prefixes err with the package and the operation. An error of an unreachable database
// (see [isUnavailable]) is marked with [storage.ErrUnavailable] as well; the driver's error stays
// in the chain either way.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, storage.ErrUnavailable) && isUnavailable(err) {
		return fmt.Errorf("gormstore: %s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("gormstore: %s: %w", op, err)
}

// markUnavailable marks err with [storage.ErrUnavailable] if it is an error of an unreachable
// database and not marked yet, and returns every other error unchanged: for paths that return
// errors their callers inspect (unique violations, serialization failures) and wrap later.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}
