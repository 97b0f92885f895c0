package provider_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
)

func TestReadiness(t *testing.T) {
	st := newStore(t)
	as := newASWith(t, st, testSecret(t), "")
	for name, h := range map[string]http.Handler{"liveness": as.p.Liveness(), "readiness": as.p.Readiness()} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"ok"`) {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	// The database goes away: not ready, still alive.
	if err := st.(interface{ Close() error }).Close(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	as.p.Readiness().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"database":"failed"`) || !strings.Contains(rec.Body.String(), `"signing_keys":"ok"`) {
		t.Fatalf("readiness with the store closed: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	as.p.Liveness().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 {
		t.Fatalf("liveness with the store closed: %d", rec.Code)
	}
}

func TestManagerValidationNamesFields(t *testing.T) {
	as := newAS(t)
	m, err := as.p.Manager()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, err = m.CreateClient(ctx, provider.SetupClient{ClientID: "x", GrantTypes: []string{"authorization_code"}, Public: true,
		RedirectURIs: []string{"http://evil.example/cb"}, Scopes: []string{"ok", "bad scope"}, Resources: []string{"https://nowhere.example/"}}, "")
	var inv *provider.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("CreateClient = %v, want an *InvalidError", err)
	}
	fields := map[string]bool{}
	for _, p := range inv.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"redirect_uris[0]", "scopes[1]", "resources[0]"} {
		if !fields[f] {
			t.Errorf("no problem for %s in %+v", f, inv.Problems)
		}
	}
	if _, _, err := m.CreateClient(ctx, provider.SetupClient{ClientID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{}, Resources: []string{}}, ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateClient(taken) = %v", err)
	}
	if _, err := m.SaveResourceServer(ctx, provider.SetupResource{Identifier: "https://new.example/", Scopes: []string{"a"}, AccessTokenTTL: "200h"}, true, ""); !errors.As(err, &inv) || inv.Problems[0].Field != "access_token_ttl" {
		t.Fatalf("resource server with a 200h TTL: %v", err)
	}
}

// TestDeletedClientTokensInactive: with stateless access tokens (no row to delete), a deleted
// client's tokens are inactive at introspection, and stay so when a client of the same ID is
// created again.
func TestDeletedClientTokensInactive(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		// No clock leeway: the test re-creates the client a second after the token.
		as := newAS(t, func(c *provider.Config) { c.StatelessAccessTokens = stateless; c.AssertionLeeway = time.Nanosecond })
		m, err := as.p.Manager()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		tok := as.clientCredentials("orders:read", orders)
		if got := as.auditIntrospect(tok); got["active"] != true {
			t.Fatalf("stateless %v: before: %v", stateless, got)
		}
		if _, err := m.DeleteClient(ctx, "svc", "test"); err != nil {
			t.Fatal(err)
		}
		if got := as.auditIntrospect(tok); got["active"] != false {
			t.Fatalf("stateless %v: after the delete: %v", stateless, got)
		}
		// iat has whole seconds: a client created again within the second of its tokens (and
		// the leeway) is indistinguishable from the old one (documented at Manager).
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		if _, _, err := m.CreateClient(ctx, provider.SetupClient{ClientID: "svc", GrantTypes: []string{"client_credentials"},
			Scopes: []string{"orders:read"}, Resources: []string{orders}}, ""); err != nil {
			t.Fatal(err)
		}
		if got := as.auditIntrospect(tok); got["active"] != false {
			t.Fatalf("stateless %v: after the client was created again: %v", stateless, got)
		}
		resp, _ := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret-0123456789")
		if resp.StatusCode != 401 {
			t.Fatalf("the old secret of a re-created client: %d", resp.StatusCode)
		}
	}
}

// blindPeers hides every registered peer from Peer: as if another instance created the peer
// between the Manager's check and its write.
type blindPeers struct{ managedStore }

type managedStore interface {
	storage.Store
	storage.Manager
}

func (blindPeers) Peer(context.Context, string) (*storage.Peer, error) {
	return nil, storage.ErrNotFound
}

// TestManagerCreatePeerRace: a create of a peer that another create registered first fails with
// ErrConflict and leaves the first record as it was, even when the Manager's own check missed
// it; an update of a peer that is not there creates nothing.
func TestManagerCreatePeerRace(t *testing.T) {
	st := newStore(t)
	const peer = "https://as.y.example"
	ctx := context.Background()
	if err := st.SavePeer(ctx, &storage.Peer{Issuer: peer, Name: "first", Scopes: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	as := newASWith(t, blindPeers{st.(managedStore)}, testSecret(t), "")
	m, err := as.p.Manager()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SavePeer(ctx, provider.SetupPeer{Issuer: peer, Name: "second", Scopes: []string{}, Claims: []string{}}, true, ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("create of a registered peer = %v, want ErrConflict", err)
	}
	if got, err := st.Peer(ctx, peer); err != nil || got.Name != "first" {
		t.Fatalf("the first peer after a losing create: %+v, %v", got, err)
	}
	const missing = "https://as.z.example"
	if _, err := m.SavePeer(ctx, provider.SetupPeer{Issuer: missing, Scopes: []string{}, Claims: []string{}}, false, ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("update of a missing peer = %v, want ErrNotFound", err)
	}
	if _, err := st.Peer(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an update created the peer: %v", err)
	}
}
