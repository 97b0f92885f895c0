package gormstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// The management roles (storage.Manager): listings by cursor, create-only and update-only
// writes, and revoking a deleted client's grants. Listings walk a table's primary key (the
// SHA-256 of the record's key) from the hash of the cursor: an index range per page, stable,
// and valid even after the cursor's record is deleted.
//
// Every write here invalidates the read cache (see cache.go) like the store's other writes, and
// moves its kind's change counter in the same transaction, so that other instances drop theirs
// too (see changes.go).

var _ storage.Manager = (*Store)(nil)

// listPage reads one page of table (data, created_at, updated_at, then the extra columns) after
// the cursor, calling scan for each of at most page.Size() rows; scan returns the row's key. It
// returns the key of the last row when more rows follow, else "".
func (s *Store) listPage(ctx context.Context, table, extra string, page storage.Page, scan func(rows *sql.Rows) (string, error)) (string, error) {
	limit := page.Size()
	q := "SELECT data, created_at, updated_at" + extra + " FROM " + table
	args := []any{}
	if page.After != "" {
		q += " WHERE id_hash > ?"
		args = append(args, key(page.After))
	}
	q += fmt.Sprintf(" ORDER BY id_hash LIMIT %d", limit+1)
	rows, err := queryRows(s.conn(ctx), q, args...)
	if err != nil {
		return "", wrap("list "+table, err)
	}
	defer rows.Close()
	n, last, more := 0, "", false
	for rows.Next() {
		if n == limit {
			more = true
			break
		}
		k, err := scan(rows)
		if err != nil {
			return "", err
		}
		last = k
		n++
	}
	if err := rows.Err(); err != nil {
		return "", wrap("list "+table, err)
	}
	if !more {
		return "", nil
	}
	return last, nil
}

// ListClients implements storage.ClientManager, in the order of the clients' key hashes.
func (s *Store) ListClients(ctx context.Context, page storage.Page) ([]storage.Client, string, error) {
	var out []storage.Client
	next, err := s.listPage(ctx, "mandate_clients", "", page, func(rows *sql.Rows) (string, error) {
		var (
			data             string
			created, updated int64
		)
		if err := rows.Scan(&data, &created, &updated); err != nil {
			return "", wrap("list clients", err)
		}
		c, err := decodeClient(data, fromNanos(created), fromNanos(updated))
		if err != nil {
			return "", err
		}
		out = append(out, *c)
		return c.ID, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// CreateClient implements storage.ClientManager: an insert, which a taken ID fails.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	err := s.writeClient(ctx, c, func(db *gorm.DB, data []byte, now int64) error {
		_, err := exec(db, "INSERT INTO mandate_clients (id_hash, data, created_at, updated_at) VALUES (?, ?, ?, ?)",
			key(c.ID), string(data), now, now)
		return err
	})
	if errors.Is(err, ErrInvalidInput) {
		return err
	}
	return insertError("create client", err)
}

// UpdateClient implements storage.ClientManager: an update of the existing row.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client) error {
	err := s.writeClient(ctx, c, func(db *gorm.DB, data []byte, now int64) error {
		n, err := exec(db, "UPDATE mandate_clients SET data = ?, updated_at = ? WHERE id_hash = ?", string(data), now, key(c.ID))
		if err == nil && n == 0 {
			return storage.ErrNotFound
		}
		return err
	})
	if errors.Is(err, ErrInvalidInput) {
		return err
	}
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ErrNotFound
	}
	return wrap("update client", err)
}

// insertError maps a failed create: a taken key is storage.ErrConflict.
func insertError(op string, err error) error {
	if isUnique(err) {
		return fmt.Errorf("gormstore: %s: %w", op, storage.ErrConflict)
	}
	return wrap(op, err)
}

// RevokeClientGrants implements storage.ClientManager. No column holds a row's client, so it
// reads the table: the rows whose request mentions the client ID (a LIKE on the stored
// request, a prefilter) are decoded and those of the client deleted, by primary key, in batches.
// It costs one scan of mandate_tokens, which is why the token endpoint never calls it.
func (s *Store) RevokeClientGrants(ctx context.Context, clientID string) (int64, error) {
	if clientID == "" {
		return 0, fmt.Errorf("%w: empty client ID", ErrInvalidInput)
	}
	type row struct {
		kind int
		sig  []byte
	}
	var doomed []row
	rows, err := queryRows(s.conn(ctx), `SELECT kind, signature, request FROM mandate_tokens WHERE request LIKE ? ESCAPE '!'`,
		"%"+likeEscape(clientIDPrefilter(clientID))+"%")
	if err != nil {
		return 0, wrap("revoke client grants", err)
	}
	for rows.Next() {
		var (
			r   row
			req string
		)
		if err := rows.Scan(&r.kind, &r.sig, &req); err != nil {
			rows.Close()
			return 0, wrap("revoke client grants", err)
		}
		var rec struct {
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal([]byte(req), &rec) == nil && rec.ClientID == clientID {
			doomed = append(doomed, r)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, wrap("revoke client grants", err)
	}
	var total int64
	const batch = 200
	for len(doomed) > 0 {
		n := min(batch, len(doomed))
		var q strings.Builder
		args := make([]any, 0, 2*n)
		q.WriteString("DELETE FROM mandate_tokens WHERE ")
		for i, r := range doomed[:n] {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString("(kind = ? AND signature = ?)")
			args = append(args, r.kind, hashKey(r.sig))
		}
		deleted, err := exec(s.conn(ctx), q.String(), args...)
		if err != nil {
			return total, wrap("revoke client grants", err)
		}
		total += deleted
		doomed = doomed[n:]
	}
	return total, nil
}

// clientIDPrefilter is a substring of every stored request of clientID: the JSON string of the
// id as both encoders write it when it is plain, else the member name alone (every row is then
// decoded).
func clientIDPrefilter(clientID string) string {
	for _, r := range clientID {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '<' || r == '>' || r == '&' {
			return `"client_id":`
		}
	}
	return `"client_id":"` + clientID + `"`
}

// likeEscape escapes the LIKE wildcards of s with '!' (the statement's ESCAPE character).
func likeEscape(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// ListResourceServers implements storage.ResourceManager, in the order of the identifiers'
// hashes.
func (s *Store) ListResourceServers(ctx context.Context, page storage.Page) ([]storage.ResourceServer, string, error) {
	var out []storage.ResourceServer
	next, err := s.listPage(ctx, "mandate_resource_servers", ", is_default", page, func(rows *sql.Rows) (string, error) {
		var (
			data             string
			created, updated int64
			isDefault        *int
		)
		if err := rows.Scan(&data, &created, &updated, &isDefault); err != nil {
			return "", wrap("list resource servers", err)
		}
		rs, err := decodeResource(data, isDefault, fromNanos(created), fromNanos(updated))
		if err != nil {
			return "", err
		}
		out = append(out, *rs)
		return rs.Identifier, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// CreateResourceServer implements storage.ResourceManager.
func (s *Store) CreateResourceServer(ctx context.Context, rs *storage.ResourceServer) error {
	return s.writeResource(ctx, rs, true)
}

// UpdateResourceServer implements storage.ResourceManager.
func (s *Store) UpdateResourceServer(ctx context.Context, rs *storage.ResourceServer) error {
	return s.writeResource(ctx, rs, false)
}

// writeResource inserts (create) or updates a resource server, clearing the other default in
// the same transaction when rs is the default.
func (s *Store) writeResource(ctx context.Context, rs *storage.ResourceServer, create bool) error {
	id, isDefault, data, err := resourceRow(rs)
	if err != nil {
		return err
	}
	defer s.written(ctx, dirtyResources, "")
	err = s.inTx(ctx, func(db *gorm.DB) error {
		now := s.now().UnixNano()
		if err := clearOtherDefault(db, rs, id); err != nil {
			return err
		}
		if create {
			if _, err := exec(db, "INSERT INTO mandate_resource_servers (id_hash, is_default, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
				id, isDefault, string(data), now, now); err != nil {
				return err
			}
			return s.announce(db, changeResources)
		}
		n, err := exec(db, "UPDATE mandate_resource_servers SET is_default = ?, data = ?, updated_at = ? WHERE id_hash = ?",
			isDefault, string(data), now, id)
		switch {
		case err != nil:
			return err
		case n == 0:
			return storage.ErrNotFound
		}
		return s.announce(db, changeResources)
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.ErrNotFound
	case isUnique(err) || isRetryable(err):
		// A taken identifier, or another default saved concurrently.
		return fmt.Errorf("gormstore: resource server %q: %w", rs.Identifier, storage.ErrConflict)
	}
	return wrap("write resource server", err)
}

// Trust implements storage.TrustManager: one primary-key read.
func (s *Store) Trust(ctx context.Context, id string) (*storage.Trust, error) {
	data, created, updated, err := readDoc(s.conn(ctx), "SELECT data, created_at, updated_at FROM mandate_trusts WHERE id_hash = ?", key(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, storage.ErrNotFound
	} else if err != nil {
		return nil, wrap("trust", err)
	}
	t, err := decodeTrust(data, created, updated)
	if err != nil {
		return nil, err
	}
	if t.ID != id {
		return nil, storage.ErrNotFound // a hash collision would be needed; be exact anyway
	}
	return t, nil
}

// ListTrusts implements storage.TrustManager, in the order of the IDs' hashes.
func (s *Store) ListTrusts(ctx context.Context, page storage.Page) ([]storage.Trust, string, error) {
	var out []storage.Trust
	next, err := s.listPage(ctx, "mandate_trusts", "", page, func(rows *sql.Rows) (string, error) {
		var (
			data             string
			created, updated int64
		)
		if err := rows.Scan(&data, &created, &updated); err != nil {
			return "", wrap("list trusts", err)
		}
		t, err := decodeTrust(data, fromNanos(created), fromNanos(updated))
		if err != nil {
			return "", err
		}
		out = append(out, *t)
		return t.ID, nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// CreateTrust implements storage.TrustManager.
func (s *Store) CreateTrust(ctx context.Context, t *storage.Trust) error {
	id, data, err := trustDoc(t)
	if err != nil {
		return err
	}
	now := s.now().UnixNano()
	err = s.announced(ctx, changeTrusts, dirtyTrusts, "", func(db *gorm.DB) error {
		_, err := exec(db, "INSERT INTO mandate_trusts (id_hash, issuer_hash, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
			key(id), key(t.Issuer), string(data), now, now)
		return err
	})
	if err != nil {
		return insertError("create trust", err)
	}
	t.ID = id
	return nil
}

// UpdateTrust implements storage.TrustManager.
func (s *Store) UpdateTrust(ctx context.Context, t *storage.Trust) error {
	if t == nil || t.Issuer == "" || t.ID == "" {
		return fmt.Errorf("%w: trust without ID or issuer", ErrInvalidInput)
	}
	data, err := encodeTrust(t, t.ID)
	if err != nil {
		return err
	}
	err = s.announced(ctx, changeTrusts, dirtyTrusts, "", func(db *gorm.DB) error {
		return updated(exec(db, "UPDATE mandate_trusts SET issuer_hash = ?, data = ?, updated_at = ? WHERE id_hash = ?",
			key(t.Issuer), string(data), s.now().UnixNano(), key(t.ID)))
	})
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ErrNotFound
	}
	return wrap("update trust", err)
}
