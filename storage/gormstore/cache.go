package gormstore

import (
	"sync"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// DefaultCacheTTL is how long [Open] and [New] keep a client or resource server read from the
// database unless [WithCache] says otherwise.
const DefaultCacheTTL = 5 * time.Second

// cacheMaxEntries bounds each of the cache's maps (clients, resource servers). When a map is
// full, a random entry makes room.
const cacheMaxEntries = 10000

// entry is a cached value and when it stops being valid. Cached values are never modified:
// readers get clones.
type entry[T any] struct {
	v   T
	exp time.Time
}

// readCache keeps recently read clients and resource servers for at most ttl. Only found records
// are cached: an unknown client_id always reaches the database, so a flood of them cannot fill
// memory or hide a client created on another instance.
//
// A write of this store invalidates before it returns (and again when the transaction it ran in
// commits). A read that raced with a write must not store what it read before the write: every
// invalidation bumps a generation, and a read stores its result only if the generation it saw
// before reading is still current.
type readCache struct {
	ttl time.Duration
	now func() time.Time // monotonic clock; tests replace it

	mu          sync.RWMutex
	clients     map[string]entry[*storage.Client]
	resources   map[string]entry[*storage.ResourceServer]
	list        entry[[]storage.ResourceServer]
	clientGen   uint64
	resourceGen uint64
	closed      bool // the store is closed: nothing is served or stored
}

func newReadCache(ttl time.Duration) *readCache {
	return &readCache{
		ttl:       ttl,
		now:       time.Now,
		clients:   map[string]entry[*storage.Client]{},
		resources: map[string]entry[*storage.ResourceServer]{},
	}
}

// client returns a clone of the cached client, if it is there and fresh.
func (c *readCache) client(id string) (*storage.Client, bool) {
	c.mu.RLock()
	e, ok := c.clients[id]
	ok = ok && !c.closed
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.exp) {
		return nil, false
	}
	return e.v.Clone(), true
}

// clientGeneration is taken before a database read whose result may be stored.
func (c *readCache) clientGeneration() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.clientGen
}

// putClient stores a clone of v under id unless a client was invalidated since gen was taken.
func (c *readCache) putClient(gen uint64, id string, v *storage.Client) {
	v = v.Clone()
	exp := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.clientGen || c.closed {
		return
	}
	makeRoom(c.clients, id, c.now())
	c.clients[id] = entry[*storage.Client]{v: v, exp: exp}
}

// invalidateClient drops one client.
func (c *readCache) invalidateClient(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clientGen++
	delete(c.clients, id)
}

// invalidateClients drops every client.
func (c *readCache) invalidateClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clientGen++
	clear(c.clients)
}

// resourceServer returns a clone of the cached resource server, if it is there and fresh.
func (c *readCache) resourceServer(id string) (*storage.ResourceServer, bool) {
	c.mu.RLock()
	e, ok := c.resources[id]
	ok = ok && !c.closed
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.exp) {
		return nil, false
	}
	return e.v.Clone(), true
}

// resourceServers returns a deep copy of the cached list, if it is there and fresh.
func (c *readCache) resourceServers() ([]storage.ResourceServer, bool) {
	c.mu.RLock()
	e, closed := c.list, c.closed
	c.mu.RUnlock()
	if closed || e.exp.IsZero() || !c.now().Before(e.exp) {
		return nil, false
	}
	return cloneResourceServers(e.v), true
}

func (c *readCache) resourceGeneration() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.resourceGen
}

func (c *readCache) putResourceServer(gen uint64, id string, v *storage.ResourceServer) {
	v = v.Clone()
	exp := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.resourceGen || c.closed {
		return
	}
	makeRoom(c.resources, id, c.now())
	c.resources[id] = entry[*storage.ResourceServer]{v: v, exp: exp}
}

func (c *readCache) putResourceServers(gen uint64, list []storage.ResourceServer) {
	list = cloneResourceServers(list)
	exp := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.resourceGen || c.closed {
		return
	}
	c.list = entry[[]storage.ResourceServer]{v: list, exp: exp}
}

// invalidateResources drops every cached resource server: saving a default one changes the
// Default flag of the others.
func (c *readCache) invalidateResources() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resourceGen++
	clear(c.resources)
	c.list = entry[[]storage.ResourceServer]{}
}

// close empties the cache for good.
func (c *readCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	clear(c.clients)
	clear(c.resources)
	c.list = entry[[]storage.ResourceServer]{}
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

func cloneResourceServers(list []storage.ResourceServer) []storage.ResourceServer {
	if list == nil {
		return nil
	}
	out := make([]storage.ResourceServer, len(list))
	for i := range list {
		out[i] = *list[i].Clone()
	}
	return out
}
