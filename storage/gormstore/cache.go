package gormstore

import (
	"context"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// DefaultCacheTTL is how long [Open] and [New] keep a client, resource server, trusted issuer or
// peer read from the database unless [WithCache] says otherwise.
const DefaultCacheTTL = 5 * time.Second

// cacheMaxEntries bounds each of the cache's maps (clients, resource servers, trusts, peers).
// When a map is full, a random entry makes room.
const cacheMaxEntries = 10000

// entry is a cached value and when it stops being valid. Cached values are never modified:
// readers get clones.
type entry[T any] struct {
	v   T
	exp time.Time
}

// kind is the cached records of one kind, by key, and the generation that every invalidation of
// the kind bumps.
type kind[T any] struct {
	m     map[string]entry[T]
	gen   uint64
	clone func(T) T
}

func newKind[T any](clone func(T) T) kind[T] {
	return kind[T]{m: map[string]entry[T]{}, clone: clone}
}

// readCache keeps recently read clients, resource servers, trusts (by issuer) and peers for at
// most ttl. Only found records are cached: an unknown client_id or issuer always reaches the
// database, so a flood of them cannot fill memory or hide a record created on another instance.
//
// A write of this store invalidates before it returns (and again when the transaction it ran in
// commits). A read that raced with a write must not store what it read before the write: every
// invalidation bumps its kind's generation, and a read stores its result only if the generation
// it saw before reading is still current.
type readCache struct {
	ttl time.Duration
	now func() time.Time // monotonic clock; tests replace it

	mu        sync.RWMutex
	clients   kind[*storage.Client]
	resources kind[*storage.ResourceServer]
	list      kind[[]storage.ResourceServer] // the one list, under the key ""
	trusts    kind[[]storage.Trust]          // by issuer
	peers     kind[*storage.Peer]
	closed    bool // the store is closed: nothing is served or stored
}

func newReadCache(ttl time.Duration) *readCache {
	return &readCache{
		ttl:       ttl,
		now:       time.Now,
		clients:   newKind((*storage.Client).Clone),
		resources: newKind((*storage.ResourceServer).Clone),
		list:      newKind(cloneAll[storage.ResourceServer]),
		trusts:    newKind(cloneAll[storage.Trust]),
		peers:     newKind((*storage.Peer).Clone),
	}
}

// cached returns a clone of the entry of k under key, if it is there and fresh.
func cached[T any](c *readCache, k *kind[T], key string) (T, bool) {
	c.mu.RLock()
	e, ok := k.m[key]
	ok = ok && !c.closed
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.exp) {
		var zero T
		return zero, false
	}
	return k.clone(e.v), true
}

// generation is taken before a database read whose result may be stored in k.
func generation[T any](c *readCache, k *kind[T]) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return k.gen
}

// store keeps a clone of v under key unless k was invalidated since gen was taken.
func store[T any](c *readCache, k *kind[T], gen uint64, key string, v T) {
	v = k.clone(v)
	exp := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != k.gen || c.closed {
		return
	}
	makeRoom(k.m, key, c.now())
	k.m[key] = entry[T]{v: v, exp: exp}
}

// invalidate drops the entry of k under key, or every entry of k when all is set.
func invalidate[T any](c *readCache, k *kind[T], key string, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k.gen++
	if all {
		clear(k.m)
	} else {
		delete(k.m, key)
	}
}

// invalidateResources drops every cached resource server and the list: saving a default one
// changes the Default flag of the others.
func (c *readCache) invalidateResources() {
	invalidate(c, &c.resources, "", true)
	invalidate(c, &c.list, "", true)
}

// close empties the cache for good.
func (c *readCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	clear(c.clients.m)
	clear(c.resources.m)
	clear(c.list.m)
	clear(c.trusts.m)
	clear(c.peers.m)
}

// cachedRead serves key from k of the read cache for ctx (see [Store.cacheFor]) or reads it
// with read, and caches what read found when keep says it is worth keeping (nil: always).
func cachedRead[T any](s *Store, ctx context.Context, k func(*readCache) *kind[T], key string, read func() (T, error), keep func(T) bool) (T, error) {
	c := s.cacheFor(ctx)
	var gen uint64
	if c != nil {
		if v, ok := cached(c, k(c), key); ok {
			return v, nil
		}
		gen = generation(c, k(c))
	}
	v, err := read()
	if err == nil && c != nil && (keep == nil || keep(v)) {
		store(c, k(c), gen, key, v)
	}
	return v, err
}

// makeRoom runs when m is full and k is new: it removes the expired entries and, if that is not
// enough, random ones, down to 7/8 of the bound, so that the sweep runs at most once per
// cacheMaxEntries/8 new entries.
func makeRoom[T any](m map[string]entry[T], k string, now time.Time) {
	if _, ok := m[k]; ok || len(m) < cacheMaxEntries {
		return
	}
	for id, e := range m {
		if !now.Before(e.exp) {
			delete(m, id)
		}
	}
	for id := range m { // map iteration starts at a random entry
		if len(m) <= cacheMaxEntries*7/8 {
			break
		}
		delete(m, id)
	}
}

// cloneAll returns a deep copy of list (nil stays nil).
func cloneAll[T any, P interface {
	*T
	Clone() *T
}](list []T) []T {
	if list == nil {
		return nil
	}
	out := make([]T, len(list))
	for i := range list {
		out[i] = *P(&list[i]).Clone()
	}
	return out
}
