package provider_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy"
)

func TestClientCredentialsWithXOAuth2(t *testing.T) {
	as := newAS(t)
	cc := clientcredentials.Config{
		ClientID: "svc", ClientSecret: "svc-secret-0123456789", TokenURL: as.endpoint("token"),
		Scopes: []string{"billing:read"}, EndpointParams: url.Values{"resource": {billing}},
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hdr, c := as.verifyIndependently(tok.AccessToken, billing)
	if hdr["alg"] != "RS256" {
		t.Errorf("alg %v, want RS256 (billing's signing_alg)", hdr["alg"])
	}
	if c["sub"] != "svc" || c["client_id"] != "svc" {
		t.Errorf("sub %v client_id %v, want svc", c["sub"], c["client_id"])
	}
	if c["scope"] != "billing:read" {
		t.Errorf("scope %v", c["scope"])
	}
	if got := c["exp"].(float64) - c["iat"].(float64); got != 300 {
		t.Errorf("exp-iat = %v, want 300 (billing's access_token_ttl)", got)
	}
	if d := time.Until(tok.Expiry); d < 290*time.Second || d > 301*time.Second {
		t.Errorf("expires_in gives %v, want ~300s", d)
	}
	if ei := tok.Extra("expires_in"); ei != float64(300) {
		t.Errorf("expires_in %v, want exactly exp-iat = 300", ei)
	}
	if tok.TokenType != "Bearer" && !strings.EqualFold(tok.TokenType, "bearer") {
		t.Errorf("token_type %q", tok.TokenType)
	}
}

func TestDefaultResourceAndScopes(t *testing.T) {
	as := newAS(t)
	tok := as.clientCredentials("", "")
	_, c := as.verifyIndependently(tok, orders)
	// No scope requested: the client's scopes that the resource server accepts.
	if c["scope"] != "orders:read orders:write" {
		t.Errorf("scope %q", c["scope"])
	}
	if _, ok := c["auth_time"]; ok {
		t.Error("auth_time on a client_credentials token")
	}
}

func TestFreshIATAndJTI(t *testing.T) {
	as := newAS(t)
	a := claimsOf(t, as.clientCredentials("orders:read", orders))
	b := claimsOf(t, as.clientCredentials("orders:read", orders))
	if a["jti"] == b["jti"] {
		t.Fatal("two tokens share a jti")
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	as := newAS(t)
	big := strings.Repeat("a", 70<<10)
	cases := []struct {
		name       string
		body       string
		ctype      string
		user, pass string
		status     int
		code       string
		basicChal  bool
	}{
		{"unknown grant", "grant_type=password&username=a&password=b", "", "svc", "svc-secret-0123456789", 400, "unsupported_grant_type", false},
		{"implicit-ish grant", "grant_type=implicit", "", "svc", "svc-secret-0123456789", 400, "unsupported_grant_type", false},
		{"no credentials", "grant_type=client_credentials", "", "", "", 401, "invalid_client", false},
		{"wrong secret", "grant_type=client_credentials", "", "svc", "nope", 401, "invalid_client", true},
		{"unknown client", "grant_type=client_credentials", "", "ghost", "x", 401, "invalid_client", true},
		{"duplicate parameter", "grant_type=client_credentials&scope=orders:read&scope=orders:write", "", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"audience parameter", "grant_type=client_credentials&audience=" + url.QueryEscape(orders), "", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"oversized body", "grant_type=client_credentials&x=" + big, "", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"malformed body", "grant_type=%zz", "", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"json body", `{"grant_type":"client_credentials"}`, "application/json", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"missing grant type", "scope=orders:read", "", "svc", "svc-secret-0123456789", 400, "invalid_request", false},
		{"scope not allowed for client", "grant_type=client_credentials&scope=other:read", "", "svc", "svc-secret-0123456789", 400, "invalid_scope", false},
		{"scope of another resource server", "grant_type=client_credentials&scope=billing:read&resource=" + url.QueryEscape(orders), "", "svc", "svc-secret-0123456789", 400, "invalid_scope", false},
		{"unknown resource", "grant_type=client_credentials&resource=https%3A%2F%2Fnope.example%2F", "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"resource not allowed", "grant_type=client_credentials&resource=" + url.QueryEscape(other), "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"relative resource", "grant_type=client_credentials&resource=%2Forders", "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"fragment resource", "grant_type=client_credentials&resource=" + url.QueryEscape(orders+"#x"), "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"the same resource twice", "grant_type=client_credentials&resource=" + url.QueryEscape(orders) + "&resource=" + url.QueryEscape(orders), "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"two resources", "grant_type=client_credentials&resource=" + url.QueryEscape(orders) + "&resource=" + url.QueryEscape(billing), "", "svc", "svc-secret-0123456789", 400, "invalid_target", false},
		{"post method for a basic client", "grant_type=client_credentials&client_id=svc&client_secret=svc-secret-0123456789", "", "", "", 401, "invalid_client", false},
		{"public client cannot use client_credentials", "grant_type=client_credentials&client_id=web", "", "", "", 400, "invalid_grant", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := as.send(http.MethodPost, "token", tc.body, tc.ctype, tc.user, tc.pass)
			if resp.StatusCode != tc.status || m["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.basicChal {
				t.Errorf("WWW-Authenticate %q, want present=%v", resp.Header.Get("WWW-Authenticate"), tc.basicChal)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, m := as.do(mustReq(t, http.MethodGet, as.endpoint("token")))
		if resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("got %d %v", resp.StatusCode, m)
		}
	})
}

func TestClientSecretPost(t *testing.T) {
	as := newAS(t)
	resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc-post"}, "client_secret": {"svc-post-secret-0123456789"}}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a token response", cc)
	}
	as.verifyIndependently(m["access_token"].(string), orders)
}

// authCode runs the authorization-code flow with PKCE through x/oauth2 for the public client.
func authCode(t *testing.T, as *testAS, clientID, secret string, scopes []string, resources ...string) (*oauth2.Config, *oauth2.Token) {
	t.Helper()
	conf := &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, Scopes: scopes, RedirectURL: "http://127.0.0.1:3000/cb",
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")},
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for _, r := range resources {
		opts = append(opts, oauth2.SetAuthURLParam("resource", r))
	}
	authURL := conf.AuthCodeURL("state-1234567890", opts...)
	if len(resources) > 1 { // SetAuthURLParam replaces; add the others by hand
		u, _ := url.Parse(authURL)
		q := u.Query()
		q["resource"] = resources
		u.RawQuery = q.Encode()
		authURL = u.String()
	}
	code := authorize(t, authURL)
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return conf, tok
}

// authorize follows the authorization request and returns the code from the redirect.
func authorize(t *testing.T, authURL string) string {
	t.Helper()
	loc := authorizeRedirect(t, authURL)
	if e := loc.Query().Get("error"); e != "" {
		t.Fatalf("authorize error %s: %s", e, loc.Query().Get("error_description"))
	}
	if loc.Query().Get("state") != "state-1234567890" {
		t.Fatalf("state not echoed: %v", loc)
	}
	return loc.Query().Get("code")
}

// authorizeRedirect sends the authorization request and returns where it redirects to.
func authorizeRedirect(t *testing.T, authURL string) *url.URL {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}

func TestAuthorizationCodePKCEAndRefresh(t *testing.T) {
	as := newAS(t)
	conf, tok := authCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	// No resource at the token endpoint: the default (orders) is in the grant.
	_, c := as.verifyIndependently(tok.AccessToken, orders)
	if c["sub"] != "alice" || c["client_id"] != "web" || c["acr"] != "urn:test:pwd" {
		t.Errorf("claims %v", c)
	}
	if c["scope"] != "orders:read" {
		t.Errorf("scope %q: the token for orders carries only orders' scopes", c["scope"])
	}
	if _, ok := c["auth_time"]; !ok {
		t.Error("auth_time missing")
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	// Refresh, narrowing to billing: the token is for billing only; the grant keeps both.
	resp, m := as.post("token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"web"}, "resource": {billing}}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	_, c2 := as.verifyIndependently(m["access_token"].(string), billing)
	if c2["scope"] != "billing:read" || c2["iat"] == nil || c2["jti"] == c["jti"] {
		t.Errorf("refreshed claims %v", c2)
	}
	rt2 := m["refresh_token"].(string)

	// The rotated refresh token still covers orders (the grant was not shrunk).
	ts := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt2, Expiry: time.Now().Add(-time.Hour)})
	tok3, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	as.verifyIndependently(tok3.AccessToken, orders)

	// Reuse of an old refresh token is detected: invalid_grant, and the grant is revoked.
	resp, m = as.post("token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", resp.StatusCode, m)
	}
	resp, m = as.post("token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok3.RefreshToken}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("after reuse detection the newest refresh token must be dead: %d %v", resp.StatusCode, m)
	}
	// Widening at refresh is refused.
	_, tok4 := authCode(t, as, "web", "", []string{"orders:read"}, orders)
	resp, m = as.post("token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok4.RefreshToken}, "client_id": {"web"}, "resource": {billing}}, "", "")
	if resp.StatusCode != 400 || m["error"] != "invalid_target" {
		t.Fatalf("widening: %d %v", resp.StatusCode, m)
	}
}

func TestAuthorizationCodeMisuse(t *testing.T) {
	as := newAS(t)
	conf := &oauth2.Config{
		ClientID: "web", Scopes: []string{"orders:read"}, RedirectURL: "http://127.0.0.1:3000/cb",
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")},
	}
	ctx := context.Background()

	t.Run("PKCE required for public clients", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(conf.AuthCodeURL("state-1234567890"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("got %v", loc)
		}
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(conf.AuthCodeURL("state-1234567890", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") == "" {
			t.Fatalf("plain accepted: %v", loc)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := authorize(t, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(v)))
		_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assertRetrieveError(t, err, "invalid_grant")
	})
	t.Run("code used twice", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := authorize(t, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(v)))
		if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(v)); err != nil {
			t.Fatal(err)
		}
		_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		assertRetrieveError(t, err, "invalid_grant")
	})
	t.Run("code used concurrently", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := authorize(t, conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(v)))
		var wins, fails atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(v))
				var re *oauth2.RetrieveError
				switch {
				case err == nil:
					wins.Add(1)
				case errors.As(err, &re) && re.Response.StatusCode < 500:
					fails.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent exchanges of one code succeeded, want exactly 1", wins.Load())
		}
	})
	t.Run("unknown resource at authorize", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", other)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") != "invalid_target" {
			t.Fatalf("got %v", loc)
		}
	})
	t.Run("implicit refused", func(t *testing.T) {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		u := as.endpoint("authorize") + "?response_type=token&client_id=web&redirect_uri=" + url.QueryEscape("http://127.0.0.1:3000/cb") + "&state=state-1234567890"
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 300 || resp.StatusCode >= 500 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "access_token") {
			t.Fatalf("implicit grant answered: %s", loc)
		}
	})
}

func assertRetrieveError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	as := newAS(t)
	tok := as.clientCredentials("orders:read", orders)
	claims := claimsOf(t, tok)

	resp, m := as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if resp.StatusCode != 200 || m["active"] != true {
		t.Fatalf("introspect: %d %v", resp.StatusCode, m)
	}
	for k, v := range claims {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("introspection %s = %v, token has %v", k, m[k], v)
		}
	}
	if m["token_type"] != "Bearer" {
		t.Errorf("token_type %v", m["token_type"])
	}
	if len(m) != len(claims)+2 {
		t.Errorf("introspection has members beyond the token's claims: %v", m)
	}

	// Caller authentication is required and must be right.
	resp, m = as.post("introspect", url.Values{"token": {tok}}, "rs", "wrong")
	if resp.StatusCode != 401 || m["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("bad caller: %d %v %q", resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest(http.MethodPost, as.endpoint("introspect"), strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, m = as.do(req); resp.StatusCode != 401 {
		t.Fatalf("bearer caller: %d %v", resp.StatusCode, m)
	}

	// Garbage and unknown tokens are inactive, not errors.
	for _, bad := range []string{"garbage", strings.Repeat("x.", 2000), tok + "x", "a.b.c"} {
		resp, m = as.post("introspect", url.Values{"token": {bad}}, "rs", "rs-secret-0123456789")
		if resp.StatusCode != 200 || m["active"] != false || len(m) != 1 {
			t.Fatalf("introspect %q: %d %v", bad[:min(len(bad), 20)], resp.StatusCode, m)
		}
	}

	// Revocation by another client does nothing; by the owner, the token goes inactive.
	resp, _ = as.post("revoke", url.Values{"token": {tok}}, "svc-post", "")
	if resp.StatusCode == 200 {
		// svc-post authenticates with client_secret_post; basic with an empty secret is refused.
		t.Fatalf("revocation with bad credentials answered 200")
	}
	resp, m = as.post("revoke", url.Values{"token": {tok}}, "svc", "svc-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %v", resp.StatusCode, m)
	}
	_, m = as.post("introspect", url.Values{"token": {tok}}, "rs", "rs-secret-0123456789")
	if m["active"] != false {
		t.Fatalf("revoked token still active: %v", m)
	}
	resp, _ = as.post("revoke", url.Values{"token": {"unknown-token"}}, "svc", "svc-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("revoking an unknown token: %d", resp.StatusCode)
	}
}

func TestMetadata(t *testing.T) {
	as := newAS(t)
	base := "http://" + as.srv.Listener.Addr().String()
	_, md := as.do(mustReq(t, http.MethodGet, base+"/.well-known/oauth-authorization-server/oauth2"))
	want := map[string]any{
		"issuer":                 as.issuer,
		"token_endpoint":         as.issuer + "/token",
		"authorization_endpoint": as.issuer + "/authorize",
		"jwks_uri":               as.issuer + "/jwks.json",
		"introspection_endpoint": as.issuer + "/introspect",
		"revocation_endpoint":    as.issuer + "/revoke",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("%s = %v, want %v", k, md[k], v)
		}
	}
	for k, v := range map[string][]any{
		"grant_types_supported":            {"authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"response_types_supported":         {"code"},
		"code_challenge_methods_supported": {"S256"},
	} {
		if !reflect.DeepEqual(md[k], v) {
			t.Errorf("%s = %v, want %v", k, md[k], v)
		}
	}
	scopes, _ := md["scopes_supported"].([]any)
	if len(scopes) != 4 {
		t.Errorf("scopes_supported %v", scopes)
	}
	// Not under the issuer path, not at the root.
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/oauth2/.well-known/oauth-authorization-server"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	// JWKS: public keys only, each with kid, use, alg; cacheable.
	resp, err := http.Get(as.issuer + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age") {
		t.Errorf("JWKS Cache-Control %q", cc)
	}
	var set struct{ Keys []map[string]any }
	if err := jsonDecode(resp, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) < 3 {
		t.Fatalf("%d keys, want one per algorithm at least", len(set.Keys))
	}
	for _, k := range set.Keys {
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[priv]; ok {
				t.Fatalf("private member %q published: %v", priv, k)
			}
		}
		if k["kid"] == nil || k["use"] != "sig" || k["alg"] == nil {
			t.Fatalf("key without kid/use/alg: %v", k)
		}
	}
}

// TestMountOnRouters mounts the provider as the README's router recipes do, next to a route of
// the application's own, and gets and checks a token through each.
func TestMountOnRouters(t *testing.T) {
	health := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }
	for _, tc := range []struct {
		name  string
		mount func(as *provider.Provider) http.Handler
	}{
		{"net/http", func(as *provider.Provider) http.Handler {
			mux := http.NewServeMux()
			for _, p := range as.Patterns() {
				mux.Handle(p, as)
			}
			mux.HandleFunc("GET /health", health)
			return mux
		}},
		{"chi", func(as *provider.Provider) http.Handler {
			r := chi.NewRouter()
			for _, p := range as.Patterns() {
				r.Handle(p, as)
			}
			r.Get("/health", health)
			return r
		}},
		{"gin", func(as *provider.Provider) http.Handler {
			gin.SetMode(gin.TestMode)
			g := gin.New()
			for _, p := range as.Patterns() {
				g.Any(p, gin.WrapH(as))
			}
			g.GET("/health", gin.WrapF(health))
			return g
		}},
		{"echo", func(as *provider.Provider) http.Handler {
			e := echo.New()
			for _, p := range as.Patterns() {
				e.Any(p, echo.WrapHandler(as))
			}
			e.GET("/health", echo.WrapHandler(http.HandlerFunc(health)))
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			srv := httptest.NewUnstartedServer(nil)
			issuer := "http://" + srv.Listener.Addr().String() + "/auth"
			p, err := provider.New(context.Background(), provider.Config{Issuer: issuer, Secret: testSecret(t), Storage: st, SigningAlgorithms: []string{"EdDSA", "ES256", "RS256"}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			srv.Config.Handler = tc.mount(p)
			srv.Start()
			defer srv.Close()
			setup, _ := provider.ParseSetup([]byte(testSetup))
			if err := p.Apply(context.Background(), setup); err != nil {
				t.Fatal(err)
			}
			as := &testAS{t: t, p: p, srv: srv, issuer: issuer, store: st}
			// verifyIndependently finds the keys through the RFC 8414 metadata and the JWKS.
			hdr, _ := as.verifyIndependently(as.clientCredentials("orders:read", orders), orders)
			if hdr["alg"] != "ES256" {
				t.Errorf("alg %v, want orders' ES256", hdr["alg"])
			}
			for path, want := range map[string]int{"/health": 200, "/auth/nowhere": 404} {
				resp, err := srv.Client().Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}

func TestApplyRefusesPoliciesTheProviderCannotIssue(t *testing.T) {
	st := newStore(t)
	// Fixed keys (Config.Keys) cannot grow: a resource server naming another algorithm is refused.
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := strategy.NewSigningKey("ed-1", jose.EdDSA, ed)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := strategy.StaticKeys(sk)
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.New(context.Background(), provider.Config{Issuer: "https://as.example", Secret: testSecret(t), Storage: st, Keys: keys, Rotation: provider.Rotation{Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range []struct{ setup, field string }{
		{`{"resource_servers":[{"identifier":"https://a.example/","scopes":["x"],"signing_alg":"ES256"}]}`, "resource_servers[0].signing_alg"},
		{`{"resource_servers":[{"identifier":"https://a.example/","scopes":["x"],"access_token_ttl":"2h"}]}`, "resource_servers[0].access_token_ttl"},
		{`{"resource_servers":[{"identifier":"https://a.example/","scopes":["x"]},{"identifier":"https://b.example/","scopes":["x"],"access_token_ttl":"1h","signing_alg":"EdDSA"}]}`, ""},
	} {
		s, err := provider.ParseSetup([]byte(tc.setup))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Apply(context.Background(), s)
		if tc.field == "" {
			if err != nil {
				t.Fatalf("valid setup refused: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Fatalf("got %v, want an error naming %s", err, tc.field)
		}
		if _, err := st.ResourceServer(context.Background(), "https://a.example/"); err == nil {
			t.Fatal("a refused setup was partly written")
		}
	}
}

func TestBcryptSecretStillVerifies(t *testing.T) {
	as := newAS(t)
	// bcrypt hash of "imported-secret-123", cost 4.
	hash := "$2a$04$" + bcryptOf(t, "imported-secret-123")
	setup, err := provider.ParseSetup([]byte(`{"resource_servers":[{"identifier":"https://orders.example.com/","scopes":["orders:read","orders:write"],"default":true}],
	  "clients":[{"client_id":"legacy","client_secret_hash":"` + hash + `","grant_types":["client_credentials"],"scopes":["orders:read"],"resources":["https://orders.example.com/"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := as.p.Apply(context.Background(), setup); err != nil {
		t.Fatal(err)
	}
	resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "legacy", "imported-secret-123")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	resp, _ = as.post("token", url.Values{"grant_type": {"client_credentials"}}, "legacy", "imported-secret-124")
	if resp.StatusCode != 401 {
		t.Fatalf("wrong bcrypt secret: %d", resp.StatusCode)
	}
}
