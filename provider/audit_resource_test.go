package provider_test

// Audit of issue 4 (RFC 8707 resource indicators) end to end: every rule of resource handling
// at the token and authorization endpoints, the default resource, and the audience parameter.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
)

// badResources are resource values refused with invalid_target, and a word of the
// description that names the rule.
var badResources = []struct{ name, value, hint string }{
	{"empty", "", "empty"},
	{"relative", "/orders", "absolute"},
	{"no scheme", "orders.example.com/", "absolute"},
	{"fragment", orders + "#frag", "fragment"},
	{"empty fragment", orders + "#", "fragment"},
	{"urn", "urn:example:orders", "http or https"},
	{"ftp", "ftp://orders.example.com/", "http or https"},
	{"javascript", "javascript:alert(1)", "http or https"},
	{"no host", "https:///orders", "host"},
	{"user info", "https://svc@orders.example.com/", "user information"},
	{"dot segment", "https://orders.example.com/x/../", "dot segments"},
	{"encoded dot segment", "https://orders.example.com/x/%2e%2e/", "dot segments"},
	{"encoded unreserved in the path", "https://orders.example.com/%6Frders", "percent-encode"},
	{"encoded character in the host", "https://%6Frders.example.com/", "valid URI"},
	{"encoded tilde", "https://orders.example.com/%7E", "percent-encode"},
	{"white space", "https://orders.example.com/ ", "white space"},
	{"backslash", "https://orders.example.com\\@evil.example/", "backslash"},
	{"NUL", "https://orders.example.com/\x00", "control"},
	{"over 2 KiB", orders + strings.Repeat("a", 2049-len(orders)), "longer than"},
	{"bad escape", "https://orders.example.com/%zz", "valid URI"},
	// Well-formed, but not exactly a registered identifier: no prefix or normalizing match.
	{"no trailing slash", "https://orders.example.com", "not a registered"},
	{"prefix", "https://orders.example.com/v1", "not a registered"},
	{"upper-case host", "https://ORDERS.example.com/", "not a registered"},
	{"explicit port", "https://orders.example.com:443/", "not a registered"},
	{"query", orders + "?x=1", "not a registered"},
	{"encoded slash", "https://orders.example.com%2F", "not"},
	{"http instead of https", "http://orders.example.com/", "not a registered"},
	{"unknown", "https://nowhere.example/", "not a registered"},
	{"registered but not the client's", other, "not allowed"},
}

// TestAuditResourceRulesAtTheTokenEndpoint: each bad resource value is invalid_target (400)
// with a description naming the rule, for client_credentials (through x/oauth2's
// EndpointParams, as a client would send it) and never yields a token.
func TestAuditResourceRulesAtTheTokenEndpoint(t *testing.T) {
	as := newAS(t)
	// At exactly 2 KiB the length rule passes (and the lookup fails).
	if n := len(orders + strings.Repeat("a", 2048-len(orders))); n != 2048 {
		t.Fatal(n)
	}
	cases := append(badResources[:len(badResources):len(badResources)],
		struct{ name, value, hint string }{"exactly 2 KiB", orders + strings.Repeat("a", 2048-len(orders)), "not a registered"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := clientcredentials.Config{
				ClientID: "svc", ClientSecret: "svc-secret-0123456789", TokenURL: as.endpoint("token"),
				EndpointParams: url.Values{"resource": {tc.value}}, AuthStyle: oauth2.AuthStyleInHeader,
			}
			tok, err := cc.Token(context.Background())
			var re *oauth2.RetrieveError
			if !asRetrieveError(err, &re) {
				t.Fatalf("token %v, err %v: want invalid_target", tok, err)
			}
			if re.Response.StatusCode != 400 || re.ErrorCode != "invalid_target" || !strings.Contains(re.ErrorDescription, tc.hint) {
				t.Fatalf("%d %s %q, want 400 invalid_target naming %q", re.Response.StatusCode, re.ErrorCode, re.ErrorDescription, tc.hint)
			}
		})
	}
}

// TestAuditResourceRulesAtTheAuthorizationEndpoint: the same rules at /authorize, answered
// as a redirect with error=invalid_target (RFC 8707 §2); also scopes no requested resource
// server accepts (invalid_scope) and the audience parameter (invalid_request).
func TestAuditResourceRulesAtTheAuthorizationEndpoint(t *testing.T) {
	as := newAS(t)
	conf := &oauth2.Config{
		ClientID: "web", Scopes: []string{"orders:read"}, RedirectURL: "http://127.0.0.1:3000/cb",
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	try := func(t *testing.T, scopes []string, kv ...string) url.Values {
		t.Helper()
		c := *conf
		if scopes != nil {
			c.Scopes = scopes
		}
		u, _ := url.Parse(c.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		q := u.Query()
		for i := 0; i+1 < len(kv); i += 2 {
			q.Add(kv[i], kv[i+1])
		}
		u.RawQuery = q.Encode()
		resp, err := client.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode < 300 || resp.StatusCode >= 400 {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if loc.Query().Get("code") != "" {
			t.Fatalf("a code was issued: %v", loc)
		}
		return loc.Query()
	}
	for _, tc := range badResources {
		t.Run(tc.name, func(t *testing.T) {
			q := try(t, nil, "resource", orders, "resource", tc.value)
			if q.Get("error") != "invalid_target" || !strings.Contains(q.Get("error_description"), tc.hint) {
				t.Fatalf("got %v, want invalid_target naming %q", q, tc.hint)
			}
		})
	}
	t.Run("scope of a resource server not requested", func(t *testing.T) {
		q := try(t, []string{"orders:read", "billing:read"}, "resource", orders)
		if q.Get("error") != "invalid_scope" {
			t.Fatalf("got %v", q)
		}
	})
	t.Run("scope the resource server accepts but the client may not have", func(t *testing.T) {
		q := try(t, []string{"orders:write"}, "resource", orders)
		if q.Get("error") != "invalid_scope" {
			t.Fatalf("got %v", q)
		}
	})
	t.Run("scope of no resource server", func(t *testing.T) {
		q := try(t, []string{"orders:read", "nope"}, "resource", orders)
		if q.Get("error") != "invalid_scope" {
			t.Fatalf("got %v", q)
		}
	})
	t.Run("audience parameter", func(t *testing.T) {
		q := try(t, nil, "audience", orders)
		if q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "resource") {
			t.Fatalf("got %v", q)
		}
	})
	t.Run("default resource the client may not use", func(t *testing.T) {
		if err := as.store.SaveClient(context.Background(), &storage.Client{ID: "web-billing", Public: true, RedirectURIs: []string{"http://127.0.0.1:3000/cb"},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"billing:read"}, Resources: []string{billing}, TokenEndpointAuthMethod: storage.AuthMethodNone}); err != nil {
			t.Fatal(err)
		}
		c := *conf
		c.ClientID, c.Scopes = "web-billing", []string{"billing:read"}
		resp, err := client.Get(c.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") != "invalid_target" {
			t.Fatalf("got %v", loc)
		}
	})
}

// TestAuditDefaultResource: without resource, the default resource server is the audience
// and the response names it; a client that may not use the default, or a server without
// one, gets invalid_target — never a token with an empty aud.
func TestAuditDefaultResource(t *testing.T) {
	as := newAS(t)
	resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	checkPolicy(t, as, m, time.Now(), orders, "ES256", 10*time.Minute, "orders:read orders:write")

	// rs may use no resource server at all.
	resp, m = as.post("token", url.Values{"grant_type": {"client_credentials"}}, "rs", "rs-secret-0123456789")
	if resp.StatusCode != 400 || m["error"] != "invalid_target" || m["access_token"] != nil {
		t.Fatalf("client without resources: %d %v", resp.StatusCode, m)
	}

	// A server with no default resource server.
	st := newStore(t)
	p, err := provider.New(context.Background(), provider.Config{Issuer: "https://as.example", Secret: testSecret(t), Storage: st, SigningAlgorithms: []string{"ES256", "RS256"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := provider.ParseSetup([]byte(strings.Replace(testSetup, `"default": true`, `"default": false`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	nd := &testAS{t: t, p: p, issuer: "https://as.example"}
	rec := serveInProcess(t, nd, "token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret-0123456789")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"invalid_target"`) || !strings.Contains(rec.Body.String(), "no default") {
		t.Fatalf("no default resource server: %d %s", rec.Code, rec.Body)
	}
	// Naming one still works.
	rec = serveInProcess(t, nd, "token", url.Values{"grant_type": {"client_credentials"}, "resource": {billing}}, "svc", "svc-secret-0123456789")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// TestAuditJWTBearerPolicy: the jwt-bearer grant follows the resource server's policy like the
// others (one funnel): its alg, its TTL with expires_in == exp - iat, the resource member, and
// several resources are invalid_target.
func TestAuditJWTBearerPolicy(t *testing.T) {
	as := newAS(t)
	idp := genKey(t, "ES256", "idp-policy")
	bearerAS(t, as, idp)
	f := url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "resource": {billing}}
	resp, m := as.post("token", f, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	checkPolicy(t, as, m, time.Now(), billing, "RS256", 5*time.Minute, "billing:read")
	resp, m = as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	checkPolicy(t, as, m, time.Now(), orders, "ES256", 10*time.Minute, "orders:read")
	for name, f := range map[string]url.Values{
		"two resources":      {"resource": {orders, billing}},
		"the same one twice": {"resource": {orders, orders}},
		"empty":              {"resource": {""}},
		"fragment":           {"resource": {orders + "#x"}},
	} {
		f.Set("grant_type", jwtBearer)
		f.Set("assertion", idp.sign(t, as.assertionClaims(idpIssuer, "svc-a")))
		if resp, m := as.post("token", f, "", ""); resp.StatusCode != 400 || m["error"] != "invalid_target" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
	f = url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))}, "audience": {orders}}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 400 || m["error"] != "invalid_request" {
		t.Errorf("audience parameter: %d %v", resp.StatusCode, m)
	}
}
