package handlers

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

func TestParseIndicator(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		hint string
	}{
		{"https://orders.example.com/", true, ""},
		{"https://orders.example.com", true, ""},
		{"https://orders.example.com:8443/api/v1", true, ""},
		{"http://127.0.0.1:9401/", true, ""},
		{"https://api.example.com/a?x=1", true, ""},
		{"", false, "empty"},
		{"/orders", false, "absolute"},
		{"orders.example.com", false, "absolute"},
		{"https://orders.example.com/#frag", false, "fragment"},
		{"https://orders.example.com/#", false, "fragment"},
		{"urn:example:orders", false, "http or https"},
		{"ftp://orders.example.com/", false, "http or https"},
		{"javascript:alert(1)", false, "http or https"},
		{"https:///path", false, "host"},
		{"https://user:pw@orders.example.com/", false, "user information"},
		{"https://orders.example.com/a/../b", false, "dot segments"},
		{"https://orders.example.com/./b", false, "dot segments"},
		{"https://orders.example.com/%2e%2e/b", false, ""},
		{"https://orders.example.com/%6Frders", false, "percent-encode"},
		{"https://orders.example.com/a b", false, "white space"},
		{"https://orders.example.com/\x00", false, "control"},
		{"https://orders.example.com\\@evil.example/", false, "backslash"},
		{"https://orders.example.com/" + strings.Repeat("a", MaxIndicatorLength), false, "longer"},
		{"https://orders.example.com/%zz", false, "valid URI"},
	}
	for _, tc := range cases {
		t.Run(tc.in[:min(len(tc.in), 40)], func(t *testing.T) {
			err := ParseIndicator(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseIndicator(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("error %v is not invalid_target", err)
			}
			desc := fosite.ErrorToRFC6749Error(err).GetDescription()
			if tc.hint != "" && !strings.Contains(desc, tc.hint) {
				t.Errorf("description %q does not mention %q", desc, tc.hint)
			}
		})
	}
}

func TestIndicators(t *testing.T) {
	got, err := Indicators(url.Values{"resource": {"https://a.example/", "https://b.example/", "https://a.example/"}})
	if err != nil || !slices.Equal(got, []string{"https://a.example/", "https://b.example/"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := Indicators(url.Values{"resource": {"https://a.example/", ""}}); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("empty value: %v", err)
	}
	if got, err := Indicators(url.Values{}); err != nil || len(got) != 0 {
		t.Fatalf("none: %v %v", got, err)
	}
}

// fakeResources is an in-memory ResourceLookup.
type fakeResources []storage.ResourceServer

func (f fakeResources) ResourceServer(_ context.Context, id string) (*storage.ResourceServer, error) {
	for i := range f {
		if f[i].Identifier == id {
			return f[i].Clone(), nil
		}
	}
	return nil, storage.ErrNotFound
}

func (f fakeResources) ResourceServers(context.Context) ([]storage.ResourceServer, error) {
	return slices.Clone(f), nil
}

func TestResolverForToken(t *testing.T) {
	a, b, c := "https://a.example/", "https://b.example/", "https://c.example/"
	rsDefault := fakeResources{{Identifier: a, Default: true, Scopes: []string{"a"}}, {Identifier: b, Scopes: []string{"b"}}, {Identifier: c}}
	rsNoDefault := fakeResources{{Identifier: a}, {Identifier: b}}
	client := &storage.Client{ID: "x", Resources: []string{a, b}}
	cases := []struct {
		name       string
		resources  fakeResources
		indicators []string
		granted    []string
		want       string
		hint       string
	}{
		{"named and allowed", rsDefault, []string{b}, nil, b, ""},
		{"none: the default", rsDefault, nil, nil, a, ""},
		{"none and no default", rsNoDefault, nil, nil, "", "no default"},
		{"not allowed", rsDefault, []string{c}, nil, "", "not allowed"},
		{"unknown", rsDefault, []string{"https://z.example/"}, nil, "", "not a registered"},
		{"prefix is not a match", rsDefault, []string{"https://a.example/x"}, nil, "", "not a registered"},
		{"several", rsDefault, []string{a, b}, nil, "", "Only one"},
		{"narrowing within the grant", rsDefault, []string{b}, []string{a, b}, b, ""},
		{"widening beyond the grant", rsDefault, []string{b}, []string{a}, "", "not granted"},
		{"none: default in the grant", rsDefault, nil, []string{b, a}, a, ""},
		{"none: the only granted one", rsDefault, nil, []string{b}, b, ""},
		{"none: several granted, no default among them", rsNoDefault, nil, []string{a, b}, "", "several"},
		{"empty grant", rsDefault, nil, []string{}, "", "may not use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Resolver{Resources: tc.resources}.ForToken(context.Background(), client, tc.indicators, tc.granted)
			if tc.want != "" {
				if err != nil || rs.Identifier != tc.want {
					t.Fatalf("got %v, %v; want %s", rs, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("got %v, %v; want invalid_target", rs, err)
			}
			if d := fosite.ErrorToRFC6749Error(err).GetDescription(); !strings.Contains(d, tc.hint) {
				t.Errorf("description %q, want it to mention %q", d, tc.hint)
			}
		})
	}
}

func TestResolverForAuthorization(t *testing.T) {
	a, b := "https://a.example/", "https://b.example/"
	res := fakeResources{{Identifier: a, Default: true}, {Identifier: b}}
	client := &storage.Client{ID: "x", Resources: []string{a, b}}
	got, err := Resolver{Resources: res}.ForAuthorization(context.Background(), client, []string{b, a})
	if err != nil || len(got) != 2 || got[0].Identifier != b || got[1].Identifier != a {
		t.Fatalf("got %v %v", got, err)
	}
	got, err = Resolver{Resources: res}.ForAuthorization(context.Background(), client, nil)
	if err != nil || len(got) != 1 || got[0].Identifier != a {
		t.Fatalf("default: %v %v", got, err)
	}
	_, err = Resolver{Resources: res}.ForAuthorization(context.Background(), &storage.Client{ID: "y", Resources: []string{b}}, nil)
	if !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("default not allowed: %v", err)
	}
}

func TestGrantScopes(t *testing.T) {
	rs := &storage.ResourceServer{Identifier: "https://a.example/", Scopes: []string{"read", "write", "admin"}}
	client := []string{"read", "write", "other"}
	if got, err := GrantScopes(nil, client, rs); err != nil || !slices.Equal(got, []string{"read", "write"}) {
		t.Fatalf("none requested: %v %v", got, err)
	}
	if got, err := GrantScopes([]string{"write", "write"}, client, rs); err != nil || !slices.Equal(got, []string{"write"}) {
		t.Fatalf("requested: %v %v", got, err)
	}
	for _, bad := range [][]string{{"admin"}, {"other"}, {"read", "nope"}} {
		if _, err := GrantScopes(bad, client, rs); !errors.Is(err, fosite.ErrInvalidScope) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}

func FuzzParseIndicator(f *testing.F) {
	for _, s := range []string{"https://a.example/", "http://127.0.0.1:1/x?y#z", "%2e%2E", "https://a/%41", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ParseIndicator(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("non-invalid_target error %v", err)
			}
			return
		}
		// Whatever passes is an absolute http(s) URI with a host and no fragment.
		u, perr := url.Parse(s)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(s, "#") || len(s) > MaxIndicatorLength {
			t.Fatalf("accepted %q", s)
		}
	})
}

// downResources is a resource store that cannot be reached.
type downResources struct{}

func (downResources) ResourceServer(context.Context, string) (*storage.ResourceServer, error) {
	return nil, storage.ErrUnavailable
}

func (downResources) ResourceServers(context.Context) ([]storage.ResourceServer, error) {
	return nil, storage.ErrUnavailable
}

// TestResolverStoreDown: a store that cannot be reached is never answered as a statement about
// the request (invalid_target): every resolution returns an error that carries the store's.
func TestResolverStoreDown(t *testing.T) {
	a, b := "https://a.example/", "https://b.example/"
	client := &storage.Client{ID: "x", Resources: []string{a, b}}
	r := Resolver{Resources: downResources{}}
	for name, call := range map[string]func() error{
		"token, named":           func() error { _, err := r.ForToken(context.Background(), client, []string{a}, nil); return err },
		"token, default":         func() error { _, err := r.ForToken(context.Background(), client, nil, nil); return err },
		"token, one granted":     func() error { _, err := r.ForToken(context.Background(), client, nil, []string{a}); return err },
		"token, several granted": func() error { _, err := r.ForToken(context.Background(), client, nil, []string{a, b}); return err },
		"authorization, named":   func() error { _, err := r.ForAuthorization(context.Background(), client, []string{a}); return err },
		"authorization, default": func() error { _, err := r.ForAuthorization(context.Background(), client, nil); return err },
		"token, named within the grant": func() error {
			_, err := r.ForToken(context.Background(), client, []string{a}, []string{a, b})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if errors.Is(err, ErrInvalidTarget) || !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("got %v, want the store's error, not invalid_target", err)
			}
		})
	}
}
