package gormstore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mandate-dev/mandate/storage"
)

// fositeStore adds the fosite.ClientManager methods the provider package supplies in
// production; the token methods are the store's own.
type fositeStore struct{ *Store }

func (f fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return f.Client(ctx, id)
}

func (f fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	return nil
}

func (f fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return f.UseJTI(ctx, jti, exp)
}

type fositeHarness struct {
	provider fosite.OAuth2Provider
	strategy *oauth2.HMACSHAStrategy
	store    *Store
}

func newFositeHarness(t *testing.T, s *Store) *fositeHarness {
	t.Helper()
	cfg := &fosite.Config{
		GlobalSecret:         []byte("0123456789abcdef0123456789abcdef"),
		HashCost:             4,
		AccessTokenLifespan:  time.Hour,
		RefreshTokenLifespan: 24 * time.Hour,
	}
	strategy := compose.NewOAuth2HMACStrategy(cfg)
	p := compose.Compose(cfg, fositeStore{s}, strategy,
		compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2RefreshTokenGrantFactory)
	secret, err := cfg.GetSecretsHasher(context.Background()).Hash(context.Background(), []byte("s3cret"))
	must(t, err)
	must(t, s.SaveClient(context.Background(), &storage.Client{
		ID: "app", SecretHash: secret, RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"offline", "orders:read"},
	}))
	return &fositeHarness{provider: p, strategy: strategy, store: s}
}

// code runs the authorization endpoint and returns an authorization code.
func (h *fositeHarness) code(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodGet, "https://as.example/authorize?"+url.Values{
		"client_id": {"app"}, "response_type": {"code"}, "redirect_uri": {"https://app.example/cb"},
		"state": {"state-12345"}, "scope": {"offline orders:read"},
	}.Encode(), nil)
	ar, err := h.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		t.Fatalf("NewAuthorizeRequest: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
	}
	ar.GrantScope("offline")
	ar.GrantScope("orders:read")
	resp, err := h.provider.NewAuthorizeResponse(ctx, ar, &storage.Session{Subject: "alice"})
	if err != nil {
		t.Fatalf("NewAuthorizeResponse: %v", err)
	}
	return resp.GetParameters().Get("code")
}

// token runs the token endpoint; it returns the access and refresh tokens or the error.
func (h *fositeHarness) token(form url.Values) (string, string, error) {
	ctx := context.Background()
	r := httptest.NewRequest(http.MethodPost, "https://as.example/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("app", "s3cret")
	req, err := h.provider.NewAccessRequest(ctx, r, &storage.Session{})
	if err != nil {
		return "", "", err
	}
	resp, err := h.provider.NewAccessResponse(ctx, req)
	if err != nil {
		return "", "", err
	}
	rt, _ := resp.GetExtra("refresh_token").(string)
	return resp.GetAccessToken(), rt, nil
}

func (h *fositeHarness) exchange(code string) (string, string, error) {
	return h.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/cb"}})
}

func (h *fositeHarness) refresh(rt string) (string, string, error) {
	return h.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

func (h *fositeHarness) accessActive(t *testing.T, at string) bool {
	t.Helper()
	_, err := h.store.GetAccessTokenSession(context.Background(), h.strategy.AccessTokenSignature(context.Background(), at), nil)
	if err != nil && !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("GetAccessTokenSession: %v", err)
	}
	return err == nil
}

func (h *fositeHarness) refreshActive(t *testing.T, rt string) bool {
	t.Helper()
	_, err := h.store.GetRefreshTokenSession(context.Background(), h.strategy.RefreshTokenSignature(context.Background(), rt), nil)
	if err != nil && !errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("GetRefreshTokenSession: %v", err)
	}
	return err == nil
}

// TestFositeFlows drives fosite's own handlers over the store: code exchange, refresh
// rotation, reuse detection and concurrent use, on every database.
func TestFositeFlows(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			h := newFositeHarness(t, openT(t, b.fresh(t)))

			t.Run("CodeReuseRevokesGrant", func(t *testing.T) {
				code := h.code(t)
				at, rt, err := h.exchange(code)
				if err != nil || at == "" || rt == "" {
					t.Fatalf("exchange: %v (at=%t rt=%t)", err, at != "", rt != "")
				}
				if _, _, err := h.exchange(code); !errors.Is(err, fosite.ErrInvalidGrant) {
					t.Errorf("second exchange: %v, want invalid_grant", err)
				}
				if h.accessActive(t, at) || h.refreshActive(t, rt) {
					t.Error("tokens of a reused code are still active")
				}
			})

			t.Run("RefreshRotationAndReuse", func(t *testing.T) {
				at1, rt1, err := h.exchange(h.code(t))
				must(t, err)
				at2, rt2, err := h.refresh(rt1)
				if err != nil {
					t.Fatalf("refresh: %v", fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
				}
				if h.accessActive(t, at1) || h.refreshActive(t, rt1) {
					t.Error("old tokens still active after rotation")
				}
				if !h.accessActive(t, at2) || !h.refreshActive(t, rt2) {
					t.Fatal("new tokens not active after rotation")
				}
				// Replaying the old refresh token is detected and revokes the whole grant.
				if _, _, err := h.refresh(rt1); !errors.Is(err, fosite.ErrInvalidGrant) {
					t.Errorf("replayed refresh token: %v, want invalid_grant", err)
				}
				if h.accessActive(t, at2) || h.refreshActive(t, rt2) {
					t.Error("grant not revoked after refresh-token reuse")
				}
			})

			t.Run("ConcurrentRefresh", func(t *testing.T) {
				_, rt, err := h.exchange(h.code(t))
				must(t, err)
				const n = 8
				var (
					wg  sync.WaitGroup
					mu  sync.Mutex
					won []string
				)
				start := make(chan struct{})
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, newRT, err := h.refresh(rt)
						if err == nil {
							mu.Lock()
							won = append(won, newRT)
							mu.Unlock()
						}
					}()
				}
				close(start)
				wg.Wait()
				// Exactly one refresh rotates the token. (Losers that read the token after the
				// winner committed trigger reuse detection, which may revoke the winner's new
				// tokens: that is fosite's policy, not a second winner.)
				if len(won) != 1 {
					t.Errorf("%d of %d concurrent refreshes of one token succeeded, want exactly 1", len(won), n)
				}
			})
		})
	}
}
