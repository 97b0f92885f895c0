package gormstore

import (
	"database/sql"
	"time"
)

// Pool sizes the connection pool of a store (see [WithPool]). A zero field takes the default
// of the store's database, listed below; a negative one lifts the limit (MaxOpen, MaxLifetime,
// MaxIdleTime) or keeps no connection idle (MaxIdle).
//
// Defaults on PostgreSQL and MySQL/MariaDB, where every connection is a server session (on
// PostgreSQL a process forked for it):
//
//	                    PostgreSQL   MySQL/MariaDB
//	MaxOpen             10           10
//	MaxIdle             = MaxOpen    = MaxOpen
//	MaxLifetime         30 min       3 min
//	MaxIdleTime         5 min        1 min
//
// Every open connection may stay idle, so a burst of requests reuses the pool instead of
// opening a session per commit (database/sql's own default keeps 2 idle connections: with 16
// concurrent requests nearly every commit opened a new one). Ten connections serve the token
// endpoint at full speed: token rows and JWT IDs are written by one group commit at a time
// (see [WithWriteBatch]) and clients, resource servers, trusts and peers come from the read
// cache, so the pool
// serves mostly introspection reads and the code and refresh grants' transactions. The
// lifetimes replace connections now and then (a failover or a DNS change takes effect, and
// MySQL connections end before the server's or a proxy's idle timeout, as go-sql-driver
// recommends); the idle time gives connections back after a quiet spell. On PostgreSQL the store
// keeps one more session outside the pool, listening for other instances' changes (see
// [WithChangePoll]).
//
// SQLite keeps database/sql's defaults (no limit on open connections, 2 idle, no lifetime):
// its connections are in-process, every token write goes through one group-commit writer, and
// a private in-memory database always has exactly one connection. Leave MaxOpen unlimited on
// SQLite: the store uses gorm's prepared-statement cache there, which can deadlock a bounded
// pool under concurrent transactions (on PostgreSQL and MySQL the store does without it).
type Pool struct {
	// MaxOpen bounds the open connections (in use and idle).
	MaxOpen int
	// MaxIdle bounds the idle connections kept for reuse; never more than MaxOpen. Zero keeps
	// every open connection (2, database/sql's default, when MaxOpen is unlimited).
	MaxIdle int
	// MaxLifetime closes a connection this long after it was opened (once it is idle).
	MaxLifetime time.Duration
	// MaxIdleTime closes a connection that has been idle this long.
	MaxIdleTime time.Duration
}

// WithPool sizes the connection pool (see [Pool] for the defaults). [Open] applies the
// database's defaults with p's non-zero fields over them. [New] leaves the pool of the
// *gorm.DB it is given as it is unless WithPool is passed; then it applies the defaults and p
// in the same way. The pool of a private in-memory SQLite database always keeps its single
// connection.
func WithPool(p Pool) Option {
	return func(s *Store) { s.pool = &p }
}

// defaultPool is the pool of dialect d when no field is set.
func defaultPool(d dialect) Pool {
	switch d {
	case dialectPostgres:
		return Pool{MaxOpen: 10, MaxLifetime: 30 * time.Minute, MaxIdleTime: 5 * time.Minute}
	case dialectMySQL:
		return Pool{MaxOpen: 10, MaxLifetime: 3 * time.Minute, MaxIdleTime: time.Minute}
	}
	return Pool{MaxOpen: -1, MaxIdle: 2, MaxLifetime: -1, MaxIdleTime: -1}
}

// resolve fills p's zero fields from d's defaults. MaxIdle defaults to MaxOpen (2 when MaxOpen
// is unlimited) and never exceeds it.
func (p Pool) resolve(d dialect) Pool {
	def := defaultPool(d)
	if p.MaxOpen == 0 {
		p.MaxOpen = def.MaxOpen
	}
	if p.MaxIdle == 0 {
		p.MaxIdle = def.MaxIdle
	}
	if p.MaxIdle == 0 {
		p.MaxIdle = p.MaxOpen
		if p.MaxOpen < 0 {
			p.MaxIdle = 2 // database/sql's default
		}
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = def.MaxLifetime
	}
	if p.MaxIdleTime == 0 {
		p.MaxIdleTime = def.MaxIdleTime
	}
	if p.MaxOpen > 0 && p.MaxIdle > p.MaxOpen {
		p.MaxIdle = p.MaxOpen
	}
	return p
}

// apply configures db (database/sql: 0 is "no limit" for MaxOpen and the lifetimes, and a
// negative MaxIdle keeps none).
func (p Pool) apply(db *sql.DB) {
	noLimit := func(d time.Duration) time.Duration { return max(d, 0) }
	db.SetMaxOpenConns(max(p.MaxOpen, 0))
	db.SetMaxIdleConns(p.MaxIdle)
	db.SetConnMaxLifetime(noLimit(p.MaxLifetime))
	db.SetConnMaxIdleTime(noLimit(p.MaxIdleTime))
}
