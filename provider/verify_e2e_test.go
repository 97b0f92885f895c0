package provider_test

// Resource servers validating the provider's tokens with strategy/verify, as service B does:
// audience isolation, key rotation while requests flow, and an authorization server that goes
// down.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// clock is a settable time source shared by the provider, its keys and the verifier.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newVerifier(t *testing.T, as *testAS, audience string, now func() time.Time) *verify.Verifier {
	t.Helper()
	v, err := verify.New(context.Background(), verify.Config{
		Issuer: as.issuer, Audience: audience, Now: now,
		HTTPClient:         rewriteTo(as),
		MinRefreshInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rewriteTo sends every request to the test server (the issuer's host may be another
// replica's), keeping the path.
func rewriteTo(as *testAS) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Host = as.srv.Listener.Addr().String()
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestVerifierAcceptsOnlyItsOwnAudience(t *testing.T) {
	as := newAS(t)
	forOrders := newVerifier(t, as, orders, nil)
	forBilling := newVerifier(t, as, billing, nil)
	tok := as.clientCredentials("orders:read", orders)

	c, err := forOrders.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "svc" || c.ClientID != "svc" || !c.HasScope("orders:read") || !slices.Equal(c.Audience, []string{orders}) {
		t.Fatalf("claims %+v", c)
	}
	if _, err := forBilling.Verify(context.Background(), tok); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("billing accepted a token for orders: %v", err)
	}
	// And the other way round, with the token signed by another algorithm (billing: RS256).
	if _, err := forOrders.Verify(context.Background(), as.clientCredentials("billing:read", billing)); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("orders accepted a token for billing: %v", err)
	}
}

func TestVerifierKeepsWorkingWhenTheASGoesDown(t *testing.T) {
	as := newAS(t)
	v := newVerifier(t, as, orders, nil)
	tok := as.clientCredentials("orders:read", orders)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	as.srv.CloseClientConnections()
	as.srv.Close()
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("cached keys stopped working with the AS down: %v", err)
		}
	}
}

// TestRotationWhileRequestsFlow moves the ES256 key through next → current → retired with a
// fake clock while clients keep getting tokens and a resource server keeps verifying them:
// no request fails, a next key is published before it signs, and a retired key stays
// published until its tokens have expired.
func TestRotationWhileRequestsFlow(t *testing.T) {
	clk := newClock()
	st := newStore(t)
	secret := testSecret(t)
	const (
		period      = 2 * time.Hour
		propagation = 30 * time.Minute
		ttl         = 10 * time.Minute // orders' access_token_ttl in testSetup
		retention   = time.Hour
	)
	keys, err := strategy.NewRotatingKeys(context.Background(), strategy.RotationConfig{
		Store: st, KEK: secret, Algorithms: []string{"ES256", "RS256"},
		Period: period, Propagation: propagation, Retention: retention, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	as := newASWith(t, st, secret, "", func(c *provider.Config) {
		c.Keys = keys
		c.Now = clk.Now
		c.Rotation.Retention = retention
	})
	v := newVerifier(t, as, orders, clk.Now)
	ctx := context.Background()

	kidOf := func(tok string) string {
		hdr, _ := as.verifyIndependentlyAt(tok, orders, clk.Now())
		return hdr["kid"].(string)
	}
	published := func() []string {
		resp, err := http.Get(as.endpoint("jwks.json"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct{ Keys []struct{ Kid, Alg string } }
		json.NewDecoder(resp.Body).Decode(&set)
		var out []string
		for _, k := range set.Keys {
			if k.Alg == "ES256" {
				out = append(out, k.Kid)
			}
		}
		return out
	}

	first := as.clientCredentials("orders:read", orders)
	k1 := kidOf(first)
	pub := published()
	if len(pub) != 2 || !slices.Contains(pub, k1) {
		t.Fatalf("at start: current %s, published %v; want current + next", k1, pub)
	}
	k2 := pub[0]
	if k2 == k1 {
		k2 = pub[1]
	}

	// Traffic: tokens are requested and verified continuously across the switch.
	var failures atomic.Int64
	var seen sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}, "svc", "svc-secret-0123456789")
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Errorf("token: %d %v", resp.StatusCode, m)
					continue
				}
				tok := m["access_token"].(string)
				c, err := v.Verify(ctx, tok)
				if err != nil {
					failures.Add(1)
					t.Errorf("verify: %v", err)
					continue
				}
				seen.Store(c.ID, true)
			}
		}()
	}
	step := func(d time.Duration) {
		clk.Add(d)
		if err := keys.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let traffic run at this time
	}
	step(period - time.Minute) // k2 still next
	late := as.clientCredentials("orders:read", orders)
	if got := kidOf(late); got != k1 {
		t.Fatalf("k2 signed before its time: %s", got)
	}
	step(2 * time.Minute) // k2 signs now; k1 is retired but published
	if got := kidOf(as.clientCredentials("orders:read", orders)); got != k2 {
		t.Fatalf("after the switch, %s signs; want %s", got, k2)
	}
	if pub := published(); !slices.Contains(pub, k1) || !slices.Contains(pub, k2) || len(pub) != 3 {
		t.Fatalf("after the switch published %v; want retired %s, current %s and a new next", pub, k1, k2)
	}
	close(stop)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed during rotation", failures.Load())
	}

	// The token k1 signed just before the switch is valid until it expires.
	clk.Add(ttl - 3*time.Minute)
	if _, err := v.Verify(ctx, late); err != nil {
		t.Fatalf("a retired key's unexpired token was refused: %v", err)
	}
	// After retention, k1 is gone from the JWKS.
	step(retention)
	if pub := published(); slices.Contains(pub, k1) {
		t.Fatalf("retired key still published after retention: %v", pub)
	}
}
