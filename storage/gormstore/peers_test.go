package gormstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// TestMigratePeers opens a SQLite database written by a version-3 store, holding a client and
// a trust: step 4 adds the peers table, and what was there reads back unchanged.
func TestMigratePeers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	old := legacyStore(t, path, 3)
	changesTable(t, old)
	must(t, old.SaveClient(ctx, &storage.Client{ID: "survivor", Scopes: []string{"orders:read"}}))
	must(t, old.SaveTrust(ctx, &storage.Trust{ID: "t", Issuer: "https://as.x.example", AllowAnySubject: true, JWKSURI: "https://as.x.example/jwks"}))
	if _, err := old.Peer(ctx, "https://as.y.example"); err == nil {
		t.Fatal("a version-3 database has a peers table")
	}
	must(t, old.Close())

	s := openT(t, "sqlite:"+path)
	if v, err := s.Version(ctx); err != nil || v != SchemaVersion || SchemaVersion < 4 {
		t.Fatalf("Version = %d, %v; want %d (at least 4)", v, err, SchemaVersion)
	}
	if c, err := s.Client(ctx, "survivor"); err != nil || c.Scopes[0] != "orders:read" {
		t.Fatalf("client after the migration: %+v, %v", c, err)
	}
	if trusts, err := s.Trusts(ctx, "https://as.x.example"); err != nil || len(trusts) != 1 || trusts[0].MetadataKeys || trusts[0].JWKSURI == "" {
		t.Fatalf("trust after the migration: %+v, %v", trusts, err)
	}
	p := &storage.Peer{Issuer: "https://as.y.example", Scopes: []string{"stock:read"}, MaxGrantLifetime: time.Minute}
	must(t, s.SavePeer(ctx, p))
	if got, err := s.Peer(ctx, p.Issuer); err != nil || got.MaxGrantLifetime != time.Minute {
		t.Fatalf("peer after the migration: %+v, %v", got, err)
	}
}
