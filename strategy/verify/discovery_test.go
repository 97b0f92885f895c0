package verify

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestDiscover: the metadata of an issuer with a path is read from the path-inserted
// well-known URL; a document for another issuer, with a duplicate member, or naming a token
// endpoint or key set that may not be fetched is refused.
func TestDiscover(t *testing.T) {
	f := newFakeIssuer(t, newECKey(t, "k1"))
	ctx := context.Background()
	md, err := Discover(ctx, f.srv.Client(), f.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != f.issuer || md.JWKSURI != f.issuer+"/jwks" || md.TokenEndpoint != "" {
		t.Fatalf("metadata %+v", md)
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"another issuer", `{"issuer":"https://evil.example","jwks_uri":"https://evil.example/jwks"}`, "does not equal"},
		{"duplicate issuer", `{"issuer":"https://evil.example","issuer":"` + f.issuer + `"}`, "not valid JSON"},
		{"case variant", `{"issuer":"` + f.issuer + `","Token_Endpoint":"https://evil.example/token"}`, "not valid JSON"},
		{"plain http token endpoint", `{"issuer":"` + f.issuer + `","token_endpoint":"http://as.example/token"}`, "token_endpoint"},
		{"jwks_uri with a fragment", `{"issuer":"` + f.issuer + `","jwks_uri":"https://as.example/jwks#x"}`, "jwks_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.metaRaw = []byte(tc.doc)
			f.mu.Unlock()
			if _, err := Discover(ctx, f.srv.Client(), f.issuer); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Discover = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Discover(ctx, nil, "http://as.example"); !errors.Is(err, ErrConfig) {
		t.Fatalf("an http issuer on a non-loopback host: %v", err)
	}
}

// TestIssuerKeySet: the keys of an issuer are found through its metadata, fetched at first use,
// and a new kid triggers a refetch.
func TestIssuerKeySet(t *testing.T) {
	k1, k2 := newECKey(t, "k1"), newEdKey(t, "k2")
	f := newFakeIssuer(t, k1)
	ks, err := NewIssuerKeySet(context.Background(), f.issuer, KeySetConfig{HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if f.metaHits.Load() != 0 || f.jwksHits.Load() != 0 {
		t.Fatal("NewIssuerKeySet fetched before first use")
	}
	if k, err := ks.Key(context.Background(), "k1", k1.alg); err != nil || k.KeyID != "k1" {
		t.Fatalf("k1: %v %v", k, err)
	}
	f.publish(k2)
	if k, err := ks.Key(context.Background(), "k2", k2.alg); err != nil || k.KeyID != "k2" {
		t.Fatalf("k2 after rotation: %v %v", k, err)
	}
	if f.metaHits.Load() != 1 {
		t.Fatalf("metadata fetched %d times, want once", f.metaHits.Load())
	}
	if _, err := NewIssuerKeySet(context.Background(), "https://as.example/?q", KeySetConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("issuer with a query: %v", err)
	}
}
