package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// TestAuditReplicasStartTogetherAndSwitchKeysTogether: two providers started at the same
// moment on one fresh PostgreSQL database create one key set between them (the store's
// compare-and-swap), publish the same JWKS, and — with no rotation call and no message between
// them — switch to the next key at the same time, while tokens of the previous key stay valid
// at both (issue 3: "several instances sharing one database agree on the current key without
// talking to each other").
func TestAuditReplicasStartTogetherAndSwitchKeysTogether(t *testing.T) {
	dsn := postgresDSN(t)
	secret := testSecret(t)
	clk := newClock()
	const period = 2 * time.Hour
	srvs := []*httptest.Server{httptest.NewUnstartedServer(nil), httptest.NewUnstartedServer(nil)}
	issuer := "http://" + srvs[0].Listener.Addr().String() + "/oauth2"
	ps := make([]*provider.Provider, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ps {
		st, err := gormstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ps[i], errs[i] = provider.New(context.Background(), provider.Config{
				Issuer: issuer, Secret: secret, Storage: st, Now: clk.Now,
				SigningAlgorithms: []string{"ES256", "RS256", "EdDSA"},
				Rotation:          provider.Rotation{Period: period, Propagation: 30 * time.Minute, Retention: time.Hour},
			})
		}()
	}
	close(start)
	wg.Wait()
	replicas := make([]*testAS, 2)
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		t.Cleanup(func() { p.Close() })
		mux := http.NewServeMux()
		for _, pat := range p.Patterns() {
			mux.Handle(pat, p)
		}
		srvs[i].Config.Handler = mux
		srvs[i].Start()
		t.Cleanup(srvs[i].Close)
		replicas[i] = &testAS{t: t, p: p, srv: srvs[i], issuer: issuer, store: p.Store()}
	}
	setup, err := provider.ParseSetup([]byte(testSetup))
	if err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Apply(context.Background(), setup); err != nil {
		t.Fatal(err)
	}
	a, b := replicas[0], replicas[1]

	if ka, kb := jwksKids(t, a), jwksKids(t, b); !slices.Equal(ka, kb) || len(ka) != 6 {
		t.Fatalf("replicas publish %v and %v; want the same current and next key per algorithm", ka, kb)
	}
	kid := func(tok string, verifier *testAS) string {
		hdr, _ := verifier.verifyIndependentlyAt(tok, orders, clk.Now())
		return hdr["kid"].(string)
	}
	ta, tb := a.clientCredentials("orders:read", orders), b.clientCredentials("orders:read", orders)
	k1 := kid(ta, b)
	if kid(tb, a) != k1 {
		t.Fatal("replicas sign with different current keys")
	}

	clk.Add(period - 2*time.Minute) // just before the switch: still the current key
	ta, tb = a.clientCredentials("orders:read", orders), b.clientCredentials("orders:read", orders)
	if kid(ta, b) != k1 || kid(tb, a) != k1 {
		t.Fatal("the next key signed before its time")
	}
	clk.Add(3 * time.Minute) // the next key's time has come; nobody rotates, nobody reloads
	ta2, tb2 := a.clientCredentials("orders:read", orders), b.clientCredentials("orders:read", orders)
	k2 := kid(ta2, b)
	if k2 == k1 || kid(tb2, a) != k2 {
		t.Fatalf("after the switch time: replica a signs with %s, b with %s; before both used %s", k2, kid(tb2, a), k1)
	}
	// Tokens the previous key signed just before the switch are still valid at both.
	for _, v := range []*testAS{a, b} {
		for _, tok := range []string{ta, tb} {
			if _, err := newVerifier(t, v, orders, clk.Now).Verify(context.Background(), tok); err != nil {
				t.Fatalf("a token of the previous key: %v", err)
			}
		}
	}
}
