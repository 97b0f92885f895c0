package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

const (
	orders  = "https://orders.example.com/"
	billing = "https://billing.example.com/api"
	other   = "https://other.example.com/"
)

// testAS is an authorization server under test, mounted on a ServeMux behind httptest.
type testAS struct {
	t      *testing.T
	p      *provider.Provider
	srv    *httptest.Server
	issuer string
	store  storage.Store
}

type asOption func(*provider.Config)

func testSecret(t testing.TB) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newStore(t testing.TB) storage.Store {
	t.Helper()
	st, err := gormstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newAS starts an authorization server whose issuer has a path (/oauth2), with the standard
// test setup applied.
func newAS(t *testing.T, opts ...asOption) *testAS {
	t.Helper()
	return newASWith(t, newStore(t), testSecret(t), "", opts...)
}

// newASWith starts an authorization server on st. Its issuer is issuer, or, when empty,
// http://ADDR/oauth2 for its own listener.
func newASWith(t *testing.T, st storage.Store, secret []byte, issuer string, opts ...asOption) *testAS {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	if issuer == "" {
		issuer = "http://" + srv.Listener.Addr().String() + "/oauth2"
	}
	cfg := provider.Config{
		Issuer:            issuer,
		Secret:            secret,
		Storage:           st,
		SigningAlgorithms: []string{"ES256", "RS256", "EdDSA"},
		Authenticator: provider.AuthenticatorFunc(func(w http.ResponseWriter, r *http.Request) (*provider.Authentication, bool) {
			return &provider.Authentication{Subject: "alice", AuthTime: time.Now().Add(-time.Minute), ACR: "urn:test:pwd", AMR: []string{"pwd"}}, true
		}),
	}
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
	setup, err := provider.ParseSetup([]byte(testSetup))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(context.Background(), setup); err != nil {
		t.Fatal(err)
	}
	return as
}

const testSetup = `{
  "resource_servers": [
    {"identifier": "https://orders.example.com/", "scopes": ["orders:read", "orders:write"], "access_token_ttl": "10m", "signing_alg": "ES256", "default": true},
    {"identifier": "https://billing.example.com/api", "scopes": ["billing:read"], "access_token_ttl": "5m", "signing_alg": "RS256"},
    {"identifier": "https://other.example.com/", "scopes": ["other:read"]}
  ],
  "clients": [
    {"client_id": "svc", "client_secret": "svc-secret-0123456789", "grant_types": ["client_credentials"],
     "scopes": ["orders:read", "orders:write", "billing:read"], "resources": ["https://orders.example.com/", "https://billing.example.com/api"]},
    {"client_id": "svc-post", "client_secret": "svc-post-secret-0123456789", "token_endpoint_auth_method": "client_secret_post",
     "grant_types": ["client_credentials"], "scopes": ["orders:read"], "resources": ["https://orders.example.com/"]},
    {"client_id": "rs", "client_secret": "rs-secret-0123456789", "grant_types": ["client_credentials"], "scopes": [], "resources": [], "introspect_all": true},
    {"client_id": "web", "public": true, "redirect_uris": ["http://127.0.0.1:3000/cb"],
     "grant_types": ["authorization_code", "refresh_token"], "scopes": ["orders:read", "billing:read"],
     "resources": ["https://orders.example.com/", "https://billing.example.com/api"]},
    {"client_id": "conf", "client_secret": "conf-secret-0123456789", "redirect_uris": ["http://127.0.0.1:3000/cb"],
     "grant_types": ["authorization_code", "refresh_token"], "scopes": ["orders:read"], "resources": ["https://orders.example.com/"]}
  ]
}`

// endpoint is an absolute URL below the issuer.
func (as *testAS) endpoint(name string) string {
	iu, _ := url.Parse(as.issuer)
	return "http://" + as.srv.Listener.Addr().String() + iu.Path + "/" + name
}

// post sends a form with optional basic credentials and decodes the JSON answer.
func (as *testAS) post(name string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	as.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, as.endpoint(name), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return as.do(req)
}

// send sends body as it is to endpoint ep, with Content-Type ctype (the form type when empty)
// and HTTP Basic credentials when user is set.
func (as *testAS) send(method, ep, body, ctype, user, pass string) (*http.Response, map[string]any) {
	as.t.Helper()
	req, _ := http.NewRequest(method, as.endpoint(ep), strings.NewReader(body))
	if ctype == "" {
		ctype = "application/x-www-form-urlencoded"
	}
	req.Header.Set("Content-Type", ctype)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return as.do(req)
}

func (as *testAS) do(req *http.Request) (*http.Response, map[string]any) {
	as.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		as.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			as.t.Fatalf("%s %s: status %d, body not JSON: %q", req.Method, req.URL, resp.StatusCode, body)
		}
	}
	return resp, m
}

// clientCredentials gets a token for svc.
func (as *testAS) clientCredentials(scope, resource string) string {
	as.t.Helper()
	f := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		f.Set("scope", scope)
	}
	if resource != "" {
		f.Set("resource", resource)
	}
	resp, m := as.post("token", f, "svc", "svc-secret-0123456789")
	if resp.StatusCode != 200 {
		as.t.Fatalf("token: %d %v", resp.StatusCode, m)
	}
	return m["access_token"].(string)
}

// verifyIndependently checks a token the way an RFC 9068 §4 resource server would, written
// here from scratch on go-jose, with the issuer's metadata and JWKS: it shares no code with
// mandate's own verifier.
func (as *testAS) verifyIndependently(token, audience string) (map[string]any, map[string]any) {
	as.t.Helper()
	return as.verifyIndependentlyAt(token, audience, time.Now())
}

// verifyIndependentlyAt is verifyIndependently at the given time.
func (as *testAS) verifyIndependentlyAt(token, audience string, at time.Time) (map[string]any, map[string]any) {
	t := as.t
	t.Helper()
	hdr, c := as.verifySigned(token)
	if hdr["typ"] != "at+jwt" {
		t.Fatalf("typ = %v, want at+jwt", hdr["typ"])
	}
	for _, k := range []string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} {
		if _, ok := c[k]; !ok {
			t.Fatalf("claim %s missing: %v", k, c)
		}
	}
	if c["iss"] != as.issuer {
		t.Fatalf("iss %v", c["iss"])
	}
	if !audContains(c["aud"], audience) {
		t.Fatalf("aud %v, want %s", c["aud"], audience)
	}
	now := float64(at.Unix())
	if exp := c["exp"].(float64); exp <= now {
		t.Fatalf("expired: exp %v now %v", exp, now)
	}
	if iat := c["iat"].(float64); iat > now+5 {
		t.Fatalf("iat in the future: %v", iat)
	}
	return hdr, c
}

// verifySigned checks the signature of a compact JWS of this server with the key its metadata
// and JWKS publish (from scratch on go-jose), and returns its header (alg, kid, typ) and claims.
func (as *testAS) verifySigned(token string) (map[string]any, map[string]any) {
	t := as.t
	t.Helper()
	iu, _ := url.Parse(as.issuer)
	wk := "http://" + as.srv.Listener.Addr().String() + "/.well-known/oauth-authorization-server" + iu.Path
	_, md := as.do(mustReq(t, http.MethodGet, wk))
	if md["issuer"] != as.issuer {
		t.Fatalf("metadata issuer %v, want %v", md["issuer"], as.issuer)
	}
	ju, _ := url.Parse(md["jwks_uri"].(string))
	resp, err := http.Get("http://" + as.srv.Listener.Addr().String() + ju.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys published", h.KeyID, len(keys))
	}
	if keys[0].Algorithm != h.Algorithm || !keys[0].IsPublic() || keys[0].Use != "sig" {
		t.Fatalf("published key %q: alg %q use %q public %v; token alg %q", h.KeyID, keys[0].Algorithm, keys[0].Use, keys[0].IsPublic(), h.Algorithm)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	hdr := map[string]any{"alg": h.Algorithm, "kid": h.KeyID, "typ": h.ExtraHeaders["typ"]}
	return hdr, c
}

func audContains(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return len(a) == 1 && a[0] == want
	}
	return false
}

func mustReq(t testing.TB, method, u string) *http.Request {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// claimsOf decodes a JWT payload without verifying it.
func claimsOf(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// bcryptOf returns the part of a cost-4 bcrypt hash after "$2a$04$".
func bcryptOf(t testing.TB, secret string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(secret), 4)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(string(h), "$2a$04$")
}
