//go:build !mandate_nosqlite

package gormstore

// This file and sqlitewal.go (its VFS) are the only ones that import the SQLite driver
// (github.com/ncruces/go-sqlite3, pure Go, no cgo). CONTRIBUTING.md ("The embedded SQLite
// driver") says why this driver.

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// sqliteParams open every connection with a busy timeout, foreign keys and synchronous=NORMAL
// (durable across application crashes; WAL keeps the database consistent across power loss).
// Write transactions start with BEGIN IMMEDIATE, so a transaction takes the write lock up front
// and waits for it (busy_timeout) instead of failing with SQLITE_BUSY on a read-to-write
// upgrade. The store checkpoints the log in the background (see checkpointer); SQLite's
// automatic checkpoint is the backstop, at 10,000 pages (40 MB of log) instead of 1000. WAL
// mode itself is set once per file by openSQLite (see setWAL).
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=synchronous(normal)" +
	"&_pragma=foreign_keys(on)&_pragma=wal_autocheckpoint(10000)&_txlock=immediate"

// sqliteBusyTimeout is the busy_timeout of sqliteParams.
const sqliteBusyTimeout = 10 * time.Second

// openSQLite opens path (":memory:" for a private in-memory database).
func openSQLite(path string, cfg *gorm.Config) (*gorm.DB, error) {
	if path == "" {
		return nil, errors.New("gormstore: sqlite: empty path")
	}
	if strings.ContainsRune(path, 0) {
		return nil, errors.New("gormstore: sqlite: path contains a NUL byte")
	}
	memory := path == ":memory:"
	var dsn string
	if memory {
		dsn = "file::memory:?" + sqliteParams
	} else {
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath() + "?vfs=" + walVFS + "&" + sqliteParams
	}
	sqlDB, err := driver.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if memory {
		// Each connection to ":memory:" is its own database: keep exactly one.
		sqlDB.SetMaxOpenConns(1)
	} else if err := setWAL(sqlDB); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db, err := gorm.Open(sqliteDialector{conn: sqlDB}, cfg)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return db, nil
}

// setWAL puts the database in WAL mode, which the file then keeps. The switch needs a moment
// of exclusive access, which the busy handler does not wait for: several instances opening a
// brand-new file at once would see SQLITE_BUSY (as a journal_mode pragma in the DSN, on every
// connection, did). So it runs once, retried until busy_timeout; a file already in WAL mode
// answers at once.
func setWAL(db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		var mode string
		err := db.QueryRow("PRAGMA journal_mode=WAL").Scan(&mode)
		switch {
		case err == nil && strings.EqualFold(mode, "wal"):
			return nil
		case err == nil:
			return fmt.Errorf("journal mode is %q, not wal", mode)
		case !errors.Is(err, sqlite3.BUSY) || time.Now().After(deadline):
			return fmt.Errorf("set WAL mode: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sqliteUnique reports a SQLite unique or primary-key violation, by extended result code.
func sqliteUnique(err error) bool {
	var e *sqlite3.Error
	if !errors.As(err, &e) {
		return false
	}
	c := e.ExtendedCode()
	return c == sqlite3.CONSTRAINT_UNIQUE || c == sqlite3.CONSTRAINT_PRIMARYKEY
}

// sqliteUnavailable reports a SQLite error that means the database file cannot be used right
// now rather than that a statement was wrong: it cannot be opened (SQLITE_CANTOPEN), the
// operating system failed a read or write (SQLITE_IOERR and its extended codes), or another
// connection held the lock for longer than busy_timeout (SQLITE_BUSY).
func sqliteUnavailable(err error) bool {
	var e *sqlite3.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.CANTOPEN, sqlite3.IOERR, sqlite3.BUSY:
		return true
	}
	return false
}

// sqliteRowIDTaken reports an insert that failed because its INTEGER PRIMARY KEY is taken (a
// duplicate of any other unique key is CONSTRAINT_UNIQUE).
func sqliteRowIDTaken(err error) bool {
	var e *sqlite3.Error
	return errors.As(err, &e) && e.ExtendedCode() == sqlite3.CONSTRAINT_PRIMARYKEY
}

// sqliteDialector is a thin gorm dialector over an open *sql.DB of the ncruces driver. The
// store writes its own SQL and DDL, so it needs only gorm's default callbacks, quoting and
// bind variables; the generic migrator is there for applications that use the handle.
type sqliteDialector struct {
	conn *sql.DB
}

func (sqliteDialector) Name() string { return "sqlite" }

func (d sqliteDialector) Initialize(db *gorm.DB) error {
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{
		CreateClauses:        []string{"INSERT", "VALUES", "ON CONFLICT", "RETURNING"},
		UpdateClauses:        []string{"UPDATE", "SET", "FROM", "WHERE", "RETURNING"},
		DeleteClauses:        []string{"DELETE", "FROM", "WHERE", "RETURNING"},
		LastInsertIDReversed: true,
	})
	db.ConnPool = d.conn
	return nil
}

func (d sqliteDialector) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{DB: db, Dialector: d}}
}

func (sqliteDialector) DataTypeOf(f *schema.Field) string {
	switch f.DataType {
	case schema.Bool:
		return "numeric"
	case schema.Int, schema.Uint:
		return "integer"
	case schema.Float:
		return "real"
	case schema.String:
		return "text"
	case schema.Time:
		return "datetime"
	case schema.Bytes:
		return "blob"
	}
	return string(f.DataType)
}

func (sqliteDialector) DefaultValueOf(*schema.Field) clause.Expression {
	return clause.Expr{SQL: "NULL"}
}

func (sqliteDialector) BindVarTo(w clause.Writer, _ *gorm.Statement, _ any) {
	_ = w.WriteByte('?')
}

func (sqliteDialector) QuoteTo(w clause.Writer, s string) {
	for i, part := range strings.Split(s, ".") {
		if i > 0 {
			_ = w.WriteByte('.')
		}
		_ = w.WriteByte('`')
		_, _ = w.WriteString(strings.ReplaceAll(part, "`", "``"))
		_ = w.WriteByte('`')
	}
}

func (sqliteDialector) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `"`, vars...)
}

// Translate implements gorm.ErrorTranslator for applications that enable TranslateError.
func (sqliteDialector) Translate(err error) error {
	if sqliteUnique(err) {
		return fmt.Errorf("%w: %w", gorm.ErrDuplicatedKey, err)
	}
	return err
}
