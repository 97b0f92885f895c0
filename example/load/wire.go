package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// maxResponse bounds a token response's body (and so the memory a misbehaving server can make
// a worker hold).
const maxResponse = 1 << 20

// wireConn is one worker's keep-alive connection, speaking just enough HTTP/1.1 for the token
// request: the request's bytes are built once, and the response is read with Content-Length or
// chunked framing in the worker's own goroutine. net/http's client hands every request between
// three goroutines (caller, writer, reader); on two cores shared with the server, those
// wake-ups cost the server more CPU than the client itself uses (see CONTRIBUTING). -nethttp
// switches back to net/http.
type wireConn struct {
	addr    string // host:port
	tlsName string // server name for https; "" for http
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	req     []byte

	c     net.Conn
	br    *bufio.Reader
	reuse bool // c has answered a request already
}

// newWireConn prepares the request for target (an http or https URL) with a form body and
// HTTP Basic credentials already form-encoded (RFC 6749 §2.3.1).
func newWireConn(target string, body []byte, user, pass string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*wireConn, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	w := &wireConn{addr: u.Host, dial: dial}
	switch u.Scheme {
	case "http":
		if u.Port() == "" {
			w.addr = net.JoinHostPort(u.Hostname(), "80")
		}
	case "https":
		w.tlsName = u.Hostname()
		if u.Port() == "" {
			w.addr = net.JoinHostPort(u.Hostname(), "443")
		}
	default:
		return nil, fmt.Errorf("%s: not an http(s) URL", target)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mandate-load\r\n", u.RequestURI(), u.Host)
	fmt.Fprintf(&b, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	fmt.Fprintf(&b, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	w.req = b.Bytes()
	return w, nil
}

// do sends the request and leaves the response body in buf. A connection the server closed
// while idle is redialled once, before anything of a response has been read.
func (w *wireConn) do(ctx context.Context, buf *bytes.Buffer) (int, error) {
	for attempt := 0; ; attempt++ {
		status, started, err := w.roundTrip(ctx, buf)
		if err == nil {
			return status, nil
		}
		w.close()
		if started || !w.reuse || attempt > 0 || ctx.Err() != nil {
			return 0, err
		}
		w.reuse = false
	}
}

// roundTrip reports whether the response had begun when it failed.
func (w *wireConn) roundTrip(ctx context.Context, buf *bytes.Buffer) (status int, started bool, err error) {
	if w.c == nil {
		if err := w.connect(ctx); err != nil {
			return 0, false, err
		}
	}
	if d, ok := ctx.Deadline(); ok {
		w.c.SetDeadline(d)
	} else {
		w.c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := w.c.Write(w.req); err != nil {
		return 0, false, err
	}
	var (
		length           int64
		chunked, closing bool
	)
	for informational := 0; ; informational++ {
		line, err := w.br.ReadSlice('\n')
		if err != nil {
			return 0, len(line) > 0 || informational > 0, err
		}
		if status, err = parseStatusLine(line); err != nil {
			return 0, true, err
		}
		if length, chunked, closing, err = readHeaders(w.br); err != nil {
			return 0, true, err
		}
		// A 1xx response (103 Early Hints, say) precedes the final one (RFC 9110 §15.2).
		if status >= 200 || status == 101 {
			break
		}
		if informational == 10 {
			return 0, true, fmt.Errorf("%w: more than 10 informational responses", errFraming)
		}
	}
	buf.Reset()
	if status == 204 || status == 304 || status == 101 {
		length, chunked = 0, false // no body (RFC 9112 §6.3)
	}
	switch {
	case chunked:
		err = readChunked(w.br, buf)
	case length >= 0:
		_, err = io.CopyN(buf, w.br, length)
	default: // the body runs to the end of the connection (RFC 9112 §6.3)
		_, err = buf.ReadFrom(io.LimitReader(w.br, maxResponse))
		closing = true
	}
	if err != nil {
		return 0, true, err
	}
	w.reuse = true
	if closing {
		w.close()
	}
	return status, true, nil
}

func (w *wireConn) connect(ctx context.Context) error {
	c, err := w.dial(ctx, "tcp", w.addr)
	if err != nil {
		return err
	}
	if w.tlsName != "" {
		tc := tls.Client(c, &tls.Config{ServerName: w.tlsName, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return err
		}
		c = tc
	}
	w.c, w.reuse = c, false
	if w.br == nil {
		w.br = bufio.NewReaderSize(c, 4096)
	} else {
		w.br.Reset(c)
	}
	return nil
}

func (w *wireConn) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

var errFraming = errors.New("malformed HTTP response")

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (int, error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, fmt.Errorf("%w: status line %.40q", errFraming, line)
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || (len(line) > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n') {
		return 0, fmt.Errorf("%w: status line %.40q", errFraming, line)
	}
	return code, nil
}

// readHeaders consumes the header section and returns the framing it declares: the
// Content-Length (-1 when absent), whether the body is chunked, and whether the server will
// close the connection.
func readHeaders(br *bufio.Reader) (length int64, chunked, closing bool, err error) {
	length = -1
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, fmt.Errorf("%w: headers: %w", errFraming, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if n > 100 {
			return 0, false, false, fmt.Errorf("%w: more than 100 header fields", errFraming)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, false, fmt.Errorf("%w: header line %.40q", errFraming, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			l, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || !digits(value) || l > maxResponse || (length >= 0 && l != length) {
				return 0, false, false, fmt.Errorf("%w: Content-Length %.40q", errFraming, value)
			}
			length = l
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return 0, false, false, fmt.Errorf("%w: Transfer-Encoding %.40q", errFraming, value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closing = closing || bytes.Contains(bytes.ToLower(value), []byte("close"))
		}
	}
	if chunked {
		length = -1
	}
	return length, chunked, closing, nil
}

// digits reports a non-empty run of ASCII digits (Content-Length = 1*DIGIT, RFC 9110 §8.6).
func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// readChunked reads a chunked body (RFC 9112 §7.1) into buf, up to maxResponse bytes.
func readChunked(br *bufio.Reader, buf *bytes.Buffer) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("%w: chunk size: %w", errFraming, err)
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 || n > maxResponse-int64(buf.Len()) {
			return fmt.Errorf("%w: chunk size %.40q", errFraming, line)
		}
		if n == 0 {
			_, _, _, err := readHeaders(br) // trailer section
			return err
		}
		if _, err := io.CopyN(buf, br, n); err != nil {
			return err
		}
		if crlf, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return fmt.Errorf("%w: chunk end", errFraming)
		}
	}
}
