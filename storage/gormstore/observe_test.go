package gormstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// TestBatchObserver: the observer is told every group commit, and the sizes add up to the rows
// written.
func TestBatchObserver(t *testing.T) {
	var rows, calls, biggest atomic.Int64
	s, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "observe.db"), WithBatchObserver(func(n int) {
		rows.Add(int64(n))
		calls.Add(1)
		for {
			b := biggest.Load()
			if int64(n) <= b || biggest.CompareAndSwap(b, int64(n)) {
				break
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	client := benchClient()
	must(t, s.SaveClient(ctx, client))
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.CreateAccessTokenSession(ctx, fmt.Sprintf("sig-%d-%d", g, i), tokenReq(client)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := rows.Load(); got != goroutines*each {
		t.Errorf("observed %d rows, wrote %d", got, goroutines*each)
	}
	t.Logf("%d writes, largest %d rows", calls.Load(), biggest.Load())
}
