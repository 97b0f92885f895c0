package gormstore

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// UseJTI implements storage.JTIStore. The key is claimed by one insert under its unique
// (hashed) key; when a row exists, a conditional update takes it over only if its previous use
// has expired (on MySQL both in one INSERT … ON DUPLICATE KEY UPDATE). Each statement is atomic
// on its own, so of any number of concurrent callers — sharing this pool or not — exactly one
// wins and the others get storage.ErrJTIUsed. No statement raises a unique violation, so a
// caller's PostgreSQL transaction stays usable.
func (s *Store) UseJTI(ctx context.Context, jti string, expiresAt time.Time) error {
	return s.write(ctx, s.useJTI(jti, expiresAt))
}

// useJTI is UseJTI's write.
func (s *Store) useJTI(jti string, expiresAt time.Time) writeOp {
	h := key(jti)
	exp := nanos(expiresAt)
	return func(db *gorm.DB) error {
		if s.dialect == dialectMySQL {
			// One statement, whose duplicate check takes the row's exclusive lock at once. INSERT
			// IGNORE takes a shared lock on a duplicate, held to the end of a transaction: two
			// transactions holding it on one key (a group commit's batch, or a unit, on each of
			// two instances) deadlocked when both went on to the UPDATE. The assignments read the
			// old expires_at (uses first); the affected rows are 1 for an insert, 2 for an expired
			// use taken over and 0 for a key in use.
			now := s.now().UnixNano()
			n, err := exec(db, `INSERT INTO mandate_jtis (key_hash, expires_at, uses) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE
				uses = IF(expires_at <= ?, uses + 1, uses), expires_at = IF(expires_at <= ?, VALUES(expires_at), expires_at)`, h, exp, now, now)
			switch {
			case err != nil:
				return wrap("use jti", err)
			case n == 0:
				return storage.ErrJTIUsed
			}
			return nil
		}
		n, err := exec(db, s.insertIgnore("mandate_jtis", "key_hash, expires_at, uses", "?, ?, 1", "key_hash"), h, exp)
		if err != nil {
			return wrap("use jti", err)
		}
		if n == 1 {
			return nil
		}
		n, err = exec(db, "UPDATE mandate_jtis SET expires_at = ?, uses = uses + 1 WHERE key_hash = ? AND expires_at <= ?",
			exp, h, s.now().UnixNano())
		if err != nil {
			return wrap("use jti", err)
		}
		if n == 1 {
			return nil
		}
		return storage.ErrJTIUsed
	}
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

// unit is the write of first and then, if first succeeded, second, as one unit: in a
// transaction of its own, or within the transaction db already is (a group commit's batch, a
// caller's). An error of second after first wrote is a *partialWrite: it is not row-level (see
// rowLevel), so a group commit rolls its whole batch back and writes its rows one by one, each
// unit in a transaction of its own, rather than keep first's write without second's.
func (s *Store) unit(first, second writeOp) writeOp {
	both := func(db *gorm.DB) error {
		if err := first(db); err != nil {
			return err
		}
		if err := second(db); err != nil {
			return &partialWrite{err}
		}
		return nil
	}
	return func(db *gorm.DB) error {
		if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); inTx {
			return both(db)
		}
		err := db.Transaction(both, s.txOptions()...)
		if err != nil && !rowLevel(err) && !errors.As(err, new(*partialWrite)) {
			err = wrap("write", err) // BEGIN or COMMIT
		}
		return err
	}
}

// partialWrite is the error of a unit's second write after its first succeeded.
type partialWrite struct{ err error }

func (e *partialWrite) Error() string { return e.err.Error() }
func (e *partialWrite) Unwrap() error { return e.err }
