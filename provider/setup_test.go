package provider_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/provider"
)

func TestParseSetupErrorsNameTheField(t *testing.T) {
	cases := []struct{ doc, want string }{
		{`{"clients":[{"client_id":"a","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb"],"bogus":1}]}`, "clients[0].bogus: unknown field"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[],"extra":true}]}`, "resource_servers[0].extra: unknown field"},
		{`{"nope":1}`, "nope: unknown field"},
		{`{"resource_servers":[{"identifier":"https://a/#f","scopes":[]}]}`, "resource_servers[0].identifier"},
		{`{"resource_servers":[{"identifier":"/rel","scopes":[]}]}`, "resource_servers[0].identifier"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[],"signing_alg":"none"}]}`, "resource_servers[0].signing_alg"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[],"signing_alg":"HS256"}]}`, "resource_servers[0].signing_alg"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[],"access_token_ttl":"forever"}]}`, "resource_servers[0].access_token_ttl"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[]},{"identifier":"https://a/","scopes":[]}]}`, "resource_servers[1].identifier: duplicate"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[],"default":true},{"identifier":"https://b/","scopes":[],"default":true}]}`, "at most one"},
		{`{"resource_servers":[{"identifier":"https://a/","scopes":["a b"]}]}`, "resource_servers[0].scopes[0]"},
		{`{"clients":[{"client_id":"a","grant_types":["client_credentials"]}]}`, "clients[0].client_secret"},
		{`{"clients":[{"client_id":"a","client_secret":"0123456789abcdef","grant_types":["password"]}]}`, "clients[0].grant_types[0]"},
		{`{"clients":[{"client_id":"a","client_secret":"0123456789abcdef","grant_types":["implicit"]}]}`, "clients[0].grant_types[0]"},
		{`{"clients":[{"client_id":"a","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://evil.example/cb"]}]}`, "clients[0].redirect_uris[0]"},
		{`{"clients":[{"client_id":"a","public":true,"grant_types":["client_credentials"]}]}`, "clients[0].grant_types[0]"},
		{`{"clients":[{"client_id":"a","token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"]}]}`, "clients[0].jwks"},
		{`{"clients":[{"client_id":"a","token_endpoint_auth_method":"client_secret_jwt","grant_types":["client_credentials"]}]}`, "clients[0].token_endpoint_auth_method"},
		{`{"clients":[{"client_id":"a","token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"],"jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}}]}`, "clients[0].jwks.keys[0]"},
		{`{"trusted_issuers":[{"issuer":"https://i/","scopes":[],"resources":[]}]}`, "trusted_issuers[0].subject"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","scopes":[],"resources":[],"expires_at":"tomorrow"}]}`, "trusted_issuers[0].expires_at"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"ftp://x/","scopes":[],"resources":[]}]}`, "trusted_issuers[0].jwks_uri"},
		{`{"clients":[]} {"clients":[]}`, "trailing data"},
		{`[]`, "provider: setup"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			_, err := provider.ParseSetup([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestApplyChecksWhatNeedsTheProvider: the issuer of the file, and resource servers a partial
// setup names without declaring, are checked against the provider and its store.
func TestApplyChecksWhatNeedsTheProvider(t *testing.T) {
	as := newAS(t)
	ctx := context.Background()
	apply := func(doc string) error {
		t.Helper()
		s, err := provider.ParseSetup([]byte(doc))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		return as.p.Apply(ctx, s)
	}
	// A file for another server is refused, naming both issuers.
	err := apply(`{"issuer":"https://other.example","clients":[]}`)
	if err == nil || !strings.Contains(err.Error(), "https://other.example") || !strings.Contains(err.Error(), as.issuer) {
		t.Fatalf("another issuer: %v", err)
	}
	if err := apply(`{"issuer":"` + as.issuer + `","clients":[]}`); err != nil {
		t.Fatalf("this issuer: %v", err)
	}
	// A client naming a stored resource server it does not declare: accepted.
	client := `{"client_id":"late","client_secret":"0123456789abcdef","grant_types":["client_credentials"],"scopes":["orders:read"],"resources":["https://orders.example.com/"]}`
	if err := apply(`{"clients":[` + client + `]}`); err != nil {
		t.Fatalf("a partial setup naming a stored resource server: %v", err)
	}
	if c, err := as.store.Client(ctx, "late"); err != nil || len(c.Resources) != 1 {
		t.Fatalf("client not applied: %v %v", c, err)
	}
	// One naming a resource server that is neither declared nor stored: refused, nothing written.
	err = apply(`{"clients":[{"client_id":"ghost-user","client_secret":"0123456789abcdef","grant_types":["client_credentials"],"resources":["https://zz/"]}]}`)
	if err == nil || !strings.Contains(err.Error(), "clients[0].resources[0]") {
		t.Fatalf("undeclared, unstored resource: %v", err)
	}
	if _, err := as.store.Client(ctx, "ghost-user"); err == nil {
		t.Fatal("a refused setup was written")
	}
	err = apply(`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"https://i/k","scopes":[],"resources":["https://zz/"]}]}`)
	if err == nil || !strings.Contains(err.Error(), "trusted_issuers[0].resources[0]") {
		t.Fatalf("a trust naming an unknown resource: %v", err)
	}
}
