//go:build !mandate_nosqlite

package gormstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/ory/fosite"
)

// memFile is a vfs.File in memory that records the calls it gets.
type memFile struct {
	data   []byte
	calls  []string
	writes int
	fail   error // returned by the next WriteAt
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.calls = append(f.calls, fmt.Sprintf("write %d+%d", off, len(p)))
	if err := f.fail; err != nil {
		f.fail = nil
		return 0, err
	}
	f.writes++
	if end := int(off) + len(p); end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
	copy(f.data[off:], p)
	return len(p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.calls = append(f.calls, "read")
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Truncate(size int64) error {
	f.calls = append(f.calls, "truncate")
	if size < int64(len(f.data)) {
		f.data = f.data[:size]
	}
	return nil
}
func (f *memFile) Sync(vfs.SyncFlag) error { f.calls = append(f.calls, "sync"); return nil }
func (f *memFile) Size() (int64, error) {
	f.calls = append(f.calls, "size")
	return int64(len(f.data)), nil
}
func (f *memFile) Close() error                                    { f.calls = append(f.calls, "close"); return nil }
func (f *memFile) Lock(vfs.LockLevel) error                        { return nil }
func (f *memFile) Unlock(vfs.LockLevel) error                      { return nil }
func (f *memFile) CheckReservedLock() (bool, error)                { return false, nil }
func (f *memFile) SectorSize() int                                 { return 4096 }
func (f *memFile) DeviceCharacteristics() vfs.DeviceCharacteristic { return 0 }

const testPage = 512

func frameHeader(commit bool) []byte {
	h := make([]byte, walFrameHeaderSize)
	if commit {
		binary.BigEndian.PutUint32(h[4:8], 7)
	}
	h[23] = 0xAA
	return h
}

func page(b byte) []byte { return bytes.Repeat([]byte{b}, testPage) }

func frameOff(i int) int64 { return 32 + int64(i)*(walFrameHeaderSize+testPage) }

// writeFrame appends frame i as SQLite does: its header, then its page.
func writeFrame(t *testing.T, w *walFile, i int, commit bool) {
	t.Helper()
	for _, p := range [][]byte{frameHeader(commit), page(byte(i + 1))} {
		off := frameOff(i)
		if len(p) == testPage {
			off += walFrameHeaderSize
		}
		if n, err := w.WriteAt(p, off); err != nil || n != len(p) {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
	}
}

// TestWALFileCoalesces: the log's header goes through at once; a transaction's frames reach
// the file in one write, made before the write of the commit frame's page returns.
func TestWALFileCoalesces(t *testing.T) {
	f := &memFile{}
	w := &walFile{File: f, end: -1, furthest: -1}
	if _, err := w.WriteAt(make([]byte, 32), 0); err != nil || f.writes != 1 {
		t.Fatalf("log header: %v, %d writes", err, f.writes)
	}
	writeFrame(t, w, 0, false)
	writeFrame(t, w, 1, false)
	if f.writes != 1 {
		t.Fatalf("%d writes before the commit frame, want 1 (the header)", f.writes)
	}
	writeFrame(t, w, 2, true)
	if f.writes != 2 || int64(len(f.data)) != frameOff(3) {
		t.Fatalf("after the commit: %d writes, %d bytes; want 2 writes, %d bytes", f.writes, len(f.data), frameOff(3))
	}
	// The next transaction appends where the last ended.
	writeFrame(t, w, 3, true)
	if f.writes != 3 || int64(len(f.data)) != frameOff(4) {
		t.Fatalf("second commit: %d writes, %d bytes", f.writes, len(f.data))
	}
}

// TestWALFileWritesThrough: a write that does not append (a page rewritten in place, a
// checksum rewrite of a header) first writes what is held, then itself, at once; so does every
// other call that touches the file.
func TestWALFileWritesThrough(t *testing.T) {
	f := &memFile{}
	w := &walFile{File: f, end: -1, furthest: -1}
	must(t, errOf(w.WriteAt(make([]byte, 32), 0)))
	writeFrame(t, w, 0, false)
	// In place: frame 0's page again.
	must(t, errOf(w.WriteAt(page(9), frameOff(0)+walFrameHeaderSize)))
	if got := strings.Join(f.calls, ", "); got != "write 0+32, write 32+536, write 56+512" {
		t.Fatalf("calls: %s", got)
	}
	writeFrame(t, w, 1, true)
	// The checksum rewrite of the commit frame's header, with no page after it.
	f.calls = nil
	must(t, errOf(w.WriteAt(frameHeader(true), frameOff(1))))
	if got := strings.Join(f.calls, ", "); got != fmt.Sprintf("write %d+24", frameOff(1)) {
		t.Fatalf("checksum rewrite: %s", got)
	}
	// A commit frame's header rewritten right where an in-place page rewrite ended — an append
	// by offset, but not beyond the log's end — goes through too.
	must(t, errOf(w.WriteAt(page(8), frameOff(0)+walFrameHeaderSize)))
	f.calls = nil
	must(t, errOf(w.WriteAt(frameHeader(true), frameOff(1))))
	if got := strings.Join(f.calls, ", "); got != fmt.Sprintf("write %d+24", frameOff(1)) {
		t.Fatalf("commit header rewrite after a page rewrite: %q", got)
	}
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"read", func() error { _, err := w.ReadAt(make([]byte, 8), 0); return err }},
		{"size", func() error { _, err := w.Size(); return err }},
		{"sync", func() error { return w.Sync(vfs.SYNC_NORMAL) }},
		{"truncate", func() error { return w.Truncate(frameOff(9)) }},
		{"close", w.Close},
	} {
		writeFrame(t, w, 2, false) // held
		f.calls = nil
		must(t, call.do())
		if len(f.calls) != 2 || !strings.HasPrefix(f.calls[0], "write") || f.calls[1] != call.name {
			t.Errorf("%s: calls %q, want the held frame written first", call.name, f.calls)
		}
	}
}

// TestWALFileWriteError: a failed write of what is held fails the call that wrote it — the
// commit's — and nothing is held afterwards.
func TestWALFileWriteError(t *testing.T) {
	f := &memFile{}
	w := &walFile{File: f, end: -1, furthest: -1}
	must(t, errOf(w.WriteAt(make([]byte, 32), 0)))
	writeFrame(t, w, 0, false)
	must(t, errOf(w.WriteAt(frameHeader(true), frameOff(1))))
	f.fail = errors.New("disk full")
	if _, err := w.WriteAt(page(2), frameOff(1)+walFrameHeaderSize); err == nil {
		t.Fatal("the commit's write succeeded though the file write failed")
	}
	if len(w.buf) != 0 || w.end != -1 {
		t.Fatalf("after the failure: %d bytes held, end %d", len(w.buf), w.end)
	}
}

func errOf(_ int, err error) error { return err }

// FuzzWALFile drives a walFile and a plain file with the same calls, in the orders SQLite makes
// them — frame appends, pages and headers of written frames rewritten in place, the log's
// header, reads, syncs, truncations — and checks that the file behind the walFile holds exactly
// the plain file's bytes after every commit frame's page, rewrite of a commit frame's header,
// read, sync, truncation and Close.
func FuzzWALFile(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 1, 3})
	f.Add([]byte{0, 1, 2, 4, 1, 1, 5, 2, 6, 1, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		ref, under := &memFile{}, &memFile{}
		w := &walFile{File: under, end: -1, furthest: -1}
		next := int64(0) // where SQLite would append next
		check := func(what string) {
			t.Helper()
			if !bytes.Equal(ref.data, under.data) {
				t.Fatalf("after %s: the file differs from the writes made", what)
			}
		}
		do := func(p []byte, off int64) {
			if _, err := ref.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			if _, err := w.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			if off+int64(len(p)) > next {
				next = off + int64(len(p))
			}
		}
		for i, op := range ops {
			arg := int64(0)
			if i+1 < len(ops) {
				arg = int64(ops[i+1])
			}
			switch op % 8 {
			case 0: // the log's header
				do(make([]byte, 32), 0)
				next = 32
				check("the log header")
			case 1, 2: // append a frame, a commit frame for 2
				commit := op%8 == 2
				off := next
				do(frameHeader(commit), off)
				do(page(byte(i)), off+walFrameHeaderSize)
				if commit {
					check("a commit frame")
				}
			case 3, 4: // rewrite a page in place, or a header (checksums), of a frame written
				frames := (next - 32) / (walFrameHeaderSize + testPage)
				if frames <= 0 {
					continue
				}
				off := frameOff(int(arg % frames))
				if op%8 == 3 {
					// May wait for the commit, like the transaction's other pages.
					do(page(byte(i)), off+walFrameHeaderSize)
				} else {
					// The last header rewrite, a commit frame's, has no page after it: it
					// must not wait.
					commit := arg%2 == 0
					do(frameHeader(commit), off)
					if commit {
						check("a commit header rewrite")
					}
				}
			case 5:
				b1, b2 := make([]byte, 64), make([]byte, 64)
				n1, _ := ref.ReadAt(b1, arg*7)
				n2, _ := w.ReadAt(b2, arg*7)
				if n1 != n2 || !bytes.Equal(b1, b2) {
					t.Fatal("read differs")
				}
				check("a read")
			case 6:
				must(t, ref.Truncate(arg*100))
				must(t, w.Truncate(arg*100))
				next = min(next, arg*100)
				check("a truncation")
			case 7:
				must(t, w.Sync(vfs.SYNC_NORMAL))
				check("a sync")
			}
		}
		must(t, w.Close())
		check("close")
	})
}

// TestSQLiteWALCommitsVisible: a commit through one store is read at once through another
// store on the same file (another connection pool, other log handles), row after row, with
// and without group commit, and the database passes SQLite's integrity check afterwards.
func TestSQLiteWALCommitsVisible(t *testing.T) {
	for _, batch := range []int{DefaultWriteBatch, 1} {
		t.Run("batch"+strconv.Itoa(batch), func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
			writer, reader := openT(t, dsn, WithWriteBatch(batch)), openT(t, dsn)
			ctx := context.Background()
			client := benchClient()
			must(t, writer.SaveClient(ctx, client))
			for i := range 300 {
				sig := "visible-" + strconv.Itoa(i)
				must(t, writer.CreateAccessTokenSession(ctx, sig, tokenReq(client)))
				if _, err := reader.GetAccessTokenSession(ctx, sig, nil); err != nil {
					t.Fatalf("row %d not visible through another store right after its commit: %v", i, err)
				}
			}
			var ok string
			must(t, reader.DB().Raw("PRAGMA integrity_check").Row().Scan(&ok))
			if ok != "ok" {
				t.Fatalf("integrity_check: %s", ok)
			}
		})
	}
}

// TestSQLiteWALCrash: a process killed (SIGKILL) while it commits token rows leaves a database
// that opens, passes the integrity check and holds every row whose commit had returned — the
// synchronous=NORMAL promise, which the log's write coalescing must keep.
func TestSQLiteWALCrash(t *testing.T) {
	if path := os.Getenv("MANDATE_WAL_CRASH_DB"); path != "" {
		crashWriter(path) // the child: never returns
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := osexec.Command(os.Args[0], "-test.run=^TestSQLiteWALCrash$")
	cmd.Env = append(os.Environ(), "MANDATE_WAL_CRASH_DB="+path)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	// The child prints the number of each row whose commit returned; kill it mid-stream.
	var last int
	buf := make([]byte, 0, 64)
	one := make([]byte, 1)
	for last < 2000 {
		if _, err := out.Read(one); err != nil {
			t.Fatalf("child output: %v (last committed %d)", err, last)
		}
		if one[0] != '\n' {
			buf = append(buf, one[0])
			continue
		}
		n, err := strconv.Atoi(string(buf))
		if err != nil {
			t.Fatalf("child said %q", buf)
		}
		last, buf = n, buf[:0]
	}
	must(t, cmd.Process.Kill())
	_ = cmd.Wait()

	s := openT(t, "sqlite:"+path)
	var ok string
	must(t, s.DB().Raw("PRAGMA integrity_check").Row().Scan(&ok))
	if ok != "ok" {
		t.Fatalf("integrity_check after the crash: %s", ok)
	}
	for i := 0; i <= last; i++ {
		if _, err := s.GetAccessTokenSession(context.Background(), "crash-"+strconv.Itoa(i), nil); err != nil {
			t.Fatalf("row %d, committed before the crash (last %d), is missing: %v", i, last, err)
		}
	}
}

// crashWriter commits token rows one by one, printing each row's number once its commit has
// returned, until it is killed.
func crashWriter(path string) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	client := benchClient()
	if err := s.SaveClient(ctx, client); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		req := fosite.NewRequest()
		req.Client = client
		req.Session = tokenReq(client).Session
		if err := s.CreateAccessTokenSession(ctx, "crash-"+strconv.Itoa(i), req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}
