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
