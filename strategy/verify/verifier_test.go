package verify

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

type testEnv struct {
	iss              *fakeIssuer
	clk              *clock
	v                *Verifier
	rsaK, ecK, edK   testKey
	foreign, twinRSA testKey
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{
		clk:     newClock(),
		rsaK:    newRSAKey(t, "rsa-1"),
		ecK:     newECKey(t, "ec-1"),
		edK:     newEdKey(t, "ed-1"),
		foreign: newRSAKey(t, "rsa-x"),
		twinRSA: newRSAKey(t, "rsa-1"), // same kid as rsaK, different key
	}
	e.iss = newFakeIssuer(t, e.rsaK, e.ecK, e.edK, newRSAKey(t, "rsa-2"))
	v, err := New(context.Background(), e.iss.config(e.clk))
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	return e
}

func (e *testEnv) claims() map[string]any { return claimsAt(e.iss.issuer, e.clk.Now()) }

func TestVerifyValid(t *testing.T) {
	e := newEnv(t)
	for _, k := range []testKey{e.rsaK, e.ecK, e.edK} {
		t.Run(string(k.alg), func(t *testing.T) {
			c, err := e.v.Verify(context.Background(), k.token(t, k.header(), e.claims()))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			now := e.clk.Now()
			if c.Issuer != e.iss.issuer || c.Subject != "user-1" || c.ClientID != "client-a" || c.ID != "j-1" {
				t.Errorf("claims = %+v", c)
			}
			if len(c.Audience) != 1 || c.Audience[0] != testAudience {
				t.Errorf("Audience = %q", c.Audience)
			}
			if !c.ExpiresAt.Equal(now.Add(5*time.Minute)) || !c.IssuedAt.Equal(now) || !c.NotBefore.IsZero() {
				t.Errorf("times: exp %v iat %v nbf %v", c.ExpiresAt, c.IssuedAt, c.NotBefore)
			}
			if got := c.Scopes(); len(got) != 2 || got[0] != "orders:read" || got[1] != "orders:write" {
				t.Errorf("Scopes = %q", got)
			}
			if !c.HasScope("orders:write") || c.HasScope("orders") || c.HasScope("") {
				t.Error("HasScope wrong")
			}
			var app struct {
				Roles []string `json:"roles"`
			}
			if err := c.Decode(&app); err != nil || len(app.Roles) != 1 || app.Roles[0] != "admin" {
				t.Errorf("Decode: %v %v", app, err)
			}
		})
	}
}

// TestVerifyAccepts covers variations that are valid.
func TestVerifyAccepts(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	tests := []struct {
		name   string
		header func(h map[string]any)
		claims func(c map[string]any)
	}{
		{"typ application/at+jwt", func(h map[string]any) { h["typ"] = "application/at+jwt" }, nil},
		{"typ upper case", func(h map[string]any) { h["typ"] = "AT+JWT" }, nil},
		{"aud array", nil, func(c map[string]any) { c["aud"] = []string{"https://other/", testAudience} }},
		{"expired within leeway", nil, func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() }},
		{"nbf within leeway", nil, func(c map[string]any) { c["nbf"] = now.Add(20 * time.Second).Unix() }},
		{"iat within leeway", nil, func(c map[string]any) { c["iat"] = now.Add(20 * time.Second).Unix() }},
		{"fractional dates", nil, func(c map[string]any) { c["exp"] = float64(now.Unix()) + 60.5 }},
		{"optional claims", nil, func(c map[string]any) {
			c["auth_time"] = now.Unix() - 10
			c["acr"] = "urn:mace:incommon:iap:silver"
			c["amr"] = []string{"pwd", "otp"}
		}},
		{"unknown header member", func(h map[string]any) { h["x5t#S256"] = "abc" }, nil},
		{"no scope", nil, func(c map[string]any) { delete(c, "scope") }},
		{"no kid, only one key fits ES256", func(h map[string]any) { delete(h, "kid") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := e.rsaK
			if strings.Contains(tt.name, "ES256") {
				k = e.ecK
			}
			h, c := k.header(), e.claims()
			if tt.header != nil {
				tt.header(h)
			}
			if tt.claims != nil {
				tt.claims(c)
			}
			if _, err := e.v.Verify(context.Background(), k.token(t, h, c)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	pub, err := x509.MarshalPKIXPublicKey(e.rsaK.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	// hs256 signs with HMAC keyed by the RSA public key: the classic algorithm confusion.
	hs256 := func(header, payload []byte) string {
		in := b64(header) + "." + b64(payload)
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	good := e.rsaK.token(t, e.rsaK.header(), e.claims())
	parts := strings.Split(good, ".")
	with := func(h func(map[string]any), c func(map[string]any)) string {
		hh, cc := e.rsaK.header(), e.claims()
		if h != nil {
			h(hh)
		}
		if c != nil {
			c(cc)
		}
		return e.rsaK.token(t, hh, cc)
	}
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	rawPayload := func(p string) string { return e.rsaK.sign(t, mustJSON(t, e.rsaK.header()), []byte(p)) }
	validJSON := string(mustJSON(t, e.claims()))
	payloadWith := func(extra string) string { return rawPayload(strings.TrimSuffix(validJSON, "}") + "," + extra + "}") }

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"alg none", b64(mustJSON(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "rsa-1"})) + "." + parts[1] + ".", ErrAlgorithm},
		{"HS256 with the public key", hs256(mustJSON(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}), mustJSON(t, e.claims())), ErrAlgorithm},
		{"RS384 not allowed", b64(mustJSON(t, map[string]any{"alg": "RS384", "typ": "at+jwt", "kid": "rsa-1"})) + "." + parts[1] + "." + parts[2], ErrAlgorithm},
		{"foreign kid", e.foreign.token(t, e.foreign.header(), e.claims()), ErrUnknownKey},
		{"known kid, other key", e.twinRSA.token(t, e.twinRSA.header(), e.claims()), ErrSignature},
		{"kid of an EC key with RS256", with(set("kid", "ec-1"), nil), ErrUnknownKey},
		{"PS256 with a key whose alg is RS256", (testKey{kid: "rsa-1", alg: jose.PS256, priv: e.rsaK.priv}).token(t, map[string]any{"alg": "PS256", "typ": "at+jwt", "kid": "rsa-1"}, e.claims()), ErrUnknownKey},
		{"no kid, two RSA keys", with(del("kid"), nil), ErrUnknownKey},
		{"jku header", with(set("jku", e.iss.issuer+"/jwks"), nil), ErrMalformed},
		{"x5u header", with(set("x5u", e.iss.issuer+"/cert"), nil), ErrMalformed},
		{"jwk header", with(set("jwk", e.foreign.public()), nil), ErrMalformed},
		{"x5c header", with(set("x5c", []string{"MIIB"}), nil), ErrMalformed},
		{"crit header", with(set("crit", []string{"exp"}), nil), ErrMalformed},
		{"b64 header", with(set("b64", false), nil), ErrMalformed},
		{"ID token typ JWT", with(set("typ", "JWT"), nil), ErrType},
		{"no typ", with(del("typ"), nil), ErrType},
		{"typ not a string", with(set("typ", 1), nil), ErrType},
		{"typ jwt+at", with(set("typ", "application/jwt"), nil), ErrType},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", good + ".x", ErrMalformed},
		{"five parts without decryption key", "a.b.c.d.e", ErrDecrypt},
		{"six parts", good + ".x.y.z", ErrMalformed},
		{"1 MiB", parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2], ErrMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"bad base64 payload", parts[0] + ".***." + parts[2], ErrMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".$$$", ErrMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", b64([]byte("hello")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header array", b64([]byte(`["alg"]`)) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"duplicate header alg", e.rsaK.sign(t, []byte(`{"alg":"RS256","alg":"HS256","typ":"at+jwt","kid":"rsa-1"}`), mustJSON(t, e.claims())), ErrMalformed},
		{"duplicate header typ", e.rsaK.sign(t, []byte(`{"alg":"RS256","typ":"JWT","kid":"rsa-1","typ":"at+jwt"}`), mustJSON(t, e.claims())), ErrMalformed},
		{"duplicate payload exp", payloadWith(`"exp":9999999999`), ErrMalformed},
		{"duplicate payload aud", payloadWith(`"aud":"https://evil/"`), ErrMalformed},
		{"escaped duplicate", payloadWith(`"\u0061ud":"https://evil/"`), ErrMalformed},
		{"case variant of exp", payloadWith(`"EXP":9999999999`), ErrMalformed},
		{"unicode case variant", payloadWith(`"ſub":"x"`), ErrMalformed},
		{"payload not JSON", rawPayload("hello"), ErrMalformed},
		{"payload array", rawPayload(`[1,2]`), ErrMalformed},
		{"payload trailing data", rawPayload(validJSON + "{}"), ErrMalformed},
		{"exp numeric string", with(nil, set("exp", "9999999999")), ErrMalformed},
		{"iat numeric string", with(nil, set("iat", "1")), ErrMalformed},
		{"nbf numeric string", with(nil, set("nbf", "1")), ErrMalformed},
		{"exp huge", with(nil, set("exp", 1e300)), ErrMalformed},
		{"exp negative", with(nil, set("exp", -1)), ErrMalformed},
		{"sub not a string", with(nil, set("sub", 42)), ErrMalformed},
		{"scope array", with(nil, set("scope", []string{"a"})), ErrMalformed},
		{"aud number", with(nil, set("aud", 42)), ErrAudience},
		{"aud object", with(nil, set("aud", map[string]any{"a": testAudience})), ErrAudience},
		{"aud array of numbers", with(nil, set("aud", []any{1, testAudience})), ErrAudience},
		{"aud true", with(nil, set("aud", true)), ErrAudience},
		{"aud other resource", with(nil, set("aud", "https://other.example.com/")), ErrAudience},
		{"aud prefix", with(nil, set("aud", strings.TrimSuffix(testAudience, "/"))), ErrAudience},
		{"aud empty array", with(nil, set("aud", []string{})), ErrAudience},
		{"aud missing", with(nil, del("aud")), ErrMissingClaim},
		{"aud null", with(nil, set("aud", nil)), ErrMissingClaim},
		{"iss other", with(nil, set("iss", "https://evil.example.com")), ErrIssuer},
		{"iss trailing slash", with(nil, set("iss", e.iss.issuer+"/")), ErrIssuer},
		{"iss missing", with(nil, del("iss")), ErrMissingClaim},
		{"exp missing", with(nil, del("exp")), ErrMissingClaim},
		{"exp null", with(nil, set("exp", nil)), ErrMissingClaim},
		{"iat missing", with(nil, del("iat")), ErrMissingClaim},
		{"sub missing", with(nil, del("sub")), ErrMissingClaim},
		{"client_id missing", with(nil, del("client_id")), ErrMissingClaim},
		{"jti missing", with(nil, del("jti")), ErrMissingClaim},
		{"expired", with(nil, set("exp", now.Add(-31*time.Second).Unix())), ErrExpired},
		{"expired long ago", with(nil, set("exp", 1)), ErrExpired},
		{"nbf in the future", with(nil, set("nbf", now.Add(time.Minute).Unix())), ErrNotYetValid},
		{"iat in the future", with(nil, set("iat", now.Add(time.Minute).Unix())), ErrNotYetValid},
		{"expired at the leeway edge", with(nil, set("exp", now.Add(-30*time.Second).Unix())), ErrExpired},
		{"exp boolean", with(nil, set("exp", true)), ErrMalformed},
		{"iat huge", with(nil, set("iat", 1e300)), ErrMalformed},
		{"nbf negative", with(nil, set("nbf", -5)), ErrMalformed},
		{"auth_time numeric string", with(nil, set("auth_time", "1")), ErrMalformed},
		{"auth_time out of range", with(nil, set("auth_time", 1e20)), ErrMalformed},
		{"iss not a string", with(nil, set("iss", 1)), ErrMalformed},
		{"client_id array", with(nil, set("client_id", []string{"client-a"})), ErrMalformed},
		{"jti number", with(nil, set("jti", 7)), ErrMalformed},
		{"acr number", with(nil, set("acr", 1)), ErrMalformed},
		{"amr string", with(nil, set("amr", "pwd")), ErrMalformed},
		{"sub empty", with(nil, set("sub", "")), ErrMissingClaim},
		{"iss empty", with(nil, set("iss", "")), ErrMissingClaim},
		{"iss other case", with(nil, set("iss", strings.ToUpper(e.iss.issuer))), ErrIssuer},
		{"iss trailing space", with(nil, set("iss", e.iss.issuer+" ")), ErrIssuer},
		{"aud other case", with(nil, set("aud", strings.ToUpper(testAudience))), ErrAudience},
		{"aud array without ours", with(nil, set("aud", []string{"https://a/", "https://b/"})), ErrAudience},
		{"kid other case", with(set("kid", "RSA-1"), nil), ErrUnknownKey},
		{"ES384 with a P-256 key", (testKey{kid: "ec-1", alg: jose.ES384, priv: e.ecK.priv}).token(t, map[string]any{"alg": "ES384", "typ": "at+jwt", "kid": "ec-1"}, e.claims()), ErrUnknownKey},
		{"EdDSA with an RSA kid", (testKey{kid: "rsa-1", alg: jose.EdDSA, priv: e.edK.priv}).token(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": "rsa-1"}, e.claims()), ErrUnknownKey},
		{"zip header", with(set("zip", "DEF"), nil), ErrMalformed},
		{"enc header in a JWS", with(set("enc", "A256GCM"), nil), ErrMalformed},
		{"header too long", with(set("pad", strings.Repeat("p", 3<<10)), nil), ErrMalformed},
		{"signature of another token", parts[0] + "." + strings.Split(with(nil, set("sub", "admin")), ".")[1] + "." + parts[2], ErrSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:20], ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.v.Verify(context.Background(), tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want %v", c, err, tt.want)
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			for _, s := range segments(tt.tok) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q contains part of the token", err)
				}
			}
		})
	}
	if h := e.iss.jwksHits.Load(); h > 2 {
		t.Errorf("JWKS fetched %d times; unknown kids must be rate-limited", h)
	}
}

func TestVerifyNoKidSingleKey(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "")
	pub := k.public()
	v, err := New(context.Background(), Config{Issuer: "https://as.example.com", Audience: testAudience,
		Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsAt("https://as.example.com", clk.Now())
	if _, err := v.Verify(context.Background(), k.token(t, k.header(), c)); err != nil {
		t.Fatalf("no kid, one key: %v", err)
	}
	other := newEdKey(t, "")
	if _, err := v.Verify(context.Background(), other.token(t, other.header(), c)); !errors.Is(err, ErrSignature) {
		t.Fatalf("no kid, wrong key: %v", err)
	}
}

func TestNew(t *testing.T) {
	clk := newClock()
	iss := newFakeIssuer(t, newECKey(t, "ec-1"))
	rsaPriv := newRSAKey(t, "p")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	static := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{newEdKey(t, "e").public()}}
	tests := []struct {
		name string
		mod  func(c *Config)
		want error // nil: success
	}{
		{"ok", func(c *Config) {}, nil},
		{"ok static", func(c *Config) { c.Keys = static }, nil},
		{"ok JWKSURL", func(c *Config) { c.JWKSURL = iss.issuer + "/jwks" }, nil},
		{"empty audience", func(c *Config) { c.Audience = "" }, ErrConfig},
		{"empty issuer", func(c *Config) { c.Issuer = "" }, ErrConfig},
		{"relative issuer", func(c *Config) { c.Issuer = "/tenant-1" }, ErrConfig},
		{"http issuer not loopback", func(c *Config) { c.Issuer = "http://as.example.com" }, ErrConfig},
		{"issuer with query", func(c *Config) { c.Issuer = "https://as.example.com?x=1" }, ErrConfig},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://as.example.com#x" }, ErrConfig},
		{"none allowed", func(c *Config) { c.Algorithms = []jose.SignatureAlgorithm{jose.RS256, "none"} }, ErrConfig},
		{"HS256 allowed", func(c *Config) { c.Algorithms = []jose.SignatureAlgorithm{jose.HS256} }, ErrConfig},
		{"empty algorithms", func(c *Config) { c.Algorithms = []jose.SignatureAlgorithm{} }, ErrConfig},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, ErrConfig},
		{"huge leeway", func(c *Config) { c.Leeway = time.Hour }, ErrConfig},
		{"min above max refresh", func(c *Config) { c.MinRefreshInterval = 2 * time.Hour }, ErrConfig},
		{"private static key", func(c *Config) {
			c.Keys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: rsaPriv.priv, KeyID: "p"}}}
		}, ErrConfig},
		{"symmetric static key", func(c *Config) {
			c.Keys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("secretsecretsecretsecret"), KeyID: "s"}}}
		}, ErrConfig},
		{"small RSA static key", func(c *Config) {
			c.Keys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &small.PublicKey, KeyID: "s"}}}
		}, ErrConfig},
		{"empty static keys", func(c *Config) { c.Keys = &jose.JSONWebKeySet{} }, ErrConfig},
		{"static keys and JWKSURL", func(c *Config) { c.Keys = static; c.JWKSURL = iss.issuer + "/jwks" }, ErrConfig},
		{"JWKSURL http not loopback", func(c *Config) { c.JWKSURL = "http://as.example.com/jwks" }, ErrConfig},
		{"decryption key public", func(c *Config) { c.DecryptionKey = rsaPriv.priv.Public() }, ErrConfig},
		{"decryption key symmetric", func(c *Config) { c.DecryptionKey = []byte("k") }, ErrConfig},
		{"enc algs without key", func(c *Config) { c.ContentEncryptionAlgorithms = []jose.ContentEncryption{jose.A128GCM} }, ErrConfig},
		{"RSA1_5 key encryption", func(c *Config) {
			c.DecryptionKey = rsaPriv.priv
			c.KeyEncryptionAlgorithms = []jose.KeyAlgorithm{jose.RSA1_5}
		}, ErrConfig},
		{"resource metadata relative", func(c *Config) { c.ResourceMetadata = "/.well-known/x" }, ErrConfig},
		{"metadata issuer mismatch", func(c *Config) { c.Issuer = iss.issuer + "/" }, ErrKeysUnavailable},
		{"issuer with user info", func(c *Config) { c.Issuer = "https://user@as.example.com" }, ErrConfig},
		{"issuer not https", func(c *Config) { c.Issuer = "ftp://as.example.com" }, ErrConfig},
		{"unknown algorithm", func(c *Config) { c.Algorithms = []jose.SignatureAlgorithm{"XS256"} }, ErrConfig},
		{"ok ES512 only", func(c *Config) { c.Keys = static; c.Algorithms = []jose.SignatureAlgorithm{jose.ES512} }, nil},
		{"negative FetchTimeout", func(c *Config) { c.FetchTimeout = -time.Second }, ErrConfig},
		{"negative MinRefreshInterval", func(c *Config) { c.MinRefreshInterval = -time.Second }, ErrConfig},
		{"RefreshInterval below the default minimum", func(c *Config) { c.RefreshInterval = 30 * time.Second }, ErrConfig},
		{"JWKSURL with fragment", func(c *Config) { c.JWKSURL = iss.issuer + "/jwks#x" }, ErrConfig},
		{"JWKSURL relative", func(c *Config) { c.JWKSURL = "/jwks" }, ErrConfig},
		{"resource metadata http not loopback", func(c *Config) { c.ResourceMetadata = "http://orders.example.com/.well-known/oauth-protected-resource" }, ErrConfig},
		{"static key for encryption", func(c *Config) {
			k := newECKey(t, "enc").public()
			k.Use = "enc"
			c.Keys = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}}
		}, ErrConfig},
		{"ok decryption JWK", func(c *Config) { c.DecryptionKey = &jose.JSONWebKey{Key: rsaPriv.priv} }, nil},
		{"decryption JWK with a public key", func(c *Config) { c.DecryptionKey = &jose.JSONWebKey{Key: rsaPriv.priv.Public()} }, ErrConfig},
		{"decryption JWK with an Ed25519 key", func(c *Config) { c.DecryptionKey = &jose.JSONWebKey{Key: newEdKey(t, "x").priv} }, ErrConfig},
		{"empty key encryption list", func(c *Config) {
			c.DecryptionKey = rsaPriv.priv
			c.KeyEncryptionAlgorithms = []jose.KeyAlgorithm{}
		}, ErrConfig},
		{"empty content encryption list", func(c *Config) {
			c.DecryptionKey = rsaPriv.priv
			c.ContentEncryptionAlgorithms = []jose.ContentEncryption{}
		}, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := iss.config(clk)
			tt.mod(&cfg)
			v, err := New(context.Background(), cfg)
			if tt.want == nil {
				if err != nil || v == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || v != nil {
				t.Fatalf("New = %v, %v; want %v", v, err, tt.want)
			}
		})
	}
}

// TestNewConfigNotMutated checks that New copies what it keeps.
func TestNewConfigNotMutated(t *testing.T) {
	algs := []jose.SignatureAlgorithm{jose.ES256}
	k := newECKey(t, "ec-1")
	clk := newClock()
	v, err := New(context.Background(), Config{Issuer: "https://as.example.com", Audience: testAudience,
		Algorithms: algs, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	algs[0] = jose.HS256
	if _, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt("https://as.example.com", clk.Now()))); err != nil {
		t.Fatalf("Verify after caller changed its slice: %v", err)
	}
}

func TestVerifyEncrypted(t *testing.T) {
	clk := newClock()
	sk := newECKey(t, "ec-1")
	rsKey := newRSAKey(t, "enc-1") // the resource server's encryption key
	base := Config{Issuer: "https://as.example.com", Audience: testAudience, Now: clk.Now,
		Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{sk.public()}}}
	withKey := base
	withKey.DecryptionKey = rsKey.priv
	v, err := New(context.Background(), withKey)
	if err != nil {
		t.Fatal(err)
	}
	plainV, err := New(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	inner := sk.token(t, sk.header(), claimsAt("https://as.example.com", clk.Now()))
	encryptWith := func(t *testing.T, payload string, alg jose.KeyAlgorithm, enc jose.ContentEncryption,
		headers map[jose.HeaderKey]any, zip jose.CompressionAlgorithm, to any) string {
		t.Helper()
		e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: to},
			&jose.EncrypterOptions{ExtraHeaders: headers, Compression: zip})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := e.Encrypt([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	encrypt := func(t *testing.T, payload string, headers map[jose.HeaderKey]any, to any) string {
		t.Helper()
		enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: to},
			&jose.EncrypterOptions{ExtraHeaders: headers})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := enc.Encrypt([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	jwt := map[jose.HeaderKey]any{jose.HeaderContentType: "JWT"}
	other := newRSAKey(t, "other")
	idToken := sk.token(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "ec-1"}, claimsAt("https://as.example.com", clk.Now()))
	jkuHeader := sk.header()
	jkuHeader["jku"] = "https://evil.example/jwks"
	withJKU := sk.token(t, jkuHeader, claimsAt("https://as.example.com", clk.Now()))
	// An EC resource-server key given as a JWK, for ECDH-ES.
	ecEnc := newECKey(t, "enc-ec")
	jwkV := func() *Verifier {
		cfg := base
		cfg.DecryptionKey = &jose.JSONWebKey{Key: ecEnc.priv, KeyID: "enc-ec"}
		v, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}()
	tests := []struct {
		name string
		v    *Verifier
		tok  string
		want error
	}{
		{"ok", v, encrypt(t, inner, jwt, rsKey.priv.Public()), nil},
		{"plain token still accepted", v, inner, nil},
		{"no decryption key", plainV, encrypt(t, inner, jwt, rsKey.priv.Public()), ErrDecrypt},
		{"other recipient", v, encrypt(t, inner, jwt, other.priv.Public()), ErrDecrypt},
		{"no cty", v, encrypt(t, inner, nil, rsKey.priv.Public()), ErrDecrypt},
		{"cty json", v, encrypt(t, inner, map[jose.HeaderKey]any{jose.HeaderContentType: "json"}, rsKey.priv.Public()), ErrDecrypt},
		{"payload not a JWS", v, encrypt(t, `{"sub":"x"}`, jwt, rsKey.priv.Public()), ErrDecrypt},
		{"nested ID token", v, encrypt(t, idToken, jwt, rsKey.priv.Public()), ErrType},
		{"nested JWE", v, encrypt(t, encrypt(t, inner, jwt, rsKey.priv.Public()), jwt, rsKey.priv.Public()), ErrDecrypt},
		{"cty at+jwt", v, encrypt(t, inner, map[jose.HeaderKey]any{jose.HeaderContentType: "at+jwt"}, rsKey.priv.Public()), nil},
		{"nested token with jku", v, encrypt(t, withJKU, jwt, rsKey.priv.Public()), ErrMalformed},
		{"compressed", v, encryptWith(t, inner, jose.RSA_OAEP_256, jose.A256GCM, jwt, jose.DEFLATE, rsKey.priv.Public()), ErrDecrypt},
		{"RSA1_5 not accepted", v, encryptWith(t, inner, jose.RSA1_5, jose.A256GCM, jwt, "", rsKey.priv.Public()), ErrDecrypt},
		{"enc A192GCM not accepted", v, encryptWith(t, inner, jose.RSA_OAEP_256, jose.A192GCM, jwt, "", rsKey.priv.Public()), ErrDecrypt},
		{"JWK key, ECDH-ES", jwkV, encryptWith(t, inner, jose.ECDH_ES, jose.A128GCM, jwt, "", ecEnc.priv.Public()), nil},
		{"JWK key, ECDH-ES+A256KW", jwkV, encryptWith(t, inner, jose.ECDH_ES_A256KW, jose.A256GCM, jwt, "", ecEnc.priv.Public()), nil},
		{"JWK key, RSA recipient", jwkV, encrypt(t, inner, jwt, rsKey.priv.Public()), ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.v.Verify(context.Background(), tt.tok)
			if tt.want == nil {
				if err != nil || c.Subject != "user-1" {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v; want %v", err, tt.want)
			}
			for _, seg := range append(segments(tt.tok), segments(inner)...) {
				if strings.Contains(err.Error(), seg) {
					t.Fatalf("error %q contains part of the token", err)
				}
			}
		})
	}
}
