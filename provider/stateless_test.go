package provider_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
)

func TestStatelessAccessTokens(t *testing.T) {
	as := newAS(t, func(c *provider.Config) { c.StatelessAccessTokens = true })
	ctx := context.Background()
	tok := as.clientCredentials("orders:read", orders)
	claims := claimsOf(t, tok)
	as.verifyIndependently(tok, orders)

	// No row was written for it.
	if _, err := as.store.GetAccessTokenSession(ctx, strategy.AccessTokenSignature(tok), nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an access token row exists in stateless mode: %v", err)
	}

	// Introspection validates the JWT itself and answers its claims.
	_, m := as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if m["active"] != true || m["token_type"] != "Bearer" || len(m) != len(claims)+2 {
		t.Fatalf("introspection %v", m)
	}
	for k, v := range claims {
		if m[k] != v && k != "aud" {
			t.Errorf("%s = %v, token has %v", k, m[k], v)
		}
	}

	// Only the client it was issued to may revoke it.
	resp, m := as.post("revoke", url.Values{"token": {tok}, "client_id": {"svc-post"}, "client_secret": {"svc-post-secret-0123456789"}}, "", "")
	if resp.StatusCode != 200 || m != nil {
		t.Fatalf("revocation by another client: %d %v (want 200, revealing nothing)", resp.StatusCode, m)
	}
	resp, m = as.post("revoke", url.Values{"token": {tok}}, "svc", "wrong")
	if resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("revocation with a bad secret: %d %v", resp.StatusCode, m)
	}
	_, m = as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if m["active"] != true {
		t.Fatal("a refused revocation revoked the token")
	}
	for range 2 { // revoking twice is fine
		resp, m = as.post("revoke", url.Values{"token": {tok}}, "svc", "svc-secret-0123456789")
		if resp.StatusCode != 200 {
			t.Fatalf("revoke: %d %v", resp.StatusCode, m)
		}
	}
	_, m = as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if m["active"] != false || len(m) != 1 {
		t.Fatalf("revoked stateless token: %v", m)
	}
	// Other tokens of the same client are unaffected.
	_, m = as.post("introspect", url.Values{"token": {as.clientCredentials("orders:read", orders)}}, "rs", "rs-secret-0123456789")
	if m["active"] != true {
		t.Fatalf("a fresh token is inactive: %v", m)
	}
	// Forged and foreign tokens are inactive.
	for _, bad := range []string{tok[:len(tok)-4] + "AAAA", "a.b.c", "x"} {
		_, m = as.post("introspect", url.Values{"token": {bad}}, "rs", "rs-secret-0123456789")
		if m["active"] != false {
			t.Fatalf("%q is active: %v", bad, m)
		}
	}
}

func TestStatelessRefreshFlow(t *testing.T) {
	as := newAS(t, func(c *provider.Config) { c.StatelessAccessTokens = true })
	conf, tok := authCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	_, m := as.post("introspect", url.Values{"token": {tok.RefreshToken}}, "conf", "conf-secret-0123456789")
	if m["active"] != true || m["client_id"] != "conf" {
		t.Fatalf("refresh token introspection: %v", m)
	}
	ts := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)})
	tok2, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	as.verifyIndependently(tok2.AccessToken, orders)
}
