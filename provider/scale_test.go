package provider_test

// Issue 16: several instances on one database as a tested deployment. Three providers of one
// issuer share one PostgreSQL or one MariaDB database, each with its own connection pool, read
// cache and loopback port; the test's client goes round-robin over the ports, as a load
// balancer would.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// roundRobin hands out the instances in turn.
type roundRobin struct {
	as []*testAS
	n  atomic.Int64
}

func (r *roundRobin) next() *testAS { return r.as[(r.n.Add(1)-1)%int64(len(r.as))] }

// jwksKids is the sorted list of kids an instance publishes.
func jwksKids(t *testing.T, as *testAS) []string {
	t.Helper()
	resp, err := http.Get(as.endpoint("jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	slices.Sort(out)
	return out
}

// eventually waits until cond holds, for at most 30 s (a state the test waits for, never a
// speed it asserts), and returns how long it took.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// raceTokens sends form to the token endpoint of the instances in turn, n times at once, and returns
// the responses' status codes and error members.
func raceTokens(t *testing.T, rr *roundRobin, n int, form url.Values) ([]int, []any) {
	t.Helper()
	codes, errs := make([]int, n), make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		as := rr.next()
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, as.endpoint("token"), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			codes[i], errs[i] = resp.StatusCode, m["error"]
		})
	}
	close(start)
	wg.Wait()
	return codes, errs
}

// exactlyOne checks that one request of a race won and every other lost with a client error.
func exactlyOne(t *testing.T, what string, codes []int, errs []any) {
	t.Helper()
	won := 0
	for i, c := range codes {
		switch {
		case c == 200:
			won++
		case c == 400 || c == 401:
		default:
			t.Errorf("%s: request %d: %d %v", what, i, c, errs[i])
		}
	}
	if won != 1 {
		t.Fatalf("%s: %d of %d concurrent requests across the instances won, want exactly 1", what, won, len(codes))
	}
}

// TestClusterOneDatabase runs three instances on one PostgreSQL and on one MariaDB database:
// tokens issued anywhere introspect and revoke everywhere; a jti, an authorization code and a
// refresh token used at once across the instances win exactly once; a client or resource-server
// change made through one instance is seen by the others, although their caches would keep the
// old record for an hour (only the change feed can deliver it: on PostgreSQL its notification,
// on MariaDB the counter polled every second); and a key rotation that one instance commits
// shows in every instance's JWKS, although the others re-read the key set only once an hour by
// themselves.
func TestClusterOneDatabase(t *testing.T) {
	for _, db := range []struct {
		name string
		dsn  func(*testing.T) string
	}{{"postgres", postgresDSN}, {"mariadb", mysqlDSN}} {
		t.Run(db.name, func(t *testing.T) {
			clk := newClock()
			const period = 2 * time.Hour
			instances := cluster(t, db.dsn(t), 3, []gormstore.Option{gormstore.WithCache(time.Hour)}, func(i int, c *provider.Config) {
				c.Now = clk.Now
				c.Rotation = provider.Rotation{Period: period, Propagation: 30 * time.Minute, Retention: time.Hour, Reload: time.Hour}
				if i == 0 {
					c.Rotation.Reload = 20 * time.Millisecond // this one drives the rotation
				}
			})
			rr := &roundRobin{as: instances}
			clusterTokens(t, rr, clk)
			clusterReplay(t, rr)
			clusterChanges(t, rr)
			clusterRotation(t, rr, clk, period)
		})
	}
}

func clusterTokens(t *testing.T, rr *roundRobin, clk *clock) {
	t.Run("issued anywhere, introspected and revoked everywhere", func(t *testing.T) {
		for range 6 {
			issuer := rr.next()
			tok := issuer.clientCredentials("orders:read", orders)
			for _, as := range rr.as {
				as.verifyIndependentlyAt(tok, orders, clk.Now()) // signed with a key every instance publishes
				if m := as.auditIntrospect(tok); m["active"] != true || m["client_id"] != "svc" {
					t.Fatalf("introspection of another instance's token: %v", m)
				}
			}
			revoke(t, rr.next(), tok)
			for _, as := range rr.as {
				if m := as.auditIntrospect(tok); m["active"] != false {
					t.Fatalf("token revoked at another instance still active: %v", m)
				}
			}
		}
	})
}

func clusterReplay(t *testing.T, rr *roundRobin) {
	t.Run("jti", func(t *testing.T) { replayRace(t, rr.as[0], rr.as[1]) })
	t.Run("authorization code", func(t *testing.T) {
		_, code, verifier := auditCode(t, rr.next(), "web", "", []string{"orders:read"})
		codes, errs := raceTokens(t, rr, 12, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {"http://127.0.0.1:3000/cb"}, "client_id": {"web"}})
		exactlyOne(t, "one code", codes, errs)
	})
	t.Run("refresh token", func(t *testing.T) {
		_, code, verifier := auditCode(t, rr.next(), "web", "", []string{"orders:read"})
		resp, m := rr.next().auditExchange(code, verifier)
		rt, _ := m["refresh_token"].(string)
		if resp.StatusCode != 200 || rt == "" {
			t.Fatalf("exchange: %d %v", resp.StatusCode, m)
		}
		codes, errs := raceTokens(t, rr, 12, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"web"}})
		exactlyOne(t, "one refresh token", codes, errs)
	})
}

func clusterChanges(t *testing.T, rr *roundRobin) {
	a, others := rr.as[0], rr.as[1:]
	ctx := context.Background()
	token := func(as *testAS, secret string) (int, map[string]any) {
		resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}, "resource": {orders}}, "svc", secret)
		return resp.StatusCode, m
	}
	const oldSecret, newSecret = "svc-secret-0123456789", "svc-secret-rotated-9876543210"
	t.Run("client secret rotated on one instance", func(t *testing.T) {
		for _, as := range others { // every other instance has the client cached
			if code, m := token(as, oldSecret); code != 200 {
				t.Fatalf("before: %d %v", code, m)
			}
		}
		setup, err := provider.ParseSetup([]byte(strings.Replace(testSetup, oldSecret, newSecret, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.p.Apply(ctx, setup); err != nil {
			t.Fatal(err)
		}
		for i, as := range others {
			d := eventually(t, "the new secret at another instance", func() bool { code, _ := token(as, newSecret); return code == 200 })
			if code, _ := token(as, oldSecret); code != 401 {
				t.Errorf("instance %d still accepts the old secret: %d", i+1, code)
			}
			t.Logf("instance %d: the rotated secret works after %v", i+1, d.Round(time.Millisecond))
		}
		// And back, through another instance.
		orig, err := provider.ParseSetup([]byte(testSetup))
		if err != nil {
			t.Fatal(err)
		}
		if err := others[0].p.Apply(ctx, orig); err != nil {
			t.Fatal(err)
		}
		for _, as := range rr.as {
			eventually(t, "the first secret again", func() bool { code, _ := token(as, oldSecret); return code == 200 })
		}
	})
	t.Run("resource server changed on one instance", func(t *testing.T) {
		ttl := func(as *testAS) time.Duration {
			code, m := token(as, oldSecret)
			if code != 200 {
				t.Fatalf("token: %d %v", code, m)
			}
			c := claimsOf(t, m["access_token"].(string))
			return time.Duration(c["exp"].(float64)-c["iat"].(float64)) * time.Second
		}
		for _, as := range others {
			if got := ttl(as); got != 10*time.Minute {
				t.Fatalf("before: TTL %v", got)
			}
		}
		rs, err := a.store.ResourceServer(ctx, orders)
		if err != nil {
			t.Fatal(err)
		}
		rs.AccessTokenTTL = 7 * time.Minute
		if err := a.store.SaveResourceServer(ctx, rs); err != nil {
			t.Fatal(err)
		}
		for i, as := range others {
			d := eventually(t, "the new TTL at another instance", func() bool { return ttl(as) == 7*time.Minute })
			t.Logf("instance %d: the resource server's new TTL applies after %v", i+1, d.Round(time.Millisecond))
		}
	})
	t.Run("client deleted on one instance", func(t *testing.T) {
		if err := a.store.SaveClient(ctx, &storage.Client{ID: "doomed", SecretHash: mustHash(t, a, "doomed-secret-0123456789"),
			GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}, Resources: []string{orders}}); err != nil {
			t.Fatal(err)
		}
		doomed := func(as *testAS) int {
			resp, _ := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "doomed", "doomed-secret-0123456789")
			return resp.StatusCode
		}
		for _, as := range others {
			eventually(t, "the new client at another instance", func() bool { return doomed(as) == 200 })
		}
		if err := a.store.DeleteClient(ctx, "doomed"); err != nil {
			t.Fatal(err)
		}
		for i, as := range others {
			d := eventually(t, "the deletion at another instance", func() bool { return doomed(as) == 401 })
			t.Logf("instance %d: the deleted client is refused after %v", i+1, d.Round(time.Millisecond))
		}
	})
	t.Run("trust deleted on one instance", func(t *testing.T) {
		idp := genKey(t, jose.ES256, "cluster-idp-1")
		a.saveTrust(storage.Trust{ID: "cluster-idp", Issuer: idpIssuer, Subject: "svc-a", JWKS: idp.jwks(),
			Scopes: []string{"orders:read"}, Resources: []string{orders}})
		grant := func(as *testAS) int {
			// Addressed to the issuer the instances share (each has a token endpoint of its own).
			claims := as.assertionClaims(idpIssuer, "svc-a", "aud", as.issuer)
			resp, _ := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, claims)}}, "", "")
			return resp.StatusCode
		}
		for _, as := range others { // cached there now
			eventually(t, "the new trust at another instance", func() bool { return grant(as) == 200 })
		}
		if err := a.store.DeleteTrust(ctx, "cluster-idp"); err != nil {
			t.Fatal(err)
		}
		for i, as := range others {
			d := eventually(t, "the deletion at another instance", func() bool { return grant(as) == 400 })
			t.Logf("instance %d: the deleted trust's assertions are refused after %v", i+1, d.Round(time.Millisecond))
		}
	})
}

// mustHash is the stored hash of a client secret at as.
func mustHash(t *testing.T, as *testAS, secret string) []byte {
	t.Helper()
	h, err := as.p.Hasher().Hash(context.Background(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func clusterRotation(t *testing.T, rr *roundRobin, clk *clock, period time.Duration) {
	t.Run("key rotation driven by one instance", func(t *testing.T) {
		before := jwksKids(t, rr.as[0])
		for _, as := range rr.as[1:] {
			if got := jwksKids(t, as); !slices.Equal(got, before) {
				t.Fatalf("instances publish %v and %v", before, got)
			}
		}
		// The next keys' time comes; instance 0 (reloading every 20 ms) commits the rotation:
		// retired keys, next keys become current, new next keys. The others re-read only when
		// the store tells them.
		clk.Add(period + time.Minute)
		d := eventually(t, "every instance to publish the rotated set", func() bool {
			first := jwksKids(t, rr.as[0])
			if slices.Equal(first, before) {
				return false
			}
			for _, as := range rr.as[1:] {
				if !slices.Equal(jwksKids(t, as), first) {
					return false
				}
			}
			return true
		})
		t.Logf("every instance publishes the rotated key set %d ms after the clock passed the switch", d.Milliseconds())
		// Tokens from every instance are signed with a key every instance publishes.
		for _, issuer := range rr.as {
			tok := issuer.clientCredentials("orders:read", orders)
			for _, as := range rr.as {
				as.verifyIndependentlyAt(tok, orders, clk.Now())
			}
		}
	})
}
