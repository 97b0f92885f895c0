package gormstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// DefaultWriteBatch is the largest number of rows one group commit writes (see
// [WithWriteBatch]).
const DefaultWriteBatch = 64

// writeOp is one row's write. It runs either inside a batch transaction or, on its own, on the
// pool. It returns nil, a row-level error (see [rowLevel]) or a database error.
type writeOp func(db *gorm.DB) error

// writeReq is a queued write and the channel its result is sent on (buffered: the writer never
// blocks on a caller that stopped waiting). row, when set, is the token row op inserts: a
// writer with a multi-row insert (PostgreSQL, MySQL) writes the batch's rows in one statement
// instead of running their ops.
type writeReq struct {
	ctx  context.Context
	op   writeOp
	row  *tokenRow
	done chan error
}

// multiInsert writes rows in one statement on db and sets errs[i] to nil for every row written
// and to a row-level error (storage.ErrConflict) for every row that collided with an existing
// one or an earlier row of the same call. An error it returns means that no row was written.
type multiInsert func(db *gorm.DB, rows []*tokenRow, errs []error) error

// groupWriter batches the single-row writes of concurrent callers into one transaction (group
// commit). SQLite has one writer at a time: N callers writing N rows through N connections
// queue on the database's write lock, each paying a transaction of its own and the busy
// handler's sleeps. PostgreSQL and MySQL write in parallel, but every commit waits for its own
// log flush (and, through a pool, for a connection). Here callers queue in memory instead, and
// one goroutine writes whatever has queued up — at most max rows, with no artificial delay — in
// a single transaction (on SQLite BEGIN IMMEDIATE ... COMMIT), then hands every caller its own
// row's result. No caller returns before its row is committed, so durability is exactly that of
// a single write at the database's configured level (synchronous, synchronous_commit,
// innodb_flush_log_at_trx_commit).
//
// On PostgreSQL and MySQL the batch's token rows go into one multi-row INSERT (multi); a batch
// of token rows only is that one statement in autocommit, which is atomic by itself: one round
// trip and one log flush for the batch.
//
// A caller that finds the writer idle writes its row itself, on its own goroutine, as the
// writer: a lone caller pays no hand-off. Rows queued meanwhile are written by a goroutine that
// runs only while there is work and ends when the queue is empty, so a store that is never
// closed leaks nothing.
type groupWriter struct {
	db    *gorm.DB
	max   int
	multi multiInsert      // nil: every row is written by its op (SQLite)
	txOpt []*sql.TxOptions // of the batch transaction

	mu      sync.Mutex
	idle    *sync.Cond // broadcast when the goroutine ends
	pending []*writeReq
	running bool // a caller or a goroutine is the writer
	closed  bool
	errs    []error // scratch for write, which one goroutine at a time executes

	batches, batchedRows atomic.Int64 // transactions of more than one row, and their rows

	// ckpt, when set, is told about every committed row.
	ckpt *checkpointer
	// observe, when set, is told the size of every write (WithBatchObserver).
	observe BatchObserver
}

func newGroupWriter(db *gorm.DB, max int, ckpt *checkpointer, multi multiInsert, txOpt []*sql.TxOptions) *groupWriter {
	w := &groupWriter{db: db, max: max, ckpt: ckpt, multi: multi, txOpt: txOpt}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// committed records n rows written (or attempted: a failed row costs the log as much).
func (w *groupWriter) committed(n int) {
	if w.ckpt != nil {
		w.ckpt.wrote(n)
	}
	if w.observe != nil && n > 0 {
		w.observe(n)
	}
}

// do queues op (which writes row, if set) and waits for its result. queued is false when the
// writer is closed; the caller then writes directly. If ctx ends first, do returns ctx's error;
// the row may still be written (a row the writer picks up after ctx ended is skipped).
func (w *groupWriter) do(ctx context.Context, op writeOp, row *tokenRow) (queued bool, err error) {
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
			w.committed(1)
			w.mu.Lock()
			w.handOff()
			w.mu.Unlock()
		}()
		return true, op(w.db.WithContext(ctx))
	}
	r := &writeReq{ctx: ctx, op: op, row: row, done: make(chan error, 1)}
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

// close waits for every queued write (and a checkpoint under way) to finish and makes later
// calls of do write directly.
func (w *groupWriter) close() {
	w.mu.Lock()
	w.closed = true
	for w.running {
		w.idle.Wait()
	}
	w.mu.Unlock()
	if w.ckpt != nil {
		w.ckpt.close()
	}
}

// checkpointer copies SQLite's write-ahead log back into the database file off the writers'
// path. SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so
// that commit — a group commit of up to max callers — waits for the copy; and at its default of
// 1000 pages it copies the same hot index pages back over and over. Here commits only count
// their rows: every [checkpointRows] rows one goroutine runs a PASSIVE checkpoint on a
// connection of its own, which blocks neither writers nor readers. SQLite's automatic
// checkpoint stays on as a backstop at a larger threshold (see sqliteParams): under steady
// writes the log restarts from its beginning only after a checkpoint that no write overlapped,
// which the backstop's (run by a committing writer) is, so the log stays bounded by it while
// the background checkpoints have already copied nearly all of it.
type checkpointer struct {
	db    *gorm.DB
	every int64

	rows    atomic.Int64
	running atomic.Bool
	runs    atomic.Int64 // checkpoints run

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// checkpointRows is how many written rows trigger a background checkpoint: a few thousand
// pages of log, well under the automatic backstop.
const checkpointRows = 1000

func newCheckpointer(db *gorm.DB, every int64) *checkpointer {
	return &checkpointer{db: db, every: every}
}

// wrote counts n rows and starts a checkpoint when enough have accumulated and none is running.
func (c *checkpointer) wrote(n int) {
	if c.rows.Add(int64(n)) < c.every || !c.running.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.running.Store(false)
		return
	}
	c.rows.Store(0)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.running.Store(false)
		// A failed or partial checkpoint is harmless: the next one, or SQLite's automatic
		// backstop, copies what this one did not.
		_ = c.db.Exec("PRAGMA wal_checkpoint(PASSIVE)").Error
		c.runs.Add(1)
	}()
}

// close waits for a running checkpoint and starts no more.
func (c *checkpointer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
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
	// The rows are counted (committed) before their callers are answered: a caller that sees its
	// row written sees it counted too.
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
		err := r.op(w.db.WithContext(r.ctx))
		w.committed(1)
		r.done <- err
		return
	}
	if cap(w.errs) < len(live) {
		w.errs = make([]error, w.max)
	}
	errs := w.errs[:len(live)]
	defer clear(errs)
	// With a multi-row insert, the token rows go first, in one statement; the other writes
	// (JWT IDs) follow one by one.
	var rows []*tokenRow
	var rowAt []int // index in live of rows[i]
	if w.multi != nil {
		for i, r := range live {
			if r.row != nil {
				rows = append(rows, r.row)
				rowAt = append(rowAt, i)
			}
		}
	}
	failed := -1 // the row whose error aborted the batch
	var rowsErr error
	run := func(tx *gorm.DB) error {
		if len(rows) > 1 {
			rowErrs := make([]error, len(rows))
			if err := w.multi(tx, rows, rowErrs); err != nil {
				rowsErr = err
				return err
			}
			for i, at := range rowAt {
				errs[at] = rowErrs[i]
			}
		}
		for i, r := range live {
			if len(rows) > 1 && r.row != nil {
				continue
			}
			err := r.op(tx)
			if err != nil && !rowLevel(err) {
				failed = i
				return err
			}
			errs[i] = err
		}
		return nil
	}
	// The batch is not bound to any caller's context: it serves them all.
	db := w.db.WithContext(context.Background())
	var err error
	if len(rows) == len(live) {
		err = run(db) // one statement: atomic in autocommit
	} else {
		err = db.Transaction(run, w.txOpt...)
	}
	w.batches.Add(1)
	w.batchedRows.Add(int64(len(live)))
	w.committed(len(live))
	switch {
	case err == nil:
		for i, r := range live {
			r.done <- errs[i]
		}
	case failed >= 0 || errors.Is(rowsErr, storage.ErrConflict):
		// One row's error rolled back the batch (or, on MySQL, a duplicate failed the
		// multi-row insert). Write its rows one by one so that every caller gets the outcome
		// of its own row.
		for _, r := range live {
			r.done <- r.op(w.db.WithContext(r.ctx))
		}
	default:
		// BEGIN or COMMIT failed (the write lock was not granted within busy_timeout, the disk
		// is full, the database is unreachable ...), or the multi-row insert did: nothing was
		// written, and no row is to blame. Every caller gets that error; retrying row by row
		// would wait out the failure once per row.
		err = wrap("group commit", err)
		for _, r := range live {
			r.done <- err
		}
	}
}

// rowLevel reports an error that concerns one row only and leaves the batch transaction usable:
// SQLite aborts just the failing statement on a constraint violation, and the JWT ID outcome is
// decided by statements that did not fail. A unit's partial write (see Store.unit) is not: the
// batch must not commit the half it wrote.
func rowLevel(err error) bool {
	if errors.As(err, new(*partialWrite)) {
		return false
	}
	return errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrJTIUsed)
}
