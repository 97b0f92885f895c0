package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// records is a slog handler that keeps the records it gets.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}

func (h *records) take() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.recs
	h.recs = nil
	return out
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// storeDown is what gormstore returns for an unreachable database, inside what fosite makes of
// it (a client authentication that could not read the client).
func storeDown(cause string) error {
	err := fmt.Errorf("gormstore: client: %w: %w", storage.ErrUnavailable, errors.New(cause))
	return fosite.ErrInvalidClient.WithWrap(err).WithDebug(err.Error())
}

func TestOutageLog(t *testing.T) {
	h := &records{}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	o := newOutageLog(slog.New(h), func() time.Time { return now }, 10*time.Second)
	step := func(d time.Duration) { now = now.Add(d) }

	o.ok() // no outage: nothing to say
	if got := h.take(); len(got) != 0 {
		t.Fatalf("a success without an outage logged %d lines", len(got))
	}

	// The first failure logs at once, with its cause; the next ones within the interval do not.
	o.fail(storeDown("dial tcp 127.0.0.1:5432: connect: connection refused"))
	for range 99 {
		step(50 * time.Millisecond)
		o.fail(storeDown("dial tcp 127.0.0.1:5432: connect: connection refused"))
	}
	got := h.take()
	if len(got) != 1 || got[0].Level != slog.LevelError {
		t.Fatalf("100 failures within 5 s logged %d lines, want one error", len(got))
	}
	if c := attr(got[0], "error"); c != "gormstore: client: storage: unavailable: dial tcp 127.0.0.1:5432: connect: connection refused" {
		t.Errorf("cause %q, want the store's error, not fosite's code", c)
	}

	// After the interval, one line says how many were not logged.
	step(5050 * time.Millisecond)
	o.fail(storeDown("connection reset"))
	got = h.take()
	if len(got) != 1 || !strings.Contains(got[0].Message, "still unavailable") || attr(got[0], "suppressed") != "99" ||
		attr(got[0], "failures") != "101" || attr(got[0], "outage") != "10s" {
		t.Fatalf("the line after the interval: %v", got)
	}

	// A success ends the outage: one line, with its duration and its failures.
	step(time.Second)
	o.fail(storeDown("connection reset"))
	step(time.Second)
	o.ok()
	o.ok()
	got = h.take()
	if len(got) != 1 || got[0].Level != slog.LevelInfo || !strings.Contains(got[0].Message, "available again") ||
		attr(got[0], "failures") != "102" || attr(got[0], "suppressed") != "1" || attr(got[0], "outage") != "12s" {
		t.Fatalf("recovery: %v", got)
	}

	// Successes and failures alternating within the interval (a cached read succeeding while
	// writes fail) add no lines; the next line after the interval counts them.
	for range 50 {
		step(10 * time.Millisecond)
		o.fail(storeDown("connection refused"))
		o.ok()
	}
	if got := h.take(); len(got) != 0 {
		t.Fatalf("flapping within the interval logged %d lines", len(got))
	}
	step(10 * time.Second)
	o.fail(storeDown("connection refused"))
	got = h.take()
	if len(got) != 1 || !strings.Contains(got[0].Message, "storage unavailable") || attr(got[0], "suppressed") != "50" {
		t.Fatalf("the line after flapping: %v", got)
	}

	// fosite's revocation keeps no cause.
	if c := outageCause(fosite.ErrTemporarilyUnavailable); c != "the store failed (no detail)" {
		t.Errorf("cause of a bare temporarily_unavailable: %q", c)
	}
}

// TestOutageLogConcurrent: failures and successes from many goroutines (run with -race).
func TestOutageLogConcurrent(t *testing.T) {
	h := &records{}
	o := newOutageLog(slog.New(h), time.Now, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				o.fail(storeDown("connection refused"))
				o.ok()
			}
		})
	}
	wg.Wait()
	if n := len(h.take()); n < 1 || n > 2 {
		t.Fatalf("1,600 failures in one interval logged %d lines, want the outage and at most one recovery", n)
	}
}
