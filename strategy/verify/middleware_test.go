package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testIssuer = "https://as.example.com"

func newStaticVerifier(t *testing.T, clk *clock, k testKey, mod func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{Issuer: testIssuer, Audience: testAudience, Now: clk.Now,
		Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMiddleware(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	meta := "https://orders.example.com/.well-known/oauth-protected-resource/"
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.Realm = `orders "API"`; c.ResourceMetadata = meta })
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	expired := claimsAt(testIssuer, clk.Now())
	expired["exp"] = clk.Now().Add(-time.Hour).Unix()
	expiredTok := k.token(t, k.header(), expired)
	idTok := k.token(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "k1"}, claimsAt(testIssuer, clk.Now()))
	other := claimsAt(testIssuer, clk.Now())
	other["aud"] = "https://billing.example.com/"
	otherTok := k.token(t, k.header(), other)

	const realm = `Bearer realm="orders \"API\""`
	const rm = `, resource_metadata="` + "https://orders.example.com/.well-known/oauth-protected-resource/" + `"`
	invalid := func(desc string) string {
		return realm + `, error="invalid_token", error_description="` + desc + `"` + rm
	}
	badRequest := func(desc string) string {
		return realm + `, error="invalid_request", error_description="` + desc + `"` + rm
	}
	tests := []struct {
		name       string
		headers    []string // Authorization header values
		target     string
		wantStatus int
		wantAuth   string
	}{
		{"ok", []string{"Bearer " + good}, "/", 200, ""},
		{"scheme case-insensitive", []string{"bEaReR " + good}, "/", 200, ""},
		{"extra spaces", []string{"Bearer   " + good}, "/", 200, ""},
		{"no header", nil, "/", 401, realm + rm},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, "/", 401, realm + rm},
		{"query token ignored by default", nil, "/?access_token=" + good, 401, realm + rm},
		{"Bearer without token", []string{"Bearer"}, "/", 400, badRequest("malformed Bearer credentials")},
		{"Bearer with space only", []string{"Bearer "}, "/", 400, badRequest("malformed Bearer credentials")},
		{"two tokens", []string{"Bearer a b"}, "/", 400, badRequest("malformed Bearer credentials")},
		{"bad characters", []string{`Bearer a"b`}, "/", 400, badRequest("malformed Bearer credentials")},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, "/", 400, badRequest("more than one Authorization header")},
		{"expired", []string{"Bearer " + expiredTok}, "/", 401, invalid("the access token expired")},
		{"ID token", []string{"Bearer " + idTok}, "/", 401, invalid("not an access token (typ must be at+jwt)")},
		{"other audience", []string{"Bearer " + otherTok}, "/", 401, invalid("the access token is not meant for this resource")},
		{"garbage", []string{"Bearer abc"}, "/", 401, invalid("malformed access token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *Claims
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = FromContext(r.Context())
				w.WriteHeader(200)
			}))
			req := httptest.NewRequest("GET", tt.target, nil)
			for _, a := range tt.headers {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d; want %d", rec.Code, tt.wantStatus)
			}
			if a := rec.Header().Get("WWW-Authenticate"); a != tt.wantAuth {
				t.Fatalf("WWW-Authenticate:\n got %s\nwant %s", a, tt.wantAuth)
			}
			if (tt.wantStatus == 200) != (got != nil) {
				t.Fatalf("claims in context = %v", got)
			}
			if got != nil && got.Subject != "user-1" {
				t.Fatalf("claims = %+v", got)
			}
			if strings.Contains(rec.Header().Get("WWW-Authenticate"), strings.Split(good, ".")[1]) {
				t.Fatal("challenge leaks the token")
			}
		})
	}
}

func TestMiddlewareQueryAndForm(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.AllowQueryToken = true; c.AllowFormToken = true })
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	form := url.Values{"access_token": {good}}.Encode()
	tests := []struct {
		name, method, target, body, auth string
		want                             int
	}{
		{"query", "GET", "/?access_token=" + good, "", "", 200},
		{"form", "POST", "/", form, "", 200},
		{"header", "GET", "/", "", "Bearer " + good, 200},
		{"header and query", "GET", "/?access_token=" + good, "", "Bearer " + good, 400},
		{"query and form", "POST", "/?access_token=" + good, form, "", 400},
		{"query twice", "GET", "/?access_token=" + good + "&access_token=" + good, "", "", 400},
		{"form on GET ignored", "GET", "/", form, "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d; want %d (%s)", rec.Code, tt.want, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if m := v.Metadata(); strings.Join(m.BearerMethodsSupported, ",") != "header,body,query" {
		t.Errorf("bearer_methods_supported = %q", m.BearerMethodsSupported)
	}
}

func TestRequireScope(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	v := newStaticVerifier(t, clk, k, nil)
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now())) // orders:read orders:write
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	tests := []struct {
		name       string
		scopes     []string
		noAuth     bool
		wantStatus int
		wantAuth   string
	}{
		{"one held", []string{"orders:read"}, false, 204, ""},
		{"all held", []string{"orders:read", "orders:write"}, false, 204, ""},
		{"none required", nil, false, 204, ""},
		{"missing", []string{"orders:read", "orders:delete"}, false, 403,
			`Bearer realm="https://orders.example.com/", error="insufficient_scope", error_description="the access token does not grant the scope this request needs", scope="orders:read orders:delete"`},
		{"prefix is not a scope", []string{"orders"}, false, 403,
			`Bearer realm="https://orders.example.com/", error="insufficient_scope", error_description="the access token does not grant the scope this request needs", scope="orders"`},
		{"without Middleware", []string{"orders:read"}, true, 401, `Bearer realm="https://orders.example.com/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := v.RequireScope(tt.scopes...)(ok)
			if !tt.noAuth {
				h = v.Middleware(h)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer "+good)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || rec.Header().Get("WWW-Authenticate") != tt.wantAuth {
				t.Fatalf("got %d %q\nwant %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"), tt.wantStatus, tt.wantAuth)
			}
		})
	}
}

// TestMiddlewareKeysUnavailable: a resource server that never got keys answers 503, not 401.
func TestMiddlewareKeysUnavailable(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	iss := newFakeIssuer(t, k)
	iss.down.Store(true)
	cfg := iss.config(clk)
	cfg.Lazy = true
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+k.token(t, k.header(), claimsAt(iss.issuer, clk.Now())))
	rec := httptest.NewRecorder()
	v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}

func TestParamEscaping(t *testing.T) {
	var b strings.Builder
	b.WriteString("Bearer")
	first := true
	param(&b, &first, "realm", "a\"b\\c\r\nd\u00e9")
	if got, want := b.String(), `Bearer realm="a\"b\\c??d??"`; got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
}

func TestFromContextEmpty(t *testing.T) {
	if c, ok := FromContext(context.Background()); ok || c != nil {
		t.Fatal("claims in an empty context")
	}
	if _, ok := FromContext(NewContext(context.Background(), nil)); ok {
		t.Fatal("nil claims reported as present")
	}
}

// TestMiddlewareErrorDescriptions: each kind of Verify failure is answered 401 invalid_token
// with its own fixed error_description, which never repeats the token.
func TestMiddlewareErrorDescriptions(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	v := newStaticVerifier(t, clk, k, nil)
	twin, foreign := newECKey(t, "k1"), newECKey(t, "k2")
	now := clk.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := claimsAt(testIssuer, now)
		if mod != nil {
			mod(c)
		}
		return c
	}
	good := k.token(t, k.header(), claims(nil))
	p := strings.Split(good, ".")
	rs384 := b64([]byte(`{"alg":"RS384","typ":"at+jwt","kid":"k1"}`)) + "." + p[1] + "." + p[2]
	jku := k.header()
	jku["jku"] = "https://evil.example/jwks"
	tests := []struct{ name, tok, desc string }{
		{"expired", k.token(t, k.header(), claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), "the access token expired"},
		{"not yet valid", k.token(t, k.header(), claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), "the access token is not valid yet"},
		{"audience", k.token(t, k.header(), claims(func(c map[string]any) { c["aud"] = "https://other/" })), "the access token is not meant for this resource"},
		{"issuer", k.token(t, k.header(), claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), "the access token is not from the expected issuer"},
		{"type", k.token(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "k1"}, claims(nil)), "not an access token (typ must be at+jwt)"},
		{"algorithm", rs384, "signature algorithm not accepted"},
		{"unknown key", foreign.token(t, foreign.header(), claims(nil)), "unknown signing key"},
		{"signature", twin.token(t, twin.header(), claims(nil)), "invalid signature"},
		{"missing claim", k.token(t, k.header(), claims(func(c map[string]any) { delete(c, "jti") })), "a required claim is missing"},
		{"encrypted", "aaaa.bbbb.cccc.dddd.eeee", "the access token cannot be decrypted"},
		{"key header", k.token(t, jku, claims(nil)), "malformed access token"},
		{"duplicate claim", k.sign(t, mustJSON(t, k.header()), []byte(strings.TrimSuffix(string(mustJSON(t, claims(nil))), "}")+`,"aud":"x"}`)), "malformed access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer "+tt.tok)
			rec := httptest.NewRecorder()
			reached := false
			v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })).ServeHTTP(rec, req)
			want := `Bearer realm="https://orders.example.com/", error="invalid_token", error_description="` + tt.desc + `"`
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != want || reached {
				t.Fatalf("got %d %q (handler reached: %v)\nwant 401 %q", rec.Code, rec.Header().Get("WWW-Authenticate"), reached, want)
			}
			for _, s := range segments(tt.tok) {
				if strings.Contains(rec.Header().Get("WWW-Authenticate")+rec.Body.String(), s) {
					t.Fatal("response repeats part of the token")
				}
			}
		})
	}
}

// TestMiddlewareDeliveryEdges: malformed form delivery is 400, a query token marks the response
// private (RFC 6750 §2.3), and a header token leaves Cache-Control alone.
func TestMiddlewareDeliveryEdges(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.AllowQueryToken = true; c.AllowFormToken = true })
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	form := url.Values{"access_token": {good}}.Encode()
	tests := []struct {
		name, method, target, body, auth, cacheControl string
		want                                           int
	}{
		{"query", "GET", "/?access_token=" + good, "", "", "private", 200},
		{"header", "GET", "/", "", "Bearer " + good, "", 200},
		{"form twice", "POST", "/", form + "&" + form, "", "", 400},
		{"form token malformed", "POST", "/", "access_token=a%20b", "", "", 400},
		{"form body too large", "POST", "/", "x=" + strings.Repeat("a", 1<<20+16), "", "", 400},
		{"form body malformed", "POST", "/", "access_token=%zz", "", "", 400},
		{"header and form", "POST", "/", form, "Bearer " + good, "", 400},
		{"query token malformed", "GET", "/?access_token=a%22b", "", "", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d; want %d (%s)", rec.Code, tt.want, rec.Header().Get("WWW-Authenticate"))
			}
			if tt.want == 400 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_request"`) {
				t.Fatalf("400 without invalid_request: %q", rec.Header().Get("WWW-Authenticate"))
			}
			if tt.want == 200 && rec.Header().Get("Cache-Control") != tt.cacheControl {
				t.Fatalf("Cache-Control %q; want %q", rec.Header().Get("Cache-Control"), tt.cacheControl)
			}
		})
	}
}

// TestRequireScopeResourceMetadata: the 403 challenge also points at the RFC 9728 metadata.
func TestRequireScopeResourceMetadata(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	meta := "https://orders.example.com/.well-known/oauth-protected-resource"
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.ResourceMetadata = meta })
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+k.token(t, k.header(), claimsAt(testIssuer, clk.Now())))
	rec := httptest.NewRecorder()
	v.Middleware(v.RequireScope("orders:delete")(http.NotFoundHandler())).ServeHTTP(rec, req)
	want := `Bearer realm="https://orders.example.com/", error="insufficient_scope", error_description="the access token does not grant the scope this request needs", scope="orders:delete", resource_metadata="` + meta + `"`
	if rec.Code != http.StatusForbidden || rec.Header().Get("WWW-Authenticate") != want {
		t.Fatalf("got %d %q\nwant 403 %q", rec.Code, rec.Header().Get("WWW-Authenticate"), want)
	}
}

// TestMiddlewareFormAndQueryOffByDefault: without AllowFormToken and AllowQueryToken a token in
// the body or the query is not read (401 without an error code, as for no token at all), and
// the metadata lists only the header method.
func TestMiddlewareFormAndQueryOffByDefault(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	v := newStaticVerifier(t, clk, k, nil)
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	for _, tt := range []struct{ name, method, target, body string }{
		{"form", "POST", "/", url.Values{"access_token": {good}}.Encode()},
		{"query", "GET", "/?access_token=" + good, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })).ServeHTTP(rec, req)
			if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="https://orders.example.com/"` {
				t.Fatalf("got %d %q; want 401 without an error code", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if m := v.Metadata(); len(m.BearerMethodsSupported) != 1 || m.BearerMethodsSupported[0] != "header" {
		t.Errorf("bearer_methods_supported = %q, want [header]", m.BearerMethodsSupported)
	}
}

// TestRevokedHook: Config.Revoked is asked about a token that passed every other check, with
// the token as presented; its answer refuses the token (401 invalid_token, "revoked") or, when
// it cannot tell, makes the middleware answer 503 — for Verify and for the middleware alike.
func TestRevokedHook(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	iss := newFakeIssuer(t, k)
	good := k.token(t, k.header(), claimsAt(iss.issuer, clk.Now()))
	var asked []string
	answer := map[string]error{}
	revoked := map[string]bool{}
	cfg := iss.config(clk)
	cfg.Revoked = func(_ context.Context, token string, c *Claims) (bool, error) {
		asked = append(asked, c.ID)
		return revoked[token], answer[token]
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })).ServeHTTP(rec, req)
		return rec
	}

	if c, err := v.Verify(context.Background(), good); err != nil || len(asked) != 1 || asked[0] != c.ID {
		t.Fatalf("live token: %v, asked %v", err, asked)
	}
	if rec := serve(good); rec.Code != http.StatusNoContent {
		t.Fatalf("live token through the middleware: %d", rec.Code)
	}
	// A token that fails verification is never asked about.
	asked = nil
	if _, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt("https://other.example", clk.Now()))); !errors.Is(err, ErrIssuer) || len(asked) != 0 {
		t.Fatalf("bad token: %v, asked %v", err, asked)
	}

	revoked[good] = true
	if _, err := v.Verify(context.Background(), good); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	rec := serve(good)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token", error_description="the access token has been revoked"`) {
		t.Fatalf("revoked token through the middleware: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}

	answer[good] = errors.New("introspection endpoint unreachable")
	if _, err := v.Verify(context.Background(), good); !errors.Is(err, ErrRevocationUnavailable) || errors.Is(err, ErrRevoked) {
		t.Fatalf("unanswered check: %v", err)
	}
	rec = serve(good)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("unanswered check through the middleware: %d %v", rec.Code, rec.Header())
	}
}
