package strict

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

// Errors of this package; the functions wrap them with detail. Compare with [errors.Is].
var (
	// ErrEncoding: a segment is not canonical unpadded base64url.
	ErrEncoding = errors.New("strict: not canonical base64url")
	// ErrDuplicate: an object holds the same member name twice.
	ErrDuplicate = errors.New("strict: duplicate JSON member")
	// ErrCaseVariant: a member name differs from a field of the target only in case.
	ErrCaseVariant = errors.New("strict: JSON member name differs from a known name only in case")
	// ErrSyntax: the input is not JSON, or nests deeper than [MaxDepth].
	ErrSyntax = errors.New("strict: malformed JSON")
	// ErrURL: a URL breaks the fetch rule of [FetchURL].
	ErrURL = errors.New("strict: URL not allowed")
)

// MaxDepth bounds the nesting of arrays and objects [Check] accepts. Nothing mandate reads
// from outside nests more than a few levels.
const MaxDepth = 64

// rawURL is strict unpadded base64url. It is never modified.
var rawURL = base64.RawURLEncoding.Strict()

// Segment decodes one segment of a compact JWS or JWE (RFC 7515 §2, RFC 7516 §2): unpadded
// base64url of RFC 4648 §5 in its canonical form only. Padding, white space, line breaks,
// characters outside the alphabet and a last character whose unused low bits are not zero are
// all refused: Go's decoder and go-jose accept some of them, which gives one signed content
// many encodings.
func Segment(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: a character outside the alphabet", ErrEncoding)
		}
	}
	b, err := rawURL.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrEncoding, "bad length or non-zero unused bits")
	}
	return b, nil
}

// Compact splits a compact JWS (three segments) and decodes every segment with [Segment]:
// the header and payload are returned, the signature is only checked for canonical form.
func Compact(raw string) (header, payload []byte, err error) {
	h, rest, ok1 := strings.Cut(raw, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(sig, '.') >= 0 {
		return nil, nil, fmt.Errorf("%w: not three segments", ErrEncoding)
	}
	if header, err = Segment(h); err != nil {
		return nil, nil, err
	}
	if payload, err = Segment(p); err != nil {
		return nil, nil, err
	}
	if !Canonical(sig) {
		return nil, nil, fmt.Errorf("%w: signature", ErrEncoding)
	}
	return header, payload, nil
}

// Canonical reports whether s is canonical unpadded base64url (what [Segment] accepts),
// without decoding it.
func Canonical(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	switch len(s) % 4 {
	case 1:
		return false
	case 2: // 12 bits, 8 used: the last character's low 4 bits must be zero
		return b64val(s[len(s)-1])&0x0f == 0
	case 3: // 18 bits, 16 used
		return b64val(s[len(s)-1])&0x03 == 0
	}
	return true
}

func b64val(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63
}

// Unmarshal decodes data into v with encoding/json after [Check].
func Unmarshal(data []byte, v any) error {
	return SchemaOf(v).Unmarshal(data, v)
}

// Check refuses JSON that encoding/json would read in a way its author may not have meant:
//
//   - an object, at any depth, holding the same member name twice (encoding/json keeps the
//     last; names are compared after unescaping, so "sub" and "s\u0075b" are the same name);
//   - a member whose name equals a field of the Go struct it would be decoded into (at that
//     depth of v's type) except for case (encoding/json matches names case-insensitively, so
//     a lone "Sub" would be read as sub);
//   - nesting deeper than [MaxDepth].
//
// v is the value data will be decoded into (only its type is used; nil checks duplicates
// only). Values whose type implements json.Unmarshaler are checked for duplicates only.
// Check does not validate everything else about the syntax: decode data afterwards (as
// [Unmarshal] does), and the decoder refuses what is not JSON. For a type checked often, keep
// its [Schema].
func Check(data []byte, v any) error {
	return SchemaOf(v).Check(data)
}

// Schema is the layout of member names of a Go type, worked out once so that many documents
// can be checked without reflection. It is immutable and safe for concurrent use.
type Schema struct {
	root *node
}

// node is what a JSON value decodes into: nil for anything untyped (interfaces, types that
// decode themselves, scalars), else a struct's fields or a container's element.
type node struct {
	isStruct bool
	fields   []fieldNode // isStruct: the exact member names encoding/json fills
	elem     *node       // maps, slices and arrays
}

type fieldNode struct {
	name  string
	ascii bool
	child *node
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// SchemaOf returns the Schema of v's type (nil v: untyped, duplicates only).
func SchemaOf(v any) *Schema {
	if v == nil {
		return &Schema{}
	}
	return &Schema{root: build(reflect.TypeOf(v), map[reflect.Type]*node{})}
}

// build returns the node of t; seen breaks cycles of recursive types.
func build(t reflect.Type, seen map[reflect.Type]*node) *node {
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return nil
		}
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	if n, ok := seen[t]; ok {
		return n
	}
	switch t.Kind() {
	case reflect.Struct:
		n := &node{isStruct: true}
		seen[t] = n
		addFields(n, t, seen, 0)
		return n
	case reflect.Map, reflect.Slice, reflect.Array:
		n := &node{}
		seen[t] = n
		n.elem = build(t.Elem(), seen)
		if n.elem == nil {
			if t.Kind() == reflect.Map {
				return n // an untyped map: duplicates only, like nil, but an object
			}
			delete(seen, t)
			return nil
		}
		return n
	}
	return nil
}

// addFields adds the fields encoding/json fills from t's members, promoted ones included.
func addFields(n *node, t reflect.Type, seen map[reflect.Type]*node, depth int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				if depth < 4 {
					addFields(n, et, seen, depth+1)
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		n.fields = append(n.fields, fieldNode{name: name, ascii: isASCII(name), child: build(f.Type, seen)})
	}
}

// Check is [Check] for the schema's type.
func (s *Schema) Check(data []byte) error {
	_, err := s.scan(data, nil, false)
	return err
}

// Names is [Schema.Check] for an object (anything else is [ErrSyntax]) that also appends its
// top-level member names to dst (unescaped; slices of data where no unescaping was needed).
func (s *Schema) Names(data []byte, dst [][]byte) ([][]byte, error) {
	return s.scan(data, dst, true)
}

// Unmarshal decodes data into v with encoding/json after [Schema.Check]; v must have the
// schema's type.
func (s *Schema) Unmarshal(data []byte, v any) error {
	if err := s.Check(data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return nil
}

func (s *Schema) scan(data []byte, dst [][]byte, names bool) ([][]byte, error) {
	sc := scanner{data: data, names: dst, collect: names}
	start := sc.space(0)
	if names && (start >= len(data) || data[start] != '{') {
		return dst, fmt.Errorf("%w: not an object", ErrSyntax)
	}
	i, err := sc.value(start, s.root, 0)
	if err != nil {
		return sc.names, err
	}
	if sc.space(i) != len(data) {
		return sc.names, fmt.Errorf("%w: data after the value", ErrSyntax)
	}
	return sc.names, nil
}

type scanner struct {
	data    []byte
	names   [][]byte // top-level names, when collect
	collect bool
}

func (s *scanner) space(i int) int {
	for i < len(s.data) {
		switch s.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value scans the value at data[i] (decoded into n) and returns the index after it.
func (s *scanner) value(i int, n *node, depth int) (int, error) {
	if i >= len(s.data) {
		return 0, fmt.Errorf("%w: unexpected end", ErrSyntax)
	}
	switch s.data[i] {
	case '{':
		if depth >= MaxDepth {
			return 0, fmt.Errorf("%w: nested too deeply", ErrSyntax)
		}
		return s.object(i, n, depth+1)
	case '[':
		if depth >= MaxDepth {
			return 0, fmt.Errorf("%w: nested too deeply", ErrSyntax)
		}
		var elem *node
		if n != nil && !n.isStruct {
			elem = n.elem
		}
		i = s.space(i + 1)
		if i < len(s.data) && s.data[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = s.value(i, elem, depth+1); err != nil {
				return 0, err
			}
			i = s.space(i)
			if i >= len(s.data) {
				return 0, fmt.Errorf("%w: unterminated array", ErrSyntax)
			}
			if s.data[i] == ']' {
				return i + 1, nil
			}
			if s.data[i] != ',' {
				return 0, fmt.Errorf("%w: expected , or ]", ErrSyntax)
			}
			i = s.space(i + 1)
		}
	case '"':
		end, _, ok := s.str(i)
		if !ok {
			return 0, fmt.Errorf("%w: unterminated string", ErrSyntax)
		}
		return end, nil
	}
	// A number or a literal: up to the next delimiter; the decoder checks its spelling.
	j := i
	for j < len(s.data) {
		switch s.data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', '"', '{', '[':
			if j == i {
				return 0, fmt.Errorf("%w: unexpected %q", ErrSyntax, s.data[j])
			}
			return j, nil
		}
		j++
	}
	return j, nil
}

// object scans the object at data[i] decoded into n (nil: untyped).
func (s *scanner) object(i int, n *node, depth int) (int, error) {
	var small [16][]byte
	names := small[:0]
	var seen map[string]struct{}
	top := depth == 1
	i = s.space(i + 1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(s.data) || s.data[i] != '"' {
			return 0, fmt.Errorf("%w: expected a member name", ErrSyntax)
		}
		end, plain, ok := s.str(i)
		if !ok {
			return 0, fmt.Errorf("%w: unterminated member name", ErrSyntax)
		}
		name := s.data[i+1 : end-1]
		if !plain {
			var u string
			if err := json.Unmarshal(s.data[i:end], &u); err != nil {
				return 0, fmt.Errorf("%w: bad member name", ErrSyntax)
			}
			name = []byte(u)
		}
		// Duplicates: linear for the usual small object, a set beyond.
		switch {
		case seen != nil:
			if _, dup := seen[string(name)]; dup {
				return 0, fmt.Errorf("%w: %s", ErrDuplicate, Echo(string(name)))
			}
			seen[string(name)] = struct{}{}
		case len(names) < len(small):
			for _, n := range names {
				if bytes.Equal(n, name) {
					return 0, fmt.Errorf("%w: %s", ErrDuplicate, Echo(string(name)))
				}
			}
			names = append(names, name)
		default:
			seen = make(map[string]struct{}, 2*len(names))
			for _, n := range names {
				seen[string(n)] = struct{}{}
			}
			if _, dup := seen[string(name)]; dup {
				return 0, fmt.Errorf("%w: %s", ErrDuplicate, Echo(string(name)))
			}
			seen[string(name)] = struct{}{}
		}
		if top && s.collect {
			s.names = append(s.names, name)
		}
		var child *node
		if n != nil {
			if n.isStruct {
				var variant bool
				child, variant = n.field(name, plain)
				if variant {
					return 0, fmt.Errorf("%w: %s", ErrCaseVariant, Echo(string(name)))
				}
			} else {
				child = n.elem
			}
		}
		i = s.space(end)
		if i >= len(s.data) || s.data[i] != ':' {
			return 0, fmt.Errorf("%w: expected a colon", ErrSyntax)
		}
		var err error
		if i, err = s.value(s.space(i+1), child, depth); err != nil {
			return 0, err
		}
		i = s.space(i)
		if i >= len(s.data) {
			return 0, fmt.Errorf("%w: unterminated object", ErrSyntax)
		}
		if s.data[i] == '}' {
			return i + 1, nil
		}
		if s.data[i] != ',' {
			return 0, fmt.Errorf("%w: expected , or }", ErrSyntax)
		}
		i = s.space(i + 1)
	}
}

// field returns the node of the struct field encoding/json fills from the member name, and
// whether name only case-folds to a field's name (a case variant). ascii says name is plain
// ASCII: against an ASCII field name, case folding is then a byte-wise ASCII comparison.
func (n *node) field(name []byte, ascii bool) (*node, bool) {
	for _, f := range n.fields {
		if string(name) == f.name {
			return f.child, false
		}
	}
	for _, f := range n.fields {
		if ascii && f.ascii {
			if len(name) == len(f.name) && asciiFold(name, f.name) {
				return nil, true
			}
		} else if bytes.EqualFold(name, []byte(f.name)) {
			return nil, true
		}
	}
	return nil, false
}

// asciiFold reports whether the ASCII strings a and b, of equal length, are equal ignoring case.
func asciiFold(a []byte, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// str scans the string at data[i] == '"' and returns the index after its closing quote, and
// whether its bytes are their own value (no escape, ASCII only).
func (s *scanner) str(i int) (end int, plain, ok bool) {
	plain = true
	for j := i + 1; j < len(s.data); j++ {
		switch c := s.data[j]; {
		case c == '\\':
			plain = false
			j++
		case c == '"':
			return j + 1, plain, true
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return 0, false, false
}

// LoopbackHost reports whether host (a URL's Hostname: no port, no brackets) is "localhost"
// or an IP address of the loopback network. Names that merely look like one
// ("127.evil.example", "127.0.0.1.nip.io", "foo.localhost") are not.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FetchURL checks a URL that keys or metadata are fetched from, or that names an issuer: an
// absolute https URL with a host, without user info or fragment; http only for a
// [LoopbackHost] (tests, local development).
func FetchURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrURL)
	}
	if u.Host == "" || u.Hostname() == "" || u.Fragment != "" || strings.Contains(s, "#") || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%w: must be an absolute URL with a host, without user info or fragment", ErrURL)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if LoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: http is only allowed for loopback hosts; use https", ErrURL)
	}
	return fmt.Errorf("%w: scheme must be https", ErrURL)
}

// Algorithms returns the JWS algorithms mandate signs with and accepts, in a fresh slice:
// asymmetric only (RS256, which RFC 9068 §2.1 makes mandatory, PS256, ES256, ES384, EdDSA);
// "none" and HMAC never, since an HMAC "signature" keyed with a public key's bytes would
// otherwise verify. Every list of algorithms in mandate is this one.
func Algorithms() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}
}

// MaxEcho is the most bytes of an outside value [Echo] returns.
const MaxEcho = 64

// Echo returns s as it may be quoted back in an error description: [Text] of at most
// [MaxEcho] bytes.
func Echo(s string) string { return Text(s, MaxEcho) }

// Text returns s cut to at most n bytes (marked with "...") and reduced to the characters RFC
// 6749 §5.2 allows in error_description, printable ASCII except '"' and '\\': a double quote
// becomes a single one, every other byte outside the set '?'.
func Text(s string, n int) string {
	cut := len(s) > n
	clean := !cut
	for i := 0; clean && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			clean = false
		}
	}
	if clean {
		return s
	}
	if cut {
		s = s[:n]
	}
	b := make([]byte, 0, len(s)+3)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			b = append(b, '\'')
		case c < 0x20 || c > 0x7e || c == '\\':
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	if cut {
		b = append(b, "..."...)
	}
	return string(b)
}
