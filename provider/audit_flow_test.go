package provider_test

// Audit of the grant flows (issues 3 and 4): user claims, fresh iat on refresh, per-resource
// policy on every grant, narrowing at code exchange, code reuse, revocation of a grant, tokens
// of another kind, and bad input at introspection and revocation.

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/provider"
)

// auditAuthTime is the fixed authentication event the audit's Authenticator reports.
var auditAuthTime = time.Now().Add(-time.Hour).Truncate(time.Second)

func auditLogin(c *provider.Config) {
	c.Authenticator = provider.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (*provider.Authentication, bool) {
		return &provider.Authentication{Subject: "alice", AuthTime: auditAuthTime, ACR: "urn:test:mfa", AMR: []string{"pwd", "otp"}}, true
	})
}

// auditCode runs /authorize with PKCE for client and returns the config, the code and the
// verifier, so that the caller can exchange it with any parameters.
func auditCode(t *testing.T, as *testAS, client, secret string, scopes []string, resources ...string) (*oauth2.Config, string, string) {
	t.Helper()
	conf := &oauth2.Config{
		ClientID: client, ClientSecret: secret, Scopes: scopes, RedirectURL: "http://127.0.0.1:3000/cb",
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")},
	}
	verifier := oauth2.GenerateVerifier()
	u, _ := url.Parse(conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier)))
	q := u.Query()
	if len(resources) > 0 {
		q["resource"] = resources
	}
	u.RawQuery = q.Encode()
	return conf, authorize(t, u.String()), verifier
}

// auditExchange posts an authorization_code token request for the public client web.
func (as *testAS) auditExchange(code, verifier string, kv ...string) (*http.Response, map[string]any) {
	as.t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {"http://127.0.0.1:3000/cb"}, "client_id": {"web"}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return as.post("token", f, "", "")
}

// auditRefresh posts a refresh_token request for the public client web.
func (as *testAS) auditRefresh(rt string, kv ...string) (*http.Response, map[string]any) {
	as.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"web"}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return as.post("token", f, "", "")
}

// auditIntrospect asks as the confidential client rs.
func (as *testAS) auditIntrospect(token string, kv ...string) map[string]any {
	as.t.Helper()
	f := url.Values{"token": {token}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	resp, m := as.post("introspect", f, "rs", "rs-secret-0123456789")
	if resp.StatusCode != 200 {
		as.t.Fatalf("introspect: %d %v", resp.StatusCode, m)
	}
	return m
}

// checkPolicy checks what the resource server decides for a token response: aud, alg,
// lifetime (exp - iat == expires_in == ttl), scope claim and member, resource member.
func checkPolicy(t *testing.T, as *testAS, m map[string]any, at time.Time, aud, alg string, ttl time.Duration, scope string) map[string]any {
	t.Helper()
	tok, _ := m["access_token"].(string)
	if tok == "" {
		t.Fatalf("no access token: %v", m)
	}
	hdr, c := as.verifyIndependentlyAt(tok, aud, at)
	if hdr["alg"] != alg {
		t.Errorf("alg %v, want %s", hdr["alg"], alg)
	}
	if c["aud"] != aud {
		t.Errorf("aud %v, want the single string %s", c["aud"], aud)
	}
	if life := c["exp"].(float64) - c["iat"].(float64); life != ttl.Seconds() {
		t.Errorf("exp - iat = %v, want %v", life, ttl.Seconds())
	}
	if m["expires_in"] != ttl.Seconds() {
		t.Errorf("expires_in %v, want %v (exp - iat)", m["expires_in"], ttl.Seconds())
	}
	if got, _ := c["scope"].(string); got != scope {
		t.Errorf("scope claim %q, want %q", got, scope)
	}
	if got, _ := m["scope"].(string); got != scope {
		t.Errorf("scope member %q, want %q", got, scope)
	}
	if m["resource"] != aud {
		t.Errorf("resource member %v, want %s", m["resource"], aud)
	}
	if strings.ToLower(m["token_type"].(string)) != "bearer" {
		t.Errorf("token_type %v", m["token_type"])
	}
	return c
}

// TestAuditUserClaimsFreshIATAndPolicyOnRefresh: auth_time, acr and amr come from the
// Authenticator and survive refresh; every refreshed token has a fresh iat and jti (fosite's
// stock session keeps the first iat); each token follows its resource server's TTL and
// algorithm with expires_in == exp - iat; introspection answers the refreshed token's own
// claims.
func TestAuditUserClaimsFreshIATAndPolicyOnRefresh(t *testing.T) {
	clk := newClock()
	as := newAS(t, auditLogin, func(c *provider.Config) { c.Now = clk.Now })
	_, code, verifier := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	resp, m := as.auditExchange(code, verifier)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("exchange: %d %v %q", resp.StatusCode, m, resp.Header.Get("Cache-Control"))
	}
	c1 := checkPolicy(t, as, m, clk.Now(), orders, "ES256", 10*time.Minute, "orders:read")
	for k, v := range map[string]any{"sub": "alice", "client_id": "web", "auth_time": float64(auditAuthTime.Unix()), "acr": "urn:test:mfa", "amr": []any{"pwd", "otp"}} {
		if !reflect.DeepEqual(c1[k], v) {
			t.Errorf("%s = %v, want %v", k, c1[k], v)
		}
	}
	if c1["iat"] != float64(clk.Now().Unix()) {
		t.Errorf("iat %v, want now %d", c1["iat"], clk.Now().Unix())
	}

	clk.Add(7 * time.Minute)
	resp, m2 := as.auditRefresh(m["refresh_token"].(string), "resource", billing)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m2)
	}
	c2 := checkPolicy(t, as, m2, clk.Now(), billing, "RS256", 5*time.Minute, "billing:read")
	if c2["iat"] != float64(clk.Now().Unix()) || c2["iat"].(float64)-c1["iat"].(float64) != 420 {
		t.Errorf("refreshed iat %v, first %v: want a fresh iat 420s later", c2["iat"], c1["iat"])
	}
	if c2["jti"] == c1["jti"] {
		t.Error("refreshed token reuses the jti")
	}
	for _, k := range []string{"sub", "client_id", "auth_time", "acr", "amr"} {
		if !reflect.DeepEqual(c2[k], c1[k]) {
			t.Errorf("%s changed on refresh: %v → %v", k, c1[k], c2[k])
		}
	}
	// Introspection answers the refreshed token's own claims, not the first token's.
	im := as.auditIntrospect(m2["access_token"].(string))
	for k, v := range c2 {
		if !reflect.DeepEqual(im[k], v) {
			t.Errorf("introspection %s = %v, token has %v", k, im[k], v)
		}
	}
	if len(im) != len(c2)+2 || im["active"] != true || im["token_type"] != "Bearer" {
		t.Errorf("introspection %v", im)
	}

	// A second refresh, for the default: the rotated refresh token still covers both.
	clk.Add(time.Minute)
	resp, m3 := as.auditRefresh(m2["refresh_token"].(string))
	if resp.StatusCode != 200 {
		t.Fatalf("second refresh: %d %v", resp.StatusCode, m3)
	}
	c3 := checkPolicy(t, as, m3, clk.Now(), orders, "ES256", 10*time.Minute, "orders:read")
	if c3["iat"].(float64)-c2["iat"].(float64) != 60 {
		t.Errorf("iat %v after %v: not fresh", c3["iat"], c2["iat"])
	}
}

// TestAuditCodeExchangeNarrowing: at the code exchange the token request may name one resource
// of the grant (narrowing), never one outside it (widening), even if the client may use it.
func TestAuditCodeExchangeNarrowing(t *testing.T) {
	as := newAS(t)
	t.Run("narrow to the second resource", func(t *testing.T) {
		_, code, v := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
		resp, m := as.auditExchange(code, v, "resource", billing)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		checkPolicy(t, as, m, time.Now(), billing, "RS256", 5*time.Minute, "billing:read")
		// The grant was not shrunk to billing: its refresh token still yields orders.
		resp, m = as.auditRefresh(m["refresh_token"].(string), "resource", orders)
		if resp.StatusCode != 200 {
			t.Fatalf("refresh for orders: %d %v", resp.StatusCode, m)
		}
		checkPolicy(t, as, m, time.Now(), orders, "ES256", 10*time.Minute, "orders:read")
	})
	t.Run("a granted resource the client may no longer use", func(t *testing.T) {
		_, code, v := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
		_, code2, v2 := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
		ctx := context.Background()
		c, err := as.store.Client(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		before := slices.Clone(c.Resources)
		c.Resources = slices.DeleteFunc(c.Resources, func(r string) bool { return r == billing })
		as.saveClient(*c)
		defer func() { c.Resources = before; as.saveClient(*c) }()
		resp, m := as.auditExchange(code, v, "resource", billing)
		if d, _ := m["error_description"].(string); resp.StatusCode != 400 || m["error"] != "invalid_target" || !strings.Contains(d, "no longer") {
			t.Fatalf("%d %v, want 400 invalid_target: no longer allowed", resp.StatusCode, m)
		}
		// The resource it may still use is issued.
		resp, m = as.auditExchange(code2, v2, "resource", orders)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		checkPolicy(t, as, m, time.Now(), orders, "ES256", 10*time.Minute, "orders:read")
		// Its refresh token's grant covers billing too, and a refresh re-checks the whole
		// grant against the client's registration: refused, naming the withdrawn resource.
		resp, m = as.auditRefresh(m["refresh_token"].(string), "resource", orders)
		if d, _ := m["error_description"].(string); resp.StatusCode != 400 || m["error"] != "invalid_target" || !strings.Contains(d, billing) {
			t.Fatalf("refresh: %d %v, want 400 invalid_target naming %s", resp.StatusCode, m, billing)
		}
	})
	t.Run("the only granted resource when there is no default in the grant", func(t *testing.T) {
		_, code, v := auditCode(t, as, "web", "", []string{"billing:read"}, billing)
		resp, m := as.auditExchange(code, v)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		checkPolicy(t, as, m, time.Now(), billing, "RS256", 5*time.Minute, "billing:read")
	})
	for _, tc := range []struct {
		name string
		kv   []string
		hint string
	}{
		{"widening to a resource the client may use but was not granted", []string{"resource", billing}, "not granted"},
		{"a resource the client may not use", []string{"resource", other}, "not granted"},
		{"an unknown resource", []string{"resource", "https://nowhere.example/"}, "not granted"},
		{"a prefix of the granted resource", []string{"resource", "https://orders.example.com"}, "not granted"},
		{"two resources", []string{"resource", orders, "resource", billing}, "Only one"},
		{"the audience parameter", []string{"audience", orders}, "resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, code, v := auditCode(t, as, "web", "", []string{"orders:read"}, orders)
			resp, m := as.auditExchange(code, v, tc.kv...)
			want := "invalid_target"
			if tc.kv[0] == "audience" {
				want = "invalid_request"
			}
			if resp.StatusCode != 400 || m["error"] != want || m["access_token"] != nil {
				t.Fatalf("%d %v, want 400 %s", resp.StatusCode, m, want)
			}
			if d, _ := m["error_description"].(string); !strings.Contains(d, tc.hint) {
				t.Fatalf("description %q, want %q", d, tc.hint)
			}
		})
	}
}

// TestAuditCodeReuseRevokesTheGrant: a code used twice is invalid_grant, and the tokens the
// first use issued are revoked (RFC 6749 §4.1.2, RFC 9700).
func TestAuditCodeReuseRevokesTheGrant(t *testing.T) {
	as := newAS(t)
	_, code, v := auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	resp, m := as.auditExchange(code, v)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if im := as.auditIntrospect(m["access_token"].(string)); im["active"] != true {
		t.Fatalf("fresh token inactive: %v", im)
	}
	resp, m2 := as.auditExchange(code, v)
	if resp.StatusCode != 400 || m2["error"] != "invalid_grant" {
		t.Fatalf("second use: %d %v", resp.StatusCode, m2)
	}
	if im := as.auditIntrospect(m["access_token"].(string)); im["active"] != false {
		t.Fatalf("access token of a reused code still active: %v", im)
	}
	if resp, m3 := as.auditRefresh(m["refresh_token"].(string)); resp.StatusCode != 400 || m3["error"] != "invalid_grant" {
		t.Fatalf("refresh token of a reused code: %d %v", resp.StatusCode, m3)
	}
	// A verifier of the wrong length, or none, for a code issued with a challenge.
	_, code, _ = auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	for _, bad := range []string{"", "short", strings.Repeat("a", 129)} {
		resp, m := as.auditExchange(code, bad)
		if resp.StatusCode != 400 || (m["error"] != "invalid_grant" && m["error"] != "invalid_request") {
			t.Fatalf("verifier %q: %d %v", bad, resp.StatusCode, m)
		}
	}
}

// TestAuditRevokingARefreshTokenRevokesTheGrant: RFC 7009 §2.1 — revoking the refresh token
// revokes the access tokens of the same grant; a public client revokes with its client_id
// (the metadata lists "none" for revocation).
func TestAuditRevokingARefreshTokenRevokesTheGrant(t *testing.T) {
	as := newAS(t)
	_, code, v := auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	_, m := as.auditExchange(code, v)
	at, rt := m["access_token"].(string), m["refresh_token"].(string)
	resp, rm := as.post("revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke: %d %v", resp.StatusCode, rm)
	}
	if im := as.auditIntrospect(at); im["active"] != false {
		t.Fatalf("access token active after its refresh token was revoked: %v", im)
	}
	if im := as.auditIntrospect(rt); im["active"] != false {
		t.Fatalf("revoked refresh token active: %v", im)
	}
	if resp, m := as.auditRefresh(rt); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh with a revoked token: %d %v", resp.StatusCode, m)
	}
	// Revoking an access token revokes the grant's refresh token as well.
	_, code, v = auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	_, m = as.auditExchange(code, v)
	resp, _ = as.post("revoke", url.Values{"token": {m["access_token"].(string)}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke access token: %d", resp.StatusCode)
	}
	if resp, m := as.auditRefresh(m["refresh_token"].(string)); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh after the access token was revoked: %d %v", resp.StatusCode, m)
	}
}

// TestAuditTokenOfAnotherKind: tokens of another kind, or hinted as another kind, at
// introspection, revocation and the token endpoint get their RFC answer, never a 500.
func TestAuditTokenOfAnotherKind(t *testing.T) {
	as := newAS(t)
	_, code, v := auditCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "redirect_uri": {"http://127.0.0.1:3000/cb"}}
	resp, m := as.post("token", f, "conf", "conf-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	at, rt := m["access_token"].(string), m["refresh_token"].(string)
	_, unusedCode, _ := auditCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	// A valid at+jwt of the same shape, from another authorization server.
	foreignToken := newAS(t).clientCredentials("orders:read", orders)

	// Introspection: the hint is only a hint (RFC 7662 §2.1).
	if im := as.auditIntrospect(rt, "token_type_hint", "access_token"); im["active"] != true || im["client_id"] != "conf" {
		t.Errorf("refresh token hinted as access token: %v", im)
	}
	if im := as.auditIntrospect(at, "token_type_hint", "refresh_token"); im["active"] != true || im["jti"] != claimsOf(t, at)["jti"] {
		t.Errorf("access token hinted as refresh token: %v", im)
	}
	for name, tok := range map[string]string{"authorization code": unusedCode, "another issuer's access token": foreignToken, "an empty-ish token": "."} {
		if im := as.auditIntrospect(tok); im["active"] != false || len(im) != 1 {
			t.Errorf("%s: %v", name, im)
		}
	}
	for _, hint := range []string{"id_token", "authorization_code", strings.Repeat("x", 300)} {
		resp, m := as.post("introspect", url.Values{"token": {at}, "token_type_hint": {hint}}, "rs", "rs-secret-0123456789")
		if resp.StatusCode >= 500 || (resp.StatusCode == 200 && m["active"] != true) {
			t.Errorf("hint %q: %d %v", hint[:min(len(hint), 20)], resp.StatusCode, m)
		}
	}

	// The token endpoint: a token of one kind where another is expected.
	if resp, m := as.post("token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {at}}, "conf", "conf-secret-0123456789"); resp.StatusCode != 400 || m["error"] != "invalid_grant" && m["error"] != "invalid_request" {
		t.Errorf("access token as refresh token: %d %v", resp.StatusCode, m)
	}
	if resp, m := as.post("token", url.Values{"grant_type": {"authorization_code"}, "code": {rt}, "code_verifier": {v}, "redirect_uri": {"http://127.0.0.1:3000/cb"}}, "conf", "conf-secret-0123456789"); resp.StatusCode != 400 || m["error"] != "invalid_grant" && m["error"] != "invalid_request" {
		t.Errorf("refresh token as code: %d %v", resp.StatusCode, m)
	}

	// Revocation: 200 for what it cannot revoke (a code, another issuer's token), revealing
	// nothing; a hint of the other kind still revokes.
	for name, tok := range map[string]string{"authorization code": unusedCode, "another issuer's access token": foreignToken} {
		resp, m := as.post("revoke", url.Values{"token": {tok}}, "conf", "conf-secret-0123456789")
		if resp.StatusCode != 200 || m != nil {
			t.Errorf("revoke %s: %d %v", name, resp.StatusCode, m)
		}
	}
	resp, _ = as.post("revoke", url.Values{"token": {at}, "token_type_hint": {"id_token"}}, "conf", "conf-secret-0123456789")
	if resp.StatusCode >= 500 {
		t.Errorf("revoke with an unknown hint: %d", resp.StatusCode)
	}
	resp, _ = as.post("revoke", url.Values{"token": {rt}, "token_type_hint": {"access_token"}}, "conf", "conf-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke refresh token hinted as access token: %d", resp.StatusCode)
	}
	if im := as.auditIntrospect(rt); im["active"] != false {
		t.Errorf("refresh token revoked under the wrong hint still active: %v", im)
	}
	if im := as.auditIntrospect(at); im["active"] != false {
		t.Errorf("its access token still active: %v", im)
	}
}

// TestAuditIntrospectionAndRevocationBadInput: malformed and oversized bodies, repeated
// parameters, the audience parameter, wrong methods and credentials at introspection and
// revocation each get their RFC error (never a 500); invalid_client for Basic carries
// WWW-Authenticate.
func TestAuditIntrospectionAndRevocationBadInput(t *testing.T) {
	as := newAS(t)
	tok := as.clientCredentials("orders:read", orders)
	big := strings.Repeat("a", 70<<10)
	for _, ep := range []string{"introspect", "revoke"} {
		cases := []struct {
			name, method, body, ctype, user, pass string
			status                                int
			code                                  string
		}{
			{"GET", http.MethodGet, "", "", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			{"oversized", http.MethodPost, "token=" + big, "", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			{"malformed", http.MethodPost, "token=%zz", "", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			{"json", http.MethodPost, `{"token":"x"}`, "application/json", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			{"repeated token", http.MethodPost, "token=a&token=b", "", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			{"wrong secret", http.MethodPost, "token=" + tok, "", "rs", "wrong", 401, "invalid_client"},
			{"unknown client", http.MethodPost, "token=" + tok, "", "ghost", "x", 401, "invalid_client"},
		}
		if ep == "introspect" {
			cases = append(cases,
				struct {
					name, method, body, ctype, user, pass string
					status                                int
					code                                  string
				}{"no credentials", http.MethodPost, "token=" + tok, "", "", "", 401, "invalid_client"},
				struct {
					name, method, body, ctype, user, pass string
					status                                int
					code                                  string
				}{"no token", http.MethodPost, "token_type_hint=access_token", "", "rs", "rs-secret-0123456789", 400, "invalid_request"},
			)
		}
		for _, tc := range cases {
			t.Run(ep+"/"+tc.name, func(t *testing.T) {
				resp, m := as.send(tc.method, ep, tc.body, tc.ctype, tc.user, tc.pass)
				if resp.StatusCode != tc.status || m["error"] != tc.code {
					t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q", cc)
				}
				if basic := tc.user != "" && tc.code == "invalid_client"; basic != (resp.Header.Get("WWW-Authenticate") != "") {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	// The refused requests revoked nothing.
	if im := as.auditIntrospect(tok); im["active"] != true {
		t.Fatalf("token inactive after refused revocations: %v", im)
	}
	// Introspection answers are not cacheable either.
	resp, _ := as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("introspection headers %v", resp.Header)
	}
}

// TestAuditExpiredTokenIsInactive: an access token past its exp is active:false at
// introspection, persisted or not.
func TestAuditExpiredTokenIsInactive(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		clk := newClock()
		as := newAS(t, func(c *provider.Config) { c.Now = clk.Now; c.StatelessAccessTokens = stateless })
		tok := as.clientCredentials("billing:read", billing) // 5 minutes
		if im := as.auditIntrospect(tok); im["active"] != true {
			t.Fatalf("stateless=%v: fresh token %v", stateless, im)
		}
		clk.Add(5*time.Minute + time.Second)
		if im := as.auditIntrospect(tok); im["active"] != false || len(im) != 1 {
			t.Fatalf("stateless=%v: expired token %v", stateless, im)
		}
	}
}

// TestAuditClientAuthenticationMethods: a client authenticates only with its registered
// method; a public client cannot pass for a confidential one; PKCE without a method (plain by
// default) is refused.
func TestAuditClientAuthenticationMethods(t *testing.T) {
	as := newAS(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	if resp, m := as.post("token", cc, "svc-post", "svc-post-secret-0123456789"); resp.StatusCode != 401 || m["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("client_secret_post client with Basic: %d %v", resp.StatusCode, m)
	}
	f := url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc-post"}, "client_secret": {"wrong"}}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 401 || m["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("wrong client_secret_post: %d %v %q", resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
	}
	// Both methods at once (RFC 6749 §2.3: one method per request).
	f = url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {"svc-secret-0123456789"}}
	if resp, m := as.post("token", f, "svc", "svc-secret-0123456789"); resp.StatusCode == 200 {
		t.Errorf("Basic and client_secret_post together: %d %v", resp.StatusCode, m)
	}
	// A confidential client's id alone is no authentication.
	_, code, v := auditCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	f = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "redirect_uri": {"http://127.0.0.1:3000/cb"}, "client_id": {"conf"}}
	if resp, m := as.post("token", f, "", ""); resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Errorf("confidential client without its secret: %d %v", resp.StatusCode, m)
	}
	// A public client's code cannot be redeemed by another client.
	_, code, v = auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	f = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "redirect_uri": {"http://127.0.0.1:3000/cb"}}
	if resp, m := as.post("token", f, "conf", "conf-secret-0123456789"); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Errorf("another client's code: %d %v", resp.StatusCode, m)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := as.endpoint("authorize") + "?response_type=code&client_id=web&redirect_uri=" + url.QueryEscape("http://127.0.0.1:3000/cb") +
		"&state=state-1234567890&scope=orders:read&code_challenge=" + strings.Repeat("a", 43)
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") == "" || loc.Query().Get("code") != "" {
		t.Errorf("PKCE without code_challenge_method (plain): %v", loc)
	}
}

// TestAuditAuthorizeBadInput: malformed, oversized and incomplete authorization requests are
// answered with an error (a redirect only to a registered redirect URI), never a 500 and never
// a code.
func TestAuditAuthorizeBadInput(t *testing.T) {
	as := newAS(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	good := "response_type=code&client_id=web&redirect_uri=" + url.QueryEscape("http://127.0.0.1:3000/cb") +
		"&state=state-1234567890&scope=orders:read&code_challenge_method=S256&code_challenge=" + strings.Repeat("a", 43)
	cases := []struct {
		name, method, query, body string
	}{
		{"no parameters", http.MethodGet, "", ""},
		{"malformed query", http.MethodGet, "response_type=code&client_id=%zz", ""},
		{"unknown client", http.MethodGet, strings.Replace(good, "client_id=web", "client_id=ghost", 1), ""},
		{"unregistered redirect URI", http.MethodGet, strings.Replace(good, url.QueryEscape("http://127.0.0.1:3000/cb"), url.QueryEscape("https://evil.example/cb"), 1), ""},
		{"oversized POST body", http.MethodPost, "", good + "&x=" + strings.Repeat("a", 70<<10)},
		{"malformed POST body", http.MethodPost, "", "response_type=code&client_id=%zz"},
		{"repeated parameter in query and body", http.MethodPost, "scope=orders:read", good},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := as.endpoint("authorize")
			if tc.query != "" {
				u += "?" + tc.query
			}
			req, _ := http.NewRequest(tc.method, u, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 || resp.StatusCode < 300 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				lu, _ := url.Parse(loc)
				if !strings.HasPrefix(loc, "http://127.0.0.1:3000/cb") || lu.Query().Get("code") != "" || lu.Query().Get("error") == "" {
					t.Fatalf("redirected to %q", loc)
				}
			}
		})
	}
}

// TestAuditRefreshReuseRevokesEverything: when a rotated-out refresh token comes back, the
// grant's current refresh token and its access tokens are revoked (RFC 9700 §4.14.2).
func TestAuditRefreshReuseRevokesEverything(t *testing.T) {
	as := newAS(t)
	_, code, v := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	_, m1 := as.auditExchange(code, v)
	rt1 := m1["refresh_token"].(string)
	resp, m2 := as.auditRefresh(rt1, "resource", billing)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m2)
	}
	if m2["refresh_token"] == rt1 {
		t.Fatal("the refresh token was not rotated")
	}
	at2, rt2 := m2["access_token"].(string), m2["refresh_token"].(string)
	if im := as.auditIntrospect(at2); im["active"] != true {
		t.Fatalf("%v", im)
	}
	if resp, m := as.auditRefresh(rt1); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", resp.StatusCode, m)
	}
	if im := as.auditIntrospect(at2); im["active"] != false {
		t.Fatalf("access token of a grant whose refresh token was reused: %v", im)
	}
	if im := as.auditIntrospect(rt2); im["active"] != false {
		t.Fatalf("current refresh token after reuse: %v", im)
	}
	if resp, m := as.auditRefresh(rt2); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("current refresh token after reuse: %d %v", resp.StatusCode, m)
	}
}

// TestRefreshScopeNarrowing: a refresh request's scope may narrow the token to scopes of the
// grant that its resource server accepts; a scope outside the grant, or one of another
// resource server, is invalid_scope and leaves the refresh token usable; the stored grant keeps
// every scope.
func TestRefreshScopeNarrowing(t *testing.T) {
	as := newAS(t)
	_, code, v := auditCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	resp, m := as.auditExchange(code, v)
	if resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %v", resp.StatusCode, m)
	}
	rt := m["refresh_token"].(string)
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"scope of another resource server", []string{"resource", orders, "scope", "billing:read"}},
		{"scope never granted", []string{"scope", "orders:write"}},
		{"one good, one never granted", []string{"scope", "orders:read orders:write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := as.auditRefresh(rt, tc.kv...)
			if resp.StatusCode != 400 || m["error"] != "invalid_scope" {
				t.Fatalf("%d %v, want 400 invalid_scope", resp.StatusCode, m)
			}
		})
	}
	// The refused requests did not use up the refresh token; a narrowed one works.
	resp, m = as.auditRefresh(rt, "resource", orders, "scope", "orders:read")
	if resp.StatusCode != 200 {
		t.Fatalf("narrowed refresh: %d %v", resp.StatusCode, m)
	}
	checkPolicy(t, as, m, time.Now(), orders, "ES256", 10*time.Minute, "orders:read")
	// The grant kept billing:read.
	resp, m = as.auditRefresh(m["refresh_token"].(string), "resource", billing)
	if resp.StatusCode != 200 {
		t.Fatalf("refresh for billing: %d %v", resp.StatusCode, m)
	}
	checkPolicy(t, as, m, time.Now(), billing, "RS256", 5*time.Minute, "billing:read")
}
