package handlers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
)

const (
	tokenURL = "https://as.example/oauth2/token"
	asIssuer = "https://as.example/oauth2"
)

// testKey is a private key with its public JWK.
type testKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func newKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, alg: alg, kid: kid}
}

func (k testKey) public(use string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: use}
}

func (k testKey) set() *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public("")}}
}

// sign makes a compact JWS of claims with k, adding extra header members.
func (k testKey) sign(t testing.TB, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "JWT"}}
	for h, v := range extra {
		opts.ExtraHeaders[h] = v
	}
	var key any = k.priv
	if k.kid != "" {
		key = jose.JSONWebKey{Key: k.priv, KeyID: k.kid}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claims returns a valid assertion claim set issued now by iss about sub.
func claims(iss, sub string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "sub": sub, "aud": tokenURL, "jti": fmt.Sprintf("jti-%d", time.Now().UnixNano()),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestAssertionRules(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	k := newKey(t, jose.ES256, "k1")
	other := newKey(t, jose.ES256, "k1") // same kid, another key
	keys := &KeySets{}
	set, err := keys.forKeys(context.Background(), k.set(), "")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := newKey(t, jose.RS256, "r1")
	pubDER, _ := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	hsSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubDER}, nil)
	hsObj, _ := hsSigner.Sign([]byte(`{"iss":"i","sub":"s"}`))
	hs, _ := hsObj.CompactSerialize()
	base := claims("https://idp.example", "svc", now)
	rules := assertionRules{Audiences: []string{tokenURL, asIssuer}, MaxLifetime: time.Hour, Now: now}

	cases := []struct {
		name   string
		raw    string
		rules  func(*assertionRules)
		reason string // substring of the rejection; "" means accepted
	}{
		{"valid", k.sign(t, base, nil), nil, ""},
		{"aud issuer", k.sign(t, with(base, "aud", asIssuer), nil), nil, ""},
		{"aud array of both", k.sign(t, with(base, "aud", []string{tokenURL, asIssuer}), nil), nil, ""},
		{"nbf and iat within leeway", k.sign(t, with(base, "nbf", now.Add(20*time.Second).Unix(), "iat", now.Add(20*time.Second).Unix()), nil), nil, ""},
		{"no iat, exp within max", k.sign(t, with(base, "iat", nil), nil), nil, ""},
		{"empty", "", nil, "empty"},
		{"garbage", "not a jwt", nil, "compact JWS"},
		{"four dots", "a.b.c.d.e", nil, "compact JWS"},
		{"oversized", strings.Repeat("a", MaxAssertionSize-10) + ".bbbbbbbbbb.c", nil, "longer than"},
		{"header not base64", "!!.e30.c2ln", nil, "base64url"},
		{"header not json", b64("nope") + ".e30.c2ln", nil, "JSON object"},
		{"alg none", b64(`{"alg":"none"}`) + "." + b64(`{"iss":"i","sub":"s"}`) + ".", nil, "not accepted"},
		{"HS256 keyed with the public key", hs, nil, `"HS256" is not accepted`},
		{"jku", k.sign(t, base, map[jose.HeaderKey]any{"jku": "https://evil.example/jwks"}), nil, `"jku"`},
		{"x5u", k.sign(t, base, map[jose.HeaderKey]any{"x5u": "https://evil.example/cert"}), nil, `"x5u"`},
		{"jwk", k.sign(t, base, map[jose.HeaderKey]any{"jwk": k.public("")}), nil, `"jwk"`},
		{"x5c", k.sign(t, base, map[jose.HeaderKey]any{"x5c": []string{"MIIB"}}), nil, `"x5c"`},
		{"crit", k.sign(t, base, map[jose.HeaderKey]any{"crit": []string{"exp"}}), nil, `"crit"`},
		{"access token as assertion", k.sign(t, base, map[jose.HeaderKey]any{"typ": "at+jwt"}), nil, "access token"},
		{"typ not a string", k.sign(t, base, map[jose.HeaderKey]any{"typ": 1}), nil, "typ"},
		{"sub is a number", k.sign(t, with(base, "sub", 7), nil), nil, "right types"},
		{"no iss", k.sign(t, with(base, "iss", nil), nil), nil, "no iss"},
		{"no sub", k.sign(t, with(base, "sub", nil), nil), nil, "no sub"},
		{"signed by another key with the same kid", other.sign(t, base, nil), nil, "signature does not verify"},
		{"unknown kid", newKey(t, jose.ES256, "nope").sign(t, base, nil), nil, "no registered key"},
		{"alg does not fit the key", newKey(t, jose.ES384, "k1").sign(t, base, nil), nil, "no registered key"},
		{"tampered payload", tamper(k.sign(t, base, nil)), nil, "signature does not verify"},
		{"no aud", k.sign(t, with(base, "aud", nil), nil), nil, "no aud"},
		{"wrong aud", k.sign(t, with(base, "aud", "https://other.example/token"), nil), nil, "other than"},
		{"extra aud", k.sign(t, with(base, "aud", []string{tokenURL, "https://rp.example"}), nil), nil, "other than"},
		{"no exp", k.sign(t, with(base, "exp", nil), nil), nil, "no exp"},
		{"expired", k.sign(t, with(base, "exp", now.Add(-time.Minute).Unix(), "iat", now.Add(-2*time.Minute).Unix()), nil), nil, "expired"},
		{"nbf in the future", k.sign(t, with(base, "nbf", now.Add(2*time.Minute).Unix()), nil), nil, "nbf"},
		{"iat in the future", k.sign(t, with(base, "iat", now.Add(2*time.Minute).Unix()), nil), nil, "iat"},
		{"too long-lived", k.sign(t, with(base, "exp", now.Add(2*time.Hour).Unix()), nil), nil, "longer than"},
		{"too long-lived without iat", k.sign(t, with(base, "iat", nil, "exp", now.Add(2*time.Hour).Unix()), nil), nil, "longer than"},
		{"no jti", k.sign(t, with(base, "jti", nil), nil), nil, "no jti"},
		{"no jti, optional, short", k.sign(t, with(base, "jti", nil), nil), func(r *assertionRules) { r.JTIOptional = true }, ""},
		{"no jti, optional, long", k.sign(t, with(base, "jti", nil, "exp", now.Add(30*time.Minute).Unix()), nil), func(r *assertionRules) { r.JTIOptional = true }, "without jti"},
		{"registered alg differs", k.sign(t, base, nil), func(r *assertionRules) { r.Algorithm = "RS256" }, "registered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rules
			if c.rules != nil {
				c.rules(&r)
			}
			a, err := parseAssertion(c.raw)
			if err == nil {
				err = a.verify(context.Background(), set, r)
			}
			checkReason(t, err, c.reason)
		})
	}
}

func checkReason(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var ae *AssertionError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AssertionError containing %q", err, reason)
	}
	if !strings.Contains(ae.Reason, reason) {
		t.Fatalf("reason %q, want it to contain %q", ae.Reason, reason)
	}
}

// tamper changes one claim without re-signing.
func tamper(raw string) string {
	parts := strings.Split(raw, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), `"svc"`, `"adm"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

func TestKeyUse(t *testing.T) {
	now := time.Now()
	k := newKey(t, jose.EdDSA, "e1")
	raw := k.sign(t, claims("i", "s", now), nil)
	rules := assertionRules{Audiences: []string{tokenURL}, MaxLifetime: time.Hour, Now: now}
	for _, c := range []struct {
		use    string
		reason string
	}{{"", ""}, {"sig", ""}, {"enc", "no usable"}} {
		t.Run("use="+c.use, func(t *testing.T) {
			set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public(c.use)}}
			ks, err := (&KeySets{}).forKeys(context.Background(), set, "")
			if err == nil {
				a, perr := parseAssertion(raw)
				if perr != nil {
					t.Fatal(perr)
				}
				err = a.verify(context.Background(), ks, rules)
			}
			checkReason(t, err, c.reason)
		})
	}
}

func TestAlgorithms(t *testing.T) {
	now := time.Now()
	rules := assertionRules{Audiences: []string{tokenURL}, MaxLifetime: time.Hour, Now: now}
	for _, alg := range verify.DefaultAlgorithms() {
		t.Run(string(alg), func(t *testing.T) {
			k := newKey(t, alg, "k-"+string(alg))
			ks, err := (&KeySets{}).forKeys(context.Background(), k.set(), "")
			if err != nil {
				t.Fatal(err)
			}
			a, err := parseAssertion(k.sign(t, claims("i", "s", now), nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := a.verify(context.Background(), ks, rules); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// memJTIs is an in-memory storage.JTIStore.
type memJTIs struct {
	mu   sync.Mutex
	used map[string]time.Time
}

func (m *memJTIs) UseJTI(_ context.Context, key string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used == nil {
		m.used = map[string]time.Time{}
	}
	if e, ok := m.used[key]; ok && e.After(time.Now()) {
		return storage.ErrJTIUsed
	}
	m.used[key] = exp
	return nil
}

func (m *memJTIs) JTIUsed(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.used[key]
	return ok && e.After(time.Now()), nil
}

func TestUseAssertion(t *testing.T) {
	now := time.Now()
	k := newKey(t, jose.ES256, "k1")
	jtis := &memJTIs{}
	c := claims("https://idp.example", "svc", now)
	a1, _ := parseAssertion(k.sign(t, c, nil))
	a2, _ := parseAssertion(k.sign(t, c, nil)) // same jti, new signature
	if err := UseAssertion(context.Background(), jtis, "ns", a1, 0); err != nil {
		t.Fatal(err)
	}
	checkReason(t, UseAssertion(context.Background(), jtis, "ns", a2, 0), "already been used")
	// Another namespace (client assertions vs grants) or issuer does not collide.
	if err := UseAssertion(context.Background(), jtis, "other", a1, 0); err != nil {
		t.Fatal(err)
	}
	// Without jti: the signed content is the key, so a re-encoded signature is still a replay.
	nj := k.sign(t, with(c, "jti", nil), nil)
	b1, _ := parseAssertion(nj)
	b2, _ := parseAssertion(nj[:strings.LastIndexByte(nj, '.')+1] + "AAAA")
	if err := UseAssertion(context.Background(), jtis, "ns", b1, 0); err != nil {
		t.Fatal(err)
	}
	checkReason(t, UseAssertion(context.Background(), jtis, "ns", b2, 0), "already been used")
}

func TestRemoteKeys(t *testing.T) {
	now := time.Now()
	k := newKey(t, jose.ES256, "r1")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(k.set())
	}))
	defer srv.Close()
	keys := &KeySets{}
	rules := assertionRules{Audiences: []string{tokenURL}, MaxLifetime: time.Hour, Now: now}
	for i := 0; i < 5; i++ {
		ks, err := keys.forKeys(context.Background(), nil, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := parseAssertion(k.sign(t, claims("i", "s", now), nil))
		if err := a.verify(context.Background(), ks, rules); err != nil {
			t.Fatal(err)
		}
		// An unknown kid triggers at most one rate-limited refetch.
		b, _ := parseAssertion(newKey(t, jose.ES256, "x").sign(t, claims("i", "s", now), nil))
		checkReason(t, b.verify(context.Background(), ks, rules), "no registered key")
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (first use, one unknown-kid refetch)", n)
	}
	// An unreachable jwks_uri is not the assertion's fault: no rejection, but an error that
	// KeysUnavailable turns into a 503 the client may retry.
	ks, _ := keys.forKeys(context.Background(), nil, "http://127.0.0.1:1/jwks")
	a, _ := parseAssertion(k.sign(t, claims("i", "s", now), nil))
	err := a.verify(context.Background(), ks, rules)
	var ae *AssertionError
	if errors.As(err, &ae) || !errors.Is(err, verify.ErrKeysUnavailable) {
		t.Fatalf("unreachable keys: %v, want verify.ErrKeysUnavailable and no AssertionError", err)
	}
	if e := KeysUnavailable(err); e == nil || e.CodeField != http.StatusServiceUnavailable || e.ErrorField != "temporarily_unavailable" {
		t.Fatalf("KeysUnavailable = %v", e)
	}
	if KeysUnavailable(errors.New("other")) != nil {
		t.Fatal("KeysUnavailable of another error")
	}
	// Nothing registered.
	_, err = keys.forKeys(context.Background(), nil, "")
	checkReason(t, err, "no keys are registered")
}

func FuzzParseAssertion(f *testing.F) {
	k := newKey(f, jose.ES256, "k1")
	f.Add(k.sign(f, claims("i", "s", time.Now()), nil))
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{}`) + ".")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := parseAssertion(raw)
		if err != nil {
			var ae *AssertionError
			if !errors.As(err, &ae) {
				t.Fatalf("non-rejection error %v", err)
			}
			return
		}
		if a.Issuer == "" || a.Subject == "" {
			t.Fatal("accepted without iss or sub")
		}
	})
}

func BenchmarkAssertionVerify(b *testing.B) {
	now := time.Now()
	k := newKey(b, jose.ES256, "k1")
	ks, _ := (&KeySets{}).forKeys(context.Background(), k.set(), "")
	raw := k.sign(b, claims("i", "s", now), nil)
	rules := assertionRules{Audiences: []string{tokenURL}, MaxLifetime: time.Hour, Now: now}
	b.ReportAllocs()
	for b.Loop() {
		a, err := parseAssertion(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.verify(context.Background(), ks, rules); err != nil {
			b.Fatal(err)
		}
	}
}
