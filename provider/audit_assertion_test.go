package provider_test

// Audit of issue 5 (RFC 7523): private_key_jwt with every algorithm, key use, bad client
// assertions, client authentication on the jwt-bearer grant, and the configurable bounds.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
)

// auditKey is genKey plus ES384.
func auditKey(t *testing.T, alg jose.SignatureAlgorithm, kid string) signingKey {
	t.Helper()
	if alg != jose.ES384 {
		return genKey(t, alg, kid)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{priv: priv, alg: alg, kid: kid}
}

// jwksServer serves key sets by path, as issuers and clients publish them.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	sets map[string]any
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{sets: map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.sets[r.URL.Path])
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(path string, set any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets[path] = set
	return s.URL + path
}

// auditClientAssertion is a private_key_jwt authentication of client id with key k.
func (as *testAS) auditClientAssertion(t *testing.T, k signingKey, id string, kv ...any) url.Values {
	return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {k.sign(t, as.assertionClaims(id, id, kv...))}}
}

// TestAuditPrivateKeyJWTEveryAlgorithm: private_key_jwt with each of RS256, PS256, ES256,
// ES384 and EdDSA, keys inline or behind a jwks_uri, with and without "use"; a key with use
// "enc" is never used.
func TestAuditPrivateKeyJWTEveryAlgorithm(t *testing.T) {
	as := newAS(t)
	srv := newJWKSServer(t)
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA} {
		for _, where := range []string{"inline", "jwks_uri"} {
			for _, use := range []string{"", "sig", "enc"} {
				name := string(alg) + "/" + where + "/use=" + use
				t.Run(name, func(t *testing.T) {
					id := strings.NewReplacer("/", "-", "=", "-").Replace(strings.ToLower(name))
					k := auditKey(t, alg, "kid-"+id)
					set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Use: use}}}
					c := storage.Client{ID: id, TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT,
						GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}}
					if where == "inline" {
						c.JWKS = set
					} else {
						c.JWKSURI = srv.publish("/"+id, set)
					}
					as.saveClient(c)
					f := as.auditClientAssertion(t, k, id)
					f.Set("grant_type", "client_credentials")
					resp, m := as.post("token", f, "", "")
					if use == "enc" {
						if resp.StatusCode != 401 || m["error"] != "invalid_client" {
							t.Fatalf("a use=enc key authenticated: %d %v", resp.StatusCode, m)
						}
						return
					}
					if resp.StatusCode != 200 {
						t.Fatalf("%d %v", resp.StatusCode, m)
					}
					if _, cl := as.verifyIndependently(m["access_token"].(string), orders); cl["client_id"] != id || cl["sub"] != id {
						t.Fatalf("claims %v", cl)
					}
				})
			}
		}
	}
}

// TestAuditClientAssertionRefusals: each bad private_key_jwt assertion is 401 invalid_client
// at the token endpoint, none is a 500, and a refused request issues nothing.
func TestAuditClientAssertionRefusals(t *testing.T) {
	as := newAS(t)
	k := auditKey(t, jose.ES256, "pkj-1")
	pinned := auditKey(t, jose.PS256, "pinned-1")
	as.saveClient(storage.Client{ID: "pkj", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: k.jwks(),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
	as.saveClient(storage.Client{ID: "pinned", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "PS256",
		JWKS:       &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pinned.priv.Public(), KeyID: "pinned-1"}}},
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
	// The same RSA key under JWK alg RS256: a PS256 signature with it must not be accepted.
	rsaKey := auditKey(t, jose.PS256, "alg-pinned-jwk")
	as.saveClient(storage.Client{ID: "jwk-alg", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT,
		JWKS:       &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rsaKey.priv.Public(), KeyID: "alg-pinned-jwk", Algorithm: "RS256"}}},
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})

	claims := func(kv ...any) map[string]any { return as.assertionClaims("pkj", "pkj", kv...) }
	enc := func(v any) string { b, _ := json.Marshal(v); return b64url(b) }
	pubDER, _ := x509.MarshalPKIXPublicKey(k.priv.Public())
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pubDER, KeyID: "pkj-1"}}, nil)
	hsObj, _ := hs.Sign([]byte(enc(claims())))
	hsRaw, _ := hsObj.CompactSerialize()
	pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsPEM, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pemPub}, (&jose.SignerOptions{}).WithHeader("kid", "pkj-1"))
	hsPEMObj, _ := hsPEM.Sign(auditJSON(claims()))
	hsPEMRaw, _ := hsPEMObj.CompactSerialize()
	replayed := k.sign(t, claims())
	if resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}, "client_assertion": {replayed}}, "", ""); resp.StatusCode != 200 {
		t.Fatalf("first use: %d %v", resp.StatusCode, m)
	}
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		hint       string
	}{
		{"alg none", url.Values{"client_assertion": {enc(map[string]string{"alg": "none", "kid": "pkj-1"}) + "." + enc(claims()) + "."}}, "", "", "not accepted"},
		{"HS256 keyed with the public key (DER)", url.Values{"client_assertion": {hsRaw}}, "", "", "HS256"},
		{"HS256 keyed with the public key (PEM)", url.Values{"client_assertion": {hsPEMRaw}}, "", "", "HS256"},
		{"jwk header", url.Values{"client_assertion": {withHeader(t, k, "jwk", k.jwks().Keys[0], claims())}}, "", "", "jwk"},
		{"jku header", url.Values{"client_assertion": {withHeader(t, k, "jku", "https://evil.example/jwks", claims())}}, "", "", "jku"},
		{"x5c header", url.Values{"client_assertion": {withHeader(t, k, "x5c", []string{"MIIB"}, claims())}}, "", "", "x5c"},
		{"iss is not the client", url.Values{"client_assertion": {k.sign(t, claims("iss", "other"))}}, "", "", "iss and sub"},
		{"sub is not the client_id parameter", url.Values{"client_assertion": {k.sign(t, claims())}, "client_id": {"svc"}}, "", "", "client_id"},
		{"aud is another server", url.Values{"client_assertion": {k.sign(t, claims("aud", "https://other.example/token"))}}, "", "", "aud"},
		{"aud names this server and another", url.Values{"client_assertion": {k.sign(t, claims("aud", []string{as.endpoint("token"), "https://rp.example/"}))}}, "", "", "aud"},
		{"no aud", url.Values{"client_assertion": {k.sign(t, claims("aud", nil))}}, "", "", "aud"},
		{"no exp", url.Values{"client_assertion": {k.sign(t, claims("exp", nil))}}, "", "", "exp"},
		{"nbf in the future", url.Values{"client_assertion": {k.sign(t, claims("nbf", time.Now().Add(2*time.Minute).Unix()))}}, "", "", "nbf"},
		{"iat in the future", url.Values{"client_assertion": {k.sign(t, claims("iat", time.Now().Add(2*time.Minute).Unix()))}}, "", "", "iat"},
		{"replayed", url.Values{"client_assertion": {replayed}}, "", "", "already been used"},
		{"pinned algorithm not used", url.Values{"client_assertion": {auditKey(t, jose.RS256, "pinned-1").sign(t, as.assertionClaims("pinned", "pinned"))}}, "", "", "Client authentication failed."},
		// Until the signature verifies with the client's key, every failure reads the same.
		{"JWK alg differs from the signature's", url.Values{"client_assertion": {rsaKey.sign(t, as.assertionClaims("jwk-alg", "jwk-alg"))}}, "", "", "Client authentication failed."},
		{"wrong assertion type", url.Values{"client_assertion": {k.sign(t, claims())}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, "", "", "client_assertion_type"},
		{"assertion type without assertion", url.Values{"client_assertion": nil}, "", "", "missing"},
		{"oversized", url.Values{"client_assertion": {strings.Repeat("a", 9000) + ".b.c"}}, "", "", "longer than"},
		{"garbage", url.Values{"client_assertion": {"a.b.c"}}, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType}}
			for key, v := range tc.form {
				if v == nil {
					f.Del(key)
				} else {
					f[key] = v
				}
			}
			resp, m := as.post("token", f, tc.user, tc.pass)
			if resp.StatusCode != 401 || m["error"] != "invalid_client" || m["access_token"] != nil {
				t.Fatalf("%d %v, want 401 invalid_client", resp.StatusCode, m)
			}
			if d, _ := m["error_description"].(string); !strings.Contains(d, tc.hint) {
				t.Fatalf("description %q, want %q", d, tc.hint)
			}
		})
	}
	// A second authentication method is a malformed request (RFC 6749 §5.2 invalid_request).
	for name, tc := range map[string]struct {
		form       url.Values
		user, pass string
	}{
		"client_secret as well": {url.Values{"client_assertion": {k.sign(t, claims())}, "client_secret": {"x"}}, "", ""},
		"Basic as well":         {url.Values{"client_assertion": {k.sign(t, claims())}}, "pkj", "x"},
	} {
		tc.form.Set("grant_type", "client_credentials")
		tc.form.Set("client_assertion_type", assertionType)
		resp, m := as.post("token", tc.form, tc.user, tc.pass)
		if d, _ := m["error_description"].(string); resp.StatusCode != 400 || m["error"] != "invalid_request" || !strings.Contains(d, "more than one") {
			t.Fatalf("%s: %d %v, want 400 invalid_request", name, resp.StatusCode, m)
		}
	}
	// One client assertion is one use, across endpoints: used at the token endpoint, it is
	// refused at introspection.
	f := as.auditClientAssertion(t, k, "pkj")
	f.Set("grant_type", "client_credentials")
	resp, m := as.post("token", f, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	f.Del("grant_type")
	f.Set("token", m["access_token"].(string))
	if resp, m := as.post("introspect", f, "", ""); resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("client assertion reused at introspection: %d %v", resp.StatusCode, m)
	}
	// A private_key_jwt client has no secret to present.
	for _, pass := range []string{"", "anything"} {
		if resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "pkj", pass); resp.StatusCode != 401 || m["error"] != "invalid_client" {
			t.Fatalf("private_key_jwt client with Basic %q: %d %v", pass, resp.StatusCode, m)
		}
	}
}

func auditJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestAuditJWTBearerClientAuthentication: with JWTBearerRequireClientAuth the grant needs
// client authentication; either way presented credentials of any kind are validated, never
// ignored.
func TestAuditJWTBearerClientAuthentication(t *testing.T) {
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "optional", true: "required"}[require], func(t *testing.T) {
			as := newAS(t, func(c *provider.Config) { c.JWTBearerRequireClientAuth = require })
			idp := genKey(t, jose.ES256, "idp-ca")
			bearerAS(t, as, idp)
			ck := auditKey(t, jose.EdDSA, "pkj-bearer")
			as.saveClient(storage.Client{ID: "pkj-bearer", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: ck.jwks(),
				GrantTypes: []string{jwtBearer}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
			assertion := func() string { return idp.sign(t, as.assertionClaims(idpIssuer, "svc-a")) }
			noAuth := http.StatusOK
			if require {
				noAuth = http.StatusUnauthorized
			}
			cases := []struct {
				name       string
				extra      url.Values
				user, pass string
				status     int
				code       string
			}{
				{"no credentials", nil, "", "", noAuth, map[bool]string{false: "", true: "invalid_client"}[require]},
				{"valid Basic", nil, "bearer-client", "bearer-secret-0123456789", 200, ""},
				{"valid private_key_jwt", as.auditClientAssertion(t, ck, "pkj-bearer"), "", "", 200, ""},
				{"wrong Basic secret", nil, "bearer-client", "wrong-secret-0123456789", 401, "invalid_client"},
				{"Basic with an empty secret", nil, "bearer-client", "", 401, "invalid_client"},
				{"client_secret_post with a wrong secret", url.Values{"client_id": {"bearer-client"}, "client_secret": {"nope"}}, "", "", 401, "invalid_client"},
				{"client_id of a confidential client alone", url.Values{"client_id": {"bearer-client"}}, "", "", 401, "invalid_client"},
				{"client_id of an unknown client alone", url.Values{"client_id": {"ghost"}}, "", "", 401, "invalid_client"},
				{"client_secret alone", url.Values{"client_secret": {"bearer-secret-0123456789"}}, "", "", 401, "invalid_client"},
				{"a public client", url.Values{"client_id": {"web"}}, "", "", 400, "unauthorized_client"},
				{"a bad client assertion", url.Values{"client_assertion_type": {assertionType}, "client_assertion": {"a.b.c"}}, "", "", 401, "invalid_client"},
				{"a client assertion of another key", as.auditClientAssertion(t, auditKey(t, jose.EdDSA, "pkj-bearer"), "pkj-bearer"), "", "", 401, "invalid_client"},
				{"a client without the grant type", nil, "svc", "svc-secret-0123456789", 400, "unauthorized_client"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					f := url.Values{"grant_type": {jwtBearer}, "assertion": {assertion()}}
					for k, v := range tc.extra {
						f[k] = v
					}
					resp, m := as.post("token", f, tc.user, tc.pass)
					if resp.StatusCode != tc.status || (tc.code != "" && m["error"] != tc.code) {
						t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
					}
					if tc.status != 200 && m["access_token"] != nil {
						t.Fatal("a token with refused credentials")
					}
					if tc.status == 401 && tc.user != "" && resp.Header.Get("WWW-Authenticate") == "" {
						t.Error("invalid_client for Basic without WWW-Authenticate")
					}
					if tc.status == 200 {
						_, c := as.verifyIndependently(m["access_token"].(string), orders)
						want := idpIssuer
						if tc.user != "" {
							want = tc.user
						} else if tc.extra != nil {
							want = "pkj-bearer"
						}
						if c["client_id"] != want || c["sub"] != "svc-a" {
							t.Fatalf("claims %v, want client_id %s", c, want)
						}
					}
				})
			}
		})
	}
}

// TestAuditAssertionBoundsAreConfigurable: Config.AssertionLeeway, Config.MaxAssertionLifetime,
// a trust's MaxAssertionLifetime and Config.MaxClientAssertionLifetime reach the checks.
func TestAuditAssertionBoundsAreConfigurable(t *testing.T) {
	now := time.Now()
	idp := genKey(t, jose.ES256, "idp-bounds")
	ck := genKey(t, jose.ES256, "pkj-bounds")
	setup := func(as *testAS) {
		as.saveTrust(storage.Trust{ID: "b-default", Issuer: idpIssuer, Subject: "default-life", JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}})
		as.saveTrust(storage.Trust{ID: "b-short", Issuer: idpIssuer, Subject: "short-life", JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}, MaxAssertionLifetime: 2 * time.Minute})
		as.saveClient(storage.Client{ID: "pkj-bounds", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: ck.jwks(),
			GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
	}
	grant := func(as *testAS, sub string, kv ...any) (int, map[string]any) {
		resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, sub, kv...))}}, "", "")
		return resp.StatusCode, m
	}
	client := func(as *testAS, kv ...any) (int, map[string]any) {
		f := as.auditClientAssertion(t, ck, "pkj-bounds", kv...)
		f.Set("grant_type", "client_credentials")
		resp, m := as.post("token", f, "", "")
		return resp.StatusCode, m
	}
	life := func(d time.Duration) []any { return []any{"iat", now.Unix(), "exp", now.Add(d).Unix()} }
	expiredAgo := func(d time.Duration) []any {
		return []any{"iat", now.Add(-d - time.Minute).Unix(), "exp", now.Add(-d).Unix()}
	}

	def := newAS(t)
	setup(def)
	tuned := newAS(t, func(c *provider.Config) {
		c.AssertionLeeway = 3 * time.Minute
		c.MaxAssertionLifetime = 10 * time.Minute
		c.MaxClientAssertionLifetime = 2 * time.Minute
	})
	setup(tuned)
	for _, tc := range []struct {
		name string
		as   *testAS
		run  func() (int, map[string]any)
		ok   bool
	}{
		{"default: 50m grant assertion", def, func() (int, map[string]any) { return grant(def, "default-life", life(50*time.Minute)...) }, true},
		{"default: 2h grant assertion", def, func() (int, map[string]any) { return grant(def, "default-life", life(2*time.Hour)...) }, false},
		{"tuned: 50m grant assertion", tuned, func() (int, map[string]any) { return grant(tuned, "default-life", life(50*time.Minute)...) }, false},
		{"tuned: 9m grant assertion", tuned, func() (int, map[string]any) { return grant(tuned, "default-life", life(9*time.Minute)...) }, true},
		{"trust bound: 3m grant assertion", def, func() (int, map[string]any) { return grant(def, "short-life", life(3*time.Minute)...) }, false},
		{"trust bound: 90s grant assertion", def, func() (int, map[string]any) { return grant(def, "short-life", life(90*time.Second)...) }, true},
		{"default leeway: expired 1m ago", def, func() (int, map[string]any) { return grant(def, "default-life", expiredAgo(time.Minute)...) }, false},
		{"tuned leeway: expired 1m ago", tuned, func() (int, map[string]any) { return grant(tuned, "default-life", expiredAgo(time.Minute)...) }, true},
		{"tuned leeway: expired 4m ago", tuned, func() (int, map[string]any) { return grant(tuned, "default-life", expiredAgo(4*time.Minute)...) }, false},
		{"default: 9m client assertion", def, func() (int, map[string]any) { return client(def, life(9*time.Minute)...) }, true},
		{"tuned: 9m client assertion", tuned, func() (int, map[string]any) { return client(tuned, life(9*time.Minute)...) }, false},
		{"tuned: 1m client assertion", tuned, func() (int, map[string]any) { return client(tuned, life(time.Minute)...) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := tc.run()
			if tc.ok != (code == 200) {
				t.Fatalf("%d %v, want accepted=%v", code, m, tc.ok)
			}
			if !tc.ok && code != 400 && code != 401 {
				t.Fatalf("%d %v", code, m)
			}
		})
	}
}

// TestAuditTrustSelectionAndKeys: a subject-specific trust wins over an any-subject trust of the
// same issuer; an expired specific trust falls back to a valid any-subject one; a trust whose
// jwks_uri is unreachable or holds only use=enc keys refuses with invalid_grant, never a 500.
func TestAuditTrustSelectionAndKeys(t *testing.T) {
	as := newAS(t)
	idp := genKey(t, jose.ES256, "idp-sel")
	as.saveTrust(storage.Trust{ID: "any", Issuer: idpIssuer, AllowAnySubject: true, JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}})
	as.saveTrust(storage.Trust{ID: "specific", Issuer: idpIssuer, Subject: "svc-b", JWKS: idp.jwks(), Scopes: []string{"billing:read"}, Resources: []string{billing}})
	as.saveTrust(storage.Trust{ID: "gone", Issuer: idpIssuer, Subject: "svc-c", JWKS: idp.jwks(), Scopes: []string{"billing:read"}, Resources: []string{billing}, ExpiresAt: time.Now().Add(-time.Minute)})
	post := func(sub string, kv ...string) (int, map[string]any) {
		f := url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, sub))}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		resp, m := as.post("token", f, "", "")
		return resp.StatusCode, m
	}
	if code, m := post("svc-b"); code != 200 || m["resource"] != billing || m["scope"] != "billing:read" {
		t.Fatalf("specific trust: %d %v", code, m)
	}
	if code, m := post("svc-b", "resource", orders); code != 400 || m["error"] != "invalid_target" {
		t.Fatalf("specific trust, resource of the any-subject trust: %d %v", code, m)
	}
	if code, m := post("svc-c"); code != 200 || m["resource"] != orders {
		t.Fatalf("expired specific trust, valid any-subject trust: %d %v", code, m)
	}
	if code, m := post("anyone"); code != 200 || m["resource"] != orders {
		t.Fatalf("any subject: %d %v", code, m)
	}

	srv := newJWKSServer(t)
	encOnly := srv.publish("/enc", &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: idp.priv.Public(), KeyID: "idp-sel", Use: "enc"}}})
	// Keys that cannot be fetched (the issuer's JWKS unreachable, or publishing no signing key)
	// are no fault of the assertion: 503 with Retry-After, which the client may retry. A key
	// registered inline that cannot verify is the trust's answer: invalid_grant.
	for name, tc := range map[string]struct {
		tr   storage.Trust
		code int
	}{
		"unreachable jwks_uri": {storage.Trust{ID: "down", Issuer: "https://down.example", AllowAnySubject: true, JWKSURI: "http://127.0.0.1:1/jwks", Scopes: []string{"orders:read"}, Resources: []string{orders}}, 503},
		"use=enc keys only":    {storage.Trust{ID: "enc", Issuer: "https://enc.example", AllowAnySubject: true, JWKSURI: encOnly, Scopes: []string{"orders:read"}, Resources: []string{orders}}, 503},
		"inline use=enc key":   {storage.Trust{ID: "enc-inline", Issuer: "https://enc-inline.example", AllowAnySubject: true, JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: idp.priv.Public(), KeyID: "idp-sel", Use: "enc"}}}, Scopes: []string{"orders:read"}, Resources: []string{orders}}, 400},
	} {
		t.Run(name, func(t *testing.T) {
			as.saveTrust(tc.tr)
			resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(tc.tr.Issuer, "x"))}}, "", "")
			want := map[int]string{400: "invalid_grant", 503: "temporarily_unavailable"}[tc.code]
			if resp.StatusCode != tc.code || m["error"] != want {
				t.Fatalf("%d %v, want %d %s", resp.StatusCode, m, tc.code, want)
			}
			if retry := resp.Header.Get("Retry-After"); (tc.code == 503) != (retry != "") {
				t.Fatalf("Retry-After %q with %d", retry, tc.code)
			}
		})
	}
}
