package storage

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// TestSessionJSONExact: a session either round-trips through JSON exactly or is refused; text
// that encoding/json would silently alter (invalid UTF-8) is refused wherever it sits.
func TestSessionJSONExact(t *testing.T) {
	tests := []struct {
		name string
		sess *Session
		ok   bool
	}{
		{"plain", &Session{Subject: "alice", AMR: []string{"pwd"}}, true},
		{"real U+FFFD", &Session{Subject: "a\ufffdb", Extra: map[string]any{"\ufffd": "\ufffd"}}, true},
		{"escape text", &Session{Subject: `\ufffd`, ACR: `\\ufffd`, Extra: map[string]any{"k": `x\\\ufffd`}}, true},
		{"quotes and NUL", &Session{Subject: "o'brien \"x\" \x00", Username: "日本語 🔑"}, true},
		{"subject", &Session{Subject: "bad\xff"}, false},
		{"username", &Session{Username: "\xfe"}, false},
		{"acr", &Session{ACR: "a\xc3"}, false},
		{"amr", &Session{AMR: []string{"ok", "\xff"}}, false},
		{"extra key", &Session{Extra: map[string]any{"k\xff": 1}}, false},
		{"extra nested value", &Session{Extra: map[string]any{"a": []any{map[string]any{"b": "\xff"}}}}, false},
		{"access token claim", &Session{AccessToken: map[string]any{"sub": "x\xffy"}}, false},
		{"raw message with invalid bytes", &Session{Extra: map[string]any{"raw": json.RawMessage("\"\xff\"")}}, false},
		{"invalid after an escaped backslash", &Session{Subject: `\` + "\xff"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.sess)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Marshal accepted a session it cannot store exactly: %s", b)
				}
				if !errors.Is(err, errSessionText) {
					t.Fatalf("Marshal = %v, want errSessionText", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var back Session
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(normSession(&back), normSession(tt.sess)) {
				t.Fatalf("round trip changed the session:\n got %+v\nwant %+v", back, *tt.sess)
			}
		})
	}
}

func normSession(s *Session) *Session {
	c := s.Clone().(*Session)
	c.AuthTime = c.AuthTime.UTC()
	if len(c.Extra) == 0 {
		c.Extra = nil
	}
	return c
}

// TestSessionJSONShape: MarshalJSON keeps the field names and omissions of the struct tags, so
// rows written before it existed decode the same way.
func TestSessionJSONShape(t *testing.T) {
	s := &Session{Subject: "u", AuthTime: time.Unix(10, 0).UTC()}
	s.SetExpiresAt(fosite.AccessToken, time.Unix(20, 0))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"sub":"u","auth_time":"1970-01-01T00:00:10Z","expires_at":{"access_token":"1970-01-01T00:00:20Z"}}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant %s", b, want)
	}
	if b, err := json.Marshal((*Session)(nil)); err != nil || string(b) != "null" {
		t.Fatalf("nil session = %s, %v; want null", b, err)
	}
}
