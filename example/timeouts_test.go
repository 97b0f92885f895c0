package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDefaultLimits: the example's servers get every limit, with the values its comment
// justifies, through newServer.
func TestDefaultLimits(t *testing.T) {
	s := newServer(http.NotFoundHandler(), defaultLimits())
	if s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 10*time.Second || s.WriteTimeout != 10*time.Second ||
		s.IdleTimeout != 60*time.Second || s.MaxHeaderBytes != 16<<10 {
		t.Fatalf("limits: header %s, read %s, write %s, idle %s, header bytes %d",
			s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
	}
	if s.ReadHeaderTimeout > s.ReadTimeout || s.MaxHeaderBytes >= http.DefaultMaxHeaderBytes {
		t.Fatal("the header bounds must be tighter than the request's and net/http's")
	}
}

// testLimits are defaultLimits scaled down, so that the test waits for each bound in well
// under a second.
func testLimits() serverLimits {
	return serverLimits{
		ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 2 * time.Second,
		Idle: 400 * time.Millisecond, MaxHeaderBytes: 4 << 10,
	}
}

// limitedServer serves, with newServer and testLimits, a handler that reads the whole body as
// the token endpoint reads its form.
func limitedServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "incomplete body", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "ok")
	}), testLimits())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// closedAfter reads from c until the server closes it (EOF or a reset) and returns how long
// that took from start; it gives up after 5 s, far beyond every bound.
func closedAfter(t *testing.T, c net.Conn, start time.Time) time.Duration {
	t.Helper()
	deadline := start.Add(5 * time.Second)
	if err := c.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", deadline.Sub(start))
	}
	return time.Since(start)
}

// within checks that the server closed the connection after bound, and not long after it.
func within(t *testing.T, what string, took, bound time.Duration) {
	t.Helper()
	if took < bound-50*time.Millisecond || took > bound+1500*time.Millisecond {
		t.Errorf("%s: closed after %s, want about %s", what, took.Round(time.Millisecond), bound)
	} else {
		t.Logf("%s: closed after %s (bound %s)", what, took.Round(time.Millisecond), bound)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes s one byte every gap until it is written or the connection breaks.
func trickle(c net.Conn, s string, gap time.Duration) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(gap)
	}
}

// TestServerLimits: a server made by newServer closes a connection that trickles its body or
// its headers once the read bounds pass, closes an idle keep-alive connection once the idle
// bound passes, refuses an oversized header block with 431, and still serves normal requests.
func TestServerLimits(t *testing.T) {
	addr := limitedServer(t)

	t.Run("slow body", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		start := time.Now()
		if _, err := io.WriteString(c, "POST /token HTTP/1.1\r\nHost: as\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go trickle(c, strings.Repeat("x", 200), 50*time.Millisecond) // would take 10 s
		within(t, "a body trickled a byte every 50 ms", closedAfter(t, c, start), testLimits().Read)
	})

	t.Run("slow headers", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		start := time.Now()
		go trickle(c, "GET / HTTP/1.1\r\nHost: as\r\nX-Slow: "+strings.Repeat("x", 200)+"\r\n\r\n", 50*time.Millisecond)
		within(t, "headers trickled a byte every 50 ms", closedAfter(t, c, start), testLimits().ReadHeader)
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		start := time.Now()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: as\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "ok" || resp.Close {
			t.Fatalf("first request on the connection: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		// The connection now idles: the server ends it once the idle bound passes.
		within(t, "an idle keep-alive connection", closedAfter(t, &bufferedConn{c, br}, start), testLimits().Idle)
	})

	t.Run("header block too large", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		// net/http allows MaxHeaderBytes plus 4 KiB of buffer slack.
		big := strings.Repeat("x", testLimits().MaxHeaderBytes+8<<10)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: as\r\nX-Big: "+big+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("oversized header block: %d, want 431", resp.StatusCode)
		}
	})

	t.Run("normal requests", func(t *testing.T) {
		t.Parallel()
		client := &http.Client{Timeout: 5 * time.Second}
		for _, req := range []func() (*http.Response, error){
			func() (*http.Response, error) { return client.Get("http://" + addr + "/") },
			func() (*http.Response, error) {
				return client.Post("http://"+addr+"/token", "application/x-www-form-urlencoded",
					strings.NewReader("grant_type=client_credentials&scope=orders%3Aread"))
			},
		} {
			resp, err := req()
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("normal request: %d %q", resp.StatusCode, body)
			}
		}
	})
}

// bufferedConn reads what a bufio.Reader already holds before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
