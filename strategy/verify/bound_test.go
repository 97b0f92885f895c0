package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// holder is a client's DPoP key, with proofs built byte by byte so that tests control the clock
// and every claim.
type holder struct {
	key testKey
	jkt string
	n   atomic.Int64
}

func newHolder(t testing.TB, key testKey) *holder {
	t.Helper()
	pub := jose.JSONWebKey{Key: key.priv.Public()}
	jkt, err := dpop.Thumbprint(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return &holder{key: key, jkt: jkt}
}

// proof returns a proof for method and htu at now, for token (ath); mod changes the claims or
// the header before signing.
func (h *holder) proof(t testing.TB, now time.Time, method, htu, token string, mod func(hdr, cl map[string]any)) string {
	t.Helper()
	hdr := map[string]any{"typ": dpop.Type, "alg": string(h.key.alg), "jwk": jose.JSONWebKey{Key: h.key.priv.Public()}}
	cl := map[string]any{"jti": fmt.Sprintf("p-%d", h.n.Add(1)), "htm": method, "htu": htu, "iat": now.Unix()}
	if token != "" {
		cl["ath"] = dpop.TokenHash(token)
	}
	if mod != nil {
		mod(hdr, cl)
	}
	return h.key.sign(t, mustJSON(t, hdr), mustJSON(t, cl))
}

// boundToken is an access token bound to jkt.
func boundToken(t testing.TB, k testKey, now time.Time, jkt string) string {
	t.Helper()
	c := claimsAt(testIssuer, now)
	c["cnf"] = map[string]any{"jkt": jkt}
	return k.token(t, k.header(), c)
}

const ordersURL = "https://orders.example.com/orders"

// call sends GET ordersURL?page=2 through v's middleware with authorization and proofs.
func call(v *Verifier, authorization string, proofs ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, ordersURL+"?page=2", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		req.Header.Add(dpop.HeaderName, p)
	}
	rec := httptest.NewRecorder()
	v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := FromContext(r.Context())
		fmt.Fprint(w, c.Confirmation != nil)
	})).ServeHTTP(rec, req)
	return rec
}

// hasChallenge reports whether challenge c is of want's scheme and has want's parameter.
func hasChallenge(c, want string) bool {
	scheme, param, _ := strings.Cut(want, " ")
	return strings.HasPrefix(c, scheme+" ") && strings.Contains(c, param)
}

// challenges returns the WWW-Authenticate values of rec.
func challenges(rec *httptest.ResponseRecorder) []string {
	return rec.Header().Values("WWW-Authenticate")
}

func TestDPoPMiddleware(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice, mallory := newHolder(t, newECKey(t, "")), newHolder(t, newEdKey(t, ""))
	v := newStaticVerifier(t, clk, k, nil)
	now := clk.Now()
	tok := boundToken(t, k, now, alice.jkt)
	other := boundToken(t, k, now, alice.jkt+"x")
	plain := k.token(t, k.header(), claimsAt(testIssuer, now))
	p := func(mod func(hdr, cl map[string]any)) string { return alice.proof(t, now, "GET", ordersURL, tok, mod) }
	big := p(func(_, cl map[string]any) { cl["pad"] = strings.Repeat("x", dpop.MaxProofSize) })

	cases := []struct {
		name          string
		authorization string
		proofs        []string
		status        int
		challenge     string // the first challenge starts with it
	}{
		{"bound token with its proof", "DPoP " + tok, []string{p(nil)}, 200, ""},
		{"scheme name in another case", "dpop " + tok, []string{p(nil)}, 200, ""},
		{"htu with another case and the default port", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = "HTTPS://Orders.Example.COM:443/orders" })}, 200, ""},
		{"htu with a query and a fragment", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = ordersURL + "?page=3#x" })}, 200, ""},
		{"bound token as Bearer (RFC 9449 §7.2)", "Bearer " + tok, nil, 401, `DPoP error="invalid_token"`},
		{"bound token as Bearer with a proof", "Bearer " + tok, []string{p(nil)}, 401, `DPoP error="invalid_token"`},
		{"bearer token with the DPoP scheme", "DPoP " + plain, []string{alice.proof(t, now, "GET", ordersURL, plain, nil)}, 401, `DPoP error="invalid_token"`},
		{"no proof", "DPoP " + tok, nil, 401, `DPoP error="invalid_dpop_proof"`},
		{"two proofs", "DPoP " + tok, []string{p(nil), p(nil)}, 401, `DPoP error="invalid_dpop_proof"`},
		{"proof by another key", "DPoP " + tok, []string{mallory.proof(t, now, "GET", ordersURL, tok, nil)}, 401, `DPoP error="invalid_token"`},
		{"proof for another token", "DPoP " + tok, []string{alice.proof(t, now, "GET", ordersURL, other, nil)}, 401, `DPoP error="invalid_dpop_proof"`},
		{"proof without ath", "DPoP " + tok, []string{alice.proof(t, now, "GET", ordersURL, "", nil)}, 401, `DPoP error="invalid_dpop_proof"`},
		{"wrong htm", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htm"] = "POST" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"htm in lower case", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htm"] = "get" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"htu of another path", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = ordersURL + "/1" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"htu with a trailing slash", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = ordersURL + "/" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"htu over http", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = "http://orders.example.com/orders" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"htu with another port", "DPoP " + tok, []string{p(func(_, cl map[string]any) { cl["htu"] = "https://orders.example.com:8443/orders" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"stale iat", "DPoP " + tok, []string{alice.proof(t, now.Add(-10*time.Minute), "GET", ordersURL, tok, nil)}, 401, `DPoP error="invalid_dpop_proof"`},
		{"future iat", "DPoP " + tok, []string{alice.proof(t, now.Add(10*time.Minute), "GET", ordersURL, tok, nil)}, 401, `DPoP error="invalid_dpop_proof"`},
		{"wrong typ", "DPoP " + tok, []string{p(func(h, _ map[string]any) { h["typ"] = "JWT" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"alg none", "DPoP " + tok, []string{p(func(h, _ map[string]any) { h["alg"] = "none" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"HMAC", "DPoP " + tok, []string{p(func(h, _ map[string]any) { h["alg"] = "HS256" })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"private key in jwk", "DPoP " + tok, []string{p(func(h, _ map[string]any) { h["jwk"] = jose.JSONWebKey{Key: alice.key.priv} })}, 401, `DPoP error="invalid_dpop_proof"`},
		{"oversize proof", "DPoP " + tok, []string{big}, 401, `DPoP error="invalid_dpop_proof"`},
		{"garbage proof", "DPoP " + tok, []string{"a.b.c"}, 401, `DPoP error="invalid_dpop_proof"`},
		{"expired bound token", "DPoP " + boundExpired(t, k, now, alice.jkt), []string{p(nil)}, 401, `DPoP error="invalid_token"`},
		{"no token", "", nil, 401, `Bearer realm="https://orders.example.com/"`},
		{"malformed DPoP credentials", "DPoP a b", nil, 400, `DPoP error="invalid_request"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(v, tc.authorization, tc.proofs...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %v %s", rec.Code, tc.status, rec.Header(), rec.Body)
			}
			ch := challenges(rec)
			if tc.status == 200 {
				if len(ch) != 0 || rec.Body.String() != "true" {
					t.Fatalf("challenges %q, body %q", ch, rec.Body)
				}
				return
			}
			if len(ch) != 2 || !hasChallenge(ch[0], tc.challenge) {
				t.Fatalf("challenges %q, want the first to be %s", ch, tc.challenge)
			}
			dpopCh := ch[0]
			if !strings.HasPrefix(dpopCh, "DPoP") {
				dpopCh = ch[1]
			}
			if !strings.Contains(dpopCh, `algs="RS256 PS256 ES256 ES384 EdDSA"`) {
				t.Fatalf("DPoP challenge without algs: %q", dpopCh)
			}
			for _, c := range ch {
				if strings.Contains(c, tok) || strings.Contains(c, "eyJ") {
					t.Fatalf("a challenge echoes a token or a proof: %q", c)
				}
			}
		})
	}
}

func boundExpired(t testing.TB, k testKey, now time.Time, jkt string) string {
	c := claimsAt(testIssuer, now.Add(-time.Hour))
	c["cnf"] = map[string]any{"jkt": jkt}
	return k.token(t, k.header(), c)
}

// A proof is good once, however many requests race with it.
func TestDPoPReplay(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	v := newStaticVerifier(t, clk, k, nil)
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	proof := alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil)

	const n = 32
	var wg sync.WaitGroup
	var ok, replayed atomic.Int32
	for range n {
		wg.Go(func() {
			rec := call(v, "DPoP "+tok, proof)
			switch {
			case rec.Code == 200:
				ok.Add(1)
			case rec.Code == 401 && strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_dpop_proof"):
				replayed.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != n-1 {
		t.Fatalf("%d accepted, %d refused as replays; want 1 and %d", ok.Load(), replayed.Load(), n-1)
	}
	// A fresh proof for the same token is fine.
	if rec := call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil)); rec.Code != 200 {
		t.Fatalf("fresh proof: %d", rec.Code)
	}
}

func TestDPoPNonce(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.DPoPNonces = nonces })
	tok := boundToken(t, k, clk.Now(), alice.jkt)

	rec := call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil))
	nonce := rec.Header().Get(dpop.NonceHeader)
	if rec.Code != 401 || !hasChallenge(rec.Header().Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("no nonce: %d %v", rec.Code, rec.Header())
	}
	withNonce := func(n string) func(_, cl map[string]any) { return func(_, cl map[string]any) { cl["nonce"] = n } }
	rec = call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, withNonce(nonce)))
	if rec.Code != 200 || rec.Header().Get(dpop.NonceHeader) == "" {
		t.Fatalf("with the nonce: %d %v", rec.Code, rec.Header())
	}
	rec = call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, withNonce(nonce+"x")))
	if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "use_dpop_nonce") {
		t.Fatalf("wrong nonce: %d %v", rec.Code, rec.Header())
	}
	clk.Add(3 * time.Minute) // two periods later: stale
	tok = boundToken(t, k, clk.Now(), alice.jkt)
	rec = call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, withNonce(nonce)))
	if rec.Code != 401 || rec.Header().Get(dpop.NonceHeader) == nonce {
		t.Fatalf("stale nonce: %d %v", rec.Code, rec.Header())
	}
}

func TestDPoPRequired(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.DPoPRequired = true })
	plain := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	rec := call(v, "Bearer "+plain)
	if ch := challenges(rec); rec.Code != 401 || len(ch) != 1 || !hasChallenge(ch[0], `DPoP error="invalid_token"`) {
		t.Fatalf("bearer token: %d %q", rec.Code, ch)
	}
	rec = call(v, "")
	if ch := challenges(rec); rec.Code != 401 || len(ch) != 1 || !strings.HasPrefix(ch[0], "DPoP realm=") {
		t.Fatalf("no token: %d %q", rec.Code, ch)
	}
	rec = call(v, "DPoP "+plain, alice.proof(t, clk.Now(), "GET", ordersURL, plain, nil))
	if ch := challenges(rec); rec.Code != 401 || !strings.Contains(ch[0], "requires a DPoP-bound") {
		t.Fatalf("unbound token as DPoP: %d %q", rec.Code, ch)
	}
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	if rec := call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil)); rec.Code != 200 {
		t.Fatalf("bound token: %d %v", rec.Code, rec.Header())
	}
	if m := v.Metadata(); !m.DPoPBoundAccessTokensRequired || len(m.DPoPSigningAlgValuesSupported) == 0 {
		t.Fatalf("metadata: %+v", m)
	}
}

// Behind a reverse proxy the proof names the public URI, not the one the server sees.
func TestDPoPBehindProxy(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	const public = "https://api.example.com/orders-svc/orders"
	send := func(v *Verifier, hdr http.Header) int {
		req := httptest.NewRequest(http.MethodGet, "http://10.0.0.7:8080/orders", nil)
		for name, vs := range hdr {
			req.Header[name] = vs
		}
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set(dpop.HeaderName, alice.proof(t, clk.Now(), "GET", public, tok, nil))
		rec := httptest.NewRecorder()
		v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
		return rec.Code
	}
	external := newStaticVerifier(t, clk, k, func(c *Config) { c.ExternalURL = "https://api.example.com/orders-svc/" })
	if got := send(external, nil); got != 404 {
		t.Fatalf("ExternalURL: %d", got)
	}
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example.com, proxy.internal"}}
	direct := newStaticVerifier(t, clk, k, nil)
	if got := send(direct, fwd); got != 401 {
		t.Fatalf("forwarded headers trusted by default: %d", got)
	}
	trusting := newStaticVerifier(t, clk, k, func(c *Config) {
		c.TrustForwardedHeaders = true
		c.ExternalURL = ""
	})
	// The public path has a prefix the proxy strips, which forwarded headers cannot tell: only
	// a proof for the path the server sees passes.
	if got := send(trusting, fwd); got != 401 {
		t.Fatalf("prefix-stripping proxy without ExternalURL: %d", got)
	}
	req := httptest.NewRequest(http.MethodGet, "http://10.0.0.7:8080/orders", nil)
	req.Header.Set("Forwarded", `for=192.0.2.60;proto=https;host="api.example.com", for=10.0.0.1`)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set(dpop.HeaderName, alice.proof(t, clk.Now(), "GET", "https://api.example.com/orders", tok, nil))
	rec := httptest.NewRecorder()
	trusting.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Fatalf("Forwarded: %d %v", rec.Code, rec.Header())
	}
	if _, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}},
		ExternalURL: "https://api.example.com/?x=1"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("ExternalURL with a query: %v", err)
	}
}

// A replay cache that fails makes the request a 503, never an acceptance.
func TestDPoPReplayFailure(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	full := dpop.ReplayFunc(func(context.Context, string, time.Time) (bool, error) { return false, dpop.ErrReplayFull })
	v := newStaticVerifier(t, clk, k, func(c *Config) { c.DPoPReplay = full })
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	rec := call(v, "DPoP "+tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}

func TestVerifyRefusesBoundTokens(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	v := newStaticVerifier(t, clk, k, nil)
	ctx := context.Background()
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrBinding) {
		t.Fatalf("Verify of a bound token: %v", err)
	}
	mtls := claimsAt(testIssuer, clk.Now())
	mtls["cnf"] = map[string]any{"x5t#S256": "abc"}
	if _, err := v.Verify(ctx, k.token(t, k.header(), mtls)); !errors.Is(err, ErrBinding) {
		t.Fatalf("Verify of an mTLS-bound token: %v", err)
	}
	for _, cnf := range []any{"x", map[string]any{}, map[string]any{"jkt": 1}, map[string]any{"jkt": ""}} {
		c := claimsAt(testIssuer, clk.Now())
		c["cnf"] = cnf
		if _, err := v.Verify(ctx, k.token(t, k.header(), c)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cnf %v: %v", cnf, err)
		}
	}
	c, err := v.VerifyDPoP(ctx, tok, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil), "GET", ordersURL)
	if err != nil || c.Confirmation.JKT != alice.jkt {
		t.Fatalf("VerifyDPoP: %v", err)
	}
}

// insufficient_scope after a DPoP request is a DPoP challenge.
func TestDPoPInsufficientScope(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	alice := newHolder(t, newECKey(t, ""))
	v := newStaticVerifier(t, clk, k, nil)
	tok := boundToken(t, k, clk.Now(), alice.jkt)
	req := httptest.NewRequest(http.MethodGet, ordersURL, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set(dpop.HeaderName, alice.proof(t, clk.Now(), "GET", ordersURL, tok, nil))
	rec := httptest.NewRecorder()
	v.Middleware(v.RequireScope("admin")(http.NotFoundHandler())).ServeHTTP(rec, req)
	if ch := challenges(rec); rec.Code != 403 || !strings.HasPrefix(ch[0], `DPoP realm="https://orders.example.com/", error="insufficient_scope"`) {
		t.Fatalf("got %d %q", rec.Code, ch)
	}
}
