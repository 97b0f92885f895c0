package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// TestFositeComposition drives the plain fosite server of Example_fosite through every piece:
// client_credentials with resource, private_key_jwt, the jwt-bearer grant, and the refusals a
// fosite user gets from them.
func TestFositeComposition(t *testing.T) {
	ctx := context.Background()
	store, err := gormstore.Open(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	orders, billing := "https://orders.example.com/", "https://billing.example.com/"
	for _, rs := range []storage.ResourceServer{
		{Identifier: orders, Scopes: []string{"orders:read"}, Default: true},
		{Identifier: billing, Scopes: []string{"billing:read"}},
	} {
		if err := store.SaveResourceServer(ctx, &rs); err != nil {
			t.Fatal(err)
		}
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, c := range []storage.Client{
		{ID: "svc", SecretHash: hash, GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}},
		{ID: "pkj", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, GrantTypes: []string{"client_credentials"},
			JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pk.Public(), KeyID: "pkj-1"}}}, Scopes: []string{"billing:read"}, Resources: []string{billing}},
	} {
		if err := store.SaveClient(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	idp, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := store.SaveTrust(ctx, &storage.Trust{ID: "idp", Issuer: "https://idp.example", AllowAnySubject: true,
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: idp.Public(), KeyID: "idp-1"}}}, Scopes: []string{"orders:read"}, Resources: []string{orders}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nil)
	defer srv.Close()
	h, err := newFositeServer(store, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	tokenURL := srv.URL + "/token"
	post := func(f url.Values, user string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	sign := func(key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
		b, _ := json.Marshal(claims)
		obj, _ := s.Sign(b)
		out, _ := obj.CompactSerialize()
		return out
	}
	now := time.Now()
	claims := func(iss, sub string) map[string]any {
		return map[string]any{"iss": iss, "sub": sub, "aud": tokenURL, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(),
			"jti": fmt.Sprintf("%s-%d", sub, time.Now().UnixNano())}
	}
	check := func(m map[string]any, audience, sub string) {
		t.Helper()
		v, err := verify.New(ctx, verify.Config{Issuer: srv.URL, Audience: audience})
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := m["access_token"].(string)
		c, err := v.Verify(ctx, tok)
		if err != nil || c.Subject != sub {
			t.Fatalf("%v: %+v %v", m, c, err)
		}
	}

	// private_key_jwt, for the resource the client may use.
	code, m := post(url.Values{"grant_type": {"client_credentials"}, "resource": {billing},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {sign(pk, "pkj-1", claims("pkj", "pkj"))}}, "")
	if code != 200 {
		t.Fatalf("private_key_jwt: %d %v", code, m)
	}
	check(m, billing, "pkj")
	// The jwt-bearer grant, without client authentication: the default resource server.
	code, m = post(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"assertion": {sign(idp, "idp-1", claims("https://idp.example", "user-9"))}}, "")
	if code != 200 {
		t.Fatalf("jwt-bearer: %d %v", code, m)
	}
	check(m, orders, "user-9")
	// Refusals.
	for name, tc := range map[string]struct {
		form url.Values
		user string
		code int
		err  string
	}{
		"a resource the client may not use": {url.Values{"grant_type": {"client_credentials"}, "resource": {billing}}, "svc", 400, "invalid_target"},
		"an unknown resource":               {url.Values{"grant_type": {"client_credentials"}, "resource": {"https://x.example/"}}, "svc", 400, "invalid_target"},
		"two resources":                     {url.Values{"grant_type": {"client_credentials"}, "resource": {orders, billing}}, "svc", 400, "invalid_target"},
		"the audience parameter":            {url.Values{"grant_type": {"client_credentials"}, "audience": {orders}}, "svc", 400, "invalid_request"},
		"a scope of another resource":       {url.Values{"grant_type": {"client_credentials"}, "scope": {"billing:read"}}, "svc", 400, "invalid_scope"},
		"jwt-bearer outside the trust":      {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "resource": {billing}, "assertion": {sign(idp, "idp-1", claims("https://idp.example", "user-9"))}}, "", 400, "invalid_target"},
	} {
		if code, m := post(tc.form, tc.user); code != tc.code || m["error"] != tc.err || m["access_token"] != nil {
			t.Errorf("%s: %d %v, want %d %s", name, code, m, tc.code, tc.err)
		}
	}
}
