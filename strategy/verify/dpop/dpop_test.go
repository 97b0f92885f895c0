package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

const target = "https://rs.example.com/orders"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newChecker(clk *clock) *Checker {
	return &Checker{Replay: NewMemoryReplay(0, clk.Now), Now: clk.Now}
}

// raw signs claims with key under header (a map, so that tests may break it).
func raw(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, hdr, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	pb, _ := json.Marshal(claims)
	return rawBytes(t, key, alg, hb, pb)
}

func rawBytes(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, hb, pb []byte) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	default:
		t.Fatalf("key %T", key)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func pubJWK(key crypto.Signer) map[string]any {
	b, _ := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func validClaims(clk *clock, extra ...any) map[string]any {
	c := map[string]any{"jti": fmt.Sprintf("j-%d", time.Now().UnixNano()), "htm": "GET", "htu": target, "iat": clk.Now().Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
		} else {
			c[extra[i].(string)] = extra[i+1]
		}
	}
	return c
}

func TestCheck(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{"typ": Type, "alg": "ES256", "jwk": pubJWK(ec)}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(h, kv[i].(string))
			} else {
				h[kv[i].(string)] = kv[i+1]
			}
		}
		return h
	}
	privJWK := func() map[string]any {
		b, _ := json.Marshal(jose.JSONWebKey{Key: ec})
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}()
	der, _ := x509.MarshalPKIXPublicKey(ec.Public())
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithType(Type).WithHeader("jwk", pubJWK(ec)))
	hsObj, _ := hs.Sign(must(json.Marshal(validClaims(clk))))
	hsProof, _ := hsObj.CompactSerialize()
	token := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	nonces, _ := NewNonces(make([]byte, 32), time.Minute, clk.Now)
	staleNonce := nonces.Current()

	for _, tc := range []struct {
		name   string
		proof  string
		req    Request
		nonces bool
		want   error
		reason string
	}{
		{"valid", raw(t, ec, jose.ES256, hdr(), validClaims(clk)), Request{Method: "GET", URL: target}, false, nil, ""},
		{"valid EdDSA", raw(t, ed, jose.EdDSA, hdr("alg", "EdDSA", "jwk", pubJWK(ed)), validClaims(clk)), Request{Method: "GET", URL: target}, false, nil, ""},
		{"query and fragment ignored", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", target+"?a=1#f")), Request{Method: "GET", URL: target + "?b=2"}, false, nil, ""},
		{"case and default port", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", "HTTPS://RS.Example.com:443/orders")), Request{Method: "GET", URL: target}, false, nil, ""},
		{"percent-encoded unreserved and dot segments", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", "https://rs.example.com/x/../%6Frders")), Request{Method: "GET", URL: target}, false, nil, ""},
		{"with ath", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "ath", TokenHash(token))), Request{Method: "GET", URL: target, AccessToken: token}, false, nil, ""},
		{"no proof", "", Request{Method: "GET", URL: target}, false, ErrInvalidProof, "no proof"},
		{"oversize", strings.Repeat("a", MaxProofSize+1), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "longer than"},
		{"wrong typ", raw(t, ec, jose.ES256, hdr("typ", "JWT"), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "typ"},
		{"alg none", base64.RawURLEncoding.EncodeToString(must(json.Marshal(hdr("alg", "none")))) + "." + base64.RawURLEncoding.EncodeToString(must(json.Marshal(validClaims(clk)))) + ".", Request{Method: "GET", URL: target}, false, ErrInvalidProof, "not accepted"},
		{"HMAC keyed with the public key", hsProof, Request{Method: "GET", URL: target}, false, ErrInvalidProof, "not accepted"},
		{"private key in jwk", raw(t, ec, jose.ES256, hdr("jwk", privJWK), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "public"},
		{"no jwk", raw(t, ec, jose.ES256, hdr("jwk", nil), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "jwk"},
		{"kid instead", raw(t, ec, jose.ES256, hdr("kid", "k1"), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "only so"},
		{"signed by another key", raw(t, other, jose.ES256, hdr(), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "signature"},
		{"jwk does not fit alg", raw(t, ed, jose.EdDSA, hdr("alg", "EdDSA"), validClaims(clk)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "fit"},
		{"htm", raw(t, ec, jose.ES256, hdr(), validClaims(clk)), Request{Method: "POST", URL: target}, false, ErrInvalidProof, "htm"},
		{"htm case", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htm", "get")), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "htm"},
		{"htu path", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", "https://rs.example.com/other")), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "htu"},
		{"htu scheme", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", "http://rs.example.com/orders")), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "htu"},
		{"htu port", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "htu", "https://rs.example.com:8443/orders")), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "htu"},
		{"no jti", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "jti", nil)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "jti"},
		{"stale", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "iat", clk.Now().Add(-DefaultMaxAge-time.Minute).Unix())), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "older"},
		{"future", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "iat", clk.Now().Add(time.Minute).Unix())), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "future"},
		{"iat as a string", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "iat", "1")), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "types"},
		{"missing ath", raw(t, ec, jose.ES256, hdr(), validClaims(clk)), Request{Method: "GET", URL: target, AccessToken: token}, false, ErrInvalidProof, "ath"},
		{"proof for another token", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "ath", TokenHash(token+"x"))), Request{Method: "GET", URL: target, AccessToken: token}, false, ErrInvalidProof, "ath"},
		{"ath at a token endpoint", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "ath", TokenHash(token))), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "ath"},
		{"duplicate claim", rawBytes(t, ec, jose.ES256, must(json.Marshal(hdr())), []byte(`{"jti":"a","jti":"b","htm":"GET","htu":"`+target+`","iat":`+fmt.Sprint(clk.Now().Unix())+`}`)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "unique"},
		{"case-variant claim", rawBytes(t, ec, jose.ES256, must(json.Marshal(hdr())), []byte(`{"jti":"a","HTM":"GET","htm":"POST","htu":"`+target+`","iat":`+fmt.Sprint(clk.Now().Unix())+`}`)), Request{Method: "GET", URL: target}, false, ErrInvalidProof, "unique"},
		{"nonce required, none", raw(t, ec, jose.ES256, hdr(), validClaims(clk)), Request{Method: "GET", URL: target}, true, ErrUseNonce, "no nonce"},
		{"wrong nonce", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "nonce", "made-up")), Request{Method: "GET", URL: target}, true, ErrUseNonce, "stale"},
		{"right nonce", raw(t, ec, jose.ES256, hdr(), validClaims(clk, "nonce", nonces.Current())), Request{Method: "GET", URL: target}, true, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(clk)
			if tc.nonces {
				c.Nonces = nonces
			}
			p, err := c.Check(context.Background(), tc.proof, tc.req)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if p.Thumbprint == "" || p.ID == "" {
					t.Fatalf("proof %+v", p)
				}
				if _, err := c.Check(context.Background(), tc.proof, tc.req); !errors.Is(err, ErrInvalidProof) || !strings.Contains(err.Error(), "used before") {
					t.Fatalf("replay: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.reason)
			}
			var ne *NonceError
			if errors.Is(err, ErrUseNonce) && (!errors.As(err, &ne) || !nonces.Valid(ne.Nonce)) {
				t.Fatalf("use_dpop_nonce without a valid nonce: %v", err)
			}
		})
	}
	// A nonce lives through the next window, not the one after.
	clk.Add(90 * time.Second)
	if !nonces.Valid(staleNonce) {
		t.Fatal("a nonce of the previous window refused")
	}
	clk.Add(time.Minute)
	if nonces.Valid(staleNonce) {
		t.Fatal("a nonce two windows old accepted")
	}
	if h, err := FromHeader(http.Header{"Dpop": {"a", "b"}}); err == nil {
		t.Fatalf("two DPoP headers: %q", h)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestConcurrentReplay: of 50 concurrent uses of one proof exactly one passes.
func TestConcurrentReplay(t *testing.T) {
	clk := &clock{t: time.Now()}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewSigner(ec)
	if err != nil {
		t.Fatal(err)
	}
	s.now = clk.Now
	proof, _ := s.Proof("GET", target, "", "")
	c := newChecker(clk)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Check(context.Background(), proof, Request{Method: "GET", URL: target}); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 50 uses passed", ok.Load())
	}
}

func TestMemoryReplay(t *testing.T) {
	clk := &clock{t: time.Now()}
	m := NewMemoryReplay(2, clk.Now)
	ctx := context.Background()
	for i, want := range []bool{true, false} {
		if fresh, err := m.Use(ctx, "a", clk.Now().Add(time.Minute)); fresh != want || err != nil {
			t.Fatalf("use %d: %v %v", i, fresh, err)
		}
	}
	_, _ = m.Use(ctx, "b", clk.Now().Add(time.Minute))
	if _, err := m.Use(ctx, "c", clk.Now().Add(time.Minute)); !errors.Is(err, ErrReplayFull) {
		t.Fatalf("full: %v", err)
	}
	clk.Add(2 * time.Minute)
	if fresh, err := m.Use(ctx, "c", clk.Now().Add(time.Minute)); !fresh || err != nil || m.Len() != 1 {
		t.Fatalf("after expiry: %v %v, %d kept", fresh, err, m.Len())
	}
}

func TestSameURI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://a.example/x", "https://a.example/x", true},
		{"https://A.EXAMPLE/x", "HTTPS://a.example:443/x", true},
		{"http://a.example:80/x", "http://a.example/x", true},
		{"https://a.example", "https://a.example/", true},
		{"https://a.example/%7Ex", "https://a.example/~x", true},
		{"https://a.example/%2f", "https://a.example/%2F", true},
		{"https://a.example/a/./b/../c", "https://a.example/a/c", true},
		{"https://a.example/x?q=1", "https://a.example/x#f", true},
		{"https://a.example/x", "https://a.example/X", false},
		{"https://a.example/%2F", "https://a.example//", false},
		{"http://a.example/x", "https://a.example/x", false},
		{"https://a.example:8443/x", "https://a.example/x", false},
		{"https://u@a.example/x", "https://a.example/x", false},
		{"/x", "/x", false},
		{"", "", false},
	} {
		if got := SameURI(tc.a, tc.b); got != tc.same {
			t.Errorf("SameURI(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// TestTransport: the client side makes proofs the checker accepts, turns Bearer into DPoP, and
// answers use_dpop_nonce once with the server's nonce.
func TestTransport(t *testing.T) {
	clk := &clock{t: time.Now()}
	nonces, _ := NewNonces(make([]byte, 32), time.Minute, clk.Now)
	c := &Checker{Replay: NewMemoryReplay(0, clk.Now), Nonces: nonces, Now: clk.Now}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		proof, _ := FromHeader(r.Header)
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP ")
		_, err := c.Check(r.Context(), proof, Request{Method: r.Method, URL: "http://" + r.Host + r.URL.Path, AccessToken: token})
		var ne *NonceError
		if errors.As(err, &ne) {
			w.Header().Set(NonceHeader, ne.Nonce)
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "ok "+r.Header.Get("Authorization")[:5])
	}))
	defer srv.Close()
	for _, key := range []crypto.Signer{mustEC(t), mustRSA(t)} {
		s, err := NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &Transport{Signer: s}}
		calls.Store(0)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders?x=1", strings.NewReader("body"))
		req.Header.Set("Authorization", "Bearer tok-123")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok DPoP " || calls.Load() != 2 {
			t.Fatalf("%T: %d %q after %d calls", key, resp.StatusCode, b, calls.Load())
		}
	}
}

func mustEC(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSA(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzCheck feeds arbitrary proofs to the checker: nothing panics, and what passes was made by
// the signer for this request.
//
//	go test -run '^$' -fuzz FuzzCheck -fuzztime 30s ./strategy/verify/dpop
func FuzzCheck(f *testing.F) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	// A fixed key: fuzzing workers run this setup again, and the corpus
	// proof must be one of this key's in every one of them.
	s, _ := NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	s.now = clk.Now
	good, _ := s.Proof("GET", target, "", "")
	f.Add(good)
	parts := strings.Split(good, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, proof string) {
		c := newChecker(clk)
		p, err := c.Check(context.Background(), proof, Request{Method: "GET", URL: target})
		if err != nil {
			if p != nil {
				t.Fatal("a proof with an error")
			}
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if p.Thumbprint != s.Thumbprint() {
			t.Fatalf("accepted a proof of another key: %q", proof)
		}
	})
}

// Every algorithm of the allow-list verifies a proof signed by go-jose (an independent
// implementation), and refuses it with one bit of the signature flipped or under another
// algorithm's name.
func TestSignatureAlgorithms(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[jose.SignatureAlgorithm]crypto.Signer{jose.RS256: rsaKey, jose.PS256: rsaKey, jose.ES256: p256, jose.ES384: p384, jose.EdDSA: ed}
	sign := func(alg jose.SignatureAlgorithm, key crypto.Signer) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType(Type).WithHeader("jwk", pubJWK(key)))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Sign(must(json.Marshal(validClaims(clk))))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	for _, alg := range strict.Algorithms() {
		key := keys[alg]
		c := newChecker(clk)
		if _, err := c.Check(context.Background(), sign(alg, key), Request{Method: "GET", URL: target}); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		good := sign(alg, key)
		dot := strings.LastIndexByte(good, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(good[dot+1:])
		sig[len(sig)/2] ^= 1
		flipped := good[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
		if _, err := c.Check(context.Background(), flipped, Request{Method: "GET", URL: target}); !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("%s with a flipped bit: %v", alg, err)
		}
	}
	// An RS256 signature under the name PS256, and the other way round.
	for _, pair := range [][2]jose.SignatureAlgorithm{{jose.RS256, jose.PS256}, {jose.PS256, jose.RS256}} {
		proof := sign(pair[0], rsaKey)
		head, rest, _ := strings.Cut(proof, ".")
		hb, _ := base64.RawURLEncoding.DecodeString(head)
		hb = []byte(strings.Replace(string(hb), `"alg":"`+string(pair[0])+`"`, `"alg":"`+string(pair[1])+`"`, 1))
		swapped := base64.RawURLEncoding.EncodeToString(hb) + "." + rest
		if _, err := newChecker(clk).Check(context.Background(), swapped, Request{Method: "GET", URL: target}); !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("%s signature named %s: %v", pair[0], pair[1], err)
		}
	}
}
