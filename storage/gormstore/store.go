package gormstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mathrand "math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/storage"
)

// ErrInvalidInput reports a value the store refuses to write because it could not be read back
// exactly (for example a string that is not valid UTF-8).
var ErrInvalidInput = errors.New("gormstore: invalid input")

// Store is a [storage.Store] on a gorm database. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	dialect dialect
	now     func() time.Time
	owned   bool

	writeBatch int
	cacheTTL   time.Duration
	pool       *Pool // WithPool's, if given
	changePoll time.Duration
	noListen   bool         // tests: no LISTEN session on PostgreSQL
	writer     *groupWriter // nil: every write goes to the database directly
	cache      *readCache   // nil: no read cache
	changes    *changeFeed  // other instances' changes to what the store keeps in memory
	// batchObserver is told each group commit's size (WithBatchObserver); nil: nobody.
	batchObserver BatchObserver

	// seq numbers SQLite token rows within their expiry second (see expiryRowID); it starts
	// at random so that two processes sharing a file seldom pick the same id.
	seq atomic.Uint64
}

var _ storage.Store = (*Store)(nil)

type dialect int

const (
	dialectSQLite dialect = iota + 1
	dialectPostgres
	dialectMySQL
)

// Option configures a [Store].
type Option func(*Store)

// WithClock sets the clock the store uses for timestamps and for deciding whether a JWT ID's
// previous use has expired. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// WithWriteBatch sets the largest number of rows one group commit writes (default
// [DefaultWriteBatch]), on every database. Token sessions created outside a caller's
// transaction (CreateAccessTokenSession and the other Create*Session methods) and JWT IDs
// recorded outside one (UseJTI) are written by one writer at a time: rows that concurrent
// callers queue while a write is under way go together in a single transaction — on PostgreSQL
// and MySQL the token rows in one multi-row INSERT — and every caller still returns only after
// its own row is committed, with its own result. n <= 1 turns this off: every call writes its
// row itself.
func WithWriteBatch(n int) Option {
	return func(s *Store) { s.writeBatch = n }
}

// WithCache sets how long a client, resource server, issuer's trusts or peer read from the
// database is served from memory (default [DefaultCacheTTL]); ttl <= 0 turns the cache off. This store's own writes
// invalidate it at once; a change made through another instance sharing the database drops it
// within the change-poll interval, on PostgreSQL at its notification (see [WithChangePoll]);
// ttl bounds what nothing announces — SQL behind the store's back, or every change while the
// polling is off: a client deleted that way keeps authenticating here until then, and a secret
// rotated that way is accepted here only then.
func WithCache(ttl time.Duration) Option {
	return func(s *Store) { s.cacheTTL = ttl }
}

// New wraps db, which must use the postgres, mysql or a sqlite dialector, migrates the schema
// and returns the store. db's own configuration (logger, prepared statements) is kept, except
// that single writes run without gorm's default transaction. [Store.Close] does not close db.
//
// A SQLite handle must be opened the way [Open] does it (WAL, busy_timeout, immediate write
// transactions) or concurrent writers may see SQLITE_BUSY; prefer [Open] for SQLite.
func New(ctx context.Context, db *gorm.DB, opts ...Option) (*Store, error) {
	return newStore(ctx, db, false, opts)
}

// newStore is New; owned reports a handle that Open made (and Close closes), whose pool gets
// the database's defaults.
func newStore(ctx context.Context, db *gorm.DB, owned bool, opts []Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("gormstore: nil *gorm.DB")
	}
	s := &Store{now: time.Now, writeBatch: DefaultWriteBatch, cacheTTL: DefaultCacheTTL, changePoll: DefaultChangePoll}
	s.seq.Store(mathrand.Uint64())
	switch name := db.Dialector.Name(); name {
	case "sqlite", "sqlite3":
		s.dialect = dialectSQLite
	case "postgres":
		s.dialect = dialectPostgres
	case "mysql":
		s.dialect = dialectMySQL
	default:
		return nil, fmt.Errorf("gormstore: unsupported gorm dialector %q", name)
	}
	for _, o := range opts {
		o(s)
	}
	s.owned = owned
	memory, err := sqliteMemory(db, s.dialect)
	if err != nil {
		return nil, err
	}
	if (owned || s.pool != nil) && !memory {
		if err := s.applyPool(db); err != nil {
			return nil, err
		}
	}
	s.db = db.Session(&gorm.Session{SkipDefaultTransaction: true, NewDB: true})
	if ps, ok := s.db.Statement.ConnPool.(*gorm.PreparedStmtDB); ok && s.dialect != dialectSQLite {
		// A caller's handle with PrepareStmt: the store's own statements bypass gorm's cache,
		// which can deadlock a bounded pool (see Open).
		s.db.Statement.ConnPool = ps.ConnPool
	}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	switch {
	case s.writeBatch <= 1:
	case s.dialect == dialectSQLite:
		var ckpt *checkpointer
		var mode string
		if err := queryRow(s.db.WithContext(ctx), "PRAGMA journal_mode", nil, &mode); err == nil && strings.EqualFold(mode, "wal") {
			ckpt = newCheckpointer(s.db, checkpointRows)
		}
		s.writer = newGroupWriter(s.db, s.writeBatch, ckpt, nil, nil)
	default:
		s.writer = newGroupWriter(s.db, s.writeBatch, nil, s.insertTokens, s.txOptions())
	}
	if s.writer != nil {
		s.writer.observe = s.batchObserver
	}
	if s.cacheTTL > 0 {
		s.cache = newReadCache(s.cacheTTL)
	}
	if err := s.startChanges(ctx, memory); err != nil {
		if s.writer != nil {
			s.writer.close()
		}
		return nil, err
	}
	return s, nil
}

// sqliteMemory reports a private in-memory SQLite database (its main file has no name).
func sqliteMemory(db *gorm.DB, d dialect) (bool, error) {
	if d != dialectSQLite {
		return false, nil
	}
	var seq int
	var name, file string
	if err := db.Raw("PRAGMA database_list").Row().Scan(&seq, &name, &file); err != nil {
		return false, wrap("open", err)
	}
	return file == "", nil
}

// Open connects to the database named by dsn, migrates the schema and returns the store:
//
//	sqlite:PATH                            a SQLite file (created if missing), WAL mode
//	sqlite::memory:                        a private in-memory SQLite database (tests)
//	postgres://... or postgresql://...     PostgreSQL, a pgx connection URL
//	mysql://USER:PASS@tcp(HOST:PORT)/DB?…  MySQL or MariaDB, a go-sql-driver DSN after "mysql://"
//
// [Store.Close] closes the connection pool.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	d, target, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	// gorm's prepared-statement cache holds its lock while it waits for a statement another
	// caller is preparing, and that caller may wait for a connection which a transaction holds
	// while it waits for the lock: with a bounded pool the three deadlock (gorm v1.31). SQLite
	// keeps it (its pool is unbounded by default); pgx caches prepared statements per
	// connection by itself, and MySQL interpolates arguments (see parseDSN).
	cfg := &gorm.Config{
		SkipDefaultTransaction: true,
		PrepareStmt:            d == dialectSQLite,
		Logger:                 logger.Discard,
	}
	var db *gorm.DB
	switch d {
	case dialectSQLite:
		db, err = openSQLite(target, cfg)
	case dialectPostgres:
		db, err = gorm.Open(postgres.Open(target), cfg)
	default:
		db, err = gorm.Open(mysql.Open(target), cfg)
	}
	if err != nil {
		return nil, wrap("open", err)
	}
	s, err := newStore(ctx, db, true, opts)
	if err != nil {
		if sqlDB, derr := db.DB(); derr == nil {
			_ = sqlDB.Close()
		}
		return nil, err
	}
	return s, nil
}

// applyPool sizes db's pool: the database's defaults with WithPool's fields over them.
func (s *Store) applyPool(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return wrap("pool", err)
	}
	var p Pool
	if s.pool != nil {
		p = *s.pool
	}
	p.resolve(s.dialect).apply(sqlDB)
	return nil
}

// parseDSN splits a DSN accepted by [Open] into the database kind and what its driver takes: a
// file path (or ":memory:") for SQLite, the URL for PostgreSQL, a go-sql-driver DSN for MySQL.
// Errors never quote the DSN, which may hold a password.
func parseDSN(dsn string) (dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" || strings.ContainsRune(path, 0) {
			return 0, "", errors.New("gormstore: sqlite DSN needs a path (or :memory:) without NUL bytes")
		}
		return dialectSQLite, path, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return 0, "", errors.New("gormstore: malformed postgres DSN")
		}
		return dialectPostgres, dsn, nil
	case strings.HasPrefix(dsn, "mysql://"):
		my, err := mysqldrv.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
		if err != nil {
			return 0, "", errors.New("gormstore: malformed mysql DSN")
		}
		if my.Params == nil {
			my.Params = map[string]string{}
		}
		if _, ok := my.Params["charset"]; !ok {
			my.Params["charset"] = "utf8mb4"
		}
		// The store does not prepare statements through gorm on MySQL (see Open): arguments are
		// interpolated by the driver, one round trip per statement instead of prepare, execute
		// and close. The driver refuses that for a few multibyte character sets, where
		// interpolation could be unsafe; those keep server-side preparation.
		if !strings.Contains(dsn, "interpolateParams=") && !unsafeInterpolation(my.Params["charset"]) {
			my.InterpolateParams = true
		}
		return dialectMySQL, my.FormatDSN(), nil
	}
	return 0, "", errors.New("gormstore: unsupported DSN: want sqlite:, postgres:// or mysql://")
}

// unsafeInterpolation reports the character sets with which go-sql-driver refuses to
// interpolate arguments.
func unsafeInterpolation(charset string) bool {
	for _, cs := range strings.Split(strings.ToLower(charset), ",") {
		switch strings.TrimSpace(cs) {
		case "big5", "cp932", "gb2312", "gbk", "sjis":
			return true
		}
	}
	return false
}

// DB returns the underlying gorm handle (for example for health checks).
func (s *Store) DB() *gorm.DB { return s.db }

// Close waits for the writes queued for a group commit, then closes the connection pool if
// [Open] created it; a store made by [New] leaves the caller's *gorm.DB open.
func (s *Store) Close() error {
	if s.changes != nil {
		s.changes.close()
	}
	if s.writer != nil {
		s.writer.close()
	}
	if s.cache != nil {
		s.cache.close()
	}
	if !s.owned {
		return nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("gormstore: close: %w", err)
	}
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("gormstore: close: %w", err)
	}
	return nil
}

// txKey keys the transaction of one store in a context, so that two stores never use each
// other's transactions.
type txKey struct{ s *Store }

type txState struct {
	tx *gorm.DB
	// dirty records what the transaction wrote that the read cache holds (dirtyClients,
	// dirtyResources, dirtyTrusts, dirtyPeers): invalidated again once the transaction commits.
	dirty atomic.Uint32
}

const (
	dirtyClients = 1 << iota
	dirtyResources
	dirtyTrusts
	dirtyPeers
)

// BeginTX implements fosite's storage.Transactional: it starts a transaction and returns a
// context carrying it. Every method called with that context (or one derived from it) runs in
// the transaction until [Store.Commit] or [Store.Rollback].
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if _, ok := ctx.Value(txKey{s}).(*txState); ok {
		return ctx, errors.New("gormstore: transaction already in progress")
	}
	tx := s.db.WithContext(ctx).Begin(s.txOptions()...)
	if tx.Error != nil {
		return ctx, wrap("begin", tx.Error)
	}
	return context.WithValue(ctx, txKey{s}, &txState{tx: tx}), nil
}

// Commit commits the transaction carried by ctx.
func (s *Store) Commit(ctx context.Context) error {
	st, ok := ctx.Value(txKey{s}).(*txState)
	if !ok {
		return errors.New("gormstore: commit: no transaction in context")
	}
	err := st.tx.Commit().Error
	// Readers outside the transaction may have cached the old rows meanwhile.
	if c := s.cache; c != nil {
		d := st.dirty.Load()
		if d&dirtyClients != 0 {
			invalidate(c, &c.clients, "", true)
		}
		if d&dirtyResources != 0 {
			c.invalidateResources()
		}
		if d&dirtyTrusts != 0 {
			invalidate(c, &c.trusts, "", true)
		}
		if d&dirtyPeers != 0 {
			invalidate(c, &c.peers, "", true)
		}
	}
	if err != nil {
		return wrap("commit", err)
	}
	return nil
}

// Rollback rolls back the transaction carried by ctx.
func (s *Store) Rollback(ctx context.Context) error {
	st, ok := ctx.Value(txKey{s}).(*txState)
	if !ok {
		return errors.New("gormstore: rollback: no transaction in context")
	}
	if err := st.tx.Rollback().Error; err != nil {
		return wrap("rollback", err)
	}
	return nil
}

// txOf returns the transaction of this store carried by ctx, or nil.
func (s *Store) txOf(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{s}).(*txState)
	return st
}

// write runs a single-row write: through the group-commit writer when there is one and ctx
// carries no transaction, else on the transaction or the pool.
func (s *Store) write(ctx context.Context, op writeOp) error {
	return s.writeRow(ctx, nil, op)
}

// writeRow is write for op, which inserts row (see writeReq).
func (s *Store) writeRow(ctx context.Context, row *tokenRow, op writeOp) error {
	st := s.txOf(ctx)
	if st == nil && s.writer != nil {
		if queued, err := s.writer.do(ctx, op, row); queued {
			return err
		}
	}
	if st != nil {
		return op(st.tx.WithContext(ctx))
	}
	return op(s.db.WithContext(ctx))
}

// conn returns the transaction carried by ctx, or the pool.
func (s *Store) conn(ctx context.Context) *gorm.DB {
	if st, ok := ctx.Value(txKey{s}).(*txState); ok {
		return st.tx.WithContext(ctx)
	}
	return s.db.WithContext(ctx)
}

// inTx runs fn in the transaction carried by ctx, or in a new one. An error of an unreachable
// database — from fn or from BEGIN or COMMIT, which gorm returns unwrapped — is marked with
// storage.ErrUnavailable (see markUnavailable); every other error is returned as it is.
func (s *Store) inTx(ctx context.Context, fn func(db *gorm.DB) error) error {
	if st, ok := ctx.Value(txKey{s}).(*txState); ok {
		return markUnavailable(fn(st.tx.WithContext(ctx)))
	}
	return markUnavailable(s.db.WithContext(ctx).Transaction(fn, s.txOptions()...))
}

// txOptions runs MySQL transactions at READ COMMITTED: InnoDB's default REPEATABLE READ takes
// gap locks that make concurrent one-time-use transactions deadlock instead of waiting. The
// conditional updates do not need more than READ COMMITTED on any database (PostgreSQL's
// default); SQLite transactions are serializable anyway.
func (s *Store) txOptions() []*sql.TxOptions {
	if s.dialect == dialectMySQL {
		return []*sql.TxOptions{{Isolation: sql.LevelReadCommitted}}
	}
	return nil
}

// isRetryable reports a transaction the database aborted to resolve a conflict: a deadlock or
// serialization failure.
func isRetryable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	var my *mysqldrv.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1213
	}
	return false
}

// The store writes its own SQL and runs it on gorm's connection pool (or the transaction in
// the context) directly: gorm contributes the dialect, transactions and the prepared-statement
// cache, and the hot paths skip its reflective statement builder. Statements are written with
// ? placeholders; rebind adapts them for PostgreSQL.

// exec runs a statement and returns the number of rows it changed.
func exec(db *gorm.DB, query string, args ...any) (int64, error) {
	res, err := db.Statement.ConnPool.ExecContext(db.Statement.Context, rebind(db, query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRows runs a query.
func queryRows(db *gorm.DB, query string, args ...any) (*sql.Rows, error) {
	return db.Statement.ConnPool.QueryContext(db.Statement.Context, rebind(db, query), args...)
}

// queryRow runs a query expected to return at most one row; no row is storage.ErrNotFound.
func queryRow(db *gorm.DB, query string, args []any, dest ...any) error {
	rows, err := queryRows(db, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return storage.ErrNotFound
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// rebind numbers the ? placeholders ($1, $2, ...) for PostgreSQL. The store's statements have
// no ? inside literals.
func rebind(db *gorm.DB, query string) string {
	if db.Dialector.Name() != "postgres" {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// isUnique reports whether err is a unique-key violation, by the database's error code.
func isUnique(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var my *mysqldrv.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1062
	}
	return errors.Is(err, gorm.ErrDuplicatedKey) || sqliteUnique(err)
}

// hashKey is the fixed-length primary key of an identifier of any length: its SHA-256. It is
// a driver.Valuer so that gorm binds it as one value, never as a list of bytes.
type hashKey []byte

// Value implements driver.Valuer.
func (h hashKey) Value() (driver.Value, error) { return []byte(h), nil }

func key(s string) hashKey {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// nanos turns t into the BIGINT stored in time columns: 0 for the zero time, clamped to the
// int64 range otherwise.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	switch {
	case t.Before(time.Unix(0, math.MinInt64+1)):
		return math.MinInt64 + 1
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encode is json.Marshal for everything the store writes as JSON, refusing (with
// ErrInvalidInput) a value holding text that is not valid UTF-8 anywhere — an id, a scope, a
// form value, a JWK's kid, a session claim, a map key: encoding/json would silently replace such
// bytes with U+FFFD, and the record read back would differ from the one written.
func encode(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, wrap("encode "+what, err)
	}
	if !utf8.Valid(b) || replacedInvalidUTF8(b) {
		return nil, fmt.Errorf("%w: %s holds text that is not valid UTF-8", ErrInvalidInput, what)
	}
	return b, nil
}

// replacedInvalidUTF8 reports whether encoding/json replaced invalid UTF-8 while producing b. It
// writes each invalid byte as the escape \ufffd and a genuine U+FFFD as the character itself, so
// an unescaped backslash followed by "ufffd" comes only from invalid input (or from a
// json.Marshaler, such as a json.RawMessage, that wrote that escape itself, which is refused
// too).
func replacedInvalidUTF8(b []byte) bool {
	const esc = `\ufffd`
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(esc))
		if j < 0 {
			return false
		}
		j += i
		n := 0 // backslashes ending at j: an odd count means b[j] starts an escape
		for k := j; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 1 {
			return true
		}
		i = j + 1
	}
}
