package gormstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// TestEncodeExact: a session (like every record the store writes) either round-trips through
// encode exactly or is refused with ErrInvalidInput; text that encoding/json would silently
// alter (invalid UTF-8) is refused wherever it sits.
func TestEncodeExact(t *testing.T) {
	tests := []struct {
		name string
		sess *storage.Session
		ok   bool
	}{
		{"plain", &storage.Session{Subject: "alice", AMR: []string{"pwd"}}, true},
		{"real U+FFFD", &storage.Session{Subject: "a\ufffdb", Extra: map[string]any{"\ufffd": "\ufffd"}}, true},
		{"escape text", &storage.Session{Subject: `\ufffd`, ACR: `\\ufffd`, Extra: map[string]any{"k": `x\\\ufffd`}}, true},
		{"quotes and NUL", &storage.Session{Subject: "o'brien \"x\" \x00", Username: "日本語 🔑"}, true},
		{"subject", &storage.Session{Subject: "bad\xff"}, false},
		{"username", &storage.Session{Username: "\xfe"}, false},
		{"acr", &storage.Session{ACR: "a\xc3"}, false},
		{"amr", &storage.Session{AMR: []string{"ok", "\xff"}}, false},
		{"extra key", &storage.Session{Extra: map[string]any{"k\xff": 1}}, false},
		{"extra nested value", &storage.Session{Extra: map[string]any{"a": []any{map[string]any{"b": "\xff"}}}}, false},
		{"access token claim", &storage.Session{AccessToken: map[string]any{"sub": "x\xffy"}}, false},
		{"raw message with invalid bytes", &storage.Session{Extra: map[string]any{"raw": json.RawMessage("\"\xff\"")}}, false},
		{"invalid after an escaped backslash", &storage.Session{Subject: `\` + "\xff"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encode("session", tt.sess)
			if !tt.ok {
				if err == nil {
					t.Fatalf("encode accepted a session it cannot store exactly: %s", b)
				}
				if !errors.Is(err, ErrInvalidInput) {
					t.Fatalf("encode = %v, want ErrInvalidInput", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			var back storage.Session
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(normEncoded(&back), normEncoded(tt.sess)) {
				t.Fatalf("round trip changed the session:\n got %+v\nwant %+v", back, *tt.sess)
			}
		})
	}
}

func normEncoded(s *storage.Session) *storage.Session {
	c := s.Clone().(*storage.Session)
	c.AuthTime = c.AuthTime.UTC()
	if len(c.Extra) == 0 {
		c.Extra = nil
	}
	return c
}

// FuzzTokenJSON: encodeRequest and encodeSession write exactly the bytes json.Marshal writes,
// and refuse exactly what encode refuses.
func FuzzTokenJSON(f *testing.F) {
	f.Add("req-1", "client", "orders:read", "https://api.example/", "alice", "pwd", int64(1_800_000_000_123_456_789), "access_token", false)
	f.Add("<&>\u2028\"\\\n\x01", "c\xff", "", "", "", "", int64(-62135596800_000_000_0/10), "", true)
	f.Fuzz(func(t *testing.T, id, client, scope, aud, sub, amr string, nanos int64, tokenType string, local bool) {
		at := time.Unix(0, nanos).UTC()
		if local {
			at = at.In(time.FixedZone("x", 3600))
		}
		r := &requestRecord{ID: id, ClientID: client, RequestedAt: at, GrantedScope: []string{scope},
			RequestedScope: strings.Fields(scope), GrantedAudience: []string{aud}, State: sub, ResponseMode: amr}
		s := &storage.Session{Subject: sub, ACR: amr, AMR: strings.Fields(amr), AuthTime: at}
		if tokenType != "" {
			s.SetExpiresAt(fosite.TokenType(tokenType), at)
			s.ExpiresAt["refresh_token"] = at
		}
		for _, c := range []struct {
			name       string
			fast, slow func() ([]byte, error)
		}{
			{"request", func() ([]byte, error) { return encodeRequest(r) }, func() ([]byte, error) { return encode("request", r) }},
			{"session", func() ([]byte, error) { return encodeSession(s) }, func() ([]byte, error) { return encode("session", s) }},
		} {
			got, gerr := c.fast()
			want, werr := c.slow()
			if (gerr == nil) != (werr == nil) || (gerr != nil && errors.Is(werr, ErrInvalidInput) != errors.Is(gerr, ErrInvalidInput)) {
				t.Fatalf("%s: errors differ: %v / %v", c.name, gerr, werr)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s:\n got %s\nwant %s", c.name, got, want)
			}
		}
	})
}

// The fast session encoder writes what encoding/json writes for every field of the session,
// set one at a time: a field added to storage.Session and forgotten here would be lost in the
// database.
func TestEncodeSessionEveryField(t *testing.T) {
	typ := reflect.TypeFor[storage.Session]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		var s storage.Session
		v := reflect.ValueOf(&s).Elem().Field(i)
		switch f.Type.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"x"}))
		case reflect.Map:
			m := reflect.MakeMap(f.Type)
			val := reflect.ValueOf(any("x"))
			if f.Type.Elem() == reflect.TypeFor[time.Time]() {
				val = reflect.ValueOf(time.Unix(1_800_000_000, 0).UTC())
			}
			m.SetMapIndex(reflect.ValueOf("x").Convert(f.Type.Key()), val)
			v.Set(m)
		case reflect.Struct: // time.Time
			v.Set(reflect.ValueOf(time.Unix(1_800_000_000, 0).UTC()))
		default:
			t.Fatalf("field %s of kind %s: teach this test", f.Name, f.Type.Kind())
		}
		got, gerr := encodeSession(&s)
		want, werr := encode("session", &s)
		if gerr != nil || werr != nil || !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s (%v)\nwant %s (%v)", f.Name, got, gerr, want, werr)
		}
	}
}
