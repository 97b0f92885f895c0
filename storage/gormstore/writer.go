package gormstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// DefaultWriteBatch is the largest number of rows one SQLite group commit writes (see
// [WithWriteBatch]).
const DefaultWriteBatch = 64

// writeOp is one row's write. It runs either inside a batch transaction or, on its own, on the
// pool. It returns nil, a row-level error (see [rowLevel]) or a database error.
type writeOp func(db *gorm.DB) error

// writeReq is a queued write and the channel its result is sent on (buffered: the writer never
// blocks on a caller that stopped waiting).
type writeReq struct {
	ctx  context.Context
	op   writeOp
	done chan error
}

// groupWriter batches the single-row writes of concurrent callers into one SQLite transaction
// (group commit). SQLite has one writer at a time: N callers writing N rows through N
// connections queue on the database's write lock, each paying a transaction of its own and the
// busy handler's sleeps. Here they queue in memory instead, and one goroutine writes whatever
// has queued up — at most max rows, with no artificial delay — in a single BEGIN IMMEDIATE ...
// COMMIT, then hands every caller its own row's result. No caller returns before its row is
// committed, so durability is exactly that of a single write at the configured synchronous level.
//
// A caller that finds the writer idle writes its row itself, on its own goroutine, as the
// writer: a lone caller pays no hand-off. Rows queued meanwhile are written by a goroutine that
// runs only while there is work and ends when the queue is empty, so a store that is never
// closed leaks nothing.
type groupWriter struct {
	db  *gorm.DB
	max int

	mu      sync.Mutex
	idle    *sync.Cond // broadcast when the goroutine ends
	pending []*writeReq
	running bool // a caller or a goroutine is the writer
	closed  bool
	errs    []error // scratch for write, which one goroutine at a time executes

	batches, batchedRows atomic.Int64 // transactions of more than one row, and their rows
}

func newGroupWriter(db *gorm.DB, max int) *groupWriter {
	w := &groupWriter{db: db, max: max}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// do queues op and waits for its result. queued is false when the writer is closed; the caller
// then writes directly. If ctx ends first, do returns ctx's error; the row may still be
// written (a row the writer picks up after ctx ended is skipped).
func (w *groupWriter) do(ctx context.Context, op writeOp) (queued bool, err error) {
	if err := ctx.Err(); err != nil {
		return true, wrap("write", err)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false, nil
	}
	if !w.running {
		// Nothing is being written: write this row at once, on this goroutine, as the writer.
		// Rows queued meanwhile go to a writer goroutine afterwards.
		w.running = true
		w.mu.Unlock()
		defer func() {
			w.mu.Lock()
			w.handOff()
			w.mu.Unlock()
		}()
		return true, op(w.db.WithContext(ctx))
	}
	r := &writeReq{ctx: ctx, op: op, done: make(chan error, 1)}
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	select {
	case err := <-r.done:
		return true, err
	case <-ctx.Done():
		select {
		case err := <-r.done: // written after all: report the real outcome
			return true, err
		default:
			return true, wrap("write", ctx.Err())
		}
	}
}

// close waits for every queued write to finish and makes later calls of do write directly.
func (w *groupWriter) close() {
	w.mu.Lock()
	w.closed = true
	for w.running {
		w.idle.Wait()
	}
	w.mu.Unlock()
}

// handOff ends a turn as the writer (w.mu held): a goroutine takes over the queued rows, if any.
func (w *groupWriter) handOff() {
	if len(w.pending) > 0 {
		go w.run()
		return
	}
	w.running = false
	w.idle.Broadcast()
}

// run writes batches until the queue is empty.
func (w *groupWriter) run() {
	var batch []*writeReq
	for {
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.handOff()
			w.mu.Unlock()
			return
		}
		n := min(len(w.pending), w.max)
		batch = append(batch[:0], w.pending[:n]...)
		rest := copy(w.pending, w.pending[n:])
		clear(w.pending[rest:])
		w.pending = w.pending[:rest]
		w.mu.Unlock()

		w.write(batch)
		clear(batch)
	}
}

// write commits one batch and answers its callers.
func (w *groupWriter) write(batch []*writeReq) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- wrap("write", err) // the caller gave up before the row was written: skip it
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone: one autocommit statement is a transaction of its own.
		r := live[0]
		r.done <- r.op(w.db.WithContext(r.ctx))
		return
	}
	if cap(w.errs) < len(live) {
		w.errs = make([]error, w.max)
	}
	errs := w.errs[:len(live)]
	defer clear(errs)
	failed := -1 // the row whose error aborted the batch
	// The batch is not bound to any caller's context: it serves them all.
	err := w.db.WithContext(context.Background()).Transaction(func(tx *gorm.DB) error {
		for i, r := range live {
			err := r.op(tx)
			if err != nil && !rowLevel(err) {
				failed = i
				return err
			}
			errs[i] = err
		}
		return nil
	})
	w.batches.Add(1)
	w.batchedRows.Add(int64(len(live)))
	switch {
	case err == nil:
		for i, r := range live {
			r.done <- errs[i]
		}
	case failed >= 0:
		// One row's error rolled back the batch. Write its rows one by one so that every
		// caller gets the outcome of its own row.
		for _, r := range live {
			r.done <- r.op(w.db.WithContext(r.ctx))
		}
	default:
		// BEGIN or COMMIT failed (the write lock was not granted within busy_timeout, the disk
		// is full, ...): nothing was written, and no row is to blame. Every caller gets that
		// error; retrying row by row would wait out busy_timeout once per row.
		err = wrap("group commit", err)
		for _, r := range live {
			r.done <- err
		}
	}
}

// rowLevel reports an error that concerns one row only and leaves the batch transaction usable:
// SQLite aborts just the failing statement on a constraint violation, and the JWT ID outcome is
// decided by statements that did not fail.
func rowLevel(err error) bool {
	return errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrJTIUsed)
}
