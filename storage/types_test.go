package storage

import (
	"bytes"
	"encoding/json"
	"reflect"
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
	// Empty and absent are the same in JSON (omitempty).
	if len(c.ExpiresAt) == 0 {
		c.ExpiresAt = nil
	}
	for k, v := range c.ExpiresAt {
		c.ExpiresAt[k] = v.UTC()
	}
	if len(c.AccessToken) == 0 {
		c.AccessToken = nil
	}
	if len(c.Transcribed) == 0 {
		c.Transcribed = nil
	}
	if len(c.AMR) == 0 {
		c.AMR = nil
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

// TestSessionNumbersExact: the numbers in Extra, AccessToken and Transcribed read back as they
// were written.
func TestSessionNumbersExact(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`3`, int64(3)},
		{`-9007199254740993`, int64(-9007199254740993)},
		{`9223372036854775807`, int64(9223372036854775807)},
		{`9223372036854775808`, json.Number("9223372036854775808")},
		{`2.5`, 2.5},
		{`1e3`, int64(1000)},
		{`2.0`, int64(2)},
		{`1e20`, json.Number("1e20")},
		{`-0.0`, int64(0)},
		{`1e400`, json.Number("1e400")},
		{`[1, {"a": [2.25]}]`, []any{int64(1), map[string]any{"a": []any{2.25}}}},
		{`"7"`, "7"},
	} {
		var s Session
		data := `{"extra":{"v":` + tc.in + `},"access_token":{"v":` + tc.in + `},"transcribed":{"v":` + tc.in + `}}`
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(s.Extra["v"], tc.want) || !reflect.DeepEqual(s.AccessToken["v"], tc.want) || !reflect.DeepEqual(s.Transcribed["v"], tc.want) {
			t.Errorf("%s: got %#v / %#v, want %#v", tc.in, s.Extra["v"], s.AccessToken["v"], tc.want)
		}
		// And they encode back to the same text.
		b, _ := json.Marshal(s.Extra["v"])
		var back any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&back); err != nil || !reflect.DeepEqual(exactNumbers(back), tc.want) {
			t.Errorf("%s: re-encoded as %s", tc.in, b)
		}
	}
	var s Session
	if err := s.UnmarshalJSON([]byte(`{"sub":"a"} {"sub":"b"}`)); err == nil {
		t.Error("data after the session accepted")
	}
	if err := json.Unmarshal([]byte(`{"sub":1}`), &s); err == nil {
		t.Error("a number as subject accepted")
	}
}

// FuzzSessionJSON: whatever decodes as a session encodes and decodes again to the same session.
func FuzzSessionJSON(f *testing.F) {
	f.Add([]byte(`{"sub":"u","extra":{"id":9007199254740993,"r":[1.5,{"x":null}]},"access_token":{"exp":1893456000,"n":1e400}}`))
	f.Add([]byte(`{"auth_time":"2026-12-01T10:00:00+01:00","expires_at":{"access_token":"2026-12-01T10:00:00Z"},"amr":["pwd"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Session
		if json.Unmarshal(data, &s) != nil {
			return
		}
		b, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("decoded session does not encode: %v", err)
		}
		var again Session
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("%s does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(normSession(&s), normSession(&again)) {
			t.Fatalf("round trip changed the session:\n%#v\n%#v", s, again)
		}
	})
}
