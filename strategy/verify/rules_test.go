package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestVerifyAlgorithmAllowList: a configured Algorithms list is the allow-list; a token signed
// correctly with a published key but another algorithm is refused with ErrAlgorithm.
func TestVerifyAlgorithmAllowList(t *testing.T) {
	clk := newClock()
	rsaK, ecK, edK := newRSAKey(t, "rsa-1"), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaK.public(), ecK.public(), edK.public()}}
	for _, tt := range []struct {
		allow []jose.SignatureAlgorithm
		want  map[jose.SignatureAlgorithm]error
	}{
		{[]jose.SignatureAlgorithm{jose.ES256}, map[jose.SignatureAlgorithm]error{jose.RS256: ErrAlgorithm, jose.ES256: nil, jose.EdDSA: ErrAlgorithm}},
		{[]jose.SignatureAlgorithm{jose.EdDSA, jose.RS256}, map[jose.SignatureAlgorithm]error{jose.RS256: nil, jose.ES256: ErrAlgorithm, jose.EdDSA: nil}},
	} {
		v, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Keys: set, Now: clk.Now, Algorithms: tt.allow})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []testKey{rsaK, ecK, edK} {
			_, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt(testIssuer, clk.Now())))
			if want := tt.want[k.alg]; (want == nil) != (err == nil) || !errors.Is(err, want) {
				t.Errorf("allow %v, token %s: %v; want %v", tt.allow, k.alg, err, want)
			}
		}
	}
}

// TestVerifyLeewayConfigured: Config.Leeway, not the default, bounds exp, nbf and iat.
func TestVerifyLeewayConfigured(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	now := clk.Now()
	for _, tt := range []struct {
		name   string
		leeway time.Duration
		claim  string
		at     time.Duration // claim = now + at
		want   error
	}{
		{"2m: expired 90s ago", 2 * time.Minute, "exp", -90 * time.Second, nil},
		{"2m: expired 121s ago", 2 * time.Minute, "exp", -121 * time.Second, ErrExpired},
		{"2m: nbf in 90s", 2 * time.Minute, "nbf", 90 * time.Second, nil},
		{"2m: nbf in 121s", 2 * time.Minute, "nbf", 121 * time.Second, ErrNotYetValid},
		{"2m: iat in 90s", 2 * time.Minute, "iat", 90 * time.Second, nil},
		{"2m: iat in 121s", 2 * time.Minute, "iat", 121 * time.Second, ErrNotYetValid},
		{"1s: expired 20s ago", time.Second, "exp", -20 * time.Second, ErrExpired},
		{"1s: nbf in 20s", time.Second, "nbf", 20 * time.Second, ErrNotYetValid},
		{"1s: iat in 20s", time.Second, "iat", 20 * time.Second, ErrNotYetValid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newStaticVerifier(t, clk, k, func(c *Config) { c.Leeway = tt.leeway })
			c := claimsAt(testIssuer, now)
			c[tt.claim] = now.Add(tt.at).Unix()
			_, err := v.Verify(context.Background(), k.token(t, k.header(), c))
			if (tt.want == nil) != (err == nil) || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
		})
	}
}

// TestKeyHeadersNeverFollowed: tokens naming keys by URL (jku, x5u) or carrying them (jwk, x5c)
// are refused, and the URLs are never fetched — even when the token is otherwise valid and
// signed by a published key, or signed by the embedded attacker key.
func TestKeyHeadersNeverFollowed(t *testing.T) {
	var hits atomic.Int64
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "never ask me", http.StatusTeapot)
	}))
	defer canary.Close()
	e := newEnv(t)
	jwksBefore := e.iss.jwksHits.Load()
	attacker := newRSAKey(t, "rsa-1") // claims a published kid
	attackerJWK := attacker.public()
	for _, tt := range []struct {
		name   string
		signer testKey
		extra  map[string]any
	}{
		{"jku, published key", e.rsaK, map[string]any{"jku": canary.URL + "/jwks"}},
		{"jku, attacker key", attacker, map[string]any{"jku": canary.URL + "/jwks"}},
		{"x5u, published key", e.rsaK, map[string]any{"x5u": canary.URL + "/cert.pem"}},
		{"x5u, attacker key", attacker, map[string]any{"x5u": canary.URL + "/cert.pem"}},
		{"jwk, attacker key", attacker, map[string]any{"jwk": attackerJWK}},
		{"x5c, attacker key", attacker, map[string]any{"x5c": []string{"MIIBszCCAVmgAwIBAgIU"}}},
		{"jku and jwk", attacker, map[string]any{"jku": canary.URL, "jwk": attackerJWK}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.signer.header()
			for k, v := range tt.extra {
				h[k] = v
			}
			tok := tt.signer.token(t, h, e.claims())
			c, err := e.v.Verify(context.Background(), tok)
			if !errors.Is(err, ErrMalformed) || c != nil {
				t.Fatalf("Verify = %v, %v; want ErrMalformed", c, err)
			}
			if strings.Contains(err.Error(), canary.URL) {
				t.Errorf("error repeats the header's URL: %v", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the URL in a token header was fetched %d times", n)
	}
	if n := e.iss.jwksHits.Load() - jwksBefore; n != 0 {
		t.Errorf("tokens with key headers caused %d JWKS fetches", n)
	}
}
