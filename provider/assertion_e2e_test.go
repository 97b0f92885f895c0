package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

const (
	jwtBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	idpIssuer     = "https://idp.partner.example"
)

// signingKey is a private key that signs assertions.
type signingKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func genKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) signingKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{priv: priv, alg: alg, kid: kid}
}

func (k signingKey) jwks() *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid}}}
}

func (k signingKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

var jtiSeq atomic.Int64

// assertionClaims returns valid claims for iss/sub addressed to as's token endpoint.
func (as *testAS) assertionClaims(iss, sub string, kv ...any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": iss, "sub": sub, "aud": as.endpoint("token"),
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d-%d", now.UnixNano(), jtiSeq.Add(1)),
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func (as *testAS) saveTrust(tr storage.Trust) {
	as.t.Helper()
	if err := as.store.SaveTrust(context.Background(), &tr); err != nil {
		as.t.Fatal(err)
	}
}

func (as *testAS) saveClient(c storage.Client) {
	as.t.Helper()
	if err := as.store.SaveClient(context.Background(), &c); err != nil {
		as.t.Fatal(err)
	}
}

// bearerAS is a provider with a trust in idpIssuer for subject svc-a (orders only), and a
// confidential client allowed the jwt-bearer grant.
func bearerAS(t *testing.T, as *testAS, idp signingKey) {
	as.saveTrust(storage.Trust{
		ID: "idp-svc-a", Issuer: idpIssuer, Subject: "svc-a", JWKS: idp.jwks(),
		Scopes: []string{"orders:read", "billing:read"}, Resources: []string{orders, billing},
	})
	hash, err := as.p.Hasher().Hash(context.Background(), []byte("bearer-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	as.saveClient(storage.Client{
		ID: "bearer-client", SecretHash: hash, GrantTypes: []string{jwtBearer},
		Scopes: []string{"orders:read"}, Resources: []string{orders},
	})
}

func TestJWTBearerWithXOAuth2(t *testing.T) {
	as := newAS(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	const iss = "svc-account@partner.example"
	as.saveTrust(storage.Trust{
		ID: "x-oauth2", Issuer: iss, AllowAnySubject: true,
		JWKS:   &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "sa-1"}}},
		Scopes: []string{"orders:read"}, Resources: []string{orders}, JTIOptional: true,
	})
	tokenURL := as.endpoint("token")
	cfg := &jwt.Config{
		Email: iss, Subject: "user-42", PrivateKey: pemKey, PrivateKeyID: "sa-1", // iss, sub, key
		TokenURL: tokenURL, Expires: 4 * time.Minute, // at most 5 minutes without jti
	}
	tok, err := cfg.TokenSource(context.Background()).Token()
	if err != nil {
		t.Fatal(err)
	}
	_, c := as.verifyIndependently(tok.AccessToken, orders)
	if c["sub"] != "user-42" || c["aud"] != orders || c["client_id"] != iss || c["scope"] != "orders:read" {
		t.Fatalf("claims %v", c)
	}
	if tok.Extra("resource") != orders {
		t.Fatalf("resource %v", tok.Extra("resource"))
	}
	// Its default one-hour lifetime is too long for an assertion without jti.
	cfg.Expires = 0
	_, err = cfg.TokenSource(context.Background()).Token()
	var re *oauth2.RetrieveError
	// x/oauth2/jwt does not parse the error body into ErrorCode.
	if !asRetrieveError(err, &re) || re.Response.StatusCode != 400 || !strings.Contains(string(re.Body), `"invalid_grant"`) || !strings.Contains(string(re.Body), "without jti") {
		t.Fatalf("one-hour assertion without jti: %v", err)
	}
}

func asRetrieveError(err error, re **oauth2.RetrieveError) bool {
	e, ok := err.(*oauth2.RetrieveError)
	if ok {
		*re = e
	}
	return ok
}

func TestJWTBearerHandBuilt(t *testing.T) {
	as := newAS(t)
	idp := genKey(t, jose.ES256, "idp-1")
	stranger := genKey(t, jose.ES256, "stranger-1")
	bearerAS(t, as, idp)
	as.saveTrust(storage.Trust{ID: "stranger", Issuer: "https://stranger.example", AllowAnySubject: true, JWKS: stranger.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}})
	as.saveTrust(storage.Trust{ID: "expired", Issuer: idpIssuer, Subject: "gone", JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}, ExpiresAt: time.Now().Add(-time.Hour)})

	// Success: the token's aud is the resource (never the token URL), its sub the assertion's.
	f := url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "resource": {billing}}
	resp, m := as.post("token", f, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if _, ok := m["refresh_token"]; ok {
		t.Fatal("jwt-bearer issued a refresh token")
	}
	_, c := as.verifyIndependently(m["access_token"].(string), billing)
	if c["sub"] != "svc-a" || c["aud"] != billing || c["scope"] != "billing:read" || c["client_id"] != idpIssuer {
		t.Fatalf("claims %v", c)
	}
	// Without client authentication the token is persisted too: introspection answers for it
	// with its own claims (its client_id, the issuer, is no registered client).
	if _, im := as.post("introspect", url.Values{"token": {m["access_token"].(string)}}, "rs", "rs-secret-0123456789"); im["active"] != true || im["client_id"] != idpIssuer || im["sub"] != "svc-a" || im["aud"] != billing {
		t.Fatalf("introspection of a token issued without client authentication: %v", im)
	}
	// With client authentication: the client's limits apply too, and the token is introspectable.
	f = url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "aud", as.issuer))}}
	resp, m = as.post("token", f, "bearer-client", "bearer-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	_, c = as.verifyIndependently(m["access_token"].(string), orders)
	if c["client_id"] != "bearer-client" || c["scope"] != "orders:read" || c["sub"] != "svc-a" {
		t.Fatalf("claims %v", c)
	}
	_, im := as.post("introspect", url.Values{"token": {m["access_token"].(string)}}, "rs", "rs-secret-0123456789")
	if im["active"] != true || im["sub"] != "svc-a" {
		t.Fatalf("introspection %v", im)
	}

	replayed := idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))
	if resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {replayed}}, "", ""); resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	hs := hmacAssertion(t, as, idp)
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code, hint string
	}{
		{"no assertion", url.Values{}, "", "", 400, "invalid_request", "assertion"},
		{"garbage", url.Values{"assertion": {"garbage"}}, "", "", 400, "invalid_grant", "compact JWS"},
		{"oversized", url.Values{"assertion": {strings.Repeat("a", 9000) + ".b.c"}}, "", "", 400, "invalid_grant", "longer than"},
		{"alg none", url.Values{"assertion": {noneAssertion(as)}}, "", "", 400, "invalid_grant", "not accepted"},
		{"HS256 keyed with the public key", url.Values{"assertion": {hs}}, "", "", 400, "invalid_grant", "HS256"},
		{"kid of another issuer's key", url.Values{"assertion": {stranger.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}, "", "", 400, "invalid_grant", "registered key"},
		{"jku header", url.Values{"assertion": {withHeader(t, idp, "jku", "https://evil.example/jwks", as.assertionClaims(idpIssuer, "svc-a"))}}, "", "", 400, "invalid_grant", "jku"},
		{"x5u header", url.Values{"assertion": {withHeader(t, idp, "x5u", "https://evil.example/c", as.assertionClaims(idpIssuer, "svc-a"))}}, "", "", 400, "invalid_grant", "x5u"},
		{"jwk header", url.Values{"assertion": {withHeader(t, idp, "jwk", idp.jwks().Keys[0], as.assertionClaims(idpIssuer, "svc-a"))}}, "", "", 400, "invalid_grant", "jwk"},
		{"expired", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "exp", time.Now().Add(-time.Minute).Unix(), "iat", time.Now().Add(-2*time.Minute).Unix()))}}, "", "", 400, "invalid_grant", "expired"},
		{"nbf in the future", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "nbf", time.Now().Add(time.Minute).Unix()))}}, "", "", 400, "invalid_grant", "nbf"},
		{"iat in the future", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "iat", time.Now().Add(time.Minute).Unix()))}}, "", "", 400, "invalid_grant", "iat"},
		{"too long-lived", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "exp", time.Now().Add(3*time.Hour).Unix()))}}, "", "", 400, "invalid_grant", "longer than"},
		{"wrong audience", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "aud", orders))}}, "", "", 400, "invalid_grant", "aud"},
		{"no jti", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "jti", nil))}}, "", "", 400, "invalid_grant", "jti"},
		{"replayed", url.Values{"assertion": {replayed}}, "", "", 400, "invalid_grant", "already been used"},
		{"trust expired", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "gone"))}}, "", "", 400, "invalid_grant", "expired"},
		{"subject not covered", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-b"))}}, "", "", 400, "invalid_grant", "subject"},
		{"unknown issuer", url.Values{"assertion": {idp.sign(t, as.assertionClaims("https://nobody.example", "svc-a"))}}, "", "", 400, "invalid_grant", "not trusted"},
		{"resource outside the trust", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "resource": {other}}, "", "", 400, "invalid_target", ""},
		{"unknown resource", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "resource": {"https://nowhere.example/"}}, "", "", 400, "invalid_target", ""},
		{"scope beyond the trust", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "scope": {"orders:write"}}, "", "", 400, "invalid_scope", "trust"},
		{"scope the resource does not accept", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "scope": {"billing:read"}}, "", "", 400, "invalid_scope", ""},
		{"resource outside the client's", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "resource": {billing}}, "bearer-client", "bearer-secret-0123456789", 400, "invalid_target", ""},
		{"wrong client secret", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}, "bearer-client", "wrong-secret-0123456789", 401, "invalid_client", ""},
		{"unknown client", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}, "ghost", "ghost-secret-0123456789", 401, "invalid_client", ""},
		{"client without the grant type", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}, "svc", "svc-secret-0123456789", 400, "unauthorized_client", ""},
		{"bad client assertion", url.Values{"assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "client_assertion_type": {assertionType}, "client_assertion": {"x.y.z"}}, "", "", 401, "invalid_client", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.form.Set("grant_type", jwtBearer)
			resp, m := as.post("token", c.form, c.user, c.pass)
			if resp.StatusCode != c.status || m["error"] != c.code {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, c.status, c.code)
			}
			if d, _ := m["error_description"].(string); !strings.Contains(d, c.hint) {
				t.Fatalf("description %q, want %q", d, c.hint)
			}
		})
	}
	// A refused resource does not use the assertion up.
	a := idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))
	if resp, _ := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {a}, "resource": {other}}, "", ""); resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {a}}, "", ""); resp.StatusCode != 200 {
		t.Fatalf("after invalid_target: %d %v", resp.StatusCode, m)
	}
}

func noneAssertion(as *testAS) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return b64url(b) }
	return enc(map[string]string{"alg": "none"}) + "." + enc(as.assertionClaims(idpIssuer, "svc-a")) + "."
}

func hmacAssertion(t *testing.T, as *testAS, k signingKey) string {
	pub, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pub, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(as.assertionClaims(idpIssuer, "svc-a"))
	obj, _ := s.Sign(b)
	out, _ := obj.CompactSerialize()
	return out
}

func withHeader(t *testing.T, k signingKey, name string, v any, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithHeader(jose.HeaderKey(name), v))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestJWTBearerConcurrentReplay sends one assertion 20 times at once: exactly one token.
func TestJWTBearerConcurrentReplay(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		as := newAS(t)
		replayRace(t, as, as)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresDSN(t)
		st, err := gormstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		as := newASWith(t, st, testSecret(t), "")
		replayRace(t, as, as)
	})
	t.Run("two instances on one postgres", func(t *testing.T) {
		a, b := replicas(t)
		replayRace(t, a, b)
	})
}

func replayRace(t *testing.T, a, b *testAS) {
	idp := genKey(t, jose.EdDSA, "idp-race")
	a.saveTrust(storage.Trust{ID: "race", Issuer: idpIssuer, AllowAnySubject: true, JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}})
	// Also a private_key_jwt client, whose client assertion must be single-use as well.
	ck := genKey(t, jose.ES256, "c-race")
	a.saveClient(storage.Client{ID: "pkj-race", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: ck.jwks(),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
	for _, kind := range []string{"grant", "client assertion"} {
		t.Run(kind, func(t *testing.T) {
			var form url.Values
			if kind == "grant" {
				form = url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, a.assertionClaims(idpIssuer, "svc-a"))}}
			} else {
				form = url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType},
					"client_assertion": {ck.sign(t, a.assertionClaims("pkj-race", "pkj-race"))}}
			}
			const n = 20
			var wg sync.WaitGroup
			codes := make([]int, n)
			errs := make([]any, n)
			start := make(chan struct{})
			for i := range n {
				as := a
				if i%2 == 1 {
					as = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					req, _ := http.NewRequest(http.MethodPost, as.endpoint("token"), strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs[i] = err
						return
					}
					defer resp.Body.Close()
					var m map[string]any
					_ = json.NewDecoder(resp.Body).Decode(&m)
					codes[i] = resp.StatusCode
					errs[i] = m["error"]
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for i, c := range codes {
				switch {
				case c == 200:
					ok++
				case kind == "grant" && c == 400 && errs[i] == "invalid_grant":
				case kind != "grant" && c == 401 && errs[i] == "invalid_client":
				default:
					t.Errorf("request %d: %d %v", i, c, errs[i])
				}
			}
			if ok != 1 {
				t.Fatalf("%d of %d concurrent uses got a token, want exactly 1", ok, n)
			}
		})
	}
}

// TestPrivateKeyJWT authenticates clients with RS256, ES256 and EdDSA assertions, keys inline
// and behind a jwks_uri, at the token, introspection and revocation endpoints.
func TestPrivateKeyJWT(t *testing.T) {
	as := newAS(t)
	var jwksHits atomic.Int32
	remote := map[string]*jose.JSONWebKeySet{}
	var mu sync.Mutex
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwksHits.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(remote[r.URL.Path])
	}))
	t.Cleanup(jwksSrv.Close)
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		for _, where := range []string{"inline", "jwks_uri"} {
			t.Run(string(alg)+"/"+where, func(t *testing.T) {
				id := strings.ToLower(string(alg)) + "-" + where
				k := genKey(t, alg, "kid-"+id)
				c := storage.Client{ID: id, TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT,
					GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}}
				if where == "inline" {
					c.JWKS = k.jwks()
				} else {
					mu.Lock()
					remote["/"+id] = k.jwks()
					mu.Unlock()
					c.JWKSURI = jwksSrv.URL + "/" + id
				}
				as.saveClient(c)
				auth := func(kv ...any) url.Values {
					return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {k.sign(t, as.assertionClaims(id, id, kv...))}}
				}
				f := auth()
				f.Set("grant_type", "client_credentials")
				resp, m := as.post("token", f, "", "")
				if resp.StatusCode != 200 {
					t.Fatalf("%d %v", resp.StatusCode, m)
				}
				tok := m["access_token"].(string)
				_, cl := as.verifyIndependently(tok, orders)
				if cl["client_id"] != id || cl["sub"] != id {
					t.Fatalf("claims %v", cl)
				}
				// Introspection and revocation authenticate the same way (aud = issuer works too).
				f = auth("aud", as.issuer)
				f.Set("token", tok)
				if _, im := as.post("introspect", f, "", ""); im["active"] != true {
					t.Fatalf("introspect %v", im)
				}
				f = auth()
				f.Set("token", tok)
				if resp, m := as.post("revoke", f, "", ""); resp.StatusCode != 200 {
					t.Fatalf("revoke %d %v", resp.StatusCode, m)
				}
				f = auth()
				f.Set("token", tok)
				if _, im := as.post("introspect", f, "", ""); im["active"] != false {
					t.Fatalf("introspect after revoke %v", im)
				}
				// Refusals: invalid_client, 401, at every endpoint.
				for _, ep := range []string{"token", "introspect", "revoke"} {
					for name, f := range map[string]url.Values{
						"wrong aud": auth("aud", "https://evil.example/token"),
						"expired":   auth("exp", time.Now().Add(-time.Hour).Unix(), "iat", time.Now().Add(-2*time.Hour).Unix()),
						"long":      auth("exp", time.Now().Add(time.Hour).Unix()),
						"no jti":    auth("jti", nil),
						"other key": {"client_assertion_type": {assertionType}, "client_assertion": {genKey(t, alg, "kid-"+id).sign(t, as.assertionClaims(id, id))}},
					} {
						f.Set("grant_type", "client_credentials")
						f.Set("token", tok)
						resp, m := as.post(ep, f, "", "")
						if resp.StatusCode != 401 || m["error"] != "invalid_client" {
							t.Fatalf("%s at %s: %d %v", name, ep, resp.StatusCode, m)
						}
					}
				}
			})
		}
	}
	if n := jwksHits.Load(); n < 3 || n > 9 {
		t.Fatalf("jwks_uri fetched %d times for 3 clients", n)
	}
}

func TestAssertionMetadata(t *testing.T) {
	as := newAS(t)
	_, md := as.do(mustReq(t, http.MethodGet, "http://"+as.srv.Listener.Addr().String()+"/.well-known/oauth-authorization-server/oauth2"))
	has := func(member, v string) bool {
		l, _ := md[member].([]any)
		return slices.Contains(l, any(v))
	}
	for _, c := range [][2]string{
		{"grant_types_supported", jwtBearer},
		{"token_endpoint_auth_methods_supported", "private_key_jwt"},
		{"introspection_endpoint_auth_methods_supported", "private_key_jwt"},
		{"revocation_endpoint_auth_methods_supported", "private_key_jwt"},
		{"token_endpoint_auth_signing_alg_values_supported", "EdDSA"},
		{"token_endpoint_auth_signing_alg_values_supported", "RS256"},
		{"introspection_endpoint_auth_signing_alg_values_supported", "ES256"},
		{"revocation_endpoint_auth_signing_alg_values_supported", "PS256"},
	} {
		if !has(c[0], c[1]) {
			t.Errorf("%s lacks %s: %v", c[0], c[1], md[c[0]])
		}
	}
	for _, m := range []string{"token_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_signing_alg_values_supported"} {
		for _, bad := range []string{"none", "HS256"} {
			if has(m, bad) {
				t.Errorf("%s lists %s", m, bad)
			}
		}
	}
}

// TestJWTBearerTrustJWKSURI takes a trust's keys from its jwks_uri, and picks up a key the
// issuer publishes later (an unknown kid triggers one refetch).
func TestJWTBearerTrustJWKSURI(t *testing.T) {
	var skew atomic.Int64
	as := newAS(t, func(c *provider.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	k1 := genKey(t, jose.PS256, "k1")
	k2 := genKey(t, jose.ES256, "k2")
	var mu sync.Mutex
	published := k1.jwks()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(published)
	}))
	t.Cleanup(srv.Close)
	as.saveTrust(storage.Trust{ID: "remote", Issuer: idpIssuer, AllowAnySubject: true, JWKSURI: srv.URL + "/jwks",
		Scopes: []string{"orders:read"}, Resources: []string{orders}})
	get := func(k signingKey) (int, map[string]any) {
		resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {k.sign(t, as.assertionClaims(idpIssuer, "svc-z"))}}, "", "")
		return resp.StatusCode, m
	}
	if code, m := get(k1); code != 200 {
		t.Fatalf("k1: %d %v", code, m)
	}
	if code, m := get(k2); code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("k2 before it is published: %d %v", code, m)
	}
	mu.Lock()
	published = &jose.JSONWebKeySet{Keys: append(k1.jwks().Keys, k2.jwks().Keys...)}
	mu.Unlock()
	// The refetch after the first unknown kid was less than a minute ago: rate-limited.
	if code, _ := get(k2); code != 400 {
		t.Fatalf("k2 within the refetch interval: %d", code)
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	// A minute later the next unknown-kid refetch finds it.
	skew.Store(int64(61 * time.Second))
	if code, m := get(k2); code != 200 {
		t.Fatalf("k2 after the refetch interval: %d %v", code, m)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
}

// unitStore writes tokens together with JWT IDs (storage.JTITokenWriter) through the store it
// wraps, after failing the first such write with an unreachable database.
type unitStore struct {
	storage.Store
	failed atomic.Bool
}

func (u *unitStore) CreateAccessTokenSessionUsingJTI(ctx context.Context, sig string, req fosite.Requester, jti string, exp time.Time) error {
	if u.failed.CompareAndSwap(false, true) {
		return fmt.Errorf("test: connection refused: %w", storage.ErrUnavailable)
	}
	return u.Store.(storage.JTITokenWriter).CreateAccessTokenSessionUsingJTI(ctx, sig, req, jti, exp)
}

// TestJWTBearerRetryAfterStoreFailure: when the token cannot be stored, the answer is 503 and
// the assertion is not spent — the client retries with the same one and gets its token — and
// then it is spent.
func TestJWTBearerRetryAfterStoreFailure(t *testing.T) {
	as := newASWith(t, &unitStore{Store: newStore(t)}, testSecret(t), "")
	idp := genKey(t, jose.ES256, "idp-1")
	bearerAS(t, as, idp)
	f := url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 503 || m["error"] != "temporarily_unavailable" {
		t.Fatalf("token not stored: %d %v", resp.StatusCode, m)
	}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 200 {
		t.Fatalf("the same assertion after the failure: %d %v", resp.StatusCode, m)
	}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 400 || !strings.Contains(m["error_description"].(string), "already been used") {
		t.Fatalf("the assertion once more: %d %v", resp.StatusCode, m)
	}
}
