package verify

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestParseKeySetSkipsUnusableKeys(t *testing.T) {
	good := newECKey(t, "good")
	rsaK := newRSAKey(t, "rsa-private")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(k jose.JSONWebKey) json.RawMessage {
		b, err := k.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	enc := good.public()
	enc.KeyID, enc.Use = "enc", "enc"
	keys := []json.RawMessage{
		marshal(jose.JSONWebKey{Key: rsaK.priv, KeyID: "rsa-private", Algorithm: "RS256"}),
		json.RawMessage(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`),
		marshal(enc),
		marshal(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small"}),
		json.RawMessage(`{"kty":"XYZ","kid":"future"}`),
		json.RawMessage(`{"kty":"EC","kid":"broken","crv":"P-256","x":"AA","y":"AA"}`),
		marshal(good.public()),
	}
	body, _ := json.Marshal(map[string]any{"keys": keys})
	s, err := parseKeySet(body, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.all) != 1 || s.all[0].KeyID != "good" {
		var ids []string
		for _, k := range s.all {
			ids = append(ids, k.KeyID)
		}
		t.Fatalf("usable keys = %q; want only good", ids)
	}
	for _, kid := range []string{"rsa-private", "hmac", "enc", "small", "future", "broken"} {
		for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.HS256} {
			if s.find(kid, alg) != nil {
				t.Errorf("key %q usable with %s", kid, alg)
			}
		}
	}

	for name, doc := range map[string]string{
		"only bad keys": string(mustJSON(t, map[string]any{"keys": keys[:6]})),
		"no keys":       `{"keys":[]}`,
		"not JSON":      `<html>`,
		"keys not list": `{"keys":{}}`,
	} {
		if _, err := parseKeySet([]byte(doc), slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	lo, hi := time.Minute, time.Hour
	tests := []struct {
		cc   string
		want time.Duration
	}{
		{"", hi},
		{"max-age=600", 10 * time.Minute},
		{"public, max-age=600", 10 * time.Minute},
		{"Max-Age=600", 10 * time.Minute},
		{`max-age="600"`, 10 * time.Minute},
		{"max-age=1", lo},
		{"max-age=0", lo},
		{"max-age=999999999999999999", hi},
		{"max-age=-5", hi},
		{"max-age=abc", hi},
		{"no-cache", lo},
		{"no-store, max-age=600", lo},
		{"private", hi},
	}
	for _, tt := range tests {
		if got := cacheTTL(tt.cc, lo, hi); got != tt.want {
			t.Errorf("cacheTTL(%q) = %v; want %v", tt.cc, got, tt.want)
		}
	}
}

// TestRotationWhileRequestsFlow publishes a new key and sends tokens signed with it from many
// goroutines at once: every request succeeds, through a single refetch.
func TestRotationWhileRequestsFlow(t *testing.T) {
	clk := newClock()
	oldK := newRSAKey(t, "k1")
	iss := newFakeIssuer(t, oldK)
	v, err := New(context.Background(), iss.config(clk))
	if err != nil {
		t.Fatal(err)
	}
	if h := iss.jwksHits.Load(); h != 1 {
		t.Fatalf("JWKS fetched %d times by New; want 1", h)
	}
	newK := newECKey(t, "k2")
	iss.publish(newK)
	iss.jwksDelay.Store(int64(20 * time.Millisecond)) // let the goroutines pile up on one fetch
	claims := claimsAt(iss.issuer, clk.Now())
	oldTok, newTok := oldK.token(t, oldK.header(), claims), newK.token(t, newK.header(), claims)

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := newTok
			if i%2 == 0 {
				tok = oldTok
			}
			if _, err := v.Verify(context.Background(), tok); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed during rotation: %v", err)
	}
	if h := iss.jwksHits.Load(); h != 2 {
		t.Errorf("JWKS fetched %d times; want 2 (start + one refetch)", h)
	}
	if h := iss.metaHits.Load(); h != 1 {
		t.Errorf("metadata fetched %d times; want 1", h)
	}
}

// TestIssuerDown: cached keys keep working when the issuer is unreachable or answers garbage,
// including across the periodic refresh; a new key is picked up once it is back.
func TestIssuerDown(t *testing.T) {
	for _, mode := range []string{"down", "garbage", "no usable key", "closed"} {
		t.Run(mode, func(t *testing.T) {
			clk := newClock()
			k := newEdKey(t, "k1")
			iss := newFakeIssuer(t, k)
			cfg := iss.config(clk)
			cfg.MinRefreshInterval = time.Minute
			cfg.RefreshInterval = 10 * time.Minute
			v, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "down":
				iss.down.Store(true)
			case "garbage":
				iss.setRaw([]byte("<html>502 Bad Gateway</html>"))
			case "no usable key":
				iss.setRaw([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"k1"}]}`))
			case "closed":
				iss.srv.Close()
			}
			for round := range 3 {
				clk.Add(11 * time.Minute) // past the refresh interval: a background refresh starts
				hits := iss.jwksHits.Load()
				tok := k.token(t, k.header(), claimsAt(iss.issuer, clk.Now()))
				if _, err := v.Verify(context.Background(), tok); err != nil {
					t.Fatalf("round %d: cached key rejected: %v", round, err)
				}
				if mode != "closed" {
					waitFor(t, "background refresh", func() bool { return iss.jwksHits.Load() > hits })
				}
				// An unknown kid while the issuer is broken: refused, never a panic or hang.
				other := newEdKey(t, fmt.Sprintf("new-%d", round))
				tok = other.token(t, other.header(), claimsAt(iss.issuer, clk.Now()))
				if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
					t.Fatalf("round %d: unknown kid: %v", round, err)
				}
				if _, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt(iss.issuer, clk.Now()))); err != nil {
					t.Fatalf("round %d: cached key rejected after failed refetch: %v", round, err)
				}
			}
			if mode == "closed" {
				return
			}
			// Back up with a new key.
			iss.down.Store(false)
			iss.setRaw(nil)
			k2 := newEdKey(t, "k2")
			iss.publish(k2)
			clk.Add(2 * time.Minute) // past the unknown-kid rate limit
			if _, err := v.Verify(context.Background(), k2.token(t, k2.header(), claimsAt(iss.issuer, clk.Now()))); err != nil {
				t.Fatalf("new key after recovery: %v", err)
			}
		})
	}
}

// TestUnknownKidFlood: tokens with made-up kids cause at most one fetch per MinRefreshInterval.
func TestUnknownKidFlood(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "k1")
	iss := newFakeIssuer(t, k)
	cfg := iss.config(clk)
	cfg.MinRefreshInterval = 30 * time.Second
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	attacker := newECKey(t, "")
	flood := func() {
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := attacker.header()
				h["kid"] = fmt.Sprintf("bogus-%d", i)
				_, err := v.Verify(context.Background(), attacker.token(t, h, claimsAt(iss.issuer, clk.Now())))
				if !errors.Is(err, ErrUnknownKey) {
					t.Errorf("bogus kid: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	for round := range 4 {
		before := iss.jwksHits.Load()
		flood()
		clk.Add(10 * time.Second)
		flood()
		if got := iss.jwksHits.Load() - before; got > 1 {
			t.Fatalf("round %d: %d fetches within MinRefreshInterval; want at most 1", round, got)
		}
		clk.Add(21 * time.Second) // past MinRefreshInterval
	}
	if got := iss.jwksHits.Load(); got < 3 {
		t.Errorf("JWKS fetched %d times; the flood should refetch once per interval", got)
	}
	// The legitimate key works throughout.
	if _, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt(iss.issuer, clk.Now()))); err != nil {
		t.Fatal(err)
	}
}

// TestCacheControl: the JWKS max-age sets the background refresh time, within bounds.
func TestCacheControl(t *testing.T) {
	tests := []struct {
		cc        string
		noRefresh time.Duration // still cached after this long
		refresh   time.Duration // refreshed after this long
	}{
		{"max-age=300", 290 * time.Second, 301 * time.Second},
		{"no-cache", 50 * time.Second, 61 * time.Second},          // floor: MinRefreshInterval
		{"max-age=86400", 59 * time.Minute, 61 * time.Minute},     // ceiling: RefreshInterval
		{"", 59 * time.Minute, 61 * time.Minute},                  // default: RefreshInterval
		{"max-age=5, public", 50 * time.Second, 61 * time.Second}, // floor
	}
	for _, tt := range tests {
		t.Run(tt.cc, func(t *testing.T) {
			clk := newClock()
			k := newRSAKey(t, "k1")
			iss := newFakeIssuer(t, k)
			iss.cacheControl = tt.cc
			v, err := New(context.Background(), iss.config(clk))
			if err != nil {
				t.Fatal(err)
			}
			verify := func() {
				t.Helper()
				if _, err := v.Verify(context.Background(), k.token(t, k.header(), claimsAt(iss.issuer, clk.Now()))); err != nil {
					t.Fatal(err)
				}
			}
			clk.Add(tt.noRefresh)
			verify()
			// Any refresh would have been started by Verify itself; let a stray one finish.
			v.keys.(*remoteKeys).waitIdle()
			if h := iss.jwksHits.Load(); h != 1 {
				t.Fatalf("refreshed after %v", tt.noRefresh)
			}
			clk.Add(tt.refresh - tt.noRefresh)
			verify()
			waitFor(t, "refresh", func() bool { return iss.jwksHits.Load() == 2 })
			v.keys.(*remoteKeys).waitIdle()
			verify() // the refreshed set is in place; no further fetch
			v.keys.(*remoteKeys).waitIdle()
			if h := iss.jwksHits.Load(); h != 2 {
				t.Fatalf("JWKS fetched %d times; want 2", h)
			}
		})
	}
}

// waitIdle waits until no fetch is running (tests only).
func (r *remoteKeys) waitIdle() {
	r.mu.Lock()
	c := r.inflight
	r.mu.Unlock()
	if c != nil {
		<-c.done
	}
}

// TestLazyStartWhileIssuerDown: with Lazy, New succeeds with the issuer down, Verify answers
// ErrKeysUnavailable without hammering it, and works as soon as the issuer is back.
func TestLazyStartWhileIssuerDown(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "k1")
	iss := newFakeIssuer(t, k)
	iss.down.Store(true)
	cfg := iss.config(clk)
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("eager New with issuer down: %v", err)
	}
	cfg.Lazy = true
	before := iss.metaHits.Load()
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if iss.metaHits.Load() != before {
		t.Fatal("lazy New did network I/O")
	}
	tok := func() string { return k.token(t, k.header(), claimsAt(iss.issuer, clk.Now())) }
	for range 20 {
		if _, err := v.Verify(context.Background(), tok()); !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Verify with issuer down: %v", err)
		}
	}
	if got := iss.metaHits.Load() - before; got != 1 {
		t.Errorf("%d discovery attempts within the retry interval; want 1", got)
	}
	iss.down.Store(false)
	clk.Add(2 * time.Second)
	if _, err := v.Verify(context.Background(), tok()); err != nil {
		t.Fatalf("Verify after the issuer came back: %v", err)
	}
}

func TestDiscoveryAndFetchFailures(t *testing.T) {
	k := newEdKey(t, "k1")
	tests := []struct {
		name  string
		setup func(f *fakeIssuer, c *Config)
		want  string
	}{
		{"issuer mismatch", func(f *fakeIssuer, c *Config) { f.metaIssuer = f.issuer + "/" }, "does not equal"},
		{"issuer prefix", func(f *fakeIssuer, c *Config) { f.metaIssuer = f.srv.URL }, "does not equal"},
		{"oversized JWKS", func(f *fakeIssuer, c *Config) {
			f.setRaw([]byte(`{"keys":[],"x":"` + strings.Repeat("a", maxJWKSSize) + `"}`))
		}, "larger than"},
		{"JWKS 404", func(f *fakeIssuer, c *Config) { c.JWKSURL = f.issuer + "/nope" }, "status 404"},
		{"metadata 404", func(f *fakeIssuer, c *Config) { c.Issuer = f.srv.URL + "/other" }, "status 404"},
		{"issuer other case", func(f *fakeIssuer, c *Config) {
			f.metaIssuer = strings.Replace(f.issuer, "http://", "HTTP://", 1)
		}, "does not equal"},
		{"metadata without issuer", func(f *fakeIssuer, c *Config) {
			f.metaRaw = []byte(`{"jwks_uri":"` + f.issuer + `/jwks"}`)
		}, "does not equal"},
		{"metadata without jwks_uri", func(f *fakeIssuer, c *Config) {
			f.metaRaw = []byte(`{"issuer":"` + f.issuer + `"}`)
		}, "no jwks_uri"},
		{"jwks_uri not https", func(f *fakeIssuer, c *Config) {
			f.metaRaw = []byte(`{"issuer":"` + f.issuer + `","jwks_uri":"http://as.example.com/jwks"}`)
		}, "jwks_uri"},
		{"metadata not JSON", func(f *fakeIssuer, c *Config) { f.metaRaw = []byte("<html>") }, "not valid JSON"},
		{"JWKS not JSON", func(f *fakeIssuer, c *Config) { f.setRaw([]byte("<html>")) }, "not valid JSON"},
		{"JWKS with only a symmetric key", func(f *fakeIssuer, c *Config) {
			f.setRaw([]byte(`{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`))
		}, "no usable signature key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := newFakeIssuer(t, k)
			cfg := iss.config(newClock())
			tt.setup(iss, &cfg)
			_, err := New(context.Background(), cfg)
			if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v; want ErrKeysUnavailable mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFetchHonoursContext(t *testing.T) {
	k := newEdKey(t, "k1")
	iss := newFakeIssuer(t, k)
	iss.jwksDelay.Store(int64(300 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := New(ctx, iss.config(newClock())); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New with a short context: %v", err)
	}
}

func TestWellKnownURL(t *testing.T) {
	tests := []struct{ id, want string }{
		{"https://as.example.com", "https://as.example.com/.well-known/oauth-authorization-server"},
		{"https://as.example.com/", "https://as.example.com/.well-known/oauth-authorization-server"},
		{"https://as.example.com/tenant/1", "https://as.example.com/.well-known/oauth-authorization-server/tenant/1"},
		{"https://as.example.com:8443/t%2F1", "https://as.example.com:8443/.well-known/oauth-authorization-server/t%2F1"},
	}
	for _, tt := range tests {
		got, err := wellKnownURL(tt.id, "oauth-authorization-server")
		if err != nil || got != tt.want {
			t.Errorf("wellKnownURL(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
	}
}
