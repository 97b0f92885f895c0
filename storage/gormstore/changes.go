package gormstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// DefaultChangePoll is how often a store reads the change counters of the records that
// instances keep in memory, unless [WithChangePoll] says otherwise.
const DefaultChangePoll = time.Second

// Kinds of change counted in mandate_changes.
const (
	changeClients   = 1
	changeResources = 2
	changeKeys      = 3
	changeTrusts    = 4
	changePeers     = 5
)

// WithChangePoll sets how often the store reads the change counters that every write of a
// client, a resource server, a trust, a peer or the key set increments in the same transaction
// (default [DefaultChangePoll]); d <= 0 turns the polling off. A counter that moved since the
// last read drops this store's cached records of that kind (see [WithCache]) and tells the key set's
// watchers (see [Store.WatchKeys]), so a change made through another instance sharing the
// database is seen here within d of its commit (plus one query). On PostgreSQL the store also
// LISTENs on a channel to which every such write NOTIFYs, and applies a change as soon as the
// notification arrives, typically within milliseconds; the polling stays on as the backstop for
// notifications lost while the listening session was down (after which everything is dropped
// once). Changes made with SQL behind the store's back move no counter: they are seen after the
// cache TTL. A private in-memory SQLite database, which no other instance can share, never
// polls.
func WithChangePoll(d time.Duration) Option {
	return func(s *Store) { s.changePoll = d }
}

// changeFeed tells this store about changes that other instances made to what it keeps in
// memory: by polling mandate_changes and, on PostgreSQL, by LISTEN/NOTIFY.
type changeFeed struct {
	s        *Store
	interval time.Duration // of the polling; 0: none
	id       string        // this store's, in its notifications: its own are skipped
	channel  string        // PostgreSQL: the NOTIFY channel of the store's schema
	dsn      string        // PostgreSQL: where the listening session connects; "": none

	mu       sync.Mutex
	versions map[int]int64 // counters as last read
	watchers map[int]func()
	nextID   int

	polls     atomic.Int64 // polls completed (tests wait for them)
	notified  atomic.Int64 // notifications of other instances applied
	listening atomic.Bool  // the listening session is connected and listening

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startChanges reads the counters once and starts the polling and, on PostgreSQL with a DSN,
// the listening session.
func (s *Store) startChanges(ctx context.Context, memory bool) error {
	f := &changeFeed{s: s, interval: max(s.changePoll, 0), versions: map[int]int64{}, watchers: map[int]func(){}}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return wrap("change feed", err)
	}
	f.id = hex.EncodeToString(b[:])
	if s.dialect == dialectPostgres {
		var schema string
		if err := queryRow(s.db.WithContext(ctx), "SELECT current_schema()", nil, &schema); err != nil {
			return wrap("change feed", err)
		}
		h := sha256.Sum256([]byte(schema))
		f.channel = "mandate_changes_" + hex.EncodeToString(h[:6])
		if d, ok := s.db.Dialector.(*postgres.Dialector); ok && d.Config != nil && d.Config.Conn == nil {
			f.dsn = d.Config.DSN
		}
		if s.noListen {
			f.dsn = ""
		}
	}
	if err := f.poll(ctx, false); err != nil {
		return err
	}
	s.changes = f
	if memory {
		return nil
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f.stop = stop
	if f.interval > 0 {
		f.wg.Go(func() { f.pollLoop(runCtx) })
	}
	if f.dsn != "" {
		f.wg.Go(func() { f.listen(runCtx) })
	}
	return nil
}

// close stops the feed and waits for its goroutines.
func (f *changeFeed) close() {
	if f.stop != nil {
		f.stop()
	}
	f.wg.Wait()
}

// announce records a change of kind in the transaction (or statement) db runs: the counter
// moves, and on PostgreSQL the other instances are notified when it commits.
func (s *Store) announce(db *gorm.DB, kind int) error {
	q := "INSERT INTO mandate_changes (kind, version) VALUES (?, 1) ON CONFLICT (kind) DO UPDATE SET version = mandate_changes.version + 1"
	if s.dialect == dialectMySQL {
		q = "INSERT INTO mandate_changes (kind, version) VALUES (?, 1) ON DUPLICATE KEY UPDATE version = version + 1"
	}
	if _, err := exec(db, q, kind); err != nil {
		return err
	}
	if f := s.changes; f != nil && s.dialect == dialectPostgres {
		if _, err := exec(db, "SELECT pg_notify(?, ?)", f.channel, strconv.Itoa(kind)+" "+f.id); err != nil {
			return err
		}
	}
	return nil
}

// pollLoop polls every interval until ctx ends. A failed poll (the database is unreachable) is
// retried at the next tick: the counters are durable, so nothing is missed.
func (f *changeFeed) pollLoop(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = f.poll(ctx, true)
	}
}

// poll reads the counters and applies every kind whose counter moved (apply false: only records
// them, for the first read).
func (f *changeFeed) poll(ctx context.Context, apply bool) error {
	rows, err := queryRows(f.s.db.WithContext(ctx), "SELECT kind, version FROM mandate_changes")
	if err != nil {
		return wrap("poll changes", err)
	}
	defer rows.Close()
	read := map[int]int64{}
	for rows.Next() {
		var kind int
		var v int64
		if err := rows.Scan(&kind, &v); err != nil {
			return wrap("poll changes", err)
		}
		read[kind] = v
	}
	if err := rows.Err(); err != nil {
		return wrap("poll changes", err)
	}
	var changed []int
	f.mu.Lock()
	for kind, v := range read {
		if old, ok := f.versions[kind]; ok && old == v || !ok && !apply {
			f.versions[kind] = v
			continue
		}
		f.versions[kind] = v
		changed = append(changed, kind)
	}
	f.mu.Unlock()
	if apply {
		for _, kind := range changed {
			f.apply(kind)
		}
	}
	f.polls.Add(1)
	return nil
}

// apply drops what this store keeps of kind, or tells the key set's watchers.
func (f *changeFeed) apply(kind int) {
	c := f.s.cache
	switch {
	case kind == changeKeys:
		f.mu.Lock() // held while the watchers run: none is called after its stop returned
		defer f.mu.Unlock()
		for _, fn := range f.watchers {
			fn()
		}
	case c == nil:
	case kind == changeClients:
		invalidate(c, &c.clients, "", true)
	case kind == changeResources:
		c.invalidateResources()
	case kind == changeTrusts:
		invalidate(c, &c.trusts, "", true)
	case kind == changePeers:
		invalidate(c, &c.peers, "", true)
	}
}

// listenerName is the application_name of the listening session (pg_stat_activity).
func listenerName(id string) string { return "mandate changes " + id }

// listenRetry bounds the pause between attempts to reconnect the listening session.
const listenRetry = 5 * time.Second

// listen keeps a PostgreSQL session LISTENing on the store's channel until ctx ends,
// reconnecting after a failure.
func (f *changeFeed) listen(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		connected, _ := f.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			pause = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, listenRetry)
	}
}

// listenOnce connects, listens and applies notifications until the session fails. connected
// reports that it was listening.
func (f *changeFeed) listenOnce(ctx context.Context) (connected bool, err error) {
	cfg, err := pgx.ParseConfig(f.dsn)
	if err != nil {
		return false, err
	}
	cfg.RuntimeParams["application_name"] = listenerName(f.id)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		f.listening.Store(false)
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN "`+f.channel+`"`); err != nil {
		return false, err
	}
	f.listening.Store(true)
	// Notifications sent while no session listened are lost: drop everything once.
	for _, kind := range []int{changeClients, changeResources, changeKeys, changeTrusts, changePeers} {
		f.apply(kind)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		kind, from, ok := strings.Cut(n.Payload, " ")
		k, kerr := strconv.Atoi(kind)
		if !ok || kerr != nil || from == f.id {
			continue
		}
		f.apply(k)
		f.notified.Add(1)
	}
}

// WatchKeys implements [storage.KeyWatcher]: changed is called, on a goroutine of the store's,
// whenever the store learns that the key set was changed (by another instance, or by this one:
// a redundant reload costs one read). It is not called after stop returns. changed must not
// block.
func (s *Store) WatchKeys(changed func()) (stop func()) {
	f := s.changes
	if f == nil || changed == nil {
		return func() {}
	}
	f.mu.Lock()
	id := f.nextID
	f.nextID++
	f.watchers[id] = changed
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.watchers, id)
		f.mu.Unlock()
	}
}

var _ storage.KeyWatcher = (*Store)(nil)
