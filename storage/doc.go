// Package storage defines what mandate persists and the small role interfaces a store
// implements: clients, resource servers (RFC 8707), token sessions (fosite's own storage
// interfaces), signing keys, RFC 7523 trusts, the peer authorization servers JWT grants are
// issued for (identity chaining across domains) and single-use JWT IDs.
//
// The framework never talks to a database directly. It talks to a [Store], which is the sum of
// the role interfaces below. [github.com/mandate-dev/mandate/storage/gormstore] implements all of
// them for SQLite (the embedded default), PostgreSQL and MySQL/MariaDB; an application may write
// its own and prove it with [github.com/mandate-dev/mandate/storage/storagetest.Run].
//
// Conventions every implementation follows:
//
//   - A missing record is [ErrNotFound] (the same value as fosite.ErrNotFound, so fosite's own
//     branches work). A duplicate on create is [ErrConflict]. A reused JWT ID is [ErrJTIUsed].
//   - Times are stored and returned in UTC.
//   - Text round-trips exactly or is refused with an error: a value holding invalid UTF-8
//     anywhere (an id, a scope, a JWK's kid, a session claim) is never stored altered.
//   - Nothing returned from a read aliases the store's internal state, and nothing the caller
//     passes in is retained: callers may mutate what they get and what they gave.
//   - Secrets are stored only as hashes ([Client.SecretHash]); private signing keys only sealed
//     by the caller ([Key.Sealed]).
//   - When ctx carries a transaction begun by [Transactional.BeginTX], every method uses it.
package storage
