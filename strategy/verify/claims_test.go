package verify

import (
	"errors"
	"slices"
	"testing"
)

func TestDecodeAudience(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
		err  error
	}{
		{`"https://a/"`, []string{"https://a/"}, nil},
		{` "https://a/" `, []string{"https://a/"}, nil},
		{`"\u0068ttps://a/"`, []string{"https://a/"}, nil},
		{`"a\"b"`, []string{`a"b`}, nil},
		{`["x","y"]`, []string{"x", "y"}, nil},
		{`[]`, []string{}, nil},
		{`null`, nil, ErrMissingClaim},
		{``, nil, ErrMissingClaim},
		{`1`, nil, ErrAudience},
		{`{"a":1}`, nil, ErrAudience},
		{`[1]`, nil, ErrAudience},
		{`["x",null]`, nil, ErrAudience},
		{`[["x"]]`, nil, ErrAudience},
		{`true`, nil, ErrAudience},
	}
	for _, tt := range tests {
		got, err := decodeAudience([]byte(tt.raw))
		if !errors.Is(err, tt.err) || (tt.err == nil && !slices.Equal(got, tt.want)) {
			t.Errorf("decodeAudience(%s) = %q, %v; want %q, %v", tt.raw, got, err, tt.want, tt.err)
		}
	}
}

func TestCaseVariant(t *testing.T) {
	for n, want := range map[string]bool{
		"exp": false, "EXP": true, "Client_ID": true, "ſcope": true, "ſub": true, "roles": false,
		"expires": false, "aud ": false, "": false, "client_id": false, "AUTH_TIME": true,
	} {
		err := checkNames([]byte(`{"` + n + `":1}`))
		if got := errors.Is(err, ErrMalformed); got != want {
			t.Errorf("checkNames with member %q = %v", n, err)
		}
	}
}

func TestClaimsHelpers(t *testing.T) {
	for _, tt := range []struct {
		scope  string
		scopes []string
		has    map[string]bool
	}{
		{"", nil, map[string]bool{"": false, "a": false}},
		{"   ", nil, map[string]bool{"": false, " ": false}},
		{"a", []string{"a"}, map[string]bool{"a": true, "A": false, "": false}},
		{"a  b", []string{"a", "b"}, map[string]bool{"a": true, "b": true, "": false, "a b": false}},
		{"orders:read orders:write", []string{"orders:read", "orders:write"},
			map[string]bool{"orders:read": true, "orders": false, "read": false, "orders:read orders:write": false}},
	} {
		c := &Claims{Scope: tt.scope}
		got := c.Scopes()
		if !slices.Equal(got, tt.scopes) || (tt.scopes == nil) != (got == nil) {
			t.Errorf("Scopes(%q) = %#v, want %#v", tt.scope, got, tt.scopes)
		}
		for s, want := range tt.has {
			if c.HasScope(s) != want {
				t.Errorf("HasScope(%q) with scope %q = %v, want %v", s, tt.scope, !want, want)
			}
		}
	}
}

func TestClaimsRawAndDecode(t *testing.T) {
	c := &Claims{raw: []byte(`{"roles":["admin"],"tenant":"t1","n":1}`)}
	raw := c.Raw()
	raw[2] = 'X'
	var app struct {
		Roles  []string `json:"roles"`
		Tenant string   `json:"tenant"`
	}
	if err := c.Decode(&app); err != nil || app.Tenant != "t1" || !slices.Equal(app.Roles, []string{"admin"}) {
		t.Fatalf("Decode after changing Raw's copy = %+v, %v", app, err)
	}
	var wrong struct {
		N string `json:"n"`
	}
	if err := c.Decode(&wrong); err == nil {
		t.Fatal("Decode into a mismatching type succeeded")
	}
}
