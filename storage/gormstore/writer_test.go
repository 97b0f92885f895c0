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

// TestGroupCommitConcurrent: many concurrent creates all succeed, are all readable afterwards,
// and went through multi-row transactions.
func TestGroupCommitConcurrent(t *testing.T) {
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "group.db"))
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	const goroutines, each = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- s.CreateAccessTokenSession(ctx, fmt.Sprintf("sig-%d-%d", g, i), tokenReq(client))
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
	t.Logf("%d rows in %d multi-row transactions", s.writer.batchedRows.Load(), s.writer.batches.Load())
}

// blockedWriter holds the SQLite write lock in a caller's transaction and makes one caller the
// writer, stuck behind that lock: every write started afterwards queues. release lets them go.
type blockedWriter struct {
	s      *Store
	tx     context.Context
	leader chan error
}

func blockWriter(t *testing.T, s *Store) *blockedWriter {
	t.Helper()
	ctx := context.Background()
	tx, err := s.BeginTX(ctx) // BEGIN IMMEDIATE: takes the write lock now
	must(t, err)
	b := &blockedWriter{s: s, tx: tx, leader: make(chan error, 1)}
	client, err := s.Client(ctx, "client-1")
	must(t, err)
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
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "batch.db"))
	client := benchClient()
	must(t, s.SaveClient(context.Background(), client))
	return s, client
}

// TestGroupCommitDuplicates: a batch holding a signature that exists already and two callers
// with the same new signature commits everything else; the duplicates get ErrConflict, each for
// itself.
func TestGroupCommitDuplicates(t *testing.T) {
	s, client := newBatchStore(t)
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
func TestGroupCommitFallback(t *testing.T) {
	s, client := newBatchStore(t)
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
				_, errs[i] = s.writer.do(ctx, func(*gorm.DB) error { return boom })
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
func TestGroupCommitCancel(t *testing.T) {
	s, client := newBatchStore(t)
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
func TestGroupCommitCloseDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drain.db")
	s, err := Open(context.Background(), "sqlite:"+path)
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
	again := openT(t, "sqlite:"+path)
	if got := countTokens(t, again); got != n+1 {
		t.Errorf("%d rows after Close, want %d", got, n+1)
	}
}

// TestGroupCommitUseJTI: concurrent first uses of distinct jtis all win, and the same jti queued
// twice in one batch wins once.
func TestGroupCommitUseJTI(t *testing.T) {
	s, _ := newBatchStore(t)
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

// TestWriteBatchOff: WithWriteBatch(1) writes directly (no writer), and PostgreSQL/MySQL never
// get one.
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
}
