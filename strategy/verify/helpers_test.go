package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testKey is a signing key of the fake issuer.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newRSAKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.RS256, priv: k}
}

func newECKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: k}
}

func newEdKey(t testing.TB, kid string) testKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.EdDSA, priv: k}
}

// public returns the JWK published for k.
func (k testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// header returns the usual access-token header for k.
func (k testKey) header() map[string]any {
	h := map[string]any{"alg": string(k.alg), "typ": "at+jwt"}
	if k.kid != "" {
		h["kid"] = k.kid
	}
	return h
}

// sign signs raw header and payload JSON with k, so tests control every byte.
func (k testKey) sign(t testing.TB, header, payload []byte) string {
	t.Helper()
	input := b64(header) + "." + b64(payload)
	var sig []byte
	var err error
	switch k.alg {
	case jose.RS256:
		h := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, h[:])
	case jose.PS256:
		h := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case jose.ES256:
		h := sha256.Sum256([]byte(input))
		r, s, e := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), h[:])
		err = e
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case jose.ES384:
		h := sha512.Sum384([]byte(input))
		r, s, e := ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), h[:])
		err = e
		sig = make([]byte, 96)
		r.FillBytes(sig[:48])
		s.FillBytes(sig[48:])
	case jose.EdDSA:
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	default:
		t.Fatalf("sign: unsupported alg %s", k.alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// token signs header and claims given as maps.
func (k testKey) token(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	return k.sign(t, mustJSON(t, header), mustJSON(t, claims))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testAudience = "https://orders.example.com/"

// claimsAt returns a valid claim set for iss issued at now.
func claimsAt(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":       iss,
		"sub":       "user-1",
		"aud":       testAudience,
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"jti":       "j-1",
		"client_id": "client-a",
		"scope":     "orders:read orders:write",
		"roles":     []string{"admin"},
	}
}

// fakeIssuer serves RFC 8414 metadata and a JWKS the test can change.
type fakeIssuer struct {
	srv    *httptest.Server
	issuer string

	mu           sync.Mutex
	keys         []jose.JSONWebKey
	raw          []byte // if set, served instead of keys
	cacheControl string
	metaIssuer   string // if set, overrides the issuer in the metadata
	metaRaw      []byte // if set, served instead of the metadata document

	down      atomic.Bool
	jwksHits  atomic.Int64
	metaHits  atomic.Int64
	jwksDelay atomic.Int64 // nanoseconds each JWKS response is held back
}

// newFakeIssuer starts an issuer at {server}/tenant-1 publishing keys.
func newFakeIssuer(t testing.TB, keys ...testKey) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{}
	for _, k := range keys {
		f.keys = append(f.keys, k.public())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/tenant-1", func(w http.ResponseWriter, r *http.Request) {
		f.metaHits.Add(1)
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		iss := f.issuer
		if f.metaIssuer != "" {
			iss = f.metaIssuer
		}
		raw := f.metaRaw
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if raw != nil {
			_, _ = w.Write(raw)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":   iss,
			"jwks_uri": f.issuer + "/jwks",
		})
	})
	mux.HandleFunc("GET /tenant-1/jwks", func(w http.ResponseWriter, r *http.Request) {
		f.jwksHits.Add(1)
		if d := f.jwksDelay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		body := f.raw
		if body == nil {
			body, _ = json.Marshal(jose.JSONWebKeySet{Keys: f.keys})
		}
		cc := f.cacheControl
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_, _ = w.Write(body)
	})
	f.srv = httptest.NewServer(mux)
	f.issuer = f.srv.URL + "/tenant-1"
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) publish(keys ...testKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.keys = append(f.keys, k.public())
	}
}

func (f *fakeIssuer) setRaw(b []byte) {
	f.mu.Lock()
	f.raw = b
	f.mu.Unlock()
}

func (f *fakeIssuer) config(c *clock) Config {
	return Config{
		Issuer:     f.issuer,
		Audience:   testAudience,
		HTTPClient: f.srv.Client(),
		Now:        c.Now,
	}
}

// waitFor polls cond until it holds or a generous deadline passes; it synchronises with
// background refreshes and asserts nothing about timing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// segments returns the parts of a compact token, for checking that errors do not leak them.
func segments(tok string) []string {
	var out []string
	for _, s := range strings.Split(tok, ".") {
		if len(s) >= 8 {
			out = append(out, s)
		}
	}
	return out
}
