package gormstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// clientRecord is the stored form of a storage.Client; explicit JSON names keep stored rows
// independent of Go field names.
type clientRecord struct {
	ID                          string              `json:"id"`
	Name                        string              `json:"name,omitempty"`
	SecretHash                  []byte              `json:"secret_hash,omitempty"`
	RotatedSecretHashes         [][]byte            `json:"rotated_secret_hashes,omitempty"`
	Public                      bool                `json:"public,omitempty"`
	RedirectURIs                []string            `json:"redirect_uris,omitempty"`
	GrantTypes                  []string            `json:"grant_types,omitempty"`
	ResponseTypes               []string            `json:"response_types,omitempty"`
	Scopes                      []string            `json:"scopes,omitempty"`
	Resources                   []string            `json:"resources,omitempty"`
	Serves                      []string            `json:"serves,omitempty"`
	IntrospectAll               bool                `json:"introspect_all,omitempty"`
	Impersonate                 bool                `json:"impersonate,omitempty"`
	DPoPBoundAccessTokens       bool                `json:"dpop_bound_access_tokens,omitempty"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method,omitempty"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI                     string              `json:"jwks_uri,omitempty"`
}

// upsert writes a row keyed by id_hash, keeping created_at of an existing row.
func (s *Store) upsert(db *gorm.DB, table string, cols []string, args []any) (int64, error) {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(") VALUES (")
	b.WriteString(strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
	b.WriteString(")")
	if s.dialect == dialectMySQL {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
	} else {
		b.WriteString(" ON CONFLICT (id_hash) DO UPDATE SET ")
	}
	first := true
	for _, c := range cols {
		if c == "id_hash" || c == "created_at" {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		if s.dialect == dialectMySQL {
			fmt.Fprintf(&b, "%s = VALUES(%s)", c, c)
		} else {
			fmt.Fprintf(&b, "%s = excluded.%s", c, c)
		}
	}
	return exec(db, b.String(), args...)
}

// readDoc reads data, created_at and updated_at of one row.
func readDoc(db *gorm.DB, query string, args ...any) (string, time.Time, time.Time, error) {
	var (
		data             string
		created, updated int64
	)
	if err := queryRow(db, query, args, &data, &created, &updated); err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	return data, fromNanos(created), fromNanos(updated), nil
}

// deleteAnnounced deletes the row of id and records a change of kind change in the same
// transaction, then invalidates the read cache's records of dirty under cached (see announced);
// storage.ErrNotFound when there was no row.
func (s *Store) deleteAnnounced(ctx context.Context, table, id string, change int, dirty uint32, cached string) error {
	err := s.announced(ctx, change, dirty, cached, func(db *gorm.DB) error {
		return updated(exec(db, "DELETE FROM "+table+" WHERE id_hash = ?", key(id)))
	})
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ErrNotFound
	}
	return wrap("delete", err)
}

// cacheFor returns the read cache for a read with ctx: nil when there is none or ctx carries a
// transaction (which may see its own uncommitted writes).
func (s *Store) cacheFor(ctx context.Context) *readCache {
	if s.cache == nil || s.txOf(ctx) != nil {
		return nil
	}
	return s.cache
}

// written invalidates the cached records of a kind (dirtyClients, dirtyResources, dirtyTrusts
// or dirtyPeers) after a write of the record with this key (a client ID or a peer's issuer;
// resource servers and trusts are dropped all together); a write inside a transaction
// invalidates once more when the transaction commits.
func (s *Store) written(ctx context.Context, kind uint32, key string) {
	c := s.cache
	if c == nil {
		return
	}
	if st := s.txOf(ctx); st != nil {
		st.dirty.Or(kind)
	}
	switch kind {
	case dirtyClients:
		invalidate(c, &c.clients, key, false)
	case dirtyResources:
		c.invalidateResources()
	case dirtyTrusts:
		invalidate(c, &c.trusts, "", true) // an update may move a trust to another issuer
	case dirtyPeers:
		invalidate(c, &c.peers, key, false)
	}
}

// Client implements storage.ClientStore: from the read cache (see [WithCache]) or one
// primary-key read.
func (s *Store) Client(ctx context.Context, id string) (*storage.Client, error) {
	return cachedRead(s, ctx, func(c *readCache) *kind[*storage.Client] { return &c.clients }, id,
		func() (*storage.Client, error) { return s.readClient(ctx, id) }, nil)
}

func (s *Store) readClient(ctx context.Context, id string) (*storage.Client, error) {
	data, created, updated, err := readDoc(s.conn(ctx),
		"SELECT data, created_at, updated_at FROM mandate_clients WHERE id_hash = ?", key(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.ErrNotFound
		}
		return nil, wrap("client", err)
	}
	return decodeClient(data, created, updated)
}

// decodeClient reads a stored client document.
func decodeClient(data string, created, updated time.Time) (*storage.Client, error) {
	var r clientRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, wrap("decode client", err)
	}
	return &storage.Client{
		ID: r.ID, Name: r.Name, SecretHash: r.SecretHash, RotatedSecretHashes: r.RotatedSecretHashes,
		Public: r.Public, RedirectURIs: r.RedirectURIs, GrantTypes: r.GrantTypes,
		ResponseTypes: r.ResponseTypes, Scopes: r.Scopes, Resources: r.Resources,
		Serves: r.Serves, IntrospectAll: r.IntrospectAll, Impersonate: r.Impersonate, DPoPBoundAccessTokens: r.DPoPBoundAccessTokens,
		TokenEndpointAuthMethod: r.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: r.TokenEndpointAuthSigningAlg,
		JWKS: r.JWKS, JWKSURI: r.JWKSURI, CreatedAt: created, UpdatedAt: updated,
	}, nil
}

// encodeClient is the stored document of a client.
func encodeClient(c *storage.Client) ([]byte, error) {
	return encode("client", clientRecord{
		ID: c.ID, Name: c.Name, SecretHash: c.SecretHash, RotatedSecretHashes: c.RotatedSecretHashes,
		Public: c.Public, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
		ResponseTypes: c.ResponseTypes, Scopes: c.Scopes, Resources: c.Resources,
		Serves: c.Serves, IntrospectAll: c.IntrospectAll, Impersonate: c.Impersonate, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,
		JWKS: c.JWKS, JWKSURI: c.JWKSURI,
	})
}

// SaveClient implements storage.ClientStore.
func (s *Store) SaveClient(ctx context.Context, c *storage.Client) error {
	return wrap("save client", s.writeClient(ctx, c, func(db *gorm.DB, data []byte, now int64) error {
		_, err := s.upsert(db, "mandate_clients", []string{"id_hash", "data", "created_at", "updated_at"},
			[]any{key(c.ID), string(data), now, now})
		return err
	}))
}

// writeClient checks and encodes c, then runs write (an insert, update or upsert of its row,
// given its document and the time) and announces the change, in one transaction; the read
// cache forgets the client afterwards.
func (s *Store) writeClient(ctx context.Context, c *storage.Client, write func(db *gorm.DB, data []byte, now int64) error) error {
	if c == nil || c.ID == "" {
		return fmt.Errorf("%w: client without ID", ErrInvalidInput)
	}
	data, err := encodeClient(c)
	if err != nil {
		return err
	}
	now := s.now().UnixNano()
	return s.announced(ctx, changeClients, dirtyClients, c.ID, func(db *gorm.DB) error { return write(db, data, now) })
}

// announced runs write and records a change of kind change (see announce) in one transaction,
// then invalidates the read cache's records of dirty (see written).
func (s *Store) announced(ctx context.Context, change int, dirty uint32, key string, write func(db *gorm.DB) error) error {
	defer s.written(ctx, dirty, key)
	return s.inTx(ctx, func(db *gorm.DB) error {
		if err := write(db); err != nil {
			return err
		}
		return s.announce(db, change)
	})
}

// updated is the outcome of an UPDATE or DELETE of one row by its key: storage.ErrNotFound
// when it matched none.
func updated(n int64, err error) error {
	if err == nil && n == 0 {
		return storage.ErrNotFound
	}
	return err
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.deleteAnnounced(ctx, "mandate_clients", id, changeClients, dirtyClients, id)
}

type resourceRecord struct {
	Identifier     string           `json:"identifier"`
	Name           string           `json:"name,omitempty"`
	Scopes         []string         `json:"scopes,omitempty"`
	AccessTokenTTL time.Duration    `json:"access_token_ttl,omitempty"`
	SigningAlg     string           `json:"signing_alg,omitempty"`
	Encryption     *jose.JSONWebKey `json:"encryption,omitempty"`
	DPoPRequired   bool             `json:"dpop_bound_access_tokens_required,omitempty"`
}

func decodeResource(data string, isDefault *int, created, updated time.Time) (*storage.ResourceServer, error) {
	var r resourceRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, wrap("decode resource server", err)
	}
	return &storage.ResourceServer{
		Identifier: r.Identifier, Name: r.Name, Scopes: r.Scopes, AccessTokenTTL: r.AccessTokenTTL,
		SigningAlg: r.SigningAlg, Encryption: r.Encryption, DPoPRequired: r.DPoPRequired, Default: isDefault != nil && *isDefault == 1,
		CreatedAt: created, UpdatedAt: updated,
	}, nil
}

// encodeResource is the stored document of a resource server (Default is a column of its own).
func encodeResource(rs *storage.ResourceServer) ([]byte, error) {
	return encode("resource server", resourceRecord{
		Identifier: rs.Identifier, Name: rs.Name, Scopes: rs.Scopes, AccessTokenTTL: rs.AccessTokenTTL,
		SigningAlg: rs.SigningAlg, Encryption: rs.Encryption, DPoPRequired: rs.DPoPRequired,
	})
}

// ResourceServer implements storage.ResourceStore, from the read cache (see [WithCache]) or
// one primary-key read.
func (s *Store) ResourceServer(ctx context.Context, identifier string) (*storage.ResourceServer, error) {
	return cachedRead(s, ctx, func(c *readCache) *kind[*storage.ResourceServer] { return &c.resources }, identifier,
		func() (*storage.ResourceServer, error) { return s.readResourceServer(ctx, identifier) }, nil)
}

func (s *Store) readResourceServer(ctx context.Context, identifier string) (*storage.ResourceServer, error) {
	var (
		data             string
		isDefault        *int
		created, updated int64
	)
	err := queryRow(s.conn(ctx), "SELECT data, is_default, created_at, updated_at FROM mandate_resource_servers WHERE id_hash = ?",
		[]any{key(identifier)}, &data, &isDefault, &created, &updated)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.ErrNotFound
		}
		return nil, wrap("resource server", err)
	}
	return decodeResource(data, isDefault, fromNanos(created), fromNanos(updated))
}

// ResourceServers implements storage.ResourceStore, ordered by Identifier (byte order), from the
// read cache (see [WithCache]) or one query.
func (s *Store) ResourceServers(ctx context.Context) ([]storage.ResourceServer, error) {
	return cachedRead(s, ctx, func(c *readCache) *kind[[]storage.ResourceServer] { return &c.list }, "",
		func() ([]storage.ResourceServer, error) { return s.readResourceServers(ctx) }, nil)
}

func (s *Store) readResourceServers(ctx context.Context) ([]storage.ResourceServer, error) {
	rows, err := queryRows(s.conn(ctx), "SELECT data, is_default, created_at, updated_at FROM mandate_resource_servers")
	if err != nil {
		return nil, wrap("resource servers", err)
	}
	defer rows.Close()
	var out []storage.ResourceServer
	for rows.Next() {
		var (
			data             string
			isDefault        *int
			created, updated int64
		)
		if err := rows.Scan(&data, &isDefault, &created, &updated); err != nil {
			return nil, wrap("resource servers", err)
		}
		rs, err := decodeResource(data, isDefault, fromNanos(created), fromNanos(updated))
		if err != nil {
			return nil, err
		}
		out = append(out, *rs)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("resource servers", err)
	}
	slices.SortFunc(out, func(a, b storage.ResourceServer) int { return strings.Compare(a.Identifier, b.Identifier) })
	return out, nil
}

// resourceRow checks and encodes rs: its key, its is_default column (1 or NULL: the unique
// index admits one 1) and its document.
func resourceRow(rs *storage.ResourceServer) (hashKey, any, []byte, error) {
	if rs == nil || rs.Identifier == "" {
		return nil, nil, nil, fmt.Errorf("%w: resource server without identifier", ErrInvalidInput)
	}
	data, err := encodeResource(rs)
	if err != nil {
		return nil, nil, nil, err
	}
	var isDefault any
	if rs.Default {
		isDefault = 1
	}
	return key(rs.Identifier), isDefault, data, nil
}

// clearOtherDefault clears the default flag of every other resource server when rs is the
// default, inside the transaction that writes rs (id is its key).
func clearOtherDefault(db *gorm.DB, rs *storage.ResourceServer, id hashKey) error {
	if !rs.Default {
		return nil
	}
	_, err := exec(db, "UPDATE mandate_resource_servers SET is_default = NULL WHERE is_default = 1 AND id_hash <> ?", id)
	return err
}

// SaveResourceServer implements storage.ResourceStore. Saving a default one clears the flag on
// every other in the same transaction; a unique index guarantees at most one default even
// under concurrent saves (the loser gets storage.ErrConflict).
func (s *Store) SaveResourceServer(ctx context.Context, rs *storage.ResourceServer) error {
	id, isDefault, data, err := resourceRow(rs)
	if err != nil {
		return err
	}
	save := func(db *gorm.DB) error {
		now := s.now().UnixNano()
		if err := clearOtherDefault(db, rs, id); err != nil {
			return err
		}
		if _, err := s.upsert(db, "mandate_resource_servers",
			[]string{"id_hash", "is_default", "data", "created_at", "updated_at"},
			[]any{id, isDefault, string(data), now, now}); err != nil {
			return err
		}
		return s.announce(db, changeResources)
	}
	defer s.written(ctx, dirtyResources, "")
	// Concurrent default saves collide on the unique index (or deadlock on it): retry a few
	// times when this call owns the transaction.
	inCallerTx := s.txOf(ctx) != nil
	for attempt := 0; ; attempt++ {
		err = s.inTx(ctx, save)
		if inCallerTx || attempt == 4 || !(isUnique(err) || isRetryable(err)) {
			break
		}
	}
	if isUnique(err) || isRetryable(err) {
		return fmt.Errorf("gormstore: another default resource server was saved concurrently: %w", storage.ErrConflict)
	}
	return wrap("save resource server", err)
}

// DeleteResourceServer implements storage.ResourceStore.
func (s *Store) DeleteResourceServer(ctx context.Context, identifier string) error {
	return s.deleteAnnounced(ctx, "mandate_resource_servers", identifier, changeResources, dirtyResources, "")
}

type trustRecord struct {
	ID                   string              `json:"id"`
	Issuer               string              `json:"issuer"`
	Subject              string              `json:"subject,omitempty"`
	AllowAnySubject      bool                `json:"allow_any_subject,omitempty"`
	JWKS                 *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI              string              `json:"jwks_uri,omitempty"`
	MetadataKeys         bool                `json:"metadata_keys,omitempty"`
	Transcribe           []string            `json:"transcribe,omitempty"`
	Scopes               []string            `json:"scopes,omitempty"`
	Resources            []string            `json:"resources,omitempty"`
	ExpiresAt            time.Time           `json:"expires_at,omitzero"`
	MaxAssertionLifetime time.Duration       `json:"max_assertion_lifetime,omitempty"`
	JTIOptional          bool                `json:"jti_optional,omitempty"`
}

// decodeTrust reads a stored trust document.
func decodeTrust(data string, created, updated time.Time) (*storage.Trust, error) {
	var r trustRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, wrap("decode trust", err)
	}
	var exp time.Time
	if !r.ExpiresAt.IsZero() {
		exp = r.ExpiresAt.UTC()
	}
	return &storage.Trust{
		ID: r.ID, Issuer: r.Issuer, Subject: r.Subject, AllowAnySubject: r.AllowAnySubject,
		JWKS: r.JWKS, JWKSURI: r.JWKSURI, MetadataKeys: r.MetadataKeys, Transcribe: r.Transcribe,
		Scopes: r.Scopes, Resources: r.Resources, ExpiresAt: exp, MaxAssertionLifetime: r.MaxAssertionLifetime, JTIOptional: r.JTIOptional,
		CreatedAt: created, UpdatedAt: updated,
	}, nil
}

// encodeTrust is the stored document of a trust whose ID is id.
func encodeTrust(t *storage.Trust, id string) ([]byte, error) {
	return encode("trust", trustRecord{
		ID: id, Issuer: t.Issuer, Subject: t.Subject, AllowAnySubject: t.AllowAnySubject,
		JWKS: t.JWKS, JWKSURI: t.JWKSURI, MetadataKeys: t.MetadataKeys, Transcribe: t.Transcribe,
		Scopes: t.Scopes, Resources: t.Resources, ExpiresAt: t.ExpiresAt, MaxAssertionLifetime: t.MaxAssertionLifetime, JTIOptional: t.JTIOptional,
	})
}

// Trusts implements storage.TrustStore, ordered by ID: from the read cache (see [WithCache]) or
// one query. An issuer without trusts is not cached.
func (s *Store) Trusts(ctx context.Context, issuer string) ([]storage.Trust, error) {
	return cachedRead(s, ctx, func(c *readCache) *kind[[]storage.Trust] { return &c.trusts }, issuer,
		func() ([]storage.Trust, error) { return s.readTrusts(ctx, issuer) },
		func(list []storage.Trust) bool { return len(list) > 0 })
}

func (s *Store) readTrusts(ctx context.Context, issuer string) ([]storage.Trust, error) {
	rows, err := queryRows(s.conn(ctx), "SELECT data, created_at, updated_at FROM mandate_trusts WHERE issuer_hash = ?", key(issuer))
	if err != nil {
		return nil, wrap("trusts", err)
	}
	defer rows.Close()
	var out []storage.Trust
	for rows.Next() {
		var (
			data             string
			created, updated int64
		)
		if err := rows.Scan(&data, &created, &updated); err != nil {
			return nil, wrap("trusts", err)
		}
		t, err := decodeTrust(data, fromNanos(created), fromNanos(updated))
		if err != nil {
			return nil, err
		}
		if t.Issuer != issuer {
			continue // a hash collision would be needed; be exact anyway
		}
		out = append(out, *t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("trusts", err)
	}
	slices.SortFunc(out, func(a, b storage.Trust) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// trustDoc checks t and returns its ID (a random one when t.ID is empty) and its document.
func trustDoc(t *storage.Trust) (string, []byte, error) {
	if t == nil || t.Issuer == "" {
		return "", nil, fmt.Errorf("%w: trust without issuer", ErrInvalidInput)
	}
	id := t.ID
	if id == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", nil, wrap("trust id", err)
		}
		id = hex.EncodeToString(b[:])
	}
	data, err := encodeTrust(t, id)
	return id, data, err
}

// SaveTrust implements storage.TrustStore. An empty ID is replaced by a random one, written
// back to t.ID.
func (s *Store) SaveTrust(ctx context.Context, t *storage.Trust) error {
	id, data, err := trustDoc(t)
	if err != nil {
		return err
	}
	now := s.now().UnixNano()
	err = s.announced(ctx, changeTrusts, dirtyTrusts, "", func(db *gorm.DB) error {
		_, err := s.upsert(db, "mandate_trusts",
			[]string{"id_hash", "issuer_hash", "data", "created_at", "updated_at"},
			[]any{key(id), key(t.Issuer), string(data), now, now})
		return err
	})
	if err != nil {
		return wrap("save trust", err)
	}
	t.ID = id
	return nil
}

// DeleteTrust implements storage.TrustStore.
func (s *Store) DeleteTrust(ctx context.Context, id string) error {
	return s.deleteAnnounced(ctx, "mandate_trusts", id, changeTrusts, dirtyTrusts, "")
}
