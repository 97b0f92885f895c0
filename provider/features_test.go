package provider_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy"
)

type user struct {
	Roles  []string
	Tenant string
}

func TestClaimMappersAndUsers(t *testing.T) {
	users := strategy.UsersFunc(func(_ context.Context, sub string) (any, error) {
		if sub == "alice" {
			return &user{Roles: []string{"admin", "ops"}, Tenant: "t-42"}, nil
		}
		return nil, nil
	})
	mapper := strategy.ClaimMapperFunc(func(ctx context.Context, r strategy.TokenRequest) (map[string]any, error) {
		out := map[string]any{"tenant_of_client": r.ClientID + "@" + r.Audience}
		u, err := r.User(ctx)
		if err != nil {
			return nil, err
		}
		if u, ok := u.(*user); ok {
			out["roles"] = u.Roles
			out["tenant"] = u.Tenant
		}
		return out, nil
	})
	as := newAS(t, func(c *provider.Config) {
		c.Users = users
		c.ClaimMappers = []strategy.ClaimMapper{mapper}
	})
	_, tok := authCode(t, as, "web", "", []string{"orders:read"}, orders)
	_, c := as.verifyIndependently(tok.AccessToken, orders)
	if !reflect.DeepEqual(c["roles"], []any{"admin", "ops"}) || c["tenant"] != "t-42" || c["tenant_of_client"] != "web@"+orders {
		t.Fatalf("mapped claims missing: %v", c)
	}
	// client_credentials has no user: the mapper still runs, without one.
	_, c = as.verifyIndependently(as.clientCredentials("orders:read", orders), orders)
	if c["roles"] != nil || c["tenant_of_client"] != "svc@"+orders {
		t.Fatalf("client_credentials claims %v", c)
	}
	// Introspection answers the mapped claims too: they are the token's.
	_, m := as.post("introspect", url.Values{"token": {tok.AccessToken}}, "rs", "rs-secret-0123456789")
	if m["tenant"] != "t-42" {
		t.Fatalf("introspection %v", m)
	}
}

func TestClaimMapperCannotOverrideRegisteredClaims(t *testing.T) {
	for _, claim := range []string{"sub", "aud", "iss", "exp", "scope", "client_id", "jti"} {
		t.Run(claim, func(t *testing.T) {
			as := newAS(t, func(c *provider.Config) {
				c.ClaimMappers = []strategy.ClaimMapper{strategy.ClaimMapperFunc(func(context.Context, strategy.TokenRequest) (map[string]any, error) {
					return map[string]any{claim: "evil"}, nil
				})}
			})
			resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret-0123456789")
			if resp.StatusCode != 500 || m["error"] != "server_error" || m["access_token"] != nil {
				t.Fatalf("got %d %v", resp.StatusCode, m)
			}
			if strings.Contains(m["error_description"].(string), claim) && strings.Contains(m["error_description"].(string), "evil") {
				t.Fatalf("internal details leaked: %v", m)
			}
		})
	}
}

func TestConsentNarrowsScopes(t *testing.T) {
	var asked provider.ConsentRequest
	as := newAS(t, func(c *provider.Config) {
		c.Consenter = provider.ConsenterFunc(func(w http.ResponseWriter, r *http.Request, req provider.ConsentRequest) ([]string, bool) {
			asked = req
			return []string{"billing:read", "not-requested"}, true
		})
	})
	_, tok := authCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	if asked.Subject != "alice" || asked.ClientID != "web" || len(asked.Scopes) != 2 || len(asked.Resources) != 2 {
		t.Fatalf("consent asked %+v", asked)
	}
	// The token for orders carries none of orders' scopes: the user granted only billing:read.
	_, c := as.verifyIndependently(tok.AccessToken, orders)
	if _, ok := c["scope"]; ok {
		t.Fatalf("scope %v after consent withheld it", c["scope"])
	}
	if s, _ := tok.Extra("scope").(string); s != "" {
		t.Fatalf("token response scope %q", s)
	}
}

func TestConsentPending(t *testing.T) {
	as := newAS(t, func(c *provider.Config) {
		c.Consenter = provider.ConsenterFunc(func(w http.ResponseWriter, r *http.Request, req provider.ConsentRequest) ([]string, bool) {
			http.Error(w, "consent page", http.StatusOK)
			return nil, false
		})
	})
	conf := &oauth2.Config{ClientID: "web", RedirectURL: "http://127.0.0.1:3000/cb", Scopes: []string{"orders:read"},
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")}}
	resp, err := http.Get(conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pending consent: %d", resp.StatusCode)
	}
}

func TestTokenResponseNamesScopeAndResource(t *testing.T) {
	as := newAS(t)
	_, tok := authCode(t, as, "web", "", []string{"orders:read", "billing:read"}, orders, billing)
	if got := tok.Extra("resource"); got != orders {
		t.Errorf("resource %v, want %s", got, orders)
	}
	if got := tok.Extra("scope"); got != "orders:read" {
		t.Errorf("scope %v: the response names the token's scopes, not the grant's", got)
	}
}

func TestNoAuthenticatorMeansLoginRequired(t *testing.T) {
	as := newAS(t, func(c *provider.Config) { c.Authenticator = nil })
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	conf := &oauth2.Config{ClientID: "web", RedirectURL: "http://127.0.0.1:3000/cb", Scopes: []string{"orders:read"},
		Endpoint: oauth2.Endpoint{AuthURL: as.endpoint("authorize")}}
	resp, err := client.Get(conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "login_required" {
		t.Fatalf("got %d %v", resp.StatusCode, loc)
	}
}

func TestAuthorizeRefusesRepeatedParameters(t *testing.T) {
	as := newAS(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u := as.endpoint("authorize") + "?response_type=code&client_id=web&redirect_uri=" + url.QueryEscape("http://127.0.0.1:3000/cb") +
		"&state=state-1234567890&scope=orders:read&scope=billing:read&code_challenge_method=S256&code_challenge=" + strings.Repeat("a", 43)
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("got %d %v", resp.StatusCode, loc)
	}
}

func TestRefreshTokenIntrospection(t *testing.T) {
	as := newAS(t)
	// conf is a confidential client: it may introspect, and its refresh token is active.
	_, tok := authCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	_, m := as.post("introspect", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, "conf", "conf-secret-0123456789")
	if m["active"] != true || m["client_id"] != "conf" || m["sub"] != "alice" || m["scope"] != "orders:read" || m["token_type"] != nil {
		t.Fatalf("refresh token introspection %v", m)
	}
	// A public client may not introspect at all.
	resp, m := as.post("introspect", url.Values{"token": {tok.AccessToken}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Fatalf("public client introspecting: %d %v", resp.StatusCode, m)
	}
}

func TestEmbeddedStorageDefault(t *testing.T) {
	if _, err := provider.New(context.Background(), provider.Config{Issuer: "https://as.example", Secret: testSecret(t)}); err == nil ||
		!strings.Contains(err.Error(), "Storage is required") {
		t.Fatalf("a provider without Storage: %v", err)
	}
	p, err := provider.New(context.Background(), provider.Config{Issuer: "https://as.example", Secret: testSecret(t), Storage: newStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	// testSetup names ES256 and RS256 resource servers: the default provider (RS256 keys)
	// creates the ES256 keys it needs on Apply.
	setup, _ := provider.ParseSetup([]byte(testSetup))
	if err := p.Apply(context.Background(), setup); err != nil {
		t.Fatalf("Apply of a setup naming ES256 on a default provider: %v", err)
	}
	keys, err := p.Store().Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	algs := map[string]bool{}
	for _, k := range keys {
		algs[k.Algorithm] = true
	}
	if !algs["ES256"] || !algs["RS256"] {
		t.Fatalf("stored key algorithms %v, want ES256 and RS256", algs)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	st := newStore(t)
	base := provider.Config{Issuer: "https://as.example", Secret: testSecret(t), Storage: st}
	cases := map[string]func(*provider.Config){
		"Issuer is required":            func(c *provider.Config) { c.Issuer = "" },
		"must be an https URL":          func(c *provider.Config) { c.Issuer = "http://as.example" },
		"must not have a query":         func(c *provider.Config) { c.Issuer = "https://as.example/?x=1" },
		"must not have a query or frag": func(c *provider.Config) { c.Issuer = "https://as.example/#f" },
		"Secret must be at least":       func(c *provider.Config) { c.Secret = []byte("short") },
		"SigningAlgorithms":             func(c *provider.Config) { c.SigningAlgorithms = []string{"HS256"} },
		"AccessTokenTTL":                func(c *provider.Config) { c.AccessTokenTTL = -1 },
		"Retention":                     func(c *provider.Config) { c.Rotation.Retention = 1; c.AccessTokenTTL = 3600e9 },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			cfg := base
			mutate(&cfg)
			p, err := provider.New(context.Background(), cfg)
			if err == nil {
				p.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), strings.Fields(want)[0]) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		})
	}
	p, err := provider.New(context.Background(), base)
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	p.Close()
}
