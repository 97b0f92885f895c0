package storage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ory/fosite"
)

func normSession(s *Session) *Session {
	c := s.Clone().(*Session)
	c.AuthTime = c.AuthTime.UTC()
	if len(c.Extra) == 0 {
		c.Extra = nil
	}
	return c
}

// TestSessionJSONShape: a session encodes with the field names and omissions of its struct
// tags, the form stores keep.
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
