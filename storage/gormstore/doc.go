// Package gormstore implements [storage.Store] on gorm for SQLite (the embedded default, through
// a pure-Go driver), PostgreSQL and MySQL/MariaDB.
//
// Open a store from a DSN:
//
//	s, err := gormstore.Open(ctx, "sqlite:/var/lib/app/mandate.db")
//	s, err := gormstore.Open(ctx, "postgres://user:pass@db:5432/app?sslmode=verify-full")
//	s, err := gormstore.Open(ctx, "mysql://user:pass@tcp(db:3306)/app")
//
// or wrap a *gorm.DB the application already has with [New]. Either way the schema is migrated
// on start; migrations are idempotent and safe to run from many instances at once, and the
// applied version is recorded in mandate_schema_version.
//
// A program that stores its tokens in PostgreSQL or MySQL can leave the SQLite runtime out of
// its binary (about 10 MB) with the build tag mandate_nosqlite (go build -tags
// mandate_nosqlite); Open then refuses sqlite: DSNs.
//
// How the contracts of [storage] are kept:
//
//   - Every row is keyed by the SHA-256 of its identifier (client ID, resource identifier,
//     token signature, JWT ID, ...), so keys have a fixed length whatever the input: a raw
//     RS256 signature segment is 342 bytes, and an attacker-chosen jti may be longer.
//   - Strings are stored inside JSON documents, so quotes, SQL metacharacters, NUL bytes and
//     non-ASCII text round-trip exactly on every database. Invalid UTF-8 cannot round-trip
//     through JSON and is refused with [ErrInvalidInput].
//   - One-time use is a conditional update (UPDATE ... WHERE active = 1): of concurrent
//     InvalidateAuthorizeCodeSession or RotateRefreshToken calls exactly one wins.
//     JWT IDs are claimed by one insert under a unique key, and signing keys are replaced by a
//     compare-and-swap on a version.
//   - A transaction begun with [Store.BeginTX] travels in the context; every method uses it.
//   - Times are stored as UTC; session data is JSON decoded into the caller's prototype.
//   - An error of a database that cannot be reached right now — connection refused or reset, a
//     broken connection, a server shutting down or starting up (PostgreSQL SQLSTATE class 08,
//     57P01–57P03; MySQL/MariaDB 1053, 2002, 2003, 2006, 2013; SQLite cannot-open, I/O and
//     busy errors) — is marked with [storage.ErrUnavailable], the driver's error kept in the
//     chain. The pool reconnects by itself once the server is back.
//
// Three things keep the token endpoint's storage cost low, on every database:
//
//   - A connection pool sized for the database ([WithPool]): on PostgreSQL and MySQL 10
//     connections, all kept idle, so that a burst of requests reuses them instead of opening a
//     server session per commit.
//   - Group commit. A token session created (or a JWT ID used) outside a caller's transaction
//     joins a queue: a caller that finds nothing being written writes its row at once; rows
//     queued meanwhile are written by one goroutine, up to [DefaultWriteBatch] at a time and
//     without waiting for more, in one transaction — on SQLite BEGIN IMMEDIATE ... COMMIT (SQLite
//     has one writer at a time), on PostgreSQL and MySQL with the batch's token rows in one
//     multi-row INSERT, which on its own (a batch without JWT IDs) is one autocommit statement:
//     one round trip and one log flush for the batch. Every caller returns only when its own row
//     is committed, with its own result: a duplicate fails that caller alone (SQLite aborts only
//     the failing statement, PostgreSQL's ON CONFLICT DO NOTHING RETURNING tells which rows went
//     in, and on MySQL, which fails the whole multi-row INSERT, the rows are written again one
//     by one); any other error of one row rolls the batch back and its rows are written again
//     one by one; a failed BEGIN or COMMIT fails the batch's callers, none of whose rows was
//     written. No token is answered before it is as durable as a single write at the
//     database's configured level. Writes inside a caller's transaction go to that
//     transaction, as always. [WithWriteBatch] tunes or disables it; [Store.Close] waits for
//     queued rows.
//   - A read cache of clients, resource servers, trusts (by issuer) and peers ([WithCache], on
//     by default for [DefaultCacheTTL]): the token endpoint, the jwt-bearer grant and a token
//     exchange for a peer read none of them from the database in steady state. This store's
//     own writes invalidate it at once (and again when the transaction they ran in commits);
//     reads inside a transaction bypass it; it returns copies; it holds at most 10,000
//     records of each kind (random eviction); and it caches only records that exist, so
//     lookups of unknown client IDs or issuers always reach the database and cannot fill
//     memory.
//
// Several instances on one database: every write of a client, a resource server, a trust, a
// peer or the key set
// moves a change counter in its own transaction, and every store polls the counters
// ([WithChangePoll], every [DefaultChangePoll]); on PostgreSQL the write also NOTIFYs, and every
// store LISTENs on a session of its own. A change made through one instance — a client deleted,
// a secret rotated, a resource server's policy changed, a trust revoked, a key rotated — drops the other
// instances' cached copies (and makes their key sets reload, see [Store.WatchKeys]) on
// PostgreSQL within milliseconds of its commit, and on every database within the poll interval
// plus one query. Writes made with SQL behind the store's back (through [Store.DB]) move no
// counter and are seen after the cache TTL. deploy.md in this directory is the deployment
// recipe.
//
// Known limit: [Store.UpdateKeys] retries its compare-and-swap by reading the key set again.
// Inside a transaction that sees another writer's set only at READ COMMITTED, which
// [Store.BeginTX] uses on MySQL (and PostgreSQL's default); a handle given to [New] that is
// itself a MySQL transaction at REPEATABLE READ would retry against its snapshot until
// [storage.ErrConflict].
//
// See https://www.rfc-editor.org/rfc/rfc6749#section-10.5 (one-time authorization codes) and
// https://www.rfc-editor.org/rfc/rfc7523#section-3 (jti replay protection).
package gormstore
