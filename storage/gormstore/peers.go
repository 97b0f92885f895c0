package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// peerRecord is the stored form of a storage.Peer, in mandate_peers keyed by the hash of its
// issuer; explicit JSON names keep stored rows independent of Go field names.
type peerRecord struct {
	Issuer           string        `json:"issuer"`
	Name             string        `json:"name,omitempty"`
	TokenEndpoint    string        `json:"token_endpoint,omitempty"`
	Scopes           []string      `json:"scopes,omitempty"`
	Claims           []string      `json:"claims,omitempty"`
	MaxGrantLifetime time.Duration `json:"max_grant_lifetime,omitempty"`
	SigningAlg       string        `json:"signing_alg,omitempty"`
}

func decodePeer(data string, created, updated time.Time) (*storage.Peer, error) {
	var r peerRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, wrap("decode peer", err)
	}
	return &storage.Peer{
		Issuer: r.Issuer, Name: r.Name, TokenEndpoint: r.TokenEndpoint, Scopes: r.Scopes, Claims: r.Claims,
		MaxGrantLifetime: r.MaxGrantLifetime, SigningAlg: r.SigningAlg, CreatedAt: created, UpdatedAt: updated,
	}, nil
}

// Peer implements storage.PeerStore: from the read cache (see [WithCache]) or one primary-key
// read.
func (s *Store) Peer(ctx context.Context, issuer string) (*storage.Peer, error) {
	return cachedRead(s, ctx, func(c *readCache) *kind[*storage.Peer] { return &c.peers }, issuer,
		func() (*storage.Peer, error) { return s.readPeer(ctx, issuer) }, nil)
}

func (s *Store) readPeer(ctx context.Context, issuer string) (*storage.Peer, error) {
	data, created, updated, err := readDoc(s.conn(ctx), "SELECT data, created_at, updated_at FROM mandate_peers WHERE id_hash = ?", key(issuer))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, storage.ErrNotFound
	} else if err != nil {
		return nil, wrap("peer", err)
	}
	p, err := decodePeer(data, created, updated)
	if err != nil {
		return nil, err
	}
	if p.Issuer != issuer {
		return nil, storage.ErrNotFound // a hash collision would be needed; be exact anyway
	}
	return p, nil
}

// Peers implements storage.PeerStore, ordered by Issuer (byte order).
func (s *Store) Peers(ctx context.Context) ([]storage.Peer, error) {
	rows, err := queryRows(s.conn(ctx), "SELECT data, created_at, updated_at FROM mandate_peers")
	if err != nil {
		return nil, wrap("peers", err)
	}
	defer rows.Close()
	var out []storage.Peer
	for rows.Next() {
		var (
			data             string
			created, updated int64
		)
		if err := rows.Scan(&data, &created, &updated); err != nil {
			return nil, wrap("peers", err)
		}
		p, err := decodePeer(data, fromNanos(created), fromNanos(updated))
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("peers", err)
	}
	slices.SortFunc(out, func(a, b storage.Peer) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out, nil
}

// peerDoc checks p and returns its stored document.
func peerDoc(p *storage.Peer) ([]byte, error) {
	if p == nil || p.Issuer == "" {
		return nil, fmt.Errorf("%w: peer without issuer", ErrInvalidInput)
	}
	return encode("peer", peerRecord{
		Issuer: p.Issuer, Name: p.Name, TokenEndpoint: p.TokenEndpoint, Scopes: p.Scopes, Claims: p.Claims,
		MaxGrantLifetime: p.MaxGrantLifetime, SigningAlg: p.SigningAlg,
	})
}

// SavePeer implements storage.PeerStore.
func (s *Store) SavePeer(ctx context.Context, p *storage.Peer) error {
	return s.writePeer(ctx, "save peer", p, func(db *gorm.DB, data []byte, now int64) error {
		_, err := s.upsert(db, "mandate_peers", []string{"id_hash", "data", "created_at", "updated_at"},
			[]any{key(p.Issuer), string(data), now, now})
		return err
	})
}

// CreatePeer implements storage.PeerManager: one INSERT, which the primary key makes fail
// for an issuer already registered.
func (s *Store) CreatePeer(ctx context.Context, p *storage.Peer) error {
	err := s.writePeer(ctx, "create peer", p, func(db *gorm.DB, data []byte, now int64) error {
		_, err := exec(db, "INSERT INTO mandate_peers (id_hash, data, created_at, updated_at) VALUES (?, ?, ?, ?)",
			key(p.Issuer), string(data), now, now)
		return err
	})
	if isUnique(err) {
		return fmt.Errorf("gormstore: create peer: %w", storage.ErrConflict)
	}
	return err
}

// UpdatePeer implements storage.PeerManager.
func (s *Store) UpdatePeer(ctx context.Context, p *storage.Peer) error {
	err := s.writePeer(ctx, "update peer", p, func(db *gorm.DB, data []byte, now int64) error {
		return updated(exec(db, "UPDATE mandate_peers SET data = ?, updated_at = ? WHERE id_hash = ?", string(data), now, key(p.Issuer)))
	})
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ErrNotFound
	}
	return err
}

// writePeer checks and encodes p, then runs write (an insert, update or upsert of its row, given
// its document and the time) and announces the change, in one transaction.
func (s *Store) writePeer(ctx context.Context, op string, p *storage.Peer, write func(db *gorm.DB, data []byte, now int64) error) error {
	data, err := peerDoc(p)
	if err != nil {
		return err
	}
	now := s.now().UnixNano()
	return wrap(op, s.announced(ctx, changePeers, dirtyPeers, p.Issuer, func(db *gorm.DB) error { return write(db, data, now) }))
}

// DeletePeer implements storage.PeerStore.
func (s *Store) DeletePeer(ctx context.Context, issuer string) error {
	return s.deleteAnnounced(ctx, "mandate_peers", issuer, changePeers, dirtyPeers, issuer)
}
