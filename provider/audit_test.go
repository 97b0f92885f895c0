package provider_test

// Audit of issue 3 (provider, RFC 9068 tokens, keys, RFC 8414 metadata, JWKS): the items the
// other test files did not pin down.

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy"
)

// TestAuditConfigErrorsNeverPanic: every bad Config is an error from New naming the field,
// never a panic (issue 3, "validated in provider.New, which returns errors (never panics)").
func TestAuditConfigErrorsNeverPanic(t *testing.T) {
	st := newStore(t)
	var nilStore *gormstore.Store
	var nilKeys *strategy.RotatingKeys
	cases := []struct {
		name   string
		mutate func(*provider.Config)
		want   string
	}{
		{"issuer with user info", func(c *provider.Config) { c.Issuer = "https://u:p@as.example" }, "user info"},
		{"issuer not http(s)", func(c *provider.Config) { c.Issuer = "ftp://as.example" }, "https URL"},
		{"issuer without host", func(c *provider.Config) { c.Issuer = "https:///oauth2" }, "host"},
		{"issuer path with an encoded space", func(c *provider.Config) { c.Issuer = "https://as.example/tenant%20a" }, "percent-encoding"},
		{"issuer path with encoded UTF-8", func(c *provider.Config) { c.Issuer = "https://as.example/t%C3%A9" }, "percent-encoding"},
		{"issuer path with an encoded letter", func(c *provider.Config) { c.Issuer = "https://as.example/%6Fauth2" }, "percent-encoding"},
		{"issuer path with braces", func(c *provider.Config) { c.Issuer = "https://as.example/{tenant}" }, "percent-encoding"},
		{"issuer with a port but no host name", func(c *provider.Config) { c.Issuer = "https://:8443/oauth2" }, "host"},
		{"issuer relative", func(c *provider.Config) { c.Issuer = "/oauth2" }, "https URL"},
		{"issuer empty query", func(c *provider.Config) { c.Issuer = "https://as.example/?" }, "query"},
		{"issuer bad escape", func(c *provider.Config) { c.Issuer = "https://as.example/%zz" }, "Issuer"},
		{"signing alg none", func(c *provider.Config) { c.SigningAlgorithms = []string{"none"} }, "SigningAlgorithms"},
		{"signing alg listed twice", func(c *provider.Config) { c.SigningAlgorithms = []string{"ES256", "ES256"} }, "twice"},
		{"refresh TTL negative", func(c *provider.Config) { c.RefreshTokenTTL = -time.Second }, "RefreshTokenTTL"},
		{"code TTL under a second", func(c *provider.Config) { c.AuthorizeCodeTTL = time.Millisecond }, "AuthorizeCodeTTL"},
		{"assertion leeway negative", func(c *provider.Config) { c.AssertionLeeway = -time.Second }, "AssertionLeeway"},
		{"assertion leeway too large", func(c *provider.Config) { c.AssertionLeeway = 6 * time.Minute }, "AssertionLeeway"},
		{"max assertion lifetime too large", func(c *provider.Config) { c.MaxAssertionLifetime = 25 * time.Hour }, "MaxAssertionLifetime"},
		{"max client assertion lifetime negative", func(c *provider.Config) { c.MaxClientAssertionLifetime = -time.Minute }, "MaxClientAssertionLifetime"},
		{"body bound too small", func(c *provider.Config) { c.MaxBodyBytes = 100 }, "MaxBodyBytes"},
		{"rotation period negative", func(c *provider.Config) { c.Rotation.Period = -time.Hour }, "Period"},
		{"rotation propagation negative", func(c *provider.Config) { c.Rotation.Propagation = -time.Hour }, "Propagation"},
		{"rotation propagation shorter than the JWKS cache", func(c *provider.Config) { c.Rotation.Propagation = time.Minute }, "Propagation"},
		{"nil claim mapper", func(c *provider.Config) { c.ClaimMappers = []strategy.ClaimMapper{nil} }, "ClaimMappers[0]"},
		{"typed nil storage", func(c *provider.Config) { c.Storage = nilStore }, "Storage"},
		{"typed nil keys", func(c *provider.Config) { c.Keys = nilKeys }, "Keys"},
		{"nil claim mapper func", func(c *provider.Config) { c.ClaimMappers = []strategy.ClaimMapper{strategy.ClaimMapperFunc(nil)} }, "ClaimMappers[0]"},
		{"nil authenticator func", func(c *provider.Config) { c.Authenticator = provider.AuthenticatorFunc(nil) }, "Authenticator"},
		{"nil consenter func", func(c *provider.Config) { c.Consenter = provider.ConsenterFunc(nil) }, "Consenter"},
		{"nil users func", func(c *provider.Config) { c.Users = strategy.UsersFunc(nil) }, "Users"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := provider.Config{Issuer: "https://as.example", Secret: testSecret(t), Storage: st}
			tc.mutate(&cfg)
			var (
				p   *provider.Provider
				err error
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("New panicked: %v", r)
					}
				}()
				p, err = provider.New(context.Background(), cfg)
			}()
			if err == nil {
				p.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "provider:") {
				t.Fatalf("error %q: want the provider: prefix and %q", err, tc.want)
			}
		})
	}
}

// TestAuditPatterns: the paths to mount for issuers with and without a path, with a trailing
// slash (kept exactly in the metadata), and nested paths (RFC 8414 §3.1 inserts the well-known
// segment before the issuer's path).
func TestAuditPatterns(t *testing.T) {
	cases := []struct {
		issuer string
		want   []string
	}{
		{"https://as.example", []string{"/.well-known/oauth-authorization-server", "/token", "/authorize", "/introspect", "/revoke", "/jwks.json"}},
		{"https://as.example/", []string{"/.well-known/oauth-authorization-server", "/token", "/authorize", "/introspect", "/revoke", "/jwks.json"}},
		{"https://as.example/oauth2", []string{"/.well-known/oauth-authorization-server/oauth2", "/oauth2/token", "/oauth2/authorize", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/jwks.json"}},
		{"https://as.example/oauth2/", []string{"/.well-known/oauth-authorization-server/oauth2", "/oauth2/token", "/oauth2/authorize", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/jwks.json"}},
		{"https://as.example:8443/t/tenant-1", []string{"/.well-known/oauth-authorization-server/t/tenant-1", "/t/tenant-1/token", "/t/tenant-1/authorize", "/t/tenant-1/introspect", "/t/tenant-1/revoke", "/t/tenant-1/jwks.json"}},
	}
	st, secret := newStore(t), testSecret(t)
	for _, tc := range cases {
		t.Run(tc.issuer, func(t *testing.T) {
			p, err := provider.New(context.Background(), provider.Config{Issuer: tc.issuer, Secret: secret, Storage: st, GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.Patterns(); !slices.Equal(got, tc.want) {
				t.Fatalf("Patterns() = %q, want %q", got, tc.want)
			}
			if p.Issuer() != tc.issuer {
				t.Fatalf("Issuer() = %q", p.Issuer())
			}
			// Every pattern is served, and nothing else: the paths are absolute, so the
			// provider answers them without any prefix stripping.
			for _, pat := range tc.want {
				rec := httptest.NewRecorder()
				p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://as.example"+pat, nil))
				if rec.Code == http.StatusNotFound {
					t.Errorf("%s: 404", pat)
				}
			}
			for _, miss := range []string{"/token/", "/x/token", "/.well-known/openid-configuration"} {
				rec := httptest.NewRecorder()
				p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://as.example"+miss, nil))
				if rec.Code != http.StatusNotFound {
					t.Errorf("%s: %d, want 404", miss, rec.Code)
				}
			}
		})
	}
}

// TestAuditTrailingSlashIssuer: an issuer with a trailing slash is published exactly as
// configured, in the metadata and in every token, and a verifier configured with it accepts
// the tokens (RFC 8414 §3.3: identical issuer).
func TestAuditTrailingSlashIssuer(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String() + "/oauth2/"
	srv.Listener.Close()
	as := newASWith(t, newStore(t), testSecret(t), issuer)
	_, md := as.do(mustReq(t, http.MethodGet, "http://"+as.srv.Listener.Addr().String()+"/.well-known/oauth-authorization-server/oauth2"))
	if md["issuer"] != issuer {
		t.Fatalf("metadata issuer %v, want exactly %q", md["issuer"], issuer)
	}
	if md["token_endpoint"] != strings.TrimSuffix(issuer, "/")+"/token" {
		t.Fatalf("token_endpoint %v", md["token_endpoint"])
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+as.srv.Listener.Addr().String()+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "svc-secret-0123456789")
	resp, m := as.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	tok := m["access_token"].(string)
	if c := claimsOf(t, tok); c["iss"] != issuer {
		t.Fatalf("iss %v, want exactly %q", c["iss"], issuer)
	}
	if _, err := newVerifier(t, as, orders, nil).Verify(context.Background(), tok); err != nil {
		t.Fatalf("verifier with the trailing-slash issuer: %v", err)
	}
}

// TestAuditNoOpenIDDiscovery: mandate is not an OpenID Provider (README, Conformance) and
// serves no openid-configuration document anywhere, so there is nothing that could disagree
// with the RFC 8414 metadata.
func TestAuditNoOpenIDDiscovery(t *testing.T) {
	as := newAS(t)
	base := "http://" + as.srv.Listener.Addr().String()
	// Asked directly, as a catch-all mount would pass every path on.
	for _, p := range []string{
		"/.well-known/openid-configuration",
		"/oauth2/.well-known/openid-configuration",
		"/.well-known/openid-configuration/oauth2",
	} {
		rec := httptest.NewRecorder()
		as.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, base+p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, rec.Code)
		}
	}
	for _, pat := range as.p.Patterns() {
		if strings.Contains(pat, "openid") {
			t.Errorf("pattern %s", pat)
		}
	}
	_, md := as.do(mustReq(t, http.MethodGet, base+"/.well-known/oauth-authorization-server/oauth2"))
	for _, oidc := range []string{"userinfo_endpoint", "id_token_signing_alg_values_supported", "subject_types_supported", "claims_supported"} {
		if _, ok := md[oidc]; ok {
			t.Errorf("metadata has OpenID member %s", oidc)
		}
	}
}

// TestAuditMetadataMembers: every RFC 8414 §2 member the issue lists, with the values the
// endpoints actually implement.
func TestAuditMetadataMembers(t *testing.T) {
	as := newAS(t)
	u := "http://" + as.srv.Listener.Addr().String() + "/.well-known/oauth-authorization-server/oauth2"
	resp, md := as.do(mustReq(t, http.MethodGet, u))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	list := func(member string) []string {
		var out []string
		for _, v := range md[member].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	want := map[string][]string{
		"token_endpoint_auth_methods_supported":            {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported":    {"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"revocation_endpoint_auth_methods_supported":       {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"response_types_supported":                         {"code"},
		"response_modes_supported":                         {"query"},
		"code_challenge_methods_supported":                 {"S256"},
		"token_endpoint_auth_signing_alg_values_supported": {"RS256", "PS256", "ES256", "ES384", "EdDSA"},
	}
	for m, w := range want {
		if got := list(m); !slices.Equal(got, w) {
			t.Errorf("%s = %v, want %v", m, got, w)
		}
	}
	scopes := list("scopes_supported")
	slices.Sort(scopes)
	if !slices.Equal(scopes, []string{"billing:read", "orders:read", "orders:write", "other:read"}) {
		t.Errorf("scopes_supported %v", scopes)
	}
	for _, g := range list("grant_types_supported") {
		if g == "implicit" || g == "password" {
			t.Errorf("grant_types_supported lists %s", g)
		}
	}
	// A newly registered resource server's scopes appear at once (the document is fresh).
	if err := as.store.SaveResourceServer(context.Background(), &storage.ResourceServer{Identifier: "https://new.example/", Scopes: []string{"new:read"}}); err != nil {
		t.Fatal(err)
	}
	_, md = as.do(mustReq(t, http.MethodGet, u))
	if !slices.Contains(list("scopes_supported"), "new:read") {
		t.Errorf("scopes_supported misses a new resource server's scope: %v", md["scopes_supported"])
	}
	// Only GET and HEAD.
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST metadata: %d", resp.StatusCode)
	}
}

// TestAuditSecrets: generated client secrets carry 256 bits, are stored under the keyed hash,
// and bcrypt hashes from elsewhere still verify.
func TestAuditSecrets(t *testing.T) {
	a, err := provider.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := provider.GenerateSecret()
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || a == b {
		t.Fatalf("GenerateSecret %q (%d bytes, %v), second %q", a, len(raw), err, b)
	}
	if _, err := provider.NewSecretHasher(make([]byte, 31)); err == nil {
		t.Fatal("a 31-byte hasher key was accepted")
	}
	k := testSecret(t)
	h, _ := provider.NewSecretHasher(k)
	ctx := context.Background()
	hash, err := h.Hash(ctx, []byte(a))
	if err != nil || !strings.HasPrefix(string(hash), "$mandate-hmac-sha256$") || strings.Contains(string(hash), a) {
		t.Fatalf("hash %q %v", hash, err)
	}
	if err := h.Compare(ctx, hash, []byte(a)); err != nil {
		t.Fatal(err)
	}
	if err := h.Compare(ctx, hash, []byte(b)); err == nil {
		t.Fatal("another secret matched")
	}
	other, _ := provider.NewSecretHasher(testSecret(t))
	if err := other.Compare(ctx, hash, []byte(a)); err == nil {
		t.Fatal("a hash verified under another key: the hash is not keyed")
	}
	bc := "$2a$04$" + bcryptOf(t, "imported")
	if err := h.Compare(ctx, []byte(bc), []byte("imported")); err != nil {
		t.Fatal(err)
	}
	if err := h.Compare(ctx, []byte(bc), []byte("imported!")); err == nil {
		t.Fatal("wrong bcrypt secret matched")
	}
	for _, bad := range []string{"", "plain-text", "$1$md5"} {
		if err := h.Compare(ctx, []byte(bad), []byte(bad)); err == nil {
			t.Fatalf("hash %q of unknown format verified", bad)
		}
	}
}

// TestAuditSetupErrors: the declarative setup refuses what the issue lists (unknown fields,
// bad URIs, unknown algorithms, duplicate ids) with a message naming the field, for the cases
// setup_test.go does not cover.
func TestAuditSetupErrors(t *testing.T) {
	rs := `{"identifier":"https://a.example/","scopes":["a"]}`
	cc := func(extra string) string {
		return `{"client_id":"c","client_secret":"0123456789abcdef","grant_types":["client_credentials"],"scopes":[],"resources":[]` + extra + `}`
	}
	cases := []struct{ doc, want string }{
		{`{"clients":[` + cc("") + `,` + cc("") + `]}`, "clients[1].client_id: duplicate"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"https://i/k","scopes":[],"resources":[]},{"issuer":"https://i/","subject":"s","jwks_uri":"https://i/k","scopes":[],"resources":[]}]}`, "trusted_issuers[1]: duplicate"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","allow_any_subject":true,"scopes":[],"resources":[]}]}`, "trusted_issuers[0].subject"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"https://i/k","scopes":[],"resources":[],"max_assertion_lifetime":"48h"}]}`, "trusted_issuers[0].max_assertion_lifetime"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","scopes":[],"resources":[]}]}`, "trusted_issuers[0].jwks: a trust needs jwks or jwks_uri"},
		// A value of the wrong JSON type names its element, with the index.
		{`{"resource_servers":[{"identifier":"https://a/","scopes":[]},{"identifier":"https://b/","scopes":"x"}]}`, "resource_servers[1].scopes: a JSON string where a list belongs"},
		{`{"clients":[{"client_id":"a"},{"client_id":3}]}`, "clients[1].client_id: a JSON number where a string belongs"},
		{`{"resource_servers":[{"identifier":"https://a/","default":"yes"}]}`, "resource_servers[0].default: a JSON string where true or false belongs"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks":{"keys":[{"kty":"zz"}]}}]}`, "trusted_issuers[0].jwks: "},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","scopes":[],"resources":[],"bogus":1}]}`, "trusted_issuers[0].bogus: unknown field"},
		{`{"clients":[` + cc(`,"token_endpoint_auth_signing_alg":"HS256"`) + `]}`, "clients[0].token_endpoint_auth_signing_alg"},
		{`{"clients":[` + cc(`,"jwks_uri":"http://evil.example/jwks"`) + `]}`, "clients[0].jwks_uri"},
		{`{"clients":[{"client_id":"c","client_secret":"short","grant_types":["client_credentials"],"scopes":[],"resources":[]}]}`, "clients[0].client_secret"},
		{`{"clients":[{"client_id":"c","client_secret_hash":"plain","grant_types":["client_credentials"],"scopes":[],"resources":[]}]}`, "clients[0].client_secret_hash"},
		{`{"clients":[{"client_id":"c","public":true,"client_secret":"0123456789abcdef","grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb"],"scopes":[],"resources":[]}]}`, "clients[0].client_secret"},
		{`{"clients":[{"client_id":"c","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb#x"],"scopes":[],"resources":[]}]}`, "clients[0].redirect_uris[0]"},
		{`{"clients":[{"client_id":"c","public":true,"grant_types":["authorization_code"],"scopes":[],"resources":[]}]}`, "clients[0].redirect_uris"},
		{`{"clients":[{"client_id":"c","token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"],"jwks":{"keys":[{"kty":"EC","crv":"P-256","use":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},"scopes":[],"resources":[]}]}`, "clients[0].jwks.keys[0]"},
		{`{"clients":[{"client_id":"","client_secret":"0123456789abcdef","grant_types":["client_credentials"],"scopes":[],"resources":[]}]}`, "clients[0].client_id"},
		{`{"issuer":"http://as.example","resource_servers":[]}`, "issuer"},
		{`{"resource_servers":[{"identifier":"https://a.example/%6F","scopes":[]}]}`, "resource_servers[0].identifier"},
		{`{"resource_servers":[{"identifier":"urn:x:y","scopes":[]}]}`, "resource_servers[0].identifier"},
		{`{"resource_servers":[{"identifier":"https://:443/","scopes":[]}]}`, "resource_servers[0].identifier"},
		{`{"trusted_issuers":[{"issuer":"https://i/","subject":"s","jwks_uri":"https://:443/jwks","scopes":[],"resources":[]}]}`, "trusted_issuers[0].jwks_uri"},
		{`{"resource_servers":[` + rs + `],"clients":[{"client_id":"c","client_secret":"0123456789abcdef","grant_types":["client_credentials"],"scopes":["a"],"resources":["https://a.example"]}]}`, "clients[0].resources[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			s, err := provider.ParseSetup([]byte(tc.doc))
			if err == nil || s != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// serveInProcess sends a form to as's endpoint name in process (no listener), with optional Basic
// credentials.
func serveInProcess(t *testing.T, as *testAS, name string, form url.Values, user, pass string) *httptest.ResponseRecorder {
	t.Helper()
	iu, err := url.Parse(as.issuer)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, as.issuer+"/"+name, strings.NewReader(form.Encode()))
	req.URL.Path = strings.TrimSuffix(iu.Path, "/") + "/" + name
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	rec := httptest.NewRecorder()
	as.p.ServeHTTP(rec, req)
	return rec
}

// TestAuditNeverNoneOrHMAC: a resource server stored (bypassing the setup's checks) with alg
// none or an HMAC algorithm gets no token at all — mandate never signs with them.
func TestAuditNeverNoneOrHMAC(t *testing.T) {
	as := newAS(t)
	for _, alg := range []string{"none", "HS256", "HS512", "RS1"} {
		t.Run(alg, func(t *testing.T) {
			id := "https://" + strings.ToLower(alg) + ".example/"
			if err := as.store.SaveResourceServer(context.Background(), &storage.ResourceServer{Identifier: id, Scopes: []string{"x"}, SigningAlg: alg}); err != nil {
				t.Fatal(err)
			}
			c, err := as.store.Client(context.Background(), "svc")
			if err != nil {
				t.Fatal(err)
			}
			c.Resources = append(c.Resources, id)
			c.Scopes = append(c.Scopes, "x")
			if err := as.store.SaveClient(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "resource": {id}}, "svc", "svc-secret-0123456789")
			if resp.StatusCode == 200 || m["access_token"] != nil {
				t.Fatalf("a token for a resource server with alg %s: %d %v", alg, resp.StatusCode, m)
			}
		})
	}
	// And the published keys are all asymmetric, with an asymmetric alg.
	resp, err := http.Get(as.endpoint("jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct{ Keys []map[string]any }
	if err := jsonDecode(resp, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k["kty"] == "oct" || !slices.Contains([]any{"RS256", "PS256", "ES256", "ES384", "EdDSA"}, k["alg"]) {
			t.Fatalf("published key %v", k)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=300") {
		t.Fatalf("JWKS Cache-Control %q", cc)
	}
}

// TestAuditStatelessRevocationChecksTheCaller: with stateless access tokens too, revocation by
// an unknown client, or with a wrong secret, is 401 invalid_client and revokes nothing.
func TestAuditStatelessRevocationChecksTheCaller(t *testing.T) {
	as := newAS(t, func(c *provider.Config) { c.StatelessAccessTokens = true })
	tok := as.clientCredentials("orders:read", orders)
	for _, cred := range [][2]string{{"ghost", "ghost-secret"}, {"svc", "wrong"}} {
		resp, m := as.post("revoke", url.Values{"token": {tok}}, cred[0], cred[1])
		if resp.StatusCode != 401 || m["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: %d %v", cred[0], resp.StatusCode, m)
		}
	}
	resp, m := as.post("revoke", url.Values{"token": {tok}, "client_id": {"ghost"}, "client_secret": {"ghost-secret"}}, "", "")
	if resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("client_secret_post of an unknown client: %d %v", resp.StatusCode, m)
	}
	if _, m := as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789"); m["active"] != true {
		t.Fatalf("refused revocations revoked the token: %v", m)
	}
}
