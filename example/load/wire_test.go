package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseStatusLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int // 0: an error
	}{
		{"HTTP/1.1 200 OK\r\n", 200},
		{"HTTP/1.0 401 Unauthorized\r\n", 401},
		{"HTTP/1.1 204\r\n", 204},
		{"HTTP/1.1 200\n", 200},
		{"HTTP/2 200 OK\r\n", 0},
		{"HTTP/1.1 20 OK\r\n", 0},
		{"HTTP/1.1 2000 OK\r\n", 0},
		{"HTTP/1.1 abc OK\r\n", 0},
		{"HTTP/1.1 099 Low\r\n", 0},
		{"SSH-2.0-OpenSSH\r\n", 0},
		{"\r\n", 0},
	} {
		got, err := parseStatusLine([]byte(tc.line))
		if got != tc.want || (tc.want == 0) != (err != nil) {
			t.Errorf("parseStatusLine(%q) = %d, %v; want %d", tc.line, got, err, tc.want)
		}
	}
}

func TestReadHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, in         string
		length           int64
		chunked, closing bool
		err              bool
	}{
		{"content length", "Content-Type: application/json\r\nContent-Length: 42\r\n\r\n", 42, false, false, false},
		{"no framing", "Content-Type: text/plain\r\n\r\n", -1, false, false, false},
		{"case and spaces", "content-length:   7  \r\nCONNECTION: Close\r\n\r\n", 7, false, true, false},
		{"connection list", "Connection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 0, false, true, false},
		{"chunked wins", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -1, true, false, false},
		{"same length twice", "Content-Length: 3\r\nContent-Length: 3\r\n\r\n", 3, false, false, false},
		{"conflicting lengths", "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 0, false, false, true},
		{"negative length", "Content-Length: -1\r\n\r\n", 0, false, false, true},
		{"signed length", "Content-Length: +5\r\n\r\n", 0, false, false, true},
		{"huge length", "Content-Length: 99999999999\r\n\r\n", 0, false, false, true},
		{"gzip transfer coding", "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, false, false, true},
		{"no colon", "Content-Length 4\r\n\r\n", 0, false, false, true},
		{"cut short", "Content-Length: 4\r\n", 0, false, false, true},
		{"too many", strings.Repeat("X-A: b\r\n", 200) + "\r\n", 0, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			length, chunked, closing, err := readHeaders(bufio.NewReader(strings.NewReader(tc.in)))
			if tc.err {
				if err == nil || !errors.Is(err, errFraming) {
					t.Fatalf("error %v, want a framing error", err)
				}
				return
			}
			if err != nil || length != tc.length || chunked != tc.chunked || closing != tc.closing {
				t.Fatalf("got %d %v %v %v, want %d %v %v", length, chunked, closing, err, tc.length, tc.chunked, tc.closing)
			}
		})
	}
}

func TestReadChunked(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"two chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde", false},
		{"extension and trailer", "3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "abc", false},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", false},
		{"bad size", "zz\r\nabc\r\n0\r\n\r\n", "", true},
		{"negative size", "-1\r\nabc\r\n0\r\n\r\n", "", true},
		{"over the bound", fmt.Sprintf("%x\r\n", maxResponse+1), "", true},
		{"no chunk end", "3\r\nabcX\r\n0\r\n\r\n", "", true},
		{"cut short", "5\r\nab", "", true},
		{"no last chunk", "3\r\nabc\r\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := readChunked(bufio.NewReader(strings.NewReader(tc.in)), &buf)
			if tc.err != (err != nil) || (!tc.err && buf.String() != tc.want) {
				t.Fatalf("got %q, %v; want %q (error %v)", buf.String(), err, tc.want, tc.err)
			}
		})
	}
}

// wireTo returns a connection for url that dials loopback only, as run's do.
func wireTo(t *testing.T, url string) *wireConn {
	t.Helper()
	w, err := newWireConn(url, []byte("grant_type=client_credentials"), "c%3A1", "s+2", loopbackDialer().DialContext)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	return w
}

// TestWireConnAgainstNetHTTP checks the request the connection sends and the responses it
// reads through a net/http server: Content-Length and chunked bodies, an error status, a
// server that closes after every response, and one that drops idle connections.
func TestWireConnAgainstNetHTTP(t *testing.T) {
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.URL.RequestURI() != "/oauth2/token?x=1" ||
			user != "c%3A1" || pass != "s+2" || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch mode.Load() {
		case 1: // chunked
			w.Write([]byte(`{"access_token":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`"chunked"}`))
			return
		case 2:
			w.Header().Set("Connection", "close")
		case 3:
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Write([]byte(`{"access_token":"tok"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	w := wireTo(t, srv.URL+"/oauth2/token?x=1")
	var buf bytes.Buffer
	expect := func(status int, body string) {
		t.Helper()
		got, err := w.do(context.Background(), &buf)
		if err != nil || got != status || buf.String() != body {
			t.Fatalf("got %d %q %v, want %d %q", got, buf.String(), err, status, body)
		}
	}
	mode.Store(0)
	expect(200, `{"access_token":"tok"}`)
	expect(200, `{"access_token":"tok"}`)
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections for two requests, want one kept alive", n)
	}
	mode.Store(1)
	expect(200, `{"access_token":"chunked"}`)
	mode.Store(3)
	expect(401, `{"error":"invalid_client"}`)
	mode.Store(2)
	expect(200, `{"access_token":"tok"}`)
	expect(200, `{"access_token":"tok"}`)
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections, want a new one after each Connection: close", n)
	}
	// The server drops the idle connection: the next request redials once.
	mode.Store(0)
	expect(200, `{"access_token":"tok"}`)
	srv.CloseClientConnections()
	time.Sleep(10 * time.Millisecond)
	expect(200, `{"access_token":"tok"}`)
	if n := dials.Load(); n != 4 {
		t.Fatalf("%d connections, want one more after the server dropped the idle one", n)
	}
}

var mode atomic.Int64 // TestWireConnAgainstNetHTTP's server behaviour

// TestWireConnRefuses: a connection that fails after the response began is not retried, and a
// server that is gone is an error, not a hang.
func TestWireConnRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				// A response that promises more body than it sends, then hangs up.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access")
			}()
		}
	}()
	w := wireTo(t, "http://"+ln.Addr().String()+"/token")
	var buf bytes.Buffer
	if _, err := w.do(context.Background(), &buf); err == nil {
		t.Fatal("a truncated body was accepted")
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections: a request whose response had begun was retried", n)
	}
	ln.Close()
	if _, err := w.do(context.Background(), &buf); err == nil {
		t.Fatal("no error with the server gone")
	}
	if _, err := newWireConn("ftp://127.0.0.1/x", nil, "a", "b", loopbackDialer().DialContext); err == nil {
		t.Fatal("ftp URL accepted")
	}
	remote, err := newWireConn("http://192.0.2.1/token", nil, "a", "b", loopbackDialer().DialContext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.do(context.Background(), &buf); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("error %v, want the dialer's refusal", err)
	}
}

// fakeConn answers every write with the bytes of in, once.
type fakeConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// fakeWire is a wire connection whose server answers with in.
func fakeWire(t *testing.T, in []byte) *wireConn {
	t.Helper()
	w, err := newWireConn("http://127.0.0.1:1/token", []byte("a=b"), "u", "p", func(context.Context, string, string) (net.Conn, error) {
		return &fakeConn{r: bytes.NewReader(in)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// FuzzWireResponse feeds arbitrary bytes as a server's answer: never a panic or a hang, never
// more than maxResponse of body, and a body read by Content-Length is exactly that long.
func FuzzWireResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n{\"error\":\"invalid_client\"}",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		w := fakeWire(t, in)
		var buf bytes.Buffer
		status, err := w.do(context.Background(), &buf)
		if buf.Len() > maxResponse {
			t.Fatalf("%d bytes of body", buf.Len())
		}
		if err != nil {
			return
		}
		if status < 100 || status > 999 {
			t.Fatalf("status %d", status)
		}
		// The first response's header lines, as HTTP/1.1 delimits them (a line ends at LF, a
		// CR before it is dropped, an empty line ends the section).
		lines := strings.Split(string(in), "\n")
		if len(lines) < 2 || parseStatusOf([]byte(lines[0])) != status {
			return // an informational response came first
		}
		var head []string
		ended := false
		for _, l := range lines[1:] {
			if l = strings.TrimRight(l, "\r"); l == "" {
				ended = true
				break
			}
			head = append(head, l)
		}
		if !ended || slices.ContainsFunc(head, func(l string) bool { return strings.Contains(strings.ToLower(l), "transfer-encoding") }) {
			return
		}
		for _, l := range head {
			name, v, _ := strings.Cut(l, ":")
			if strings.EqualFold(name, "Content-Length") {
				var cl int
				fmt.Sscan(strings.TrimSpace(v), &cl)
				if status != 204 && status != 304 && buf.Len() != cl {
					t.Fatalf("Content-Length %d, body %d bytes", cl, buf.Len())
				}
			}
		}
	})
}

// parseStatusOf is the status of a status line without its LF, or 0.
func parseStatusOf(line []byte) int {
	code, _ := parseStatusLine(append(line, '\n'))
	return code
}

// TestWireConnInformational: 1xx responses before the final one are skipped.
func TestWireConnInformational(t *testing.T) {
	in := "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
		"HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"access_token\":\"t\"}"
	w := fakeWire(t, []byte(in))
	var buf bytes.Buffer
	if status, err := w.do(context.Background(), &buf); err != nil || status != 200 || buf.String() != `{"access_token":"t"}` {
		t.Fatalf("got %d %q %v", status, buf.String(), err)
	}
	many := strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 12) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	w = fakeWire(t, []byte(many))
	if _, err := w.do(context.Background(), &buf); err == nil {
		t.Fatal("endless informational responses accepted")
	}
}

func TestSignRate(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		var out bytes.Buffer
		if err := signRate(context.Background(), []string{"-alg", alg, "-d", "100ms", "-procs", "2", "-json"}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		var r SignRate
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Alg != alg || r.Procs != 2 || r.Signatures < 1 || r.PerSecond <= 0 || r.Elapsed < 0.1 {
			t.Fatalf("%+v", r)
		}
	}
	for _, args := range [][]string{{"-alg", "HS256"}, {"-d", "0s"}, {"-procs", "0"}, {"extra"}} {
		if err := signRate(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("sign-rate %q: no error", args)
		}
	}
}
