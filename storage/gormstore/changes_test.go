package gormstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// changeWrite is a write through one instance that another must notice: check reports whether
// the other instance shows it.
type changeWrite struct {
	name  string
	write func(ctx context.Context, a *Store) error
	check func(ctx context.Context, b *Store) bool
}

// changeWrites writes a client, a resource server, a trust, a peer and the key set in turn,
// changing or deleting what b has cached (or, for keys, what b's watcher has been told).
func changeWrites(t *testing.T, a, b *Store) []changeWrite {
	t.Helper()
	ctx := context.Background()
	must(t, a.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v1"}}))
	must(t, a.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://rs/", Scopes: []string{"v1"}}))
	must(t, a.SaveTrust(ctx, &storage.Trust{ID: "t", Issuer: "https://idp/", Scopes: []string{"v1"}}))
	must(t, a.SavePeer(ctx, &storage.Peer{Issuer: "https://peer/", Scopes: []string{"v1"}}))
	// b caches them now; its cache (1 hour) would keep them.
	if got := clientScopes(t, b, ctx, "c"); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("b's client: %v", got)
	}
	if _, err := b.ResourceServer(ctx, "https://rs/"); err != nil {
		t.Fatal(err)
	}
	if list, err := b.Trusts(ctx, "https://idp/"); err != nil || len(list) != 1 {
		t.Fatalf("b's trusts: %v %v", list, err)
	}
	if _, err := b.Peer(ctx, "https://peer/"); err != nil {
		t.Fatal(err)
	}
	trustScopes := func(ctx context.Context, b *Store, want ...string) bool {
		list, err := b.Trusts(ctx, "https://idp/")
		return err == nil && len(list) == len(want) && (len(want) == 0 || slices.Equal(list[0].Scopes, want))
	}
	peerScopes := func(ctx context.Context, b *Store, want string) bool {
		p, err := b.Peer(ctx, "https://peer/")
		return err == nil && slices.Equal(p.Scopes, []string{want})
	}
	var keyCalls atomic.Int64
	stop := b.WatchKeys(func() { keyCalls.Add(1) })
	t.Cleanup(stop)
	var keysBefore int64
	return []changeWrite{{
		name: "client saved",
		write: func(ctx context.Context, a *Store) error {
			return a.SaveClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v2"}})
		},
		check: func(ctx context.Context, b *Store) bool {
			c, err := b.Client(ctx, "c")
			return err == nil && slices.Equal(c.Scopes, []string{"v2"})
		},
	}, {
		name: "resource server saved",
		write: func(ctx context.Context, a *Store) error {
			return a.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: "https://rs/", Scopes: []string{"v2"}})
		},
		check: func(ctx context.Context, b *Store) bool {
			rs, err := b.ResourceServer(ctx, "https://rs/")
			return err == nil && slices.Equal(rs.Scopes, []string{"v2"})
		},
	}, {
		name: "client updated by the management role",
		write: func(ctx context.Context, a *Store) error {
			return a.UpdateClient(ctx, &storage.Client{ID: "c", Scopes: []string{"v3"}})
		},
		check: func(ctx context.Context, b *Store) bool {
			c, err := b.Client(ctx, "c")
			return err == nil && slices.Equal(c.Scopes, []string{"v3"})
		},
	}, {
		name: "resource server updated by the management role",
		write: func(ctx context.Context, a *Store) error {
			return a.UpdateResourceServer(ctx, &storage.ResourceServer{Identifier: "https://rs/", Scopes: []string{"v3"}})
		},
		check: func(ctx context.Context, b *Store) bool {
			rs, err := b.ResourceServer(ctx, "https://rs/")
			return err == nil && slices.Equal(rs.Scopes, []string{"v3"})
		},
	}, {
		name:  "client deleted",
		write: func(ctx context.Context, a *Store) error { return a.DeleteClient(ctx, "c") },
		check: func(ctx context.Context, b *Store) bool {
			_, err := b.Client(ctx, "c")
			return errors.Is(err, storage.ErrNotFound)
		},
	}, {
		name:  "resource server deleted",
		write: func(ctx context.Context, a *Store) error { return a.DeleteResourceServer(ctx, "https://rs/") },
		check: func(ctx context.Context, b *Store) bool {
			list, err := b.ResourceServers(ctx)
			return err == nil && len(list) == 0
		},
	}, {
		name: "trust saved",
		write: func(ctx context.Context, a *Store) error {
			return a.SaveTrust(ctx, &storage.Trust{ID: "t", Issuer: "https://idp/", Scopes: []string{"v2"}})
		},
		check: func(ctx context.Context, b *Store) bool { return trustScopes(ctx, b, "v2") },
	}, {
		name: "trust updated by the management role",
		write: func(ctx context.Context, a *Store) error {
			return a.UpdateTrust(ctx, &storage.Trust{ID: "t", Issuer: "https://idp/", Scopes: []string{"v3"}})
		},
		check: func(ctx context.Context, b *Store) bool { return trustScopes(ctx, b, "v3") },
	}, {
		name:  "trust deleted",
		write: func(ctx context.Context, a *Store) error { return a.DeleteTrust(ctx, "t") },
		check: func(ctx context.Context, b *Store) bool { return trustScopes(ctx, b) },
	}, {
		name: "peer saved",
		write: func(ctx context.Context, a *Store) error {
			return a.SavePeer(ctx, &storage.Peer{Issuer: "https://peer/", Scopes: []string{"v2"}})
		},
		check: func(ctx context.Context, b *Store) bool { return peerScopes(ctx, b, "v2") },
	}, {
		name: "peer updated by the management role",
		write: func(ctx context.Context, a *Store) error {
			return a.UpdatePeer(ctx, &storage.Peer{Issuer: "https://peer/", Scopes: []string{"v3"}})
		},
		check: func(ctx context.Context, b *Store) bool { return peerScopes(ctx, b, "v3") },
	}, {
		name:  "peer deleted",
		write: func(ctx context.Context, a *Store) error { return a.DeletePeer(ctx, "https://peer/") },
		check: func(ctx context.Context, b *Store) bool {
			_, err := b.Peer(ctx, "https://peer/")
			return errors.Is(err, storage.ErrNotFound)
		},
	}, {
		name: "key set updated",
		write: func(ctx context.Context, a *Store) error {
			keysBefore = keyCalls.Load()
			return a.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) {
				return []storage.Key{{ID: fmt.Sprint("k", time.Now().UnixNano()), Algorithm: "ES256", State: storage.KeyCurrent}}, nil
			})
		},
		check: func(context.Context, *Store) bool { return keyCalls.Load() > keysBefore },
	}}
}

// TestChangeBoundPolled: a change committed through one instance is seen by another, whose cache
// would keep the old record for an hour, by the first poll of the change counters that begins
// after the commit — the documented bound (the poll interval plus one query) — on every
// database; on PostgreSQL with the notifications off, so that only the polling can deliver it.
func TestChangeBoundPolled(t *testing.T) {
	for _, be := range persistent() {
		t.Run(be.name, func(t *testing.T) {
			dsn := be.fresh(t)
			const interval = 100 * time.Millisecond
			a := openT(t, dsn, WithCache(time.Hour), WithChangePoll(interval))
			b, err := Open(context.Background(), dsn, WithCache(time.Hour), WithChangePoll(interval), func(s *Store) { s.noListen = true })
			must(t, err)
			t.Cleanup(func() { b.Close() })
			ctx := context.Background()
			for _, w := range changeWrites(t, a, b) {
				must(t, w.write(ctx, a))
				committed := time.Now()
				// A poll that began after the commit has ended once two more have completed.
				n := b.changes.polls.Load()
				waitFor(t, "two polls after the commit", func() bool { return b.changes.polls.Load() >= n+2 })
				if !w.check(ctx, b) {
					t.Errorf("%s: not seen by the other instance after a poll that began after the commit", w.name)
				}
				t.Logf("%s: seen within %v (poll every %v)", w.name, time.Since(committed).Round(time.Millisecond), interval)
			}
		})
	}
}

// TestChangeNotifyPostgres: with the polling off and an hour of cache, only PostgreSQL's
// notifications can tell the other instance; every kind of change arrives (the test waits for the
// state, and logs the delay), an instance ignores its own notifications, and a listening session
// that the server ends is reopened and hears the next change.
func TestChangeNotifyPostgres(t *testing.T) {
	dsn := freshPostgres(t)
	a := openT(t, dsn, WithCache(time.Hour), WithChangePoll(0))
	b := openT(t, dsn, WithCache(time.Hour), WithChangePoll(0))
	listening := func(s *Store) {
		waitFor(t, "the listening session", func() bool { return s.changes.listening.Load() })
	}
	listening(a)
	listening(b)
	ctx := context.Background()
	seen := func(w changeWrite) {
		t.Helper()
		must(t, w.write(ctx, a))
		committed := time.Now()
		waitFor(t, w.name+" at the other instance", func() bool { return w.check(ctx, b) })
		t.Logf("%s: seen after %v", w.name, time.Since(committed).Round(time.Microsecond))
	}
	writes := changeWrites(t, a, b)
	for _, w := range writes {
		seen(w)
	}
	if n := a.changes.notified.Load(); n != 0 {
		t.Errorf("the writing instance applied %d notifications of its own", n)
	}
	if n := b.changes.notified.Load(); n < int64(len(writes)) {
		t.Errorf("the other instance applied %d notifications, want at least %d", n, len(writes))
	}

	// The server ends b's listening session: b listens again and hears the next change.
	adm := adminDB(t, envPostgres)
	var ended int
	must(t, adm.Raw("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?",
		listenerName(b.changes.id)).Row().Scan(&ended))
	if ended != 1 {
		t.Fatalf("ended %d listening sessions of b, want 1", ended)
	}
	waitFor(t, "b to notice the lost session", func() bool { return !b.changes.listening.Load() })
	listening(b)
	for _, w := range changeWrites(t, a, b)[:1] {
		seen(w)
	}
}

// TestChangeFeedOff: an in-memory database has no feed goroutines, and WithChangePoll(0) stops
// the polling (PostgreSQL keeps its notifications).
func TestChangeFeedOff(t *testing.T) {
	mem := openT(t, "sqlite::memory:")
	if mem.changes == nil || mem.changes.stop != nil {
		t.Error("an in-memory store runs a change feed")
	}
	s := openT(t, "sqlite::memory:", WithChangePoll(0))
	must(t, s.SaveClient(context.Background(), &storage.Client{ID: "c"})) // announce works without polling
}
