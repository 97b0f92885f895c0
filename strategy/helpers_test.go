package strategy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"

	"github.com/mandate-dev/mandate/storage"
)

// rsaKey is generated once per test binary: RSA generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// newPrivateKey returns a fresh private key fitting alg (RSA keys are shared).
func newPrivateKey(t testing.TB, alg jose.SignatureAlgorithm) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return rsaKey()
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestKey(t testing.TB, id string, alg jose.SignatureAlgorithm) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(id, alg, newPrivateKey(t, alg))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// memKeyStore is an in-memory storage.KeyStore with a real compare-and-swap.
type memKeyStore struct {
	mu      sync.Mutex
	keys    []storage.Key
	version int
	writes  int
	// beforeUpdate, when set, runs after UpdateKeys read the set and before it calls update.
	beforeUpdate func()
	failKeys     error
}

func cloneKeys(ks []storage.Key) []storage.Key {
	if ks == nil {
		return nil
	}
	out := make([]storage.Key, len(ks))
	for i, k := range ks {
		out[i] = k.Clone()
	}
	return out
}

func (s *memKeyStore) Keys(context.Context) ([]storage.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failKeys != nil {
		return nil, s.failKeys
	}
	return cloneKeys(s.keys), nil
}

func (s *memKeyStore) UpdateKeys(_ context.Context, update func([]storage.Key) ([]storage.Key, error)) error {
	for range 10 {
		s.mu.Lock()
		cur, v, hook := cloneKeys(s.keys), s.version, s.beforeUpdate
		s.mu.Unlock()
		if hook != nil {
			hook()
		}
		next, err := update(cur)
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.version != v {
			s.mu.Unlock()
			continue
		}
		s.keys, s.version, s.writes = cloneKeys(next), v+1, s.writes+1
		s.mu.Unlock()
		return nil
	}
	return storage.ErrConflict
}

func (s *memKeyStore) snapshot() ([]storage.Key, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneKeys(s.keys), s.writes
}

// newHMAC returns fosite's HMAC strategy for codes and refresh tokens.
func newHMAC() oauth2.CoreStrategy {
	cfg := &fosite.Config{GlobalSecret: bytes.Repeat([]byte("s"), 32)}
	return oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: cfg}, cfg)
}

// newStrategy returns a JWT strategy over keys with the given clock and mappers.
// testPolicyKey carries a test's Policy in a context, for ctxPolicies.
type testPolicyKey struct{}

// withPolicy is how the tests hand GenerateAccessToken a policy: newStrategy's PolicySource
// reads it from the context.
func withPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, testPolicyKey{}, p)
}

var ctxPolicies = PolicySourceFunc(func(ctx context.Context, _ fosite.Requester) (Policy, error) {
	p, ok := ctx.Value(testPolicyKey{}).(Policy)
	if !ok {
		return Policy{}, ErrNoPolicy
	}
	return p, nil
})

func newStrategy(t testing.TB, keys KeySource, now func() time.Time, mappers ...ClaimMapper) *JWT {
	t.Helper()
	j, err := NewJWT(JWTConfig{Issuer: "https://as.example/oauth2", Keys: keys, HMAC: newHMAC(), ClaimMappers: mappers, Now: now, Policies: ctxPolicies})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// newRequest returns an access request for client "billing" with sess.
func newRequest(sess *storage.Session, grant string) *fosite.AccessRequest {
	r := fosite.NewAccessRequest(sess)
	r.Client = &storage.Client{ID: "billing"}
	r.GrantTypes = fosite.Arguments{grant}
	return r
}

var testPolicy = Policy{
	Audience: "https://orders.example.com/",
	Scopes:   []string{"orders:read", "orders:write"},
	TTL:      10 * time.Minute,
}

// decodeJWS splits a compact JWS (test input is trusted) into its header and claims.
func decodeJWS(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("segment: %v", err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("segment %s: %v", b, err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

// opaqueSigner hides the concrete key type, like a KMS or HSM key, and counts calls.
type opaqueSigner struct {
	crypto.Signer
	calls atomic.Int64
}

func (o *opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	o.calls.Add(1)
	return o.Signer.Sign(r, digest, opts)
}
