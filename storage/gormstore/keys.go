package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// maxKeyAttempts bounds the compare-and-swap retries of UpdateKeys.
const maxKeyAttempts = 64

type keyRecord struct {
	ID          string    `json:"kid"`
	Algorithm   string    `json:"alg"`
	State       string    `json:"state"`
	Public      []byte    `json:"public,omitempty"`
	Sealed      []byte    `json:"sealed,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	ActivatesAt time.Time `json:"activates_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	RemoveAt    time.Time `json:"remove_at,omitzero"`
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// readKeys returns the key set and its version (0 when no set was ever written).
func readKeys(db *gorm.DB) ([]storage.Key, int64, error) {
	var (
		version int64
		data    string
	)
	err := queryRow(db, "SELECT version, data FROM mandate_keys WHERE id = 1", nil, &version, &data)
	if errors.Is(err, storage.ErrNotFound) {
		return []storage.Key{}, 0, nil
	}
	if err != nil {
		return nil, 0, wrap("keys", err)
	}
	var recs []keyRecord
	if err := json.Unmarshal([]byte(data), &recs); err != nil {
		return nil, 0, wrap("decode keys", err)
	}
	keys := make([]storage.Key, len(recs))
	for i, r := range recs {
		keys[i] = storage.Key{
			ID: r.ID, Algorithm: r.Algorithm, State: storage.KeyState(r.State), Public: r.Public, Sealed: r.Sealed,
			CreatedAt: utc(r.CreatedAt), ActivatesAt: utc(r.ActivatesAt), RetiredAt: utc(r.RetiredAt), RemoveAt: utc(r.RemoveAt),
		}
	}
	return keys, version, nil
}

// Keys implements storage.KeyStore.
func (s *Store) Keys(ctx context.Context) ([]storage.Key, error) {
	keys, _, err := readKeys(s.conn(ctx))
	return keys, err
}

// UpdateKeys implements storage.KeyStore with a compare-and-swap on the set's version, retried
// (with a short random pause) up to a bound, then storage.ErrConflict.
func (s *Store) UpdateKeys(ctx context.Context, update func(current []storage.Key) ([]storage.Key, error)) error {
	if update == nil {
		return errors.New("gormstore: update keys: nil update function")
	}
	db := s.conn(ctx)
	for attempt := range maxKeyAttempts {
		current, version, err := readKeys(db)
		if err != nil {
			return err
		}
		next, err := update(current)
		if err != nil {
			return err
		}
		recs := make([]keyRecord, len(next))
		for i, k := range next {
			recs[i] = keyRecord{
				ID: k.ID, Algorithm: k.Algorithm, State: string(k.State), Public: k.Public, Sealed: k.Sealed,
				CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt, RemoveAt: k.RemoveAt,
			}
		}
		data, err := encode("keys", recs)
		if err != nil {
			return err
		}
		// The swap and the change it announces to other instances commit together.
		swapped := false
		err = s.inTx(ctx, func(db *gorm.DB) error {
			var n int64
			var err error
			if version == 0 {
				n, err = exec(db, s.insertIgnore("mandate_keys", "id, version, data", "?, ?, ?", "id"), 1, 1, string(data))
			} else {
				n, err = exec(db, "UPDATE mandate_keys SET version = ?, data = ? WHERE id = 1 AND version = ?", version+1, string(data), version)
			}
			if err != nil || n != 1 {
				return err
			}
			swapped = true
			return s.announce(db, changeKeys)
		})
		if err != nil {
			return wrap("update keys", err)
		}
		if swapped {
			return nil
		}
		// Lost the race: wait a little, then try again on the new set.
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) * int64(min(attempt+1, 10))))
		select {
		case <-ctx.Done():
			return wrap("update keys", ctx.Err())
		case <-time.After(pause):
		}
	}
	return fmt.Errorf("gormstore: update keys: %d concurrent updates in a row: %w", maxKeyAttempts, storage.ErrConflict)
}

// insertIgnore is an INSERT that does nothing (0 rows) when the key exists, without an error
// that would abort a PostgreSQL transaction.
func (s *Store) insertIgnore(table, cols, values, conflict string) string {
	if s.dialect == dialectMySQL {
		return "INSERT IGNORE INTO " + table + " (" + cols + ") VALUES (" + values + ")"
	}
	return "INSERT INTO " + table + " (" + cols + ") VALUES (" + values + ") ON CONFLICT (" + conflict + ") DO NOTHING"
}
