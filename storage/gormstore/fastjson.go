package gormstore

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// The token rows' JSON, written without reflection: encoding a token's request and session is
// the largest part of an insert outside SQLite. Each function writes exactly the bytes
// json.Marshal writes (FuzzTokenJSON compares them), refuses invalid UTF-8 as encode does, and
// leaves what it does not cover — a request's form, a session's extra data or claims, times
// outside UTC or years 0–9999 — to encode.

// encodeRequest is encode("request", r).
func encodeRequest(r *requestRecord) ([]byte, error) {
	if len(r.Form) > 0 || !plainTime(r.RequestedAt) {
		return encode("request", r)
	}
	b := make([]byte, 0, 256)
	ok := true
	str := func(name, v string, omit bool) {
		if omit && v == "" {
			return
		}
		b = member(b, name)
		b, ok = appendJSONString(b, v, ok)
	}
	list := func(name string, v []string) {
		if len(v) == 0 {
			return
		}
		b = member(b, name)
		b, ok = appendJSONStrings(b, v, ok)
	}
	b = append(b, '{')
	str("id", r.ID, true)
	str("client_id", r.ClientID, false)
	b = member(b, "requested_at")
	b = appendJSONTime(b, r.RequestedAt)
	list("scopes", r.RequestedScope)
	list("granted_scopes", r.GrantedScope)
	list("audience", r.RequestedAudience)
	list("granted_audience", r.GrantedAudience)
	list("response_types", r.ResponseTypes)
	str("redirect_uri", r.RedirectURI, true)
	str("state", r.State, true)
	list("handled_response_types", r.HandledResponseTypes)
	str("response_mode", r.ResponseMode, true)
	str("default_response_mode", r.DefaultResponseMode, true)
	b = append(b, '}')
	if !ok {
		return nil, fmt.Errorf("%w: request holds text that is not valid UTF-8", ErrInvalidInput)
	}
	return b, nil
}

// encodeSession is encode("session", sess).
func encodeSession(sess fosite.Session) ([]byte, error) {
	s, isStorage := sess.(*storage.Session)
	if !isStorage || s == nil || len(s.Extra) > 0 || len(s.AccessToken) > 0 || len(s.Transcribed) > 0 ||
		(!s.AuthTime.IsZero() && !plainTime(s.AuthTime)) {
		return encode("session", sess)
	}
	for _, t := range s.ExpiresAt {
		if !plainTime(t) {
			return encode("session", sess)
		}
	}
	b := make([]byte, 0, 128)
	ok := true
	b = append(b, '{')
	if s.Subject != "" {
		b = member(b, "sub")
		b, ok = appendJSONString(b, s.Subject, ok)
	}
	if s.Username != "" {
		b = member(b, "username")
		b, ok = appendJSONString(b, s.Username, ok)
	}
	if !s.AuthTime.IsZero() {
		b = member(b, "auth_time")
		b = appendJSONTime(b, s.AuthTime)
	}
	if s.ACR != "" {
		b = member(b, "acr")
		b, ok = appendJSONString(b, s.ACR, ok)
	}
	if len(s.AMR) > 0 {
		b = member(b, "amr")
		b, ok = appendJSONStrings(b, s.AMR, ok)
	}
	if len(s.ExpiresAt) > 0 {
		b = member(b, "expires_at")
		keys := make([]fosite.TokenType, 0, len(s.ExpiresAt))
		for k := range s.ExpiresAt {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendJSONString(b, string(k), ok)
			b = append(b, ':')
			b = appendJSONTime(b, s.ExpiresAt[k])
		}
		b = append(b, '}')
	}
	if s.DPoPJKT != "" {
		b = member(b, "dpop_jkt")
		b, ok = appendJSONString(b, s.DPoPJKT, ok)
	}
	b = append(b, '}')
	if !ok {
		return nil, fmt.Errorf("%w: session holds text that is not valid UTF-8", ErrInvalidInput)
	}
	return b, nil
}

// plainTime reports a time encoding/json writes as RFC 3339 in UTC without error.
func plainTime(t time.Time) bool {
	y := t.Year()
	return t.Location() == time.UTC && y >= 0 && y <= 9999
}

// member appends the name of an object member (a plain ASCII name), after a comma unless it is
// the first.
func member(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendJSONStrings(b []byte, v []string, ok bool) ([]byte, bool) {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b, ok = appendJSONString(b, s, ok)
	}
	return append(b, ']'), ok
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes it (HTML-safe escapes included);
// ok turns false if s is not valid UTF-8.
func appendJSONString(b []byte, s string, ok bool) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			ok = false
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"'), ok
}
