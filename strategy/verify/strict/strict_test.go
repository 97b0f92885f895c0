package strict

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

type claims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud []string `json:"aud"`
	Act *struct {
		Sub string `json:"sub"`
	} `json:"act"`
	Untagged string
	Skipped  string `json:"-"`
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"plain", `{"iss":"a","sub":"b","aud":["c"]}`, nil},
		{"empty object", ` { } `, nil},
		{"unknown members pass", `{"iss":"a","roles":["x"],"nested":{"Sub":1}}`, nil},
		{"duplicate", `{"sub":"user-123","sub":"admin"}`, ErrDuplicate},
		{"duplicate after unescaping", `{"sub":"user-123","s\u0075b":"admin"}`, ErrDuplicate},
		{"case variant next to the name", `{"sub":"user-123","Sub":"admin"}`, ErrCaseVariant},
		{"case variant alone", `{"SUB":"admin"}`, ErrCaseVariant},
		{"unicode fold (long s)", `{"ſub":"admin"}`, ErrCaseVariant},
		{"case variant of aud", `{"aud":"https://evil.example","Aud":"https://as/token"}`, ErrCaseVariant},
		{"nested duplicate", `{"act":{"sub":"a","sub":"b"}}`, ErrDuplicate},
		{"nested case variant in typed field", `{"act":{"SUB":"b"}}`, ErrCaseVariant},
		{"duplicate inside untyped member", `{"x":[{"a":1,"a":2}]}`, ErrDuplicate},
		{"untagged field exact", `{"Untagged":"x"}`, nil},
		{"untagged field variant", `{"untagged":"x"}`, ErrCaseVariant},
		{"skipped field is just unknown", `{"Skipped":"x"}`, nil},
		{"deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ErrSyntax},
		{"trailing data", `{"iss":"a"} x`, ErrSyntax},
		{"unterminated", `{"iss":"a`, ErrSyntax},
		{"many members, duplicate late", `{` + manyMembers(40) + `,"m3":0}`, ErrDuplicate},
		{"many members, no duplicate", `{` + manyMembers(40) + `}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in), &claims{})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Check(%s) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"m%d":0`, i)
	}
	return b.String()
}

func TestUnmarshalMap(t *testing.T) {
	var m map[string]any
	if err := Unmarshal([]byte(`{"a":1,"A":2}`), &m); err != nil {
		t.Fatalf("map keys are matched exactly, case variants are distinct members: %v", err)
	}
	if err := Unmarshal([]byte(`{"a":1,"a":2}`), &m); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("got %v", err)
	}
	var c claims
	if err := Unmarshal([]byte(`{"iss":1}`), &c); !errors.Is(err, ErrSyntax) {
		t.Fatalf("type error: got %v", err)
	}
}

func TestSegment(t *testing.T) {
	good := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`)) // ends in "9"
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{good, true},
		{"", true},
		{"QQ", true},    // "A"
		{"QR", false},   // "A" with a spare bit set
		{"QUI", true},   // "AB"
		{"QUJ", false},  // "AB", spare bits
		{"QQ==", false}, // padding
		{"Q Q", false},  // white space
		{"Q\nQ", false}, // a line break, which encoding/base64 skips
		{"Q\rQ", false}, // likewise
		{"Q+Q", false},  // standard alphabet
		{"Q", false},    // impossible length
		{"eyI", true},   // `{"`
		{"eyJ", false},  // `{"` with a spare bit set
	} {
		b, err := Segment(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Segment(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err == nil && base64.RawURLEncoding.EncodeToString(b) != tc.in {
			t.Errorf("Segment(%q) accepted a non-canonical form", tc.in)
		}
		if Canonical(tc.in) != tc.ok {
			t.Errorf("Canonical(%q) = %v, want %v", tc.in, !tc.ok, tc.ok)
		}
	}
}

func TestCompact(t *testing.T) {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`))
	p := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x"}`))
	s := base64.RawURLEncoding.EncodeToString([]byte{1, 2, 3, 4})
	if _, _, err := Compact(h + "." + p + "." + s); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{h + "." + p, h + "." + p + "." + s + ".x", h + "." + p + "." + s[:len(s)-1] + "R", h + "." + p + "=." + s, h + "\n." + p + "." + s} {
		if _, _, err := Compact(bad); !errors.Is(err, ErrEncoding) {
			t.Errorf("Compact(%q) = %v", bad, err)
		}
	}
}

func TestLoopbackAndFetchURL(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"::ffff:127.0.0.1": true, "127.evil.example": false, "127.0.0.1.nip.io": false,
		"foo.localhost": false, "localhost.evil.example": false, "10.0.0.1": false, "127.1": false, "": false,
	} {
		if LoopbackHost(host) != want {
			t.Errorf("LoopbackHost(%q) = %v", host, !want)
		}
	}
	for u, ok := range map[string]bool{
		"https://as.example/jwks": true, "http://127.0.0.1:9/jwks": true, "http://[::1]:9/": true,
		"http://localhost/x": true, "http://127.evil.example/jwks": false, "http://127.0.0.1.nip.io/": false,
		"http://as.example/": false, "https://u:p@as.example/": false, "https://as.example/#f": false,
		"ftp://as.example/": false, "/relative": false, "https://": false, "https:opaque": false,
	} {
		if err := FetchURL(u); (err == nil) != ok {
			t.Errorf("FetchURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestEcho(t *testing.T) {
	if got := Echo("orders:read"); got != "orders:read" {
		t.Fatal(got)
	}
	if got := Echo(`a"b\c` + "\x00é"); got != `a'b?c???` {
		t.Fatalf("got %q", got)
	}
	long := Echo(strings.Repeat("x", 10_000))
	if len(long) != MaxEcho+3 || !strings.HasSuffix(long, "...") {
		t.Fatalf("got %d bytes", len(long))
	}
}

// dupRef is a reference duplicate detector built on encoding/json's own tokenizer.
func dupRef(data []byte) (dup bool, depth int, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// Numbers as json.Number: valid JSON may hold one beyond float64's range (2e308), which
	// Token would otherwise refuse.
	dec.UseNumber()
	type frame struct {
		obj   bool
		names map[string]bool
		key   bool // the next string token in this object is a key
	}
	var stack []*frame
	maxDepth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false, maxDepth, nil
		}
		if err != nil {
			return false, 0, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: v == '{', names: map[string]bool{}, key: v == '{'})
				maxDepth = max(maxDepth, len(stack))
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.obj && top.key {
				if top.names[v] {
					return true, 0, nil
				}
				top.names[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// FuzzCheck compares the duplicate scan with encoding/json's tokenizer: for valid JSON, Check
// (untyped) refuses exactly the documents holding a duplicate member name, and (typed) never
// lets through a member that encoding/json would match to a field only case-insensitively.
//
//	go test -run '^$' -fuzz FuzzCheck -fuzztime 30s ./strategy/verify/strict
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,"}",{"c":"\""}]},"d":null}`,
		`{"\u0061":1,"a":2}`, ` { "x" : "y\\" , "z":[] } `, `[]`, `{"a"}`, `{"a":1,}`,
		`{"a":"\ud800"}`, `{"sub":"x","Sub":"y"}`, `{"act":{"sub":1}}`, `{"ſub":1}`, `[{"a":1},{"a":1}]`,
		"{\"a\xff\":1,\"a\xfe\":2}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			_ = Check(data, &claims{}) // must not panic
			return
		}
		dup, depth, err := dupRef(data)
		if err != nil {
			t.Fatalf("reference tokenizer: %v", err)
		}
		got := Check(data, nil)
		switch {
		case depth > MaxDepth:
			if !errors.Is(got, ErrSyntax) {
				t.Fatalf("depth %d accepted: %v", depth, got)
			}
		case dup != errors.Is(got, ErrDuplicate):
			t.Fatalf("duplicate=%v, Check = %v", dup, got)
		case !dup && got != nil:
			t.Fatalf("valid JSON without duplicates refused: %v", got)
		}
		if Check(data, &claims{}) != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			return
		}
		for name := range m {
			for _, known := range []string{"iss", "sub", "aud", "act", "Untagged"} {
				if name != known && strings.EqualFold(name, known) {
					t.Fatalf("case variant %q of %q accepted", name, known)
				}
			}
		}
	})
}

// FuzzSegment checks that Segment accepts exactly the canonical encodings.
func FuzzSegment(f *testing.F) {
	for _, s := range []string{"", "QQ", "QR", "QUI", "QUJ", "QQ==", "Q\nQ", "eyJhbGciOiJFUzI1NiJ9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Segment(s)
		if Canonical(s) != (err == nil) {
			t.Fatalf("canonical and Segment disagree on %q: %v", s, err)
		}
		if err == nil && base64.RawURLEncoding.EncodeToString(b) != s {
			t.Fatalf("%q accepted but is not the canonical encoding of its bytes", s)
		}
		if err != nil {
			if d, derr := base64.RawURLEncoding.DecodeString(s); derr == nil && base64.RawURLEncoding.EncodeToString(d) == s {
				t.Fatalf("canonical %q refused: %v", s, err)
			}
		}
	})
}
