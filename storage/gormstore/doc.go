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
//
// See https://www.rfc-editor.org/rfc/rfc6749#section-10.5 (one-time authorization codes) and
// https://www.rfc-editor.org/rfc/rfc7523#section-3 (jti replay protection).
package gormstore
