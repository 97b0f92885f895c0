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
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"https://i/jwks","jwks_from_metadata":true,"scopes":[],"resources":[]}]}`, "trusted_issuers[0].jwks_from_metadata"},
		{`{"trusted_issuers":[{"issuer":"svc@partner","subject":"s","jwks_from_metadata":true,"scopes":[],"resources":[]}]}`, "trusted_issuers[0].issuer"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_from_metadata":true,"transcribe":["sub"],"scopes":[],"resources":[]}]}`, "trusted_issuers[0].transcribe[0]"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_from_metadata":true,"transcribe":["act","act"],"scopes":[],"resources":[]}]}`, "trusted_issuers[0].transcribe[1]: duplicate"},
		{`{"peers":[{"issuer":"https://y.example/as?x=1"}]}`, "peers[0].issuer"},
		{`{"peers":[{"issuer":"http://y.example"}]}`, "peers[0].issuer"},
		{`{"peers":[{"issuer":"https://y.example"},{"issuer":"https://y.example"}]}`, "peers[1].issuer: duplicate"},
		{`{"resource_servers":[{"identifier":"https://y.example","scopes":[]}],"peers":[{"issuer":"https://y.example"}]}`, "peers[0].issuer"},
		{`{"peers":[{"issuer":"https://y.example","claims":["scope"]}]}`, "peers[0].claims[0]"},
		{`{"peers":[{"issuer":"https://y.example","claims":["may_act"]}]}`, "peers[0].claims[0]"},
		{`{"peers":[{"issuer":"https://y.example","max_grant_lifetime":"2h"}]}`, "peers[0].max_grant_lifetime"},
		{`{"peers":[{"issuer":"https://y.example","signing_alg":"HS256"}]}`, "peers[0].signing_alg"},
		{`{"peers":[{"issuer":"https://y.example","token_endpoint":"http://y.example/token"}]}`, "peers[0].token_endpoint"},
		{`{"peers":[{"issuer":"https://y.example","scopes":["a b"]}]}`, "peers[0].scopes[0]"},
		{`{"peers":[{"issuer":"https://y.example","bogus":1}]}`, "peers[0].bogus: unknown field"},
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

// TestApplyPeers: peers are stored with their rules; a client may name a declared or stored
// peer among its resources; a peer that is this server, or a stored resource server, is refused.
func TestApplyPeers(t *testing.T) {
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
	if err := apply(`{"peers":[{"issuer":"https://as.y.example","name":"Y","scopes":["stock:read"],"claims":["act","tenant"],
		"max_grant_lifetime":"90s","signing_alg":"EdDSA","token_endpoint":"https://as.y.example/token"}]}`); err != nil {
		t.Fatal(err)
	}
	pe, err := as.store.Peer(ctx, "https://as.y.example")
	if err != nil || pe.Name != "Y" || pe.MaxGrantLifetime.Seconds() != 90 || pe.SigningAlg != "EdDSA" || pe.TokenEndpoint != "https://as.y.example/token" ||
		len(pe.Scopes) != 1 || len(pe.Claims) != 2 {
		t.Fatalf("peer %+v, %v", pe, err)
	}
	// A later, partial setup names the stored peer among a client's resources.
	if err := apply(`{"clients":[{"client_id":"b","client_secret":"0123456789abcdef","grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"],
		"scopes":["stock:read"],"resources":["https://as.y.example"],"serves":["https://orders.example.com/"]}]}`); err != nil {
		t.Fatalf("a client naming a stored peer: %v", err)
	}
	for doc, want := range map[string]string{
		`{"peers":[{"issuer":"` + as.issuer + `"}]}`:                               "not its own peer",
		`{"peers":[{"issuer":"https://orders.example.com/"}]}`:                     "a resource server too",
		`{"resource_servers":[{"identifier":"https://as.y.example","scopes":[]}]}`: "a peer authorization server too",
		`{"trusted_issuers":[{"issuer":"https://as.x.example","allow_any_subject":true,"jwks_from_metadata":true,"scopes":[],"resources":["https://as.y.example"]}]}`: "trusted_issuers[0].resources[0]",
	} {
		if err := apply(doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", doc, err, want)
		}
	}
	// A trust keyed to an issuer's metadata, with transcription.
	if err := apply(`{"trusted_issuers":[{"issuer":"https://as.x.example","allow_any_subject":true,"jwks_from_metadata":true,
		"transcribe":["act","scope","tenant"],"scopes":["orders:read"],"resources":["https://orders.example.com/"]}]}`); err != nil {
		t.Fatal(err)
	}
	trusts, err := as.store.Trusts(ctx, "https://as.x.example")
	if err != nil || len(trusts) != 1 || !trusts[0].MetadataKeys || len(trusts[0].Transcribe) != 3 || trusts[0].JWKSURI != "" {
		t.Fatalf("trust %+v, %v", trusts, err)
	}
}
