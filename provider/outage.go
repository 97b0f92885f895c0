package provider

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
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

// outageSettle is how long after the last failure a success must come for the outage to count
// as over: while a server shuts down, some connections still work for a moment, and a request
// that succeeds among failures is not a recovery.
const outageSettle = time.Second

// unavailable reports whether err was caused by a store that cannot be reached right now: it
// carries storage.ErrUnavailable, or it is fosite's temporarily_unavailable, which fosite's
// revocation handler answers for store errors without keeping them. A trusted issuer's keys
// that cannot be fetched (handlers.KeysUnavailable) are answered with temporarily_unavailable
// too, but are no storage outage: they are neither logged nor counted as one.
func unavailable(err error) bool {
	return err != nil && !errors.Is(err, verify.ErrKeysUnavailable) &&
		(errors.Is(err, storage.ErrUnavailable) || errors.Is(err, fosite.ErrTemporarilyUnavailable))
}

// temporarilyUnavailable turns an error of an unreachable store into the protocol error every
// endpoint answers for it (RFC 6749 §4.1.2.1 and §5.2 temporarily_unavailable, HTTP 503), and
// counts it for the log.
func (p *Provider) temporarilyUnavailable(err error) *fosite.RFC6749Error {
	p.outage.fail(err)
	p.metrics.storageError(context.Background(), "unavailable")
	return fosite.ErrTemporarilyUnavailable.WithWrap(err)
}

// outageLog logs a storage outage once per interval rather than once per request: the first
// failure at Error level with its cause; further failures within the interval are counted, and
// the next line (at most one per interval) says how many were not logged. The first success at
// least settle after the last failure ends the outage and logs once that the store is back,
// with the outage's duration and its failures. An outage that began within the interval after
// the previous one's line, and ended before the next, is reported by its recovery line if the
// interval has passed by then, else counted in the next line. So at most one failure line per
// interval, and at most one recovery line per failure line (plus one).
type outageLog struct {
	log              *slog.Logger
	now              func() time.Time
	interval, settle time.Duration

	// active is set from an outage's first failure until its recovery: ok's fast path reads
	// only it.
	active atomic.Bool

	mu         sync.Mutex
	since      time.Time // the outage's first failure
	lastFail   time.Time // its latest failure
	last       time.Time // the last failure line (zero: none yet)
	logged     bool      // a failure line was logged for this outage
	failures   int       // failures since the outage began
	suppressed int       // failures not logged since the last line
}

func newOutageLog(log *slog.Logger, now func() time.Time, interval, settle time.Duration) *outageLog {
	return &outageLog{log: log, now: now, interval: interval, settle: settle}
}

// fail records one request (or background task) failed by an unreachable store.
func (o *outageLog) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if !o.active.Load() {
		o.active.Store(true)
		o.since, o.failures, o.logged = now, 0, false
	}
	o.failures++
	o.lastFail = now
	if !o.last.IsZero() && now.Sub(o.last) < o.interval {
		o.suppressed++
		return
	}
	attrs := []any{"error", outageCause(err), "retry_after_seconds", handlers.RetryAfter}
	msg := "storage unavailable: answering 503 temporarily_unavailable until it is back"
	if o.logged {
		msg = "storage still unavailable"
	}
	if o.logged || o.suppressed > 0 {
		attrs = append(attrs, "suppressed", o.suppressed, "failures", o.failures, "outage", now.Sub(o.since).Round(time.Millisecond).String())
	}
	o.log.Error(msg, attrs...)
	o.last, o.logged, o.suppressed = now, true, 0
}

// ok records a request the store served; the first one at least settle after the last failure
// ends the outage (see outageLog).
func (o *outageLog) ok() {
	if !o.active.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if !o.active.Load() || now.Sub(o.lastFail) < o.settle {
		return
	}
	o.active.Store(false)
	if !o.logged && now.Sub(o.last) < o.interval {
		return // counted in the next failure line
	}
	o.log.Info("storage available again", "failures", o.failures, "suppressed", o.suppressed,
		"outage", o.lastFail.Sub(o.since).Round(time.Millisecond).String())
	o.suppressed = 0
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
