package gormstore

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// UseJTI implements storage.JTIStore. The key is claimed by one insert under its unique
// (hashed) key; when a row exists, a conditional update takes it over only if its previous use
// has expired. Both statements are atomic on their own, so of any number of concurrent callers
// — sharing this pool or not — exactly one wins and the others get storage.ErrJTIUsed. Neither
// statement raises a unique violation, so a caller's PostgreSQL transaction stays usable.
func (s *Store) UseJTI(ctx context.Context, jti string, expiresAt time.Time) error {
	h := key(jti)
	exp := nanos(expiresAt)
	return s.write(ctx, func(db *gorm.DB) error {
		n, err := exec(db, s.insertIgnore("mandate_jtis", "key_hash, expires_at, uses", "?, ?, 1", "key_hash"), h, exp)
		if err != nil {
			return wrap("use jti", err)
		}
		if n == 1 {
			return nil
		}
		// uses = uses + 1 makes the row change even when exp equals the old value, so MySQL's
		// changed-rows count is 1 exactly when the update applied.
		n, err = exec(db, "UPDATE mandate_jtis SET expires_at = ?, uses = uses + 1 WHERE key_hash = ? AND expires_at <= ?",
			exp, h, s.now().UnixNano())
		if err != nil {
			return wrap("use jti", err)
		}
		if n == 1 {
			return nil
		}
		return storage.ErrJTIUsed
	})
}

// JTIUsed implements storage.JTIStore.
func (s *Store) JTIUsed(ctx context.Context, jti string) (bool, error) {
	var n int64
	err := queryRow(s.conn(ctx), "SELECT COUNT(*) FROM mandate_jtis WHERE key_hash = ? AND expires_at > ?",
		[]any{key(jti), s.now().UnixNano()}, &n)
	if err != nil {
		return false, wrap("jti used", err)
	}
	return n > 0, nil
}

// defaultBatch is the GC batch size when the caller passes batch <= 0.
const defaultBatch = 1000

// sqliteExpiredTokens deletes a batch of expired SQLite token rows: ids up to the last of the
// cut's second, expires_at before the cut, at most a batch.
const sqliteExpiredTokens = `DELETE FROM mandate_tokens WHERE id IN
	(SELECT id FROM mandate_tokens WHERE id > 0 AND id <= ? AND expires_at <> 0 AND expires_at < ? LIMIT ?)`

// DeleteExpired implements storage.Collector. Token rows whose session carries no expiry for
// their kind (zero) are kept.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = defaultBatch
	}
	cut := nanos(before)
	tokenArgs := []any{cut, batch}
	var tokens, jtis string
	switch s.dialect {
	case dialectMySQL:
		tokens = "DELETE FROM mandate_tokens WHERE expires_at <> 0 AND expires_at < ? LIMIT ?"
		jtis = "DELETE FROM mandate_jtis WHERE expires_at < ? LIMIT ?"
	case dialectSQLite:
		// The row id orders rows by expiry second (see expiryRowID): the rows up to cut's
		// second are a range of ids, and the exact expiry decides within the last second.
		tokens = sqliteExpiredTokens
		tokenArgs = []any{expirySecond(cut)<<31 | (1<<31 - 1), cut, batch}
		jtis = `DELETE FROM mandate_jtis WHERE key_hash IN
			(SELECT key_hash FROM mandate_jtis WHERE expires_at < ? LIMIT ?)`
	default:
		tokens = `DELETE FROM mandate_tokens WHERE (kind, signature) IN
			(SELECT kind, signature FROM mandate_tokens WHERE expires_at <> 0 AND expires_at < ? LIMIT ?)`
		jtis = `DELETE FROM mandate_jtis WHERE key_hash IN
			(SELECT key_hash FROM mandate_jtis WHERE expires_at < ? LIMIT ?)`
	}
	var total int64
	for _, q := range []struct {
		sql  string
		args []any
	}{{tokens, tokenArgs}, {jtis, []any{cut, batch}}} {
		for {
			if err := ctx.Err(); err != nil {
				return total, wrap("delete expired", err)
			}
			n, err := exec(s.conn(ctx), q.sql, q.args...)
			if err != nil {
				return total, wrap("delete expired", err)
			}
			total += n
			if n < int64(batch) {
				break
			}
		}
	}
	return total, nil
}
