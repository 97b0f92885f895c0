package gormstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// fakeClock is a settable monotonic clock for the read cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cachedPair opens two stores on one SQLite file, as two instances sharing a database, with
// the read cache on a fake clock and no change polling.
func cachedPair(t *testing.T, ttl time.Duration) (a, b *Store, clock *fakeClock) {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "cache.db")
	// No change polling: the TTL alone bounds what another instance's write leaves stale here
	// (changes_test.go tests the polling and notifications).
	a, b = openT(t, dsn, WithCache(ttl), WithChangePoll(0)), openT(t, dsn, WithCache(ttl), WithChangePoll(0))
	clock = &fakeClock{t: time.Now()}
	a.cache.now, b.cache.now = clock.now, clock.now
	return a, b, clock
}

func clientScopes(t *testing.T, s *Store, ctx context.Context, id string) []string {
	t.Helper()
	c, err := s.Client(ctx, id)
	must(t, err)
	return c.Scopes
}

// TestCacheStalenessBounded: another instance's change is seen within ttl; this store's own
// changes at once.
func TestCacheStalenessBounded(t *testing.T) {
	a, b, clock := cachedPair(t, 5*time.Second)
	ctx := context.Background()
	must(t, a.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v1"}}))
	if got := clientScopes(t, a, ctx, "c"); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("scopes = %v", got)
	}
	must(t, b.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v2"}}))
	if got := clientScopes(t, b, ctx, "c"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("writer's own read = %v, want v2", got)
	}
	if got := clientScopes(t, a, ctx, "c"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("other instance within ttl = %v, want the cached v1 (is the cache on?)", got)
	}
	clock.advance(5 * time.Second)
	if got := clientScopes(t, a, ctx, "c"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("other instance after ttl = %v, want v2", got)
	}

	// A delete on the other instance: gone after ttl.
	must(t, b.DeleteClient(ctx, "c"))
	if _, err := b.Client(ctx, "c"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleting instance still finds the client: %v", err)
	}
	clock.advance(5 * time.Second)
	if _, err := a.Client(ctx, "c"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("other instance after ttl: %v, want ErrNotFound", err)
	}
}

// TestCacheNotFoundNotCached: a client created elsewhere is found at once; unknown IDs leave
// nothing behind.
func TestCacheNotFoundNotCached(t *testing.T) {
	a, b, _ := cachedPair(t, time.Hour)
	ctx := context.Background()
	for i := range 100 {
		if _, err := a.Client(ctx, fmt.Sprintf("unknown-%d", i)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown client: %v", err)
		}
	}
	if n := len(a.cache.clients.m); n != 0 {
		t.Errorf("%d cache entries after unknown lookups, want 0", n)
	}
	must(t, b.SaveClient(ctx, &storage.Client{ID: "unknown-1"}))
	if _, err := a.Client(ctx, "unknown-1"); err != nil {
		t.Errorf("client created on another instance: %v", err)
	}
}

// TestCacheTrustsAndPeers: trusts (by issuer) and peers are cached like clients — another
// instance's change is seen within ttl, this store's own writes at once, an issuer without
// trusts is not cached, and callers get copies.
func TestCacheTrustsAndPeers(t *testing.T) {
	a, b, clock := cachedPair(t, 5*time.Second)
	ctx := context.Background()
	const idp, peer = "https://idp.example", "https://as.y.example"
	trustScopes := func(s *Store) []string {
		t.Helper()
		list, err := s.Trusts(ctx, idp)
		must(t, err)
		if len(list) == 0 {
			return nil
		}
		return list[0].Scopes
	}
	peerScopes := func(s *Store) []string {
		t.Helper()
		p, err := s.Peer(ctx, peer)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		must(t, err)
		return p.Scopes
	}
	// No trust yet: nothing is cached, so a trust created elsewhere is found at once.
	if got := trustScopes(a); got != nil {
		t.Fatalf("trusts before any: %v", got)
	}
	if _, err := a.Peer(ctx, peer); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("peer before any: %v", err)
	}
	if n, m := len(a.cache.trusts.m), len(a.cache.peers.m); n+m != 0 {
		t.Fatalf("%d trust and %d peer entries cached for unknown issuers", n, m)
	}
	must(t, b.CreateTrust(ctx, &storage.Trust{ID: "t", Issuer: idp, Scopes: []string{"v1"}}))
	must(t, b.CreatePeer(ctx, &storage.Peer{Issuer: peer, Scopes: []string{"v1"}}))
	if got, p := trustScopes(a), peerScopes(a); !slices.Equal(got, []string{"v1"}) || !slices.Equal(p, []string{"v1"}) {
		t.Fatalf("created on the other instance: trust %v, peer %v", got, p)
	}

	// Changed on the other instance: the cached copies stay until ttl.
	must(t, b.UpdateTrust(ctx, &storage.Trust{ID: "t", Issuer: idp, Scopes: []string{"v2"}}))
	must(t, b.UpdatePeer(ctx, &storage.Peer{Issuer: peer, Scopes: []string{"v2"}}))
	if got, p := trustScopes(a), peerScopes(a); !slices.Equal(got, []string{"v1"}) || !slices.Equal(p, []string{"v1"}) {
		t.Errorf("other instance within ttl: trust %v, peer %v, want the cached v1 (is the cache on?)", got, p)
	}
	clock.advance(5 * time.Second)
	if got, p := trustScopes(a), peerScopes(a); !slices.Equal(got, []string{"v2"}) || !slices.Equal(p, []string{"v2"}) {
		t.Errorf("other instance after ttl: trust %v, peer %v, want v2", got, p)
	}

	// This store's own writes: seen at once, moving a trust to another issuer included.
	must(t, a.SaveTrust(ctx, &storage.Trust{ID: "t", Issuer: idp, Scopes: []string{"v3"}}))
	must(t, a.SavePeer(ctx, &storage.Peer{Issuer: peer, Scopes: []string{"v3"}}))
	if got, p := trustScopes(a), peerScopes(a); !slices.Equal(got, []string{"v3"}) || !slices.Equal(p, []string{"v3"}) {
		t.Errorf("after own saves: trust %v, peer %v, want v3", got, p)
	}
	must(t, a.UpdateTrust(ctx, &storage.Trust{ID: "t", Issuer: "https://moved.example", Scopes: []string{"v4"}}))
	if got := trustScopes(a); got != nil {
		t.Errorf("trusts of the old issuer after the trust moved: %v", got)
	}
	must(t, a.SaveTrust(ctx, &storage.Trust{ID: "t", Issuer: idp, Scopes: []string{"v5"}}))
	trustScopes(a)

	// Copies: a caller's change reaches neither the cache nor other callers.
	list, err := a.Trusts(ctx, idp)
	must(t, err)
	list[0].Scopes[0] = "x"
	p, err := a.Peer(ctx, peer)
	must(t, err)
	p.Scopes[0] = "x"
	if got, p := trustScopes(a), peerScopes(a); !slices.Equal(got, []string{"v5"}) || !slices.Equal(p, []string{"v3"}) {
		t.Errorf("a caller's change reached the cache: trust %v, peer %v", got, p)
	}

	must(t, a.DeleteTrust(ctx, "t"))
	must(t, a.DeletePeer(ctx, peer))
	if got, p := trustScopes(a), peerScopes(a); got != nil || p != nil {
		t.Errorf("after own deletes: trust %v, peer %v", got, p)
	}
}

// TestCacheOwnWrites: Save and Delete of this store invalidate, also of resource servers, and
// a new default clears the cached flag of the old one.
func TestCacheOwnWrites(t *testing.T) {
	s, _, _ := cachedPair(t, time.Hour)
	ctx := context.Background()
	must(t, s.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v1"}}))
	clientScopes(t, s, ctx, "c")
	must(t, s.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v2"}}))
	if got := clientScopes(t, s, ctx, "c"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("after own save: %v, want v2", got)
	}
	must(t, s.DeleteClient(ctx, "c"))
	if _, err := s.Client(ctx, "c"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after own delete: %v", err)
	}

	must(t, s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://a/", Default: true}))
	must(t, s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://b/"}))
	rs, err := s.ResourceServer(ctx, "https://a/")
	must(t, err)
	list, err := s.ResourceServers(ctx)
	must(t, err)
	if !rs.Default || len(list) != 2 || !list[0].Default {
		t.Fatalf("before: %+v %+v", rs, list)
	}
	must(t, s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://b/", Default: true}))
	rs, err = s.ResourceServer(ctx, "https://a/")
	must(t, err)
	list, err = s.ResourceServers(ctx)
	must(t, err)
	if rs.Default || list[0].Default || !list[1].Default {
		t.Errorf("after a new default: a=%v list=%+v", rs.Default, list)
	}
	must(t, s.DeleteResourceServer(ctx, "https://a/"))
	if _, err := s.ResourceServer(ctx, "https://a/"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after own delete: %v", err)
	}
	if list, _ := s.ResourceServers(ctx); len(list) != 1 {
		t.Errorf("list after delete: %+v", list)
	}
}

// TestCacheTransactions: a write in a transaction is invisible outside until commit, nothing of a
// rolled-back one is cached, and an old value cached between the write and the commit is
// dropped at commit.
func TestCacheTransactions(t *testing.T) {
	s, _, _ := cachedPair(t, time.Hour)
	ctx := context.Background()
	must(t, s.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v1"}}))

	tx, err := s.BeginTX(ctx)
	must(t, err)
	must(t, s.SaveClient(tx, &storage.Client{ID: "c", Scopes: []string{"rolled-back"}}))
	if got := clientScopes(t, s, tx, "c"); !slices.Equal(got, []string{"rolled-back"}) {
		t.Errorf("the transaction's own read = %v", got)
	}
	must(t, s.Rollback(tx))
	if got := clientScopes(t, s, ctx, "c"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("after rollback = %v, want v1", got)
	}

	// A reader outside sees (and caches) the committed row while the transaction is open.
	tx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, s.SaveClient(tx, &storage.Client{ID: "c", Scopes: []string{"v2"}}))
	if got := clientScopes(t, s, ctx, "c"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("outside the open transaction = %v, want v1", got)
	}
	must(t, s.Commit(tx))
	if got := clientScopes(t, s, ctx, "c"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("after commit = %v, want v2 (stale cache)", got)
	}

	tx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, s.SaveResourceServer(tx, &storage.ResourceServer{Identifier: "https://a/", Scopes: []string{"v1"}}))
	if _, err := s.ResourceServer(ctx, "https://a/"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("uncommitted resource server visible outside: %v", err)
	}
	if list, _ := s.ResourceServers(ctx); len(list) != 0 {
		t.Errorf("uncommitted resource server listed outside: %+v", list)
	}
	must(t, s.Commit(tx))
	if _, err := s.ResourceServer(ctx, "https://a/"); err != nil {
		t.Errorf("after commit: %v", err)
	}
	if list, _ := s.ResourceServers(ctx); len(list) != 1 {
		t.Errorf("after commit listed: %+v", list)
	}
}

// TestCacheClones: nothing returned or stored aliases the cache.
func TestCacheClones(t *testing.T) {
	s, _, _ := cachedPair(t, time.Hour)
	ctx := context.Background()
	must(t, s.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"a"}, SecretHash: []byte("h")}))
	must(t, s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://a/", Scopes: []string{"a"}}))
	for range 2 { // the first read fills the cache, the second is served from it
		c, err := s.Client(ctx, "c")
		must(t, err)
		rs, err := s.ResourceServer(ctx, "https://a/")
		must(t, err)
		list, err := s.ResourceServers(ctx)
		must(t, err)
		if c.Scopes[0] != "a" || c.SecretHash[0] != 'h' || rs.Scopes[0] != "a" || list[0].Scopes[0] != "a" {
			t.Fatalf("a mutation reached the cache: %v %q %v %v", c.Scopes, c.SecretHash, rs.Scopes, list[0].Scopes)
		}
		c.Scopes[0], c.SecretHash[0], rs.Scopes[0], list[0].Scopes[0] = "x", 'x', "x", "x"
	}
}

// TestCacheGenerations: a read that started before an invalidation does not store its result.
func TestCacheGenerations(t *testing.T) {
	c := newReadCache(time.Hour)
	gen := generation(c, &c.clients)
	invalidate(c, &c.clients, "other", false)
	store(c, &c.clients, gen, "c", &storage.Client{ID: "c"})
	if _, ok := cached(c, &c.clients, "c"); ok {
		t.Error("a read from before an invalidation was cached")
	}
	store(c, &c.clients, generation(c, &c.clients), "c", &storage.Client{ID: "c"})
	if _, ok := cached(c, &c.clients, "c"); !ok {
		t.Error("a current read was not cached")
	}
	rgen, lgen := generation(c, &c.resources), generation(c, &c.list)
	c.invalidateResources()
	store(c, &c.resources, rgen, "r", &storage.ResourceServer{Identifier: "r"})
	store(c, &c.list, lgen, "", []storage.ResourceServer{{Identifier: "r"}})
	if _, ok := cached(c, &c.resources, "r"); ok {
		t.Error("a resource server read from before an invalidation was cached")
	}
	if _, ok := cached(c, &c.list, ""); ok {
		t.Error("a resource server list read from before an invalidation was cached")
	}
	c.close()
	store(c, &c.clients, generation(c, &c.clients), "d", &storage.Client{ID: "d"})
	if _, ok := cached(c, &c.clients, "c"); ok {
		t.Error("a closed cache serves entries")
	}
	if len(c.clients.m) != 0 {
		t.Error("a closed cache stores entries")
	}
}

// TestCacheBounded: the cache never holds more than cacheMaxEntries entries per kind.
func TestCacheBounded(t *testing.T) {
	c := newReadCache(time.Hour)
	gen := generation(c, &c.clients)
	for i := range cacheMaxEntries + 500 {
		id := fmt.Sprintf("c-%d", i)
		store(c, &c.clients, gen, id, &storage.Client{ID: id})
		if len(c.clients.m) > cacheMaxEntries {
			t.Fatalf("%d entries after %d puts, bound %d", len(c.clients.m), i+1, cacheMaxEntries)
		}
	}
	last := fmt.Sprintf("c-%d", cacheMaxEntries+499)
	if _, ok := cached(c, &c.clients, last); !ok {
		t.Error("the newest entry was evicted")
	}
}

// TestCacheOff: WithCache(0) reads the database every time.
func TestCacheOff(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "nocache.db")
	a, b := openT(t, dsn, WithCache(0)), openT(t, dsn)
	if a.cache != nil || b.cache == nil || b.cache.ttl != DefaultCacheTTL {
		t.Fatalf("cache: off store has %v, default store has %v", a.cache, b.cache)
	}
	ctx := context.Background()
	must(t, a.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v1"}}))
	clientScopes(t, a, ctx, "c")
	must(t, b.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v2"}}))
	if got := clientScopes(t, a, ctx, "c"); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("uncached store = %v, want v2", got)
	}
}
