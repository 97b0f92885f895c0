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
	o := newOutageLog(slog.New(h), func() time.Time { return now }, 10*time.Second, time.Second)
	step := func(d time.Duration) { now = now.Add(d) }
	expect := func(what string, n int) []slog.Record {
		t.Helper()
		got := h.take()
		if len(got) != n {
			t.Fatalf("%s: %d lines, want %d: %v", what, len(got), n, got)
		}
		return got
	}

	o.ok() // no outage: nothing to say
	expect("a success without an outage", 0)

	// The first failure logs at once, with its cause; the next ones within the interval do not.
	o.fail(storeDown("dial tcp 127.0.0.1:5432: connect: connection refused"))
	for range 99 {
		step(50 * time.Millisecond)
		o.fail(storeDown("dial tcp 127.0.0.1:5432: connect: connection refused"))
	}
	got := expect("100 failures within 5 s", 1)
	if got[0].Level != slog.LevelError || attr(got[0], "error") != "gormstore: client: storage: unavailable: dial tcp 127.0.0.1:5432: connect: connection refused" {
		t.Errorf("first line %v: want an error with the store's cause, not fosite's code", got[0])
	}

	// After the interval, one line says how many were not logged.
	step(5050 * time.Millisecond)
	o.fail(storeDown("connection reset"))
	got = expect("the failure after the interval", 1)
	if !strings.Contains(got[0].Message, "still unavailable") || attr(got[0], "suppressed") != "99" ||
		attr(got[0], "failures") != "101" || attr(got[0], "outage") != "10s" {
		t.Errorf("the line after the interval: %v", got[0])
	}

	// A success right after a failure (a connection still open while the server shuts down) does
	// not end the outage; one that comes settle after the last failure does, with one line.
	step(time.Second)
	o.fail(storeDown("connection reset"))
	step(500 * time.Millisecond)
	o.ok()
	expect("a success among failures", 0)
	step(time.Second)
	o.ok()
	o.ok()
	got = expect("recovery", 1)
	if got[0].Level != slog.LevelInfo || !strings.Contains(got[0].Message, "available again") ||
		attr(got[0], "failures") != "102" || attr(got[0], "suppressed") != "1" || attr(got[0], "outage") != "11s" {
		t.Errorf("recovery: %v", got[0])
	}

	// A short outage within the interval after the last line is not logged when it ends before
	// the interval has passed; the next line counts it.
	step(500 * time.Millisecond)
	for range 50 {
		step(10 * time.Millisecond)
		o.fail(storeDown("connection refused"))
		o.ok()
	}
	step(2 * time.Second)
	o.ok()
	expect("a short outage within the interval", 0)
	step(10 * time.Second)
	o.fail(storeDown("connection refused"))
	got = expect("the next outage", 1)
	if strings.Contains(got[0].Message, "still") || attr(got[0], "suppressed") != "50" || attr(got[0], "failures") != "1" {
		t.Errorf("the line after a short unlogged outage: %v", got[0])
	}
	step(2 * time.Second)
	o.ok()
	expect("its recovery", 1)

	// An unlogged outage that ends after the interval is reported by its recovery line.
	step(time.Second)
	o.fail(storeDown("connection refused"))
	step(12 * time.Second)
	o.ok()
	got = expect("an unlogged outage ending after the interval", 1)
	if !strings.Contains(got[0].Message, "available again") || attr(got[0], "suppressed") != "1" {
		t.Errorf("its recovery line: %v", got[0])
	}

	// fosite's revocation keeps no cause.
	if c := outageCause(fosite.ErrTemporarilyUnavailable); c != "the store failed (no detail)" {
		t.Errorf("cause of a bare temporarily_unavailable: %q", c)
	}
}

// TestOutageLogConcurrent: failures and successes from many goroutines (run with -race).
func TestOutageLogConcurrent(t *testing.T) {
	h := &records{}
	o := newOutageLog(slog.New(h), time.Now, time.Hour, 0)
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
