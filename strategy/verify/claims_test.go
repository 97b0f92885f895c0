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
		if got := caseVariant([]byte(n)); got != want {
			t.Errorf("caseVariant(%q) = %v", n, got)
		}
	}
}
