package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

// Regression tests of the outside attack run (issue 13), over HTTP as the attacker sent them.

// signRaw signs payload exactly as given (duplicate members included).
func (k signingKey) signRaw(t testing.TB, payload string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// variants re-encodes a compact JWS without changing what it signs: the unused low bits of a
// segment's last base64url character, and a line break inside a segment.
func variants(raw string) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(raw, ".")
	var out []string
	for i := 0; i < 2; i++ {
		seg := parts[i]
		last := strings.IndexByte(alphabet, seg[len(seg)-1])
		for v := 1; v < 1<<map[int]int{2: 4, 3: 2}[len(seg)%4]; v++ {
			p := append([]string(nil), parts...)
			p[i] = seg[:len(seg)-1] + string(alphabet[last|v])
			out = append(out, strings.Join(p, "."))
		}
		p := append([]string(nil), parts...)
		p[i] = seg[:5] + "\n" + seg[5:]
		out = append(out, strings.Join(p, "."))
	}
	return out
}

// Finding 1: under a jti_optional trust, one assertion without jti gives one token, however it
// is re-encoded.
func TestHardeningAssertionWithoutJTIIsOneUse(t *testing.T) {
	as := newAS(t)
	idp := genKey(t, jose.EdDSA, "idp-nojti")
	as.saveTrust(storage.Trust{ID: "nojti", Issuer: idpIssuer, AllowAnySubject: true, JTIOptional: true,
		JWKS: idp.jwks(), Scopes: []string{"orders:read"}, Resources: []string{orders}})
	a := idp.sign(t, as.assertionClaims(idpIssuer, "svc-a", "jti", nil, "exp", time.Now().Add(4*time.Minute).Unix()))
	tokens := 0
	for i, raw := range append([]string{a}, variants(a)...) {
		resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {raw}}, "", "")
		switch {
		case resp.StatusCode == 200:
			tokens++
		case resp.StatusCode == 400 && m["error"] == "invalid_grant":
		default:
			t.Fatalf("encoding %d: %d %v", i, resp.StatusCode, m)
		}
	}
	if tokens != 1 {
		t.Fatalf("one assertion gave %d tokens", tokens)
	}
}

// Finding 3: a signed {"sub":"user-123",…,"Sub":"admin"} must not read as sub=admin, nor
// {"aud":"https://evil.example","Aud":"<token URL>"} pass the aud rule.
func TestHardeningAmbiguousAssertionClaims(t *testing.T) {
	as := newAS(t)
	idp := genKey(t, jose.ES256, "idp-amb")
	as.saveTrust(storage.Trust{ID: "amb", Issuer: idpIssuer, AllowAnySubject: true, JWKS: idp.jwks(),
		Scopes: []string{"orders:read"}, Resources: []string{orders}})
	now := time.Now()
	base := fmt.Sprintf(`"iss":%q,"iat":%d,"exp":%d`, idpIssuer, now.Unix(), now.Add(time.Minute).Unix())
	for name, payload := range map[string]string{
		"Sub after sub": fmt.Sprintf(`{%s,"jti":"a1","aud":%q,"sub":"user-123","Sub":"admin"}`, base, as.endpoint("token")),
		"sub twice":     fmt.Sprintf(`{%s,"jti":"a2","aud":%q,"sub":"user-123","sub":"admin"}`, base, as.endpoint("token")),
		"Aud after aud": fmt.Sprintf(`{%s,"jti":"a3","sub":"svc","aud":"https://evil.example","Aud":%q}`, base, as.endpoint("token")),
	} {
		t.Run(name, func(t *testing.T) {
			resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.signRaw(t, payload)}}, "", "")
			if resp.StatusCode != 400 || m["error"] != "invalid_grant" || m["access_token"] != nil {
				t.Fatalf("%d %v", resp.StatusCode, m)
			}
		})
	}
}

// Finding 6: the answer does not tell whether a client exists or how it authenticates.
func TestHardeningNoClientEnumeration(t *testing.T) {
	as := newAS(t)
	k := genKey(t, jose.ES256, "pkj-enum")
	as.saveClient(storage.Client{ID: "pkj-enum", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: k.jwks(),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
	stranger := genKey(t, jose.ES256, "pkj-enum")
	assertion := func(key signingKey, id string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType},
			"client_assertion": {key.sign(t, as.assertionClaims(id, id))}}
	}
	secret := func(kv ...string) func() url.Values {
		return func() url.Values {
			f := url.Values{"grant_type": {"client_credentials"}}
			for i := 0; i+1 < len(kv); i += 2 {
				f.Set(kv[i], kv[i+1])
			}
			return f
		}
	}
	type attempt struct {
		form       func() url.Values // fresh for every request: assertions are single-use
		user, pass string
	}
	attempts := map[string]attempt{
		"assertion for an unknown client":       {form: func() url.Values { return assertion(k, "ghost") }},
		"assertion for a secret client":         {form: func() url.Values { return assertion(k, "svc") }},
		"assertion signed by another key":       {form: func() url.Values { return assertion(stranger, "pkj-enum") }},
		"basic for an unknown client":           {form: secret(), user: "ghost", pass: "x"},
		"basic with a wrong secret":             {form: secret(), user: "svc", pass: "x"},
		"basic for a client_secret_post client": {form: secret(), user: "svc-post", pass: "svc-post-secret-0123456789"},
		"basic for a private_key_jwt client":    {form: secret(), user: "pkj-enum", pass: "x"},
		"post for a client_secret_basic client": {form: secret("client_id", "svc", "client_secret", "svc-secret-0123456789")},
	}
	var first, firstName string
	for name, a := range attempts {
		for _, ep := range []string{"token", "introspect", "revoke"} {
			f := a.form()
			f.Set("token", "x")
			resp, m := as.post(ep, f, a.user, a.pass)
			if resp.StatusCode != 401 || m["error"] != "invalid_client" {
				t.Fatalf("%s at %s: %d %v", name, ep, resp.StatusCode, m)
			}
			d, _ := m["error_description"].(string)
			if first == "" {
				first, firstName = d, name
			} else if d != first {
				t.Fatalf("%s at %s answers %q\n%s answers %q", name, ep, d, firstName, first)
			}
		}
	}
}

// Finding 7: one client authentication method per request, one Authorization header.
func TestHardeningOneAuthenticationMethod(t *testing.T) {
	as := newAS(t)
	for name, tc := range map[string]struct {
		form    url.Values
		headers []string
	}{
		"Basic and a wrong body secret": {url.Values{"client_secret": {"wrong"}}, []string{basicAuth("svc", "svc-secret-0123456789")}},
		"Basic and a conflicting id":    {url.Values{"client_id": {"svc-post"}}, []string{basicAuth("svc", "svc-secret-0123456789")}},
		"two Authorization headers":     {url.Values{}, []string{basicAuth("svc", "svc-secret-0123456789"), basicAuth("svc-post", "wrong")}},
	} {
		t.Run(name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			req, _ := http.NewRequest(http.MethodPost, as.endpoint("token"), strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, h := range tc.headers {
				req.Header.Add("Authorization", h)
			}
			resp, m := as.do(req)
			if resp.StatusCode != 400 || m["error"] != "invalid_request" || m["access_token"] != nil {
				t.Fatalf("%d %v", resp.StatusCode, m)
			}
		})
	}
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	return r.Header.Get("Authorization")
}

// Finding 8: introspection answers only the token's client, the resource server it is for, and
// clients granted introspect_all; everybody else learns {"active": false}.
func TestHardeningIntrospectionIsAuthorized(t *testing.T) {
	as := newAS(t)
	hash := func(s string) []byte {
		h, err := as.p.Hasher().Hash(context.Background(), []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	as.saveClient(storage.Client{ID: "orders-api", SecretHash: hash("orders-api-secret-0123456789"), Serves: []string{orders}})
	as.saveClient(storage.Client{ID: "billing-api", SecretHash: hash("billing-api-secret-0123456789"), Serves: []string{billing}})
	_, refresh := authCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	access := as.clientCredentials("orders:read", orders) // issued to svc, for orders
	for _, tc := range []struct {
		caller, secret, token string
		active                bool
	}{
		{"svc", "svc-secret-0123456789", access, true},                  // its own token
		{"orders-api", "orders-api-secret-0123456789", access, true},    // the resource server it is for
		{"billing-api", "billing-api-secret-0123456789", access, false}, // another resource server
		{"svc-post", "svc-post-secret-0123456789", access, false},       // another client
		{"rs", "rs-secret-0123456789", access, true},                    // introspect_all
		{"conf", "conf-secret-0123456789", refresh.RefreshToken, true},  // its own refresh token
		{"orders-api", "orders-api-secret-0123456789", refresh.RefreshToken, false},
		{"svc", "svc-secret-0123456789", refresh.RefreshToken, false},
		{"orders-api", "orders-api-secret-0123456789", refresh.AccessToken, true},
		{"svc", "svc-secret-0123456789", refresh.AccessToken, false},
	} {
		f, user, pass := url.Values{"token": {tc.token}}, tc.caller, tc.secret
		if tc.caller == "svc-post" { // registered for client_secret_post
			f.Set("client_id", user)
			f.Set("client_secret", pass)
			user, pass = "", ""
		}
		resp, m := as.post("introspect", f, user, pass)
		if resp.StatusCode != 200 || m["active"] != tc.active || !tc.active && len(m) != 1 {
			t.Errorf("%s introspecting: %d %v, want active=%v", tc.caller, resp.StatusCode, m, tc.active)
		}
	}
}

// Finding 4 and the echo bound: thousands of resource values, and huge values quoted back.
func TestHardeningBoundedInputAndEcho(t *testing.T) {
	as := newAS(t)
	// /authorize, reachable without credentials: refused before any of the values is looked up.
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"http://127.0.0.1:3000/cb"},
		"state": {"state-1234567890"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	for i := range 9990 {
		q.Add("resource", fmt.Sprintf("https://rs%d.example/", i))
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(as.endpoint("authorize") + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("error") != "invalid_target" || !strings.Contains(loc.Query().Get("error_description"), "more than") {
		t.Fatalf("authorize with 9990 resources: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Error descriptions quote the request boundedly, in RFC 6749's character set.
	huge := strings.Repeat("x\"\\é", 1000) // 13 KB encoded: under the body bound
	for name, f := range map[string]url.Values{
		"grant_type":       {"grant_type": {huge}},
		"repeated name":    {"grant_type": {"client_credentials"}, huge: {"a", "b"}},
		"scope":            {"grant_type": {"client_credentials"}, "scope": {huge}},
		"unknown resource": {"grant_type": {"client_credentials"}, "resource": {"https://x.example/" + strings.Repeat("y", 2000)}},
	} {
		resp, m := as.post("token", f, "svc", "svc-secret-0123456789")
		d, _ := m["error_description"].(string)
		if resp.StatusCode != 400 || d == "" || len(d) > 1024 {
			t.Errorf("%s: %d, description of %d bytes", name, resp.StatusCode, len(d))
		}
		for _, c := range []byte(d) {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Errorf("%s: description holds %q", name, c)
				break
			}
		}
	}
}
