package gormstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

func tokenReq(c *storage.Client) *fosite.Request {
	req := fosite.NewRequest()
	req.Client = c
	req.Session = &storage.Session{Subject: "u"}
	return req
}

func countTokens(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	must(t, s.DB().Raw("SELECT COUNT(*) FROM mandate_tokens").Row().Scan(&n))
	return n
}

// writerBackends runs a group-commit test on every database whose writes a second caller can
// be made to wait for (not the in-memory SQLite database, which has one connection).
func writerBackends(t *testing.T, test func(t *testing.T, dsn string)) {
	for _, b := range persistent() {
		t.Run(b.name, func(t *testing.T) { test(t, b.fresh(t)) })
	}
}

// TestGroupCommitConcurrent: many concurrent creates all succeed, are all readable afterwards,
// and went through multi-row transactions.
func TestGroupCommitConcurrent(t *testing.T) { writerBackends(t, testGroupCommitConcurrent) }

func testGroupCommitConcurrent(t *testing.T, dsn string) {
	s := openT(t, dsn)
	other := openT(t, dsn) // another pool: sees only what is committed
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	const goroutines, each = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				sig := fmt.Sprintf("sig-%d-%d", g, i)
				err := s.CreateAccessTokenSession(ctx, sig, tokenReq(client))
				errs <- err
				if err != nil {
					continue
				}
				// A caller returns only once its own row is committed.
				if ok, err := other.AccessTokenExists(ctx, sig); err != nil || !ok {
					errs <- fmt.Errorf("row %s not visible to another pool when its create returned: %v, %w", sig, ok, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent create: %v", err)
		}
	}
	for g := range goroutines {
		for i := range each {
			if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("sig-%d-%d", g, i), nil); err != nil {
				t.Fatalf("token %d-%d after the writes: %v", g, i, err)
			}
		}
	}
	if n := countTokens(t, s); n != goroutines*each {
		t.Errorf("%d token rows, want %d", n, goroutines*each)
	}
	if s.writer.batches.Load() == 0 {
		t.Error("no multi-row transaction: the writes were not grouped")
	}
	t.Logf("%d rows in %d multi-row transactions", s.writer.batchedRows.Load(), s.writer.batches.Load())
}

// blockedWriter makes one caller the writer and keeps it stuck: a caller's transaction has
// inserted the token row "leader" and not committed, so the writer's insert of the same key
// waits for that transaction (on SQLite already for its write lock, which BEGIN IMMEDIATE took).
// Every write started afterwards queues. release rolls the transaction back and lets them go.
type blockedWriter struct {
	s      *Store
	tx     context.Context
	leader chan error
}

func blockWriter(t *testing.T, s *Store) *blockedWriter {
	t.Helper()
	ctx := context.Background()
	client, err := s.Client(ctx, "client-1")
	must(t, err)
	tx, err := s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateAccessTokenSession(tx, "leader", tokenReq(client)))
	b := &blockedWriter{s: s, tx: tx, leader: make(chan error, 1)}
	go func() { b.leader <- s.CreateAccessTokenSession(ctx, "leader", tokenReq(client)) }()
	waitFor(t, "the leader to become the writer", func() bool {
		s.writer.mu.Lock()
		defer s.writer.mu.Unlock()
		return s.writer.running
	})
	return b
}

// waitQueued waits until n writes are queued behind the blocked writer.
func (b *blockedWriter) waitQueued(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued writes", n), func() bool {
		b.s.writer.mu.Lock()
		defer b.s.writer.mu.Unlock()
		return len(b.s.writer.pending) == n
	})
}

func (b *blockedWriter) release(t *testing.T) {
	t.Helper()
	must(t, b.s.Rollback(b.tx))
	if err := <-b.leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
}

// waitFor polls cond (a state, never a duration, is what the test waits for).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newBatchStore(t *testing.T) (*Store, *storage.Client) {
	t.Helper()
	return newBatchStoreAt(t, "sqlite:"+filepath.Join(t.TempDir(), "batch.db"))
}

func newBatchStoreAt(t *testing.T, dsn string) (*Store, *storage.Client) {
	t.Helper()
	s := openT(t, dsn)
	client := benchClient()
	must(t, s.SaveClient(context.Background(), client))
	return s, client
}

// TestGroupCommitDuplicates: a batch holding a signature that exists already and two callers
// with the same new signature commits everything else; the duplicates get ErrConflict, each for
// itself.
func TestGroupCommitDuplicates(t *testing.T) { writerBackends(t, testGroupCommitDuplicates) }

func testGroupCommitDuplicates(t *testing.T, dsn string) {
	s, client := newBatchStoreAt(t, dsn)
	ctx := context.Background()
	must(t, s.CreateAccessTokenSession(ctx, "existing", tokenReq(client)))
	b := blockWriter(t, s)
	sigs := []string{"a", "existing", "b", "twin", "twin", "c"}
	errs := make([]error, len(sigs))
	var wg sync.WaitGroup
	for i, sig := range sigs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateAccessTokenSession(ctx, sig, tokenReq(client))
		}()
		b.waitQueued(t, i+1) // queue in order: the first twin wins
	}
	batches := s.writer.batches.Load()
	b.release(t)
	wg.Wait()
	if got := s.writer.batches.Load() - batches; got != 1 {
		t.Errorf("%d transactions for the queued rows, want 1", got)
	}
	for i, sig := range sigs {
		dup := sig == "existing" || (sig == "twin" && i == 4)
		switch {
		case dup && !errors.Is(errs[i], storage.ErrConflict):
			t.Errorf("create %q (#%d) = %v, want ErrConflict", sig, i, errs[i])
		case !dup && errs[i] != nil:
			t.Errorf("create %q (#%d) = %v, want nil", sig, i, errs[i])
		}
	}
	for _, sig := range []string{"a", "b", "c", "twin", "existing", "leader"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, nil); err != nil {
			t.Errorf("token %q: %v", sig, err)
		}
	}
	if n := countTokens(t, s); n != 6 {
		t.Errorf("%d token rows, want 6", n)
	}
}

// TestGroupCommitFallback: when a row fails the batch transaction, the batch is rolled back and
// its rows are written one by one: the failing caller gets its error, the others their rows,
// each exactly once.
func TestGroupCommitFallback(t *testing.T) { writerBackends(t, testGroupCommitFallback) }

func testGroupCommitFallback(t *testing.T, dsn string) {
	s, client := newBatchStoreAt(t, dsn)
	ctx := context.Background()
	b := blockWriter(t, s)
	boom := errors.New("boom")
	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 2 {
				_, errs[i] = s.writer.do(ctx, func(*gorm.DB) error { return boom }, nil)
				return
			}
			errs[i] = s.CreateAccessTokenSession(ctx, fmt.Sprintf("row-%d", i), tokenReq(client))
		}()
		b.waitQueued(t, i+1)
	}
	b.release(t)
	wg.Wait()
	for i, err := range errs {
		if i == 2 {
			if !errors.Is(err, boom) {
				t.Errorf("failing row: %v, want boom", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("row %d: %v (a conflict means the batch was not rolled back)", i, err)
		}
		if _, err := s.GetAccessTokenSession(ctx, fmt.Sprintf("row-%d", i), nil); err != nil {
			t.Errorf("row %d after fallback: %v", i, err)
		}
	}
	if got := countTokens(t, s); got != n { // n-1 rows and the leader's
		t.Errorf("%d token rows, want %d", got, n)
	}
}

// TestGroupCommitCancel: a caller whose context ends while its row is queued returns at once with
// the context's error, and the row is skipped.
func TestGroupCommitCancel(t *testing.T) { writerBackends(t, testGroupCommitCancel) }

func testGroupCommitCancel(t *testing.T, dsn string) {
	s, client := newBatchStoreAt(t, dsn)
	b := blockWriter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.CreateAccessTokenSession(ctx, "cancelled", tokenReq(client)) }()
	b.waitQueued(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled create = %v, want context.Canceled", err)
	}
	b.release(t)
	waitFor(t, "the writer to go idle", func() bool {
		s.writer.mu.Lock()
		defer s.writer.mu.Unlock()
		return !s.writer.running
	})
	if _, err := s.GetAccessTokenSession(context.Background(), "cancelled", nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("row of a caller that gave up before it was written: %v, want ErrNotFound", err)
	}
	if err := s.CreateAccessTokenSession(ctx, "late", tokenReq(client)); !errors.Is(err, context.Canceled) {
		t.Errorf("create with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestGroupCommitCloseDrains: Close waits for the queued rows; they are all committed.
func TestGroupCommitCloseDrains(t *testing.T) { writerBackends(t, testGroupCommitCloseDrains) }

func testGroupCommitCloseDrains(t *testing.T, dsn string) {
	s, err := Open(context.Background(), dsn)
	must(t, err)
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	b := blockWriter(t, s)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.CreateAccessTokenSession(ctx, fmt.Sprintf("q-%d", i), tokenReq(client)) }()
	}
	b.waitQueued(t, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, "Close to mark the writer closed", func() bool {
		s.writer.mu.Lock()
		defer s.writer.mu.Unlock()
		return s.writer.closed
	})
	b.release(t)
	must(t, <-closed)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued create across Close: %v", err)
		}
	}
	if err := s.CreateAccessTokenSession(ctx, "after", tokenReq(client)); err == nil {
		t.Error("create on a closed store succeeded")
	}
	again := openT(t, dsn)
	if got := countTokens(t, again); got != n+1 {
		t.Errorf("%d rows after Close, want %d", got, n+1)
	}
}

// TestGroupCommitUseJTI: concurrent first uses of distinct jtis all win, and the same jti queued
// twice in one batch wins once.
func TestGroupCommitUseJTI(t *testing.T) { writerBackends(t, testGroupCommitUseJTI) }

func testGroupCommitUseJTI(t *testing.T, dsn string) {
	s, _ := newBatchStoreAt(t, dsn)
	ctx := context.Background()
	b := blockWriter(t, s)
	exp := time.Now().Add(time.Hour)
	keys := []string{"j1", "j2", "same", "same", "j3"}
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.UseJTI(ctx, k, exp) }()
		b.waitQueued(t, i+1)
	}
	b.release(t)
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, storage.ErrJTIUsed) {
				t.Errorf("second use of the same jti in a batch = %v, want ErrJTIUsed", err)
			}
		} else if err != nil {
			t.Errorf("UseJTI(%q) = %v", keys[i], err)
		}
	}
}

// queuedWrite is a write of a group-commit test: a token row (token), a JWT ID (jti), or both as
// one unit, and the error it must get.
type queuedWrite struct {
	token, jti string
	want       error
}

// runQueued queues writes in order behind a blocked writer (the first of two equal writes
// wins), releases them at once, checks each one's error and returns how many transactions
// wrote them.
func runQueued(t *testing.T, s *Store, client *storage.Client, exp time.Time, writes []queuedWrite) int64 {
	t.Helper()
	ctx := context.Background()
	b := blockWriter(t, s)
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() {
			switch {
			case w.token != "" && w.jti != "":
				errs[i] = s.CreateAccessTokenSessionUsingJTI(ctx, w.token, tokenReq(client), w.jti, exp)
			case w.token != "":
				errs[i] = s.CreateAccessTokenSession(ctx, w.token, tokenReq(client))
			default:
				errs[i] = s.UseJTI(ctx, w.jti, exp)
			}
		})
		b.waitQueued(t, i+1)
	}
	before := s.writer.batches.Load()
	b.release(t)
	wg.Wait()
	for i, w := range writes {
		if w.want == nil && errs[i] != nil || w.want != nil && !errors.Is(errs[i], w.want) {
			t.Errorf("write %d %+v = %v, want %v", i, w, errs[i], w.want)
		}
	}
	return s.writer.batches.Load() - before
}

// TestGroupCommitMixed: one batch holding token rows and JWT IDs, with a duplicate of each,
// commits everything else in one transaction; each duplicate fails its own caller only.
func TestGroupCommitMixed(t *testing.T) { writerBackends(t, testGroupCommitMixed) }

func testGroupCommitMixed(t *testing.T, dsn string) {
	s, client := newBatchStoreAt(t, dsn)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	must(t, s.CreateAccessTokenSession(ctx, "existing", tokenReq(client)))
	must(t, s.UseJTI(ctx, "used", exp))
	if n := runQueued(t, s, client, exp, []queuedWrite{
		{token: "t1"}, {jti: "j1"}, {token: "existing", want: storage.ErrConflict}, {jti: "used", want: storage.ErrJTIUsed},
		{token: "t2"}, {jti: "j1", want: storage.ErrJTIUsed}, {token: "t2", want: storage.ErrConflict}, {jti: "j2"},
	}); n != 1 {
		t.Errorf("%d transactions for the queued writes, want 1", n)
	}
	for _, sig := range []string{"t1", "t2", "existing", "leader"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, nil); err != nil {
			t.Errorf("token %q: %v", sig, err)
		}
	}
	for _, jti := range []string{"j1", "j2", "used"} {
		if used, err := s.JTIUsed(ctx, jti); err != nil || !used {
			t.Errorf("JTIUsed(%q) = %v, %v", jti, used, err)
		}
	}
	if n := countTokens(t, s); n != 4 {
		t.Errorf("%d token rows, want 4", n)
	}
}

// TestWriteBatchOff: WithWriteBatch(1) writes directly (no writer); by default every store has
// one.
func TestWriteBatchOff(t *testing.T) {
	s := openT(t, "sqlite::memory:", WithWriteBatch(1))
	if s.writer != nil {
		t.Error("WithWriteBatch(1) still batches")
	}
	must(t, s.SaveClient(context.Background(), benchClient()))
	must(t, s.CreateAccessTokenSession(context.Background(), "x", tokenReq(benchClient())))
	if on := openT(t, "sqlite::memory:"); on.writer == nil || on.writer.max != DefaultWriteBatch {
		t.Error("SQLite store without a group-commit writer by default")
	}
	for _, b := range []backend{{"Postgres", freshPostgres}, {"MySQL", freshMySQL}} {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.fresh(t)
			if on := openT(t, dsn); on.writer == nil || on.writer.multi == nil || on.writer.max != DefaultWriteBatch {
				t.Error("no group-commit writer with multi-row inserts by default")
			}
			if off := openT(t, dsn, WithWriteBatch(1)); off.writer != nil {
				t.Error("WithWriteBatch(1) still batches")
			}
		})
	}
}

// TestGroupCommitUnits: a token written with a JWT ID (CreateAccessTokenSessionUsingJTI) is
// both or neither — alone, or queued in one batch with other units, token rows and JWT IDs:
// a used jti writes no token, and a token that cannot be written leaves its jti unused, without
// failing anyone else's write.
func TestGroupCommitUnits(t *testing.T) { writerBackends(t, testGroupCommitUnits) }

func testGroupCommitUnits(t *testing.T, dsn string) {
	s, client := newBatchStoreAt(t, dsn)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	must(t, s.CreateAccessTokenSession(ctx, "existing", tokenReq(client)))

	// Alone.
	must(t, s.CreateAccessTokenSessionUsingJTI(ctx, "a1", tokenReq(client), "ka", exp))
	if err := s.CreateAccessTokenSessionUsingJTI(ctx, "a2", tokenReq(client), "ka", exp); !errors.Is(err, storage.ErrJTIUsed) {
		t.Fatalf("a used jti = %v, want ErrJTIUsed", err)
	}
	if err := s.CreateAccessTokenSessionUsingJTI(ctx, "existing", tokenReq(client), "kb", exp); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a taken token signature = %v, want ErrConflict", err)
	}

	// A batch of units, a token row and a JWT ID, one unit's jti taken: one transaction.
	if n := runQueued(t, s, client, exp, []queuedWrite{
		{token: "u1", jti: "k1"}, {token: "u2", jti: "k1", want: storage.ErrJTIUsed}, {token: "t1"}, {jti: "k2"}, {token: "u3", jti: "ka", want: storage.ErrJTIUsed},
	}); n != 1 {
		t.Errorf("%d transactions for the queued writes, want 1", n)
	}
	// A unit whose token cannot be written: the batch is redone row by row, its jti unused.
	must(t, s.DeleteAccessTokenSession(ctx, "leader")) // blockWriter's row, for the next one
	runQueued(t, s, client, exp, []queuedWrite{
		{token: "u4", jti: "k3"}, {token: "existing", jti: "k4", want: storage.ErrConflict}, {token: "t2"}, {jti: "k5"},
	})

	for sig, want := range map[string]bool{"a1": true, "a2": false, "u1": true, "u2": false, "u3": false, "t1": true, "u4": true, "t2": true} {
		_, err := s.GetAccessTokenSession(ctx, sig, nil)
		if got := err == nil; got != want || err != nil && !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("token %q stored: %v (%v), want %v", sig, got, err, want)
		}
	}
	for jti, want := range map[string]bool{"ka": true, "kb": false, "k1": true, "k2": true, "k3": true, "k4": false, "k5": true} {
		if used, err := s.JTIUsed(ctx, jti); err != nil || used != want {
			t.Errorf("JTIUsed(%q) = %v, %v, want %v", jti, used, err, want)
		}
	}
}

// TestUnitsRace: two stores (two instances) write tokens with one JWT ID at once, round after
// round: exactly one wins each round, every other gets ErrJTIUsed — never a deadlock or another
// error — and only the winner's token is stored.
func TestUnitsRace(t *testing.T) { writerBackends(t, testUnitsRace) }

func testUnitsRace(t *testing.T, dsn string) {
	a, client := newBatchStoreAt(t, dsn)
	b := openT(t, dsn)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const rounds, callers = 20, 12
	for r := range rounds {
		errs := make([]error, callers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range callers {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				errs[i] = s.CreateAccessTokenSessionUsingJTI(ctx, fmt.Sprintf("race-%d-%d", r, i), tokenReq(client), fmt.Sprintf("jti-%d", r), exp)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if _, err := a.GetAccessTokenSession(ctx, fmt.Sprintf("race-%d-%d", r, i), nil); err != nil {
					t.Errorf("round %d: the winner's token: %v", r, err)
				}
			case !errors.Is(err, storage.ErrJTIUsed):
				t.Errorf("round %d, caller %d: %v, want nil or ErrJTIUsed", r, i, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d winners, want 1", r, won)
		}
	}
	var n int
	must(t, a.DB().Raw("SELECT COUNT(*) FROM mandate_tokens WHERE kind = ?", kindAccess).Row().Scan(&n))
	if n != rounds {
		t.Errorf("%d access tokens stored, want %d (one per round)", n, rounds)
	}
}

// TestUseJTIInTransactionsNoDeadlock: transactions claiming a JWT ID that is in use, many at
// once, each get ErrJTIUsed. On MySQL, INSERT IGNORE then UPDATE held a shared lock between
// the two and deadlocked (error 1213) when two transactions did it at once.
func TestUseJTIInTransactionsNoDeadlock(t *testing.T) {
	writerBackends(t, testUseJTIInTransactionsNoDeadlock)
}

func testUseJTIInTransactionsNoDeadlock(t *testing.T, dsn string) {
	a, _ := newBatchStoreAt(t, dsn)
	b := openT(t, dsn)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	must(t, a.UseJTI(ctx, "taken", exp))
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range each {
				tx, err := s.BeginTX(ctx)
				if err != nil {
					errs <- err
					return
				}
				errs <- s.UseJTI(tx, "taken", exp)
				if err := s.Rollback(tx); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, storage.ErrJTIUsed) {
			t.Fatalf("UseJTI of a jti in use, in a transaction: %v, want ErrJTIUsed", err)
		}
	}
}
