package strategy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// TestMintGrant: a JWT authorization grant has typ JWT, the peer as its one aud, a fresh jti,
// a capped exp and exactly the transcribed claims; keys without the standard library's types
// sign it too. Neither a resource server's verifier nor this server's own access-token check
// takes it for an access token.
func TestMintGrant(t *testing.T) {
	clock := newClock()
	for _, opaque := range []bool{false, true} {
		t.Run(fmt.Sprintf("opaque=%v", opaque), func(t *testing.T) {
			priv := newPrivateKey(t, jose.ES256)
			if opaque {
				priv = &opaqueSigner{Signer: priv}
			}
			key, err := NewSigningKey("k1", jose.ES256, priv)
			if err != nil {
				t.Fatal(err)
			}
			keys, _ := StaticKeys(key)
			j := newStrategy(t, keys, clock.Now)
			notAfter := clock.Now().Add(2 * time.Minute)
			g := Grant{
				Audience: "https://as.y.example", Subject: "svc", TTL: 5 * time.Minute, NotAfter: notAfter,
				Scopes: []string{"stock:read"}, Act: &Actor{Subject: "orders-api", Act: &Actor{Subject: "gw", Issuer: "https://idp.example"}},
				Claims: map[string]any{"client_id": "orders-api", "tenant": "t-1"},
			}
			m, err := j.MintGrant(context.Background(), g)
			if err != nil {
				t.Fatal(err)
			}
			header, claims := decodeJWS(t, m.Token)
			if want := map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"}; !reflect.DeepEqual(header, want) {
				t.Errorf("header = %v, want %v", header, want)
			}
			now := clock.Now().Unix()
			want := map[string]any{
				"iss": "https://as.example/oauth2", "sub": "svc", "aud": "https://as.y.example",
				"exp": json.Number(fmt.Sprint(notAfter.Unix())), "iat": json.Number(fmt.Sprint(now)), "jti": claims["jti"],
				"scope": "stock:read", "client_id": "orders-api", "tenant": "t-1",
				"act": map[string]any{"sub": "orders-api", "act": map[string]any{"sub": "gw", "iss": "https://idp.example"}},
			}
			if !reflect.DeepEqual(claims, want) {
				t.Errorf("claims =\n%v\nwant\n%v", claims, want)
			}
			if jti, _ := claims["jti"].(string); len(jti) != 22 || m.Signature != "" || !m.ExpiresAt.Equal(notAfter.Truncate(time.Second)) {
				t.Errorf("jti %q, signature %q, expires %v", jti, m.Signature, m.ExpiresAt)
			}
			pub, _ := keys.PublicKeys(context.Background())
			jws, err := jose.ParseSignedCompact(m.Token, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(&pub[0]); err != nil {
				t.Errorf("the published key does not verify the grant: %v", err)
			}
			if _, err := j.VerifyAccessToken(context.Background(), m.Token); !errors.Is(err, fosite.ErrInvalidTokenFormat) {
				t.Errorf("VerifyAccessToken took the grant: %v", err)
			}
			v, err := verify.New(context.Background(), verify.Config{Issuer: "https://as.example/oauth2", Audience: "https://as.y.example",
				Keys: &jose.JSONWebKeySet{Keys: pub}, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), m.Token); !errors.Is(err, verify.ErrType) {
				t.Errorf("a resource server took the grant for an access token: %v", err)
			}
		})
	}
	keys, _ := StaticKeys(newTestKey(t, "k1", jose.EdDSA))
	j := newStrategy(t, keys, clock.Now)
	for _, tc := range []struct {
		name string
		g    Grant
	}{
		{"no audience", Grant{Subject: "s", TTL: time.Minute}},
		{"no subject", Grant{Audience: "https://y", TTL: time.Minute}},
		{"no TTL", Grant{Audience: "https://y", Subject: "s"}},
		{"NotAfter passed", Grant{Audience: "https://y", Subject: "s", TTL: time.Minute, NotAfter: clock.Now().Add(-time.Second)}},
		{"a claim of its own", Grant{Audience: "https://y", Subject: "s", TTL: time.Minute, Claims: map[string]any{"aud": "https://z"}}},
		{"actor without sub", Grant{Audience: "https://y", Subject: "s", TTL: time.Minute, Act: &Actor{Act: &Actor{Subject: "x"}}}},
		{"unknown algorithm", Grant{Audience: "https://y", Subject: "s", TTL: time.Minute, SigningAlg: "RS256"}},
	} {
		if _, err := j.MintGrant(context.Background(), tc.g); err == nil {
			t.Errorf("%s: a grant was minted", tc.name)
		}
	}
}

// TestMintTranscribed: what an RFC 7523 grant transcribed into the session (act, application
// claims) appears in the access token; a registered claim, an act the policy sets too, or a
// claim a mapper sets too fails the request.
func TestMintTranscribed(t *testing.T) {
	clock := newClock()
	keys, _ := StaticKeys(newTestKey(t, "k1", jose.ES256))
	var seen *Actor
	mapper := ClaimMapperFunc(func(_ context.Context, r TokenRequest) (map[string]any, error) {
		seen = r.Act
		return map[string]any{"roles": []string{"reader"}}, nil
	})
	j := newStrategy(t, keys, clock.Now, mapper)
	sess := func(tr map[string]any) *storage.Session {
		return &storage.Session{Subject: "svc", Transcribed: tr}
	}
	act := map[string]any{"sub": "orders-api", "iss": "https://as.x.example"}
	m, err := j.Mint(context.Background(), newRequest(sess(map[string]any{"act": act, "tenant": "t-1"}), "urn:ietf:params:oauth:grant-type:jwt-bearer"), testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	_, claims := decodeJWS(t, m.Token)
	if !reflect.DeepEqual(claims["act"], act) || claims["tenant"] != "t-1" || claims["roles"] == nil {
		t.Fatalf("claims %v", claims)
	}
	if seen == nil || seen.Subject != "orders-api" || seen.Issuer != "https://as.x.example" {
		t.Errorf("the claim mapper saw act %+v", seen)
	}
	for name, tc := range map[string]struct {
		tr map[string]any
		p  Policy
	}{
		"registered claim":  {map[string]any{"scope": "admin"}, testPolicy},
		"act twice":         {map[string]any{"act": act}, Policy{Audience: testPolicy.Audience, TTL: time.Minute, Act: &Actor{Subject: "x"}}},
		"mapper's claim":    {map[string]any{"roles": "admin"}, testPolicy},
		"act without sub":   {map[string]any{"act": map[string]any{"iss": "https://as.x.example"}}, testPolicy},
		"act not an object": {map[string]any{"act": "orders-api"}, testPolicy},
	} {
		if _, err := j.Mint(context.Background(), newRequest(sess(tc.tr), "urn:ietf:params:oauth:grant-type:jwt-bearer"), tc.p); err == nil || !strings.Contains(err.Error(), "strategy:") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Policy.JKT binds the token: cnf.jkt, in the token and in the session of an encrypted one.
func TestMintBound(t *testing.T) {
	clock := newClock()
	keys, _ := StaticKeys(newTestKey(t, "k1", jose.ES256))
	j := newStrategy(t, keys, clock.Now)
	p := testPolicy
	p.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	sess := &storage.Session{Subject: "alice"}
	m, err := j.Mint(context.Background(), newRequest(sess, "client_credentials"), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := decodeJWS(t, m.Token); !reflect.DeepEqual(claims["cnf"], map[string]any{"jkt": p.JKT}) {
		t.Fatalf("cnf = %v", claims["cnf"])
	}
	m, err = j.Mint(context.Background(), newRequest(sess, "client_credentials"), testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := decodeJWS(t, m.Token); claims["cnf"] != nil {
		t.Fatalf("an unbound token has cnf %v", claims["cnf"])
	}
}
