package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// The two trust domains of the chaining tests: in X, service A calls service B (resource
// b.x.example, whose client is b-api); B calls service C of domain Y (resource c.y.example) on
// behalf of A. Z is a third domain that trusts X too.
const (
	serviceB = "https://b.x.example/"
	serviceC = "https://c.y.example/"
	serviceZ = "https://z.z.example/"
	// noActPeer is a peer entry of X that allows no act claim (its server is never reached).
	noActPeer = "https://no-act.example"
	// otherIssuer is trusted by Y with keys of its own.
	otherIssuer = "https://w.example"
)

// offsetClock is the real time, shifted by a settable offset.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) set(off time.Duration) {
	c.mu.Lock()
	c.off = off
	c.mu.Unlock()
}

// bareAS starts a provider on st, behind its own listener, with setup (a function of its
// issuer) applied; no other setup.
func bareAS(t *testing.T, st storage.Store, setup func(issuer string) string, opts ...asOption) *testAS {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String() + "/oauth2"
	cfg := provider.Config{Issuer: issuer, Secret: testSecret(t), Storage: st, SigningAlgorithms: []string{"ES256"}}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := provider.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	mux := http.NewServeMux()
	for _, pat := range p.Patterns() {
		mux.Handle(pat, p)
	}
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	as := &testAS{t: t, p: p, srv: srv, issuer: issuer, store: p.Store()}
	if setup != nil {
		s, err := provider.ParseSetup([]byte(setup(issuer)))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return as
}

// domains are X, Y and Z, each on its own store; xKey is X's only signing key (so that the
// tests can forge what X's key signs), yClock Y's clock.
type domains struct {
	x, y, z *testAS
	xKey    signingKey
	yClock  *offsetClock
}

// secrets of X's clients.
var chainSecret = map[string]string{
	"a": "a-secret-0123456789", "m": "m-secret-0123456789", "b-api": "b-api-secret-0123456789",
	"b-local": "b-local-secret-0123456789", "y-gw": "y-gw-secret-0123456789",
}

func startDomains(t *testing.T, store func(t *testing.T) storage.Store) *domains {
	d := &domains{xKey: genKey(t, jose.ES256, "x-1"), yClock: &offsetClock{}}
	sk, err := strategy.NewSigningKey(d.xKey.kid, d.xKey.alg, d.xKey.priv)
	if err != nil {
		t.Fatal(err)
	}
	xKeys, err := strategy.StaticKeys(sk)
	if err != nil {
		t.Fatal(err)
	}
	// Y and Z first: X's setup names their issuers.
	other := genKey(t, jose.ES256, "w-1")
	d.y = bareAS(t, store(t), nil, func(c *provider.Config) { c.Now = d.yClock.Now })
	d.z = bareAS(t, store(t), nil)
	d.x = bareAS(t, store(t), func(x string) string {
		return `{
  "resource_servers": [{"identifier": "` + serviceB + `", "scopes": ["orders:read", "stock:read", "stock:write"], "signing_alg": "ES256"}],
  "clients": [
    {"client_id": "a", "client_secret": "` + chainSecret["a"] + `", "grant_types": ["client_credentials"],
     "scopes": ["orders:read", "stock:read", "stock:write"], "resources": ["` + serviceB + `"]},
    {"client_id": "m", "client_secret": "` + chainSecret["m"] + `", "grant_types": ["client_credentials"],
     "scopes": ["stock:read"], "resources": ["` + serviceB + `"]},
    {"client_id": "b-api", "client_secret": "` + chainSecret["b-api"] + `", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
     "scopes": ["stock:read", "stock:write"], "resources": ["` + d.y.issuer + `", "` + d.z.issuer + `", "` + noActPeer + `"], "serves": ["` + serviceB + `"]},
    {"client_id": "b-local", "client_secret": "` + chainSecret["b-local"] + `", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
     "scopes": ["stock:read"], "resources": [], "serves": ["` + serviceB + `"]}
  ],
  "trusted_issuers": [],
  "peers": [
    {"issuer": "` + d.y.issuer + `", "name": "domain Y", "scopes": ["stock:read"], "claims": ["act", "client_id"], "max_grant_lifetime": "2m"},
    {"issuer": "` + d.z.issuer + `", "scopes": ["stock:read"], "claims": ["act"]},
    {"issuer": "` + noActPeer + `", "scopes": ["stock:read"]}
  ]
}`
	}, func(c *provider.Config) { c.Keys = xKeys })
	apply := func(as *testAS, doc string) {
		s, err := provider.ParseSetup([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := as.p.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Y trusts X for subject a only, keyed to X's metadata, transcribing act and scope; and
	// another issuer with keys of its own.
	apply(d.y, `{
  "resource_servers": [{"identifier": "`+serviceC+`", "scopes": ["stock:read", "stock:write"], "access_token_ttl": "5m"}],
  "clients": [{"client_id": "y-gw", "client_secret": "`+chainSecret["y-gw"]+`", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
    "scopes": ["stock:read"], "resources": ["`+serviceC+`"]}],
  "trusted_issuers": [
    {"issuer": "`+d.x.issuer+`", "subject": "a", "jwks_from_metadata": true, "transcribe": ["act", "scope"],
     "scopes": ["stock:read", "stock:write"], "resources": ["`+serviceC+`"], "max_assertion_lifetime": "5m"},
    {"issuer": "`+otherIssuer+`", "subject": "a", "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "w-1", "x": "`+ecX(t, other)+`", "y": "`+ecY(t, other)+`"}]},
     "scopes": ["stock:read"], "resources": ["`+serviceC+`"]}
  ]
}`)
	// Z trusts X for any subject but transcribes nothing: a grant with act is refused there.
	apply(d.z, `{
  "resource_servers": [{"identifier": "`+serviceZ+`", "scopes": ["stock:read"]}],
  "clients": [],
  "trusted_issuers": [{"issuer": "`+d.x.issuer+`", "allow_any_subject": true, "jwks_from_metadata": true,
    "scopes": ["stock:read"], "resources": ["`+serviceZ+`"]}]
}`)
	return d
}

// ecX and ecY are the coordinates of an EC key, for a JWKS written by hand.
func ecX(t *testing.T, k signingKey) string { return ecCoord(t, k, "x") }
func ecY(t *testing.T, k signingKey) string { return ecCoord(t, k, "y") }

func ecCoord(t *testing.T, k signingKey, name string) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: k.priv.Public()}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m[name]
}

// tokenFor gets a client_credentials token at X for client (a or m) for service B.
func (d *domains) tokenFor(t *testing.T, client, scope string) string {
	t.Helper()
	resp, m := d.x.post("token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "resource": {serviceB}}, client, chainSecret[client])
	if resp.StatusCode != 200 {
		t.Fatalf("token for %s: %d %v", client, resp.StatusCode, m)
	}
	return m["access_token"].(string)
}

// grant asks X, as client, for a JWT authorization grant for peer; kv are more parameters
// ("\x00" removes one).
func (d *domains) grant(client, subject, peer string, kv ...string) (*http.Response, map[string]any) {
	f := url.Values{"grant_type": {tokenExchange}, "subject_token": {subject}, "subject_token_type": {ttAccessToken},
		"requested_token_type": {ttJWT}, "resource": {peer}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			f.Del(kv[i])
		} else {
			f.Set(kv[i], kv[i+1])
		}
	}
	return d.x.post("token", f, client, chainSecret[client])
}

// present presents a grant at as with the jwt-bearer grant, for resource, without client
// authentication.
func present(as *testAS, grant, resource string) (*http.Response, map[string]any) {
	return as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {grant}, "resource": {resource}}, "", "")
}

func TestChainingAcrossDomains(t *testing.T) {
	for _, b := range backends[:2] { // SQLite and PostgreSQL
		t.Run(b.name, func(t *testing.T) {
			d := startDomains(t, b.store)
			t.Run("flow", func(t *testing.T) { chainFlow(t, d) })
			t.Run("refusals", func(t *testing.T) { chainRefusals(t, d) })
		})
	}
}

// chainFlow: A's token at X → B exchanges it at X for a grant for Y → B presents the grant at
// Y for C → C, trusting Y only, accepts and sees A as sub and B (of X) acting. The grant is no
// access token anywhere, and each domain's tokens are useless in the other.
func chainFlow(t *testing.T, d *domains) {
	ctx := context.Background()
	tokA := d.tokenFor(t, "a", "orders:read stock:read")

	// B exchanges A's token the way a Go service would: x/oauth2's clientcredentials.
	conf := clientcredentials.Config{ClientID: "b-api", ClientSecret: chainSecret["b-api"], TokenURL: d.x.endpoint("token"),
		EndpointParams: url.Values{
			"grant_type": {tokenExchange}, "subject_token": {tokA}, "subject_token_type": {ttAccessToken},
			"requested_token_type": {ttJWT}, "resource": {d.y.issuer}, "scope": {"stock:read"},
		}}
	tok, err := conf.Token(context.WithValue(ctx, oauth2.HTTPClient, d.x.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "N_A" || tok.Extra("issued_token_type") != ttJWT || tok.Extra("resource") != d.y.issuer ||
		tok.Extra("scope") != "stock:read" || tok.Extra("token_endpoint") != d.y.endpoint("token") || tok.RefreshToken != "" {
		t.Fatalf("exchange response: type %q, issued %v, resource %v, scope %v, token_endpoint %v", tok.TokenType,
			tok.Extra("issued_token_type"), tok.Extra("resource"), tok.Extra("scope"), tok.Extra("token_endpoint"))
	}
	if exp, _ := tok.Extra("expires_in").(float64); exp < 110 || exp > 120 {
		t.Fatalf("expires_in %v, want the peer entry's 2 minutes", exp)
	}
	grant := tok.AccessToken
	if h := jwtHeader(t, grant); h["typ"] != "JWT" || h["kid"] != "x-1" {
		t.Fatalf("grant header %v", h)
	}
	c := claimsOf(t, grant)
	act, _ := c["act"].(map[string]any)
	if c["iss"] != d.x.issuer || c["sub"] != "a" || c["aud"] != d.y.issuer || c["scope"] != "stock:read" || c["client_id"] != "b-api" ||
		act["sub"] != "b-api" || len(act) != 1 || c["jti"] == "" || c["exp"].(float64)-c["iat"].(float64) != 120 || len(c) != 9 {
		t.Fatalf("grant claims %v", c)
	}

	// The grant is no access token: not at X's resource servers, not at X's introspection,
	// not as a token to exchange at X, not as an assertion at X.
	for _, aud := range []string{serviceB, d.y.issuer} {
		if _, err := d.x.verifierFor(aud).Verify(ctx, grant); !errors.Is(err, verify.ErrType) {
			t.Fatalf("X's resource server %s took the grant: %v", aud, err)
		}
	}
	if _, m := d.x.post("introspect", url.Values{"token": {grant}}, "b-api", chainSecret["b-api"]); m["active"] != false {
		t.Fatalf("X introspects the grant as %v", m)
	}
	if resp, m := d.grant("b-api", grant, d.y.issuer); resp.StatusCode != 400 || m["error"] != "invalid_request" {
		t.Fatalf("the grant exchanged at X: %d %v", resp.StatusCode, m)
	}
	if resp, m := present(d.x, grant, serviceB); resp.StatusCode != 400 || m["error"] != "invalid_grant" || m["access_token"] != nil {
		t.Fatalf("the grant presented back at X: %d %v", resp.StatusCode, m)
	}

	// B presents the grant at Y for C.
	resp, m := present(d.y, grant, serviceC)
	if resp.StatusCode != 200 || m["scope"] != "stock:read" || m["refresh_token"] != nil {
		t.Fatalf("the grant at Y: %d %v", resp.StatusCode, m)
	}
	tokC := m["access_token"].(string)
	cv, err := verify.New(ctx, verify.Config{Issuer: d.y.issuer, Audience: serviceC, HTTPClient: d.y.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cv.Verify(ctx, tokC)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Subject != "a" || cc.Issuer != d.y.issuer || cc.ClientID != d.x.issuer || cc.Scope != "stock:read" ||
		cc.Act == nil || cc.Act.Subject != "b-api" || cc.Act.Issuer != d.x.issuer || cc.Act.Act != nil {
		t.Fatalf("C sees %+v, act %+v", cc, cc.Act)
	}
	if !cc.ExpiresAt.After(time.Now()) || cc.ExpiresAt.Sub(cc.IssuedAt) != 5*time.Minute {
		t.Fatalf("C's token lives %v", cc.ExpiresAt.Sub(cc.IssuedAt))
	}
	// Y's token is refused at X's resource servers, A's token and the grant at C.
	if _, err := d.x.verifierFor(serviceB).Verify(ctx, tokC); err == nil {
		t.Fatal("X's resource server accepted Y's token")
	}
	for name, tok := range map[string]string{"A's token": tokA, "the grant": grant} {
		if _, err := cv.Verify(ctx, tok); err == nil {
			t.Fatalf("C accepted %s", name)
		}
	}
	// The grant is single-use.
	if resp, m := present(d.y, grant, serviceC); resp.StatusCode != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_description"].(string), "already") {
		t.Fatalf("replayed grant: %d %v", resp.StatusCode, m)
	}
}

// chainRefusals is the list of bad input, each refused with the RFC error naming the
// rule, and nothing issued.
func chainRefusals(t *testing.T, d *domains) {
	tokA := d.tokenFor(t, "a", "orders:read stock:read stock:write")
	tokM := d.tokenFor(t, "m", "stock:read")
	tokNoStock := d.tokenFor(t, "a", "orders:read")
	freshGrant := func(peer string) string {
		t.Helper()
		resp, m := d.grant("b-api", tokA, peer, "scope", "stock:read")
		if resp.StatusCode != 200 {
			t.Fatalf("grant for %s: %d %v", peer, resp.StatusCode, m)
		}
		return m["access_token"].(string)
	}
	forged := func(iss string) string { // X's key, X's claims but for iss
		c := claimsOf(t, freshGrant(d.y.issuer))
		c["iss"] = iss
		return d.xKey.sign(t, c)
	}
	used := freshGrant(d.y.issuer)
	if resp, m := present(d.y, used, serviceC); resp.StatusCode != 200 {
		t.Fatalf("first use: %d %v", resp.StatusCode, m)
	}
	grantOfM := func() string {
		resp, m := d.grant("b-api", tokM, d.y.issuer)
		if resp.StatusCode != 200 {
			t.Fatalf("grant for m: %d %v", resp.StatusCode, m)
		}
		return m["access_token"].(string)
	}()

	type refusal struct {
		name   string
		do     func() (*http.Response, map[string]any)
		code   string
		hint   string
		expire bool // Y's clock is ten minutes ahead
	}
	atX := func(client, subject, peer string, kv ...string) func() (*http.Response, map[string]any) {
		return func() (*http.Response, map[string]any) { return d.grant(client, subject, peer, kv...) }
	}
	at := func(as *testAS, grant func() string, resource string) func() (*http.Response, map[string]any) {
		return func() (*http.Response, map[string]any) { return present(as, grant(), resource) }
	}
	val := func(s string) func() string { return func() string { return s } }
	for _, tc := range []refusal{
		// At X, the way out.
		{"a grant for an unregistered peer", atX("b-api", tokA, "https://as.nowhere.example"), "invalid_target", "not a registered peer", false},
		{"a resource server named as a peer", atX("b-api", tokA, serviceB), "invalid_target", "not a registered peer", false},
		{"no peer named", atX("b-api", tokA, "", "resource", "\x00"), "invalid_target", "resource", false},
		{"a scope beyond the peer entry", atX("b-api", tokA, d.y.issuer, "scope", "stock:write"), "invalid_scope", "peer entry", false},
		{"a scope beyond the subject token", atX("b-api", tokNoStock, d.y.issuer, "scope", "stock:read"), "invalid_scope", "subject_token", false},
		{"no scope of the subject token for the peer", atX("b-api", tokNoStock, d.y.issuer), "invalid_scope", "peer entry", false},
		{"claims the peer entry does not allow (act, on the way out)", atX("b-api", tokA, noActPeer), "invalid_target", "act claim", false},
		{"a peer the client may not ask for", atX("b-local", tokA, d.y.issuer), "invalid_target", "not allowed", false},
		{"audience instead of resource", atX("b-api", tokA, d.y.issuer, "audience", d.y.issuer), "invalid_request", "resource", false},
		// At Y (and Z), the way in.
		{"a replayed grant at Y", at(d.y, val(used), serviceC), "invalid_grant", "already been used", false},
		{"a used grant replayed through Y's token exchange", func() (*http.Response, map[string]any) {
			return d.y.post("token", url.Values{"grant_type": {tokenExchange}, "subject_token": {used}, "subject_token_type": {ttJWT},
				"resource": {serviceC}}, "y-gw", chainSecret["y-gw"])
		}, "invalid_request", "already been used", false},
		{"a grant exchanged at Y, then presented", func() (*http.Response, map[string]any) {
			g := freshGrant(d.y.issuer)
			if resp, m := d.y.post("token", url.Values{"grant_type": {tokenExchange}, "subject_token": {g}, "subject_token_type": {ttJWT},
				"resource": {serviceC}}, "y-gw", chainSecret["y-gw"]); resp.StatusCode != 200 {
				t.Fatalf("exchange at Y: %d %v", resp.StatusCode, m)
			}
			return present(d.y, g, serviceC)
		}, "invalid_grant", "already been used", false},
		{"a grant from X presented to a third server Z", at(d.z, func() string { return freshGrant(d.y.issuer) }, serviceZ), "invalid_grant", "other than this authorization server", false},
		{"a grant signed by X naming another trusted iss", at(d.y, func() string { return forged(otherIssuer) }, serviceC), "invalid_grant", "registered key of the issuer", false},
		{"a grant signed by X naming an unknown iss", at(d.y, func() string { return forged("https://unknown.example") }, serviceC), "invalid_grant", "not trusted", false},
		{"an expired grant", at(d.y, func() string { return freshGrant(d.y.issuer) }, serviceC), "invalid_grant", "expired", true},
		{"a grant whose sub X did not vouch for", at(d.y, val(grantOfM), serviceC), "invalid_grant", "not trusted to assert this subject", false},
		{"claims the peer entry does not allow (act, on the way in)", at(d.z, func() string { return freshGrant(d.z.issuer) }, serviceZ), "invalid_grant", "does not transcribe", false},
		{"a scope beyond the grant's", func() (*http.Response, map[string]any) {
			return d.y.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {freshGrant(d.y.issuer)}, "resource": {serviceC}, "scope": {"stock:write"}}, "", "")
		}, "invalid_scope", "scope claim", false},
		{"a resource outside Y's trust", at(d.y, func() string { return freshGrant(d.y.issuer) }, "https://orders.example.com/"), "invalid_target", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expire {
				d.yClock.set(10 * time.Minute)
				defer d.yClock.set(0)
			}
			resp, m := tc.do()
			desc, _ := m["error_description"].(string)
			if resp.StatusCode != 400 || m["error"] != tc.code || m["access_token"] != nil || !strings.Contains(desc, tc.hint) {
				t.Fatalf("%d %v, want 400 %s mentioning %q", resp.StatusCode, m, tc.code, tc.hint)
			}
		})
	}
}

// jwtHeader decodes the JOSE header of a compact JWS without checking anything.
func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
