package gormstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

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
