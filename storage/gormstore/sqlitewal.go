//go:build !mandate_nosqlite

package gormstore

import (
	"encoding/binary"

	"github.com/ncruces/go-sqlite3/vfs"
)

// walVFS is the SQLite VFS the store opens database files with: the operating system's (the
// driver's default), except that a write-ahead log's writes are coalesced (see walFile).
const walVFS = "mandate-wal"

// Registering the VFS with the driver is process-wide by the driver's design; the VFS holds no
// state of its own (each open log has its walFile).
func init() {
	vfs.Register(walVFS, coalescingVFS{vfs.Find("os").(vfs.VFSFilename)})
}

// coalescingVFS is the operating system's VFS with its write-ahead logs opened as walFile.
type coalescingVFS struct{ vfs.VFSFilename }

// OpenFilename implements vfs.VFSFilename.
func (v coalescingVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, out, err := v.VFSFilename.OpenFilename(name, flags)
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, out, err
	}
	return &walFile{File: f, end: -1, furthest: -1}, out, nil
}

// WAL layout (https://sqlite.org/fileformat2.html#walformat): a 32-byte header, then frames of a
// 24-byte header and a page. A frame header's bytes 4–7 hold the database size after a commit
// in a transaction's last frame (its commit frame) and zero in every other frame.
const (
	walFrameHeaderSize = 24
	walBufferMax       = 1 << 20
)

// walFile is a write-ahead log whose frame appends reach the file as one write per
// transaction instead of two per frame. SQLite appends each frame as two writes — its 24-byte
// header, then its page — so a commit of a token row (two or three pages) costs four to six
// write system calls, the largest part of the commit on a machine where system calls are dear.
//
// Writes that extend the log exactly where the previous write ended are held in memory and
// written together, in order, when the commit frame's page arrives: before the write that
// completes a commit returns, everything it commits is in the file, as it would be without the
// buffer — SQLite publishes the new frames to other connections (in the shared-memory index)
// only after that write returns, so readers, checkpoints and recovery never look at frames that
// are still here. Any other write (the log's header, a page rewritten in place, a checksum
// rewrite) and every other call (read, size, sync, truncate, close) first writes what is held,
// so the file sees exactly the writes SQLite made, in the order it made them, and durability is
// the configured synchronous level's: a commit is in the operating system when it returns, and
// a sync (synchronous=FULL, checkpoints) writes what is held before it syncs. Frames of a
// transaction that has not committed may wait here; so they would, uncommitted, in the file.
type walFile struct {
	vfs.File
	buf      []byte
	off      int64 // file offset of buf[0]
	end      int64 // the offset just past the last write made; -1 when unknown
	furthest int64 // the furthest offset written since the log's header; -1 when unknown
	commit   bool  // the last frame header written is a commit frame's: its page ends the commit
}

// Unwrap implements vfs.FileUnwrap.
func (w *walFile) Unwrap() vfs.File { return w.File }

// isCommitHeader reports whether p is the header of a commit frame.
func isCommitHeader(p []byte) bool {
	return len(p) == walFrameHeaderSize && binary.BigEndian.Uint32(p[4:8]) != 0
}

// WriteAt implements io.WriterAt.
//
// A write is held when it starts where the previous one ended (an append), except a commit
// frame's header that is not beyond everything written since the log's header: SQLite also
// rewrites the headers of a transaction's frames after its commit frame (to fix their
// checksums) and writes nothing after the last of them, a commit frame's header, which must
// therefore not wait for a page that will not come.
func (w *walFile) WriteAt(p []byte, off int64) (int, error) {
	commit := isCommitHeader(p)
	hold := off == w.end && off != 0 && (!commit || (w.furthest >= 0 && off >= w.furthest))
	if off == 0 {
		w.furthest = 0 // the log's header: it starts again
	}
	if !hold {
		// Write what is held, then this, through.
		if err := w.flush(); err != nil {
			return 0, err
		}
		n, err := w.File.WriteAt(p, off)
		w.wrote(off, int64(n), err)
		w.commit = commit
		return n, err
	}
	if len(w.buf) == 0 {
		w.off = off
	}
	w.buf = append(w.buf, p...)
	w.wrote(off, int64(len(p)), nil)
	if len(p) == walFrameHeaderSize {
		// A frame header: its page follows.
		w.commit = commit
		if len(w.buf) < walBufferMax {
			return len(p), nil
		}
	}
	if w.commit || len(w.buf) >= walBufferMax {
		w.commit = false
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// wrote records a write of n bytes at off.
func (w *walFile) wrote(off, n int64, err error) {
	if err != nil {
		w.end, w.furthest = -1, -1
		return
	}
	w.end = off + n
	if w.furthest >= 0 {
		w.furthest = max(w.furthest, w.end)
	}
}

// flush writes what is held.
func (w *walFile) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.File.WriteAt(w.buf, w.off)
	if cap(w.buf) > 2*walBufferMax {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		// SQLite fails the transaction whose write reported this; where the file now ends is
		// not known.
		w.end, w.furthest = -1, -1
	}
	return err
}

// ReadAt implements io.ReaderAt.
func (w *walFile) ReadAt(p []byte, off int64) (int, error) {
	if err := w.flush(); err != nil {
		return 0, err
	}
	return w.File.ReadAt(p, off)
}

// Truncate implements vfs.File.
func (w *walFile) Truncate(size int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	w.end, w.furthest = -1, -1
	return w.File.Truncate(size)
}

// Sync implements vfs.File.
func (w *walFile) Sync(flags vfs.SyncFlag) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.File.Sync(flags)
}

// Size implements vfs.File.
func (w *walFile) Size() (int64, error) {
	if err := w.flush(); err != nil {
		return 0, err
	}
	return w.File.Size()
}

// Close implements io.Closer.
func (w *walFile) Close() error {
	err := w.flush()
	if cerr := w.File.Close(); err == nil {
		err = cerr
	}
	return err
}
