package gormstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// SchemaVersion is the schema version this package creates and expects.
const SchemaVersion = 8

// migration is one schema step. Its statements are written with placeholders for the column
// types that differ between databases (see [Store.ddl]).
type migration struct {
	version int
	// only, when set, is the one database the statements are for; elsewhere the step only
	// records its version.
	only  dialect
	stmts []string
	// applied, when set, is a query that returns a row if the step's statements already ran:
	// MySQL commits every DDL statement by itself, so a step can be done without its version
	// recorded (a crash in between), and its ALTER would fail the next start.
	applied string
}

// migrations are applied in order; each is recorded in mandate_schema_version. Never edit a
// released step: append a new one.
var migrations = []migration{{
	version: 1,
	stmts: []string{
		`CREATE TABLE IF NOT EXISTS mandate_clients (
			id_hash {HASH} NOT NULL PRIMARY KEY,
			data {TEXT} NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		){OPTS}`,
		`CREATE TABLE IF NOT EXISTS mandate_resource_servers (
			id_hash {HASH} NOT NULL PRIMARY KEY,
			is_default SMALLINT NULL UNIQUE,
			data {TEXT} NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		){OPTS}`,
		`CREATE TABLE IF NOT EXISTS mandate_trusts (
			id_hash {HASH} NOT NULL PRIMARY KEY,
			issuer_hash {HASH} NOT NULL,
			data {TEXT} NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
			{INDEX mandate_trusts_issuer (issuer_hash)}
		){OPTS}`,
		`{CREATE INDEX mandate_trusts_issuer ON mandate_trusts (issuer_hash)}`,
		`CREATE TABLE IF NOT EXISTS mandate_tokens (
			kind SMALLINT NOT NULL,
			signature {HASH} NOT NULL,
			request_hash {HASH} NOT NULL,
			active SMALLINT NOT NULL,
			expires_at BIGINT NOT NULL,
			access_signature {HASH} NULL,
			request {TEXT} NOT NULL,
			session {TEXT} NOT NULL,
			PRIMARY KEY (kind, signature)
			{INDEX mandate_tokens_request (kind, request_hash)}
			{INDEX mandate_tokens_expires (expires_at)}
		){OPTS}`,
		`{CREATE INDEX mandate_tokens_request ON mandate_tokens (kind, request_hash)}`,
		`{CREATE INDEX mandate_tokens_expires ON mandate_tokens (expires_at)}`,
		`CREATE TABLE IF NOT EXISTS mandate_jtis (
			key_hash {HASH} NOT NULL PRIMARY KEY,
			expires_at BIGINT NOT NULL,
			uses BIGINT NOT NULL
			{INDEX mandate_jtis_expires (expires_at)}
		){OPTS}`,
		`{CREATE INDEX mandate_jtis_expires ON mandate_jtis (expires_at)}`,
		`CREATE TABLE IF NOT EXISTS mandate_keys (
			id SMALLINT NOT NULL PRIMARY KEY,
			version BIGINT NOT NULL,
			data {TEXT} NOT NULL
		){OPTS}`,
	},
}, {
	// SQLite: mandate_tokens becomes a rowid table. WITHOUT ROWID keeps each whole row (about
	// 1 KB of request and session JSON) in the b-tree of its random primary key, so every
	// insert lands on a random page and splits pages of a few rows each; a rowid table appends
	// rows in insertion order and keeps only the 40-byte keys in the random index. Inserts
	// cost about half as much, and rows that concurrent callers commit together share pages.
	version: 2,
	only:    dialectSQLite,
	stmts: []string{
		`CREATE TABLE mandate_tokens_v2 (
			kind SMALLINT NOT NULL,
			signature BLOB NOT NULL,
			request_hash BLOB NOT NULL,
			active SMALLINT NOT NULL,
			expires_at BIGINT NOT NULL,
			access_signature BLOB NULL,
			request TEXT NOT NULL,
			session TEXT NOT NULL,
			PRIMARY KEY (kind, signature)
		)`,
		`INSERT INTO mandate_tokens_v2 (kind, signature, request_hash, active, expires_at, access_signature, request, session)
			SELECT kind, signature, request_hash, active, expires_at, access_signature, request, session FROM mandate_tokens`,
		`DROP TABLE mandate_tokens`,
		`ALTER TABLE mandate_tokens_v2 RENAME TO mandate_tokens`,
		`CREATE INDEX mandate_tokens_request ON mandate_tokens (kind, request_hash)`,
		`CREATE INDEX mandate_tokens_expires ON mandate_tokens (expires_at)`,
	},
}, {
	// SQLite: an insert writes two b-trees instead of four. Every b-tree an insert touches is
	// one more page in the commit's log, so the index pages, not the row, are most of a single
	// token's write:
	//   - the row id orders rows by expiry (see expiryRowID), and the collector deletes a range
	//     of row ids: the expires_at index goes;
	//   - the request index leaves out rows whose request ID is their own signature (see
	//     byRequest): a grant of one token, as client_credentials issues, is found through the
	//     (kind, signature) key.
	version: 3,
	only:    dialectSQLite,
	stmts: []string{
		`CREATE TABLE mandate_tokens_v3 (
			id INTEGER PRIMARY KEY,
			kind SMALLINT NOT NULL,
			signature BLOB NOT NULL,
			request_hash BLOB NOT NULL,
			active SMALLINT NOT NULL,
			expires_at BIGINT NOT NULL,
			access_signature BLOB NULL,
			request TEXT NOT NULL,
			session TEXT NOT NULL,
			UNIQUE (kind, signature)
		)`,
		// expiryRowID in SQL, with the row's rank as its sequence number (unique: no table
		// holds 2^31 rows).
		`INSERT INTO mandate_tokens_v3 (id, kind, signature, request_hash, active, expires_at, access_signature, request, session)
			SELECT CASE WHEN expires_at = 0 THEN -n
				ELSE (max(1, min(expires_at / 1000000000, 4294967295)) << 31) | n END,
				kind, signature, request_hash, active, expires_at, access_signature, request, session
			FROM (SELECT ROW_NUMBER() OVER (ORDER BY rowid) AS n, * FROM mandate_tokens)`,
		`DROP TABLE mandate_tokens`,
		`ALTER TABLE mandate_tokens_v3 RENAME TO mandate_tokens`,
		`CREATE INDEX mandate_tokens_request ON mandate_tokens (kind, request_hash) WHERE request_hash <> signature`,
	},
}, {
	// The peer authorization servers JWT authorization grants are issued for (storage.Peer):
	// a table of its own, keyed like the other registrations.
	version: 4,
	stmts: []string{
		`CREATE TABLE IF NOT EXISTS mandate_peers (
			id_hash {HASH} NOT NULL PRIMARY KEY,
			data {TEXT} NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		){OPTS}`,
	},
}, {
	// Every database: a counter per kind of record that instances keep in memory (clients,
	// resource servers, the key set), moved by every write of that kind in the same
	// transaction and polled by every instance (see WithChangePoll).
	version: 5,
	stmts: []string{
		`CREATE TABLE IF NOT EXISTS mandate_changes (
			kind SMALLINT NOT NULL PRIMARY KEY,
			version BIGINT NOT NULL
		){OPTS}`,
	},
}, {
	// PostgreSQL: the request index leaves out the rows whose request ID is their own signature,
	// as on SQLite since version 3 (see byRequest): a client_credentials token is one random
	// b-tree insert (its key) instead of two. The index is rebuilt, which holds off writes to
	// mandate_tokens while it runs (seconds for millions of live tokens).
	version: 6,
	only:    dialectPostgres,
	stmts: []string{
		`DROP INDEX IF EXISTS mandate_tokens_request`,
		`CREATE INDEX mandate_tokens_request ON mandate_tokens (kind, request_hash) WHERE request_hash <> signature`,
	},
}, {
	// Pushed authorization requests (kind 5) are no longer part of the token store's contract:
	// mandate serves no PAR endpoint, so only a program calling the store directly could have
	// written one. They lived minutes; what is left goes.
	version: 7,
	stmts: []string{
		`DELETE FROM mandate_tokens WHERE kind = 5`,
	},
}, {
	// MySQL: InnoDB keeps every row in its primary key's b-tree, which was the random (kind,
	// signature): each new token landed on a random page of the whole table, and once the live
	// tokens outgrew the buffer pool every insert read a page from disk (1.6 million rows,
	// 128 MB pool: 2,560 tokens/s). The table is now clustered by expiry — new rows append
	// where the newest are and the collector deletes a contiguous range — and (kind, signature)
	// is a unique secondary key of 42-byte entries. MySQL has no partial indexes, so the
	// request index covers a generated column that is NULL for a grant of one token (request ID
	// = own signature, as PostgreSQL's and SQLite's partial indexes leave out): those entries
	// sort by the primary key, that is by expiry, and append too. Same table: 4,690 tokens/s.
	// The ALTER rebuilds the table online (reads and writes continue; about 10 s per million
	// rows here).
	version: 8,
	only:    dialectMySQL,
	applied: `SELECT 1 FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = 'mandate_tokens' AND column_name = 'request_key'`,
	stmts: []string{
		`ALTER TABLE mandate_tokens
			ADD COLUMN request_key BINARY(32) GENERATED ALWAYS AS (IF(request_hash = signature, NULL, request_hash)) STORED,
			DROP PRIMARY KEY, ADD PRIMARY KEY (expires_at, kind, signature),
			ADD UNIQUE KEY mandate_tokens_key (kind, signature),
			DROP INDEX mandate_tokens_expires,
			DROP INDEX mandate_tokens_request, ADD INDEX mandate_tokens_request (kind, request_key)`,
	},
}}

// ddl fills the type placeholders of a statement for the store's database. Indexes are
// declared inside CREATE TABLE on MySQL (which has no CREATE INDEX IF NOT EXISTS) and as
// separate CREATE INDEX IF NOT EXISTS statements elsewhere; an empty result is skipped.
func (s *Store) ddl(stmt string) string {
	var hash, text, opts string
	switch s.dialect {
	case dialectPostgres:
		hash, text = "BYTEA", "TEXT"
	case dialectMySQL:
		hash, text = "BINARY(32)", "LONGTEXT"
		opts = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
	default:
		hash, text = "BLOB", "TEXT"
		opts = " WITHOUT ROWID"
	}
	r := strings.NewReplacer("{HASH}", hash, "{TEXT}", text, "{OPTS}", opts)
	out := r.Replace(stmt)
	// {INDEX ...} inside CREATE TABLE and {CREATE INDEX ...} statements.
	for {
		i := strings.Index(out, "{")
		if i < 0 {
			break
		}
		j := strings.Index(out[i:], "}")
		if j < 0 {
			break
		}
		inner := out[i+1 : i+j]
		var repl string
		switch {
		case strings.HasPrefix(inner, "INDEX ") && s.dialect == dialectMySQL:
			repl = ", " + inner
		case strings.HasPrefix(inner, "CREATE INDEX ") && s.dialect != dialectMySQL:
			repl = "CREATE INDEX IF NOT EXISTS " + strings.TrimPrefix(inner, "CREATE INDEX ")
		}
		out = out[:i] + repl + out[i+j+1:]
	}
	return strings.TrimSpace(out)
}

// migrationLock names the lock that serialises migrations of concurrently starting instances.
const migrationLock = "mandate_migrate"

// migrate brings the schema to [SchemaVersion]. Concurrent starts are serialised by an advisory
// lock (PostgreSQL), GET_LOCK (MySQL) or the write lock of an immediate transaction (SQLite), and
// every statement is idempotent besides.
func (s *Store) migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	var err error
	switch s.dialect {
	case dialectPostgres:
		err = db.Transaction(func(tx *gorm.DB) error {
			// 0x6d616e64617465 is "mandate" in ASCII.
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", int64(0x6d616e64617465)).Error; err != nil {
				return err
			}
			return s.applyMigrations(tx)
		})
	case dialectMySQL:
		err = db.Connection(func(conn *gorm.DB) error {
			var got *int
			if err := queryRow(conn, "SELECT GET_LOCK(?, 60)", []any{migrationLock}, &got); err != nil {
				return err
			}
			if got == nil || *got != 1 {
				return errors.New("timed out waiting for the migration lock")
			}
			defer conn.Exec("SELECT RELEASE_LOCK(?)", migrationLock)
			return s.applyMigrations(conn)
		})
	default:
		err = db.Transaction(s.applyMigrations)
	}
	if err != nil {
		return wrap("migrate", err)
	}
	return nil
}

func (s *Store) applyMigrations(db *gorm.DB) error {
	if err := db.Exec(s.ddl(`CREATE TABLE IF NOT EXISTS mandate_schema_version (
		version INTEGER NOT NULL PRIMARY KEY,
		applied_at BIGINT NOT NULL
	){OPTS}`)).Error; err != nil {
		return err
	}
	var current int
	if err := queryRow(db, "SELECT COALESCE(MAX(version), 0) FROM mandate_schema_version", nil, &current); err != nil {
		return err
	}
	if current > SchemaVersion {
		// A newer mandate migrated this database: its schema may hold what this one would
		// misread. Refuse to start rather than guess.
		return fmt.Errorf("the database has schema version %d, newer than this build's %d: upgrade mandate", current, SchemaVersion)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		stmts := m.stmts
		if m.applied != "" && (m.only == 0 || m.only == s.dialect) {
			var one int
			switch err := queryRow(db, m.applied, nil, &one); {
			case err == nil:
				stmts = nil // done before; record the version only
			case !errors.Is(err, storage.ErrNotFound):
				return fmt.Errorf("step %d: %w", m.version, err)
			}
		}
		for _, stmt := range stmts {
			if m.only != 0 && m.only != s.dialect {
				break
			}
			q := s.ddl(stmt)
			if q == "" {
				continue
			}
			if err := db.Exec(q).Error; err != nil {
				return fmt.Errorf("step %d: %w", m.version, err)
			}
		}
		if err := db.Exec("INSERT INTO mandate_schema_version (version, applied_at) VALUES (?, ?)",
			m.version, s.now().UnixNano()).Error; err != nil {
			return fmt.Errorf("step %d: %w", m.version, err)
		}
	}
	return nil
}

// Version returns the schema version recorded in the database.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := queryRow(s.conn(ctx), "SELECT COALESCE(MAX(version), 0) FROM mandate_schema_version", nil, &v); err != nil {
		return 0, wrap("schema version", err)
	}
	return v, nil
}
