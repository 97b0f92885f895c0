package provider

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
)

// While the store cannot be reached (storage.ErrUnavailable: the database is down or
// restarting), every endpoint that needs it answers 503 with the RFC 6749 error
// temporarily_unavailable and Retry-After (handlers.RetryAfter seconds) instead of a 500, and a
// client authentication that could not read the client is not invalid_client. Nothing is
// answered that is not stored: a token is written to the response only after its row
// committed. The store's connection pool reconnects by itself; the provider needs no restart.

// outageLogInterval is how often a continuing storage outage is logged: the first failure at
// once, then at most one line per interval that counts the failures in between.
const outageLogInterval = 10 * time.Second

// unavailable reports whether err was caused by a store that cannot be reached right now: it
// carries storage.ErrUnavailable, or it is fosite's temporarily_unavailable, which fosite's
// revocation handler answers for store errors without keeping them.
func unavailable(err error) bool {
	return err != nil && (errors.Is(err, storage.ErrUnavailable) || errors.Is(err, fosite.ErrTemporarilyUnavailable))
}

// temporarilyUnavailable turns an error of an unreachable store into the protocol error every
// endpoint answers for it (RFC 6749 §4.1.2.1 and §5.2 temporarily_unavailable, HTTP 503), and
// counts it for the log.
func (p *Provider) temporarilyUnavailable(err error) *fosite.RFC6749Error {
	p.outage.fail(err)
	return fosite.ErrTemporarilyUnavailable.WithWrap(err)
}

// outageLog logs a storage outage once per interval rather than once per request: the first
// failure at Error level with its cause; further failures within the interval are counted, and
// the next line (at most one per interval) says how many were not logged; the first success
// after a logged outage logs once that the store is back, with the outage's duration and its
// failed requests. A success and a failure alternating (a cached read succeeding while writes
// fail) therefore still log at most two lines per interval.
type outageLog struct {
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	// active is set while failures are unanswered by a success: ok's fast path reads only it.
	active atomic.Bool

	mu         sync.Mutex
	since      time.Time // the outage's first failure
	last       time.Time // the last line logged about it (zero: none yet)
	open       bool      // an outage line was logged and no recovery line yet
	failures   int       // failed requests since the outage began
	suppressed int       // failures not logged since the last line
}

func newOutageLog(log *slog.Logger, now func() time.Time, interval time.Duration) *outageLog {
	return &outageLog{log: log, now: now, interval: interval}
}

// fail records one request failed by an unreachable store.
func (o *outageLog) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if !o.active.Load() {
		o.active.Store(true)
		if !o.open {
			o.since = now
			o.failures = 0
		}
	}
	o.failures++
	if !o.last.IsZero() && now.Sub(o.last) < o.interval {
		o.suppressed++
		return
	}
	attrs := []any{"error", outageCause(err), "retry_after_seconds", handlers.RetryAfter}
	msg := "storage unavailable: answering 503 temporarily_unavailable until it is back"
	if o.open {
		msg = "storage still unavailable"
	}
	if o.open || o.suppressed > 0 {
		attrs = append(attrs, "suppressed", o.suppressed, "failures", o.failures, "outage", now.Sub(o.since).Round(time.Millisecond).String())
	}
	o.log.Error(msg, attrs...)
	o.last, o.open, o.suppressed = now, true, 0
}

// ok records a request the store served; after a logged outage it logs the recovery once.
func (o *outageLog) ok() {
	if !o.active.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.active.Load() {
		return
	}
	o.active.Store(false)
	if !o.open {
		return // the failures are reported by the next outage line, if any
	}
	now := o.now()
	o.log.Info("storage available again", "failures", o.failures, "suppressed", o.suppressed,
		"outage", now.Sub(o.since).Round(time.Millisecond).String())
	o.open, o.suppressed, o.failures = false, 0, 0
}

// outageCause is the text of the store's error inside err: the outermost error in its tree that
// carries storage.ErrUnavailable and is not one of fosite's protocol errors (whose text is only
// the error code). It names the operation and the driver's error, never a token or secret.
func outageCause(err error) string {
	if c := findCause(err); c != nil {
		return c.Error()
	}
	return "the store failed (no detail)"
}

func findCause(err error) error {
	if err == nil {
		return nil
	}
	var rfc *fosite.RFC6749Error
	if errors.Is(err, storage.ErrUnavailable) && !errors.As(err, &rfc) {
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return findCause(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c := findCause(e); c != nil {
				return c
			}
		}
	}
	return nil
}
