package verify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestStaticKeySet(t *testing.T) {
	ec, ed := newECKey(t, "ec"), newEdKey(t, "ed")
	noUse := ed.public()
	noUse.Use, noUse.Algorithm = "", ""
	enc := ec.public()
	enc.Use = "enc"
	priv := jose.JSONWebKey{Key: ec.priv, KeyID: "priv"}
	sym := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "sym"}

	ks, err := NewStaticKeySet(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{noUse, enc, priv, sym}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kid string
		alg jose.SignatureAlgorithm
		ok  bool
	}{
		{"ed", jose.EdDSA, true},  // no use: accepted
		{"", jose.EdDSA, true},    // no kid, one fitting key
		{"ed", jose.ES256, false}, // alg does not fit the key
		{"ec", jose.ES256, false}, // use enc: left out
		{"priv", jose.ES256, false},
		{"sym", jose.HS256, false},
	} {
		k, err := ks.Key(context.Background(), c.kid, c.alg)
		if c.ok != (err == nil) || (err == nil) != (k != nil) {
			t.Errorf("kid %q alg %s: key %v, err %v", c.kid, c.alg, k != nil, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("kid %q: err %v, want ErrUnknownKey", c.kid, err)
		}
	}
	for _, set := range []*jose.JSONWebKeySet{nil, {}, {Keys: []jose.JSONWebKey{enc, priv, sym}}} {
		if _, err := NewStaticKeySet(set); !errors.Is(err, ErrConfig) {
			t.Errorf("unusable set: err %v", err)
		}
	}
}

func TestRemoteKeySet(t *testing.T) {
	k1, k2 := newECKey(t, "k1"), newEdKey(t, "k2")
	iss := newFakeIssuer(t, k1)
	c := newClock()
	if _, err := NewRemoteKeySet(context.Background(), "ftp://x/jwks", KeySetConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad URL: %v", err)
	}
	ks, err := NewRemoteKeySet(context.Background(), iss.issuer+"/jwks", KeySetConfig{HTTPClient: iss.srv.Client(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if iss.jwksHits.Load() != 0 {
		t.Fatal("NewRemoteKeySet fetched")
	}
	// Concurrent first uses share one fetch.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ks.Key(context.Background(), "k1", jose.ES256); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := iss.jwksHits.Load(); n != 1 {
		t.Fatalf("%d fetches for 10 concurrent first uses", n)
	}
	iss.publish(k2)
	if _, err := ks.Key(context.Background(), "k2", jose.EdDSA); err != nil {
		t.Fatalf("new key after an unknown-kid refetch: %v", err)
	}
	// Unknown kids: the next refetch waits for the minimum interval.
	for range 5 {
		if _, err := ks.Key(context.Background(), "nope", jose.ES256); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := iss.jwksHits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	c.Add(DefaultMinRefreshInterval + time.Second)
	_, _ = ks.Key(context.Background(), "nope", jose.ES256)
	if n := iss.jwksHits.Load(); n != 3 {
		t.Fatalf("%d fetches after the interval, want 3", n)
	}
	// An issuer that is down: the last good set is kept.
	iss.down.Store(true)
	c.Add(2 * DefaultRefreshInterval)
	if _, err := ks.Key(context.Background(), "k1", jose.ES256); err != nil {
		t.Fatalf("cached key while the issuer is down: %v", err)
	}
	// Never fetched: ErrKeysUnavailable.
	dead, _ := NewRemoteKeySet(context.Background(), iss.issuer+"/jwks", KeySetConfig{HTTPClient: iss.srv.Client(), Now: c.Now})
	if _, err := dead.Key(context.Background(), "k1", jose.ES256); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("down from the start: %v", err)
	}
}
