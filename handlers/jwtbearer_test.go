package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// memTrusts is an in-memory storage.TrustStore.
type memTrusts []storage.Trust

func (m memTrusts) Trusts(_ context.Context, iss string) ([]storage.Trust, error) {
	var out []storage.Trust
	for _, t := range m {
		if t.Issuer == iss {
			out = append(out, *t.Clone())
		}
	}
	return out, nil
}
func (m memTrusts) SaveTrust(context.Context, *storage.Trust) error { return nil }
func (m memTrusts) DeleteTrust(context.Context, string) error       { return nil }

// fakeTokens mints "token-N" and records stored sessions.
type fakeTokens struct {
	stored []string
}

func (f *fakeTokens) AccessTokenSignature(_ context.Context, token string) string { return token }
func (f *fakeTokens) GenerateAccessToken(_ context.Context, r fosite.Requester) (string, string, error) {
	r.GetSession().SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Minute))
	return "token-" + r.GetSession().GetSubject(), "sig", nil
}
func (f *fakeTokens) ValidateAccessToken(context.Context, fosite.Requester, string) error { return nil }
func (f *fakeTokens) CreateAccessTokenSession(_ context.Context, sig string, _ fosite.Requester) error {
	f.stored = append(f.stored, sig)
	return nil
}
func (f *fakeTokens) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}
func (f *fakeTokens) DeleteAccessTokenSession(context.Context, string) error { return nil }

func bearerRequest(assertion string, client fosite.Client) *fosite.AccessRequest {
	ar := fosite.NewAccessRequest(&storage.Session{})
	ar.GrantTypes = fosite.Arguments{GrantTypeJWTBearer}
	ar.Form = url.Values{"grant_type": {GrantTypeJWTBearer}}
	if assertion != "" {
		ar.Form.Set("assertion", assertion)
	}
	if client != nil {
		ar.Client = client
	}
	return ar
}

func TestJWTBearerGrant(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	idp := newKey(t, jose.ES256, "idp-1")
	other := newKey(t, jose.ES256, "other-1")
	const iss, otherIss = "https://idp.example", "https://other.example"
	trusts := memTrusts{
		{Issuer: iss, Subject: "svc-a", JWKS: idp.set(), Scopes: []string{"orders:read", "orders:write"}, Resources: []string{"https://orders.example/"}},
		{Issuer: iss, Subject: "old", JWKS: idp.set(), Scopes: []string{"orders:read"}, ExpiresAt: now.Add(-time.Hour)},
		{Issuer: otherIss, AllowAnySubject: true, JWKS: other.set(), Scopes: []string{"x"}, Resources: []string{"https://x.example/"}},
	}
	resources := fakeResources{
		{Identifier: "https://orders.example/", Scopes: []string{"orders:read", "orders:write"}, Default: true},
		{Identifier: "https://x.example/", Scopes: []string{"x"}},
	}
	h := &JWTBearer{
		Trusts: trusts, JTIs: &memJTIs{}, Keys: &KeySets{}, Audiences: []string{tokenURL, asIssuer},
		Resolver:     Resolver{Resources: resources},
		AccessTokens: &fakeTokens{}, AccessTokenStorage: &fakeTokens{}, Now: func() time.Time { return now },
	}
	confidential := &storage.Client{ID: "c1", GrantTypes: []string{GrantTypeJWTBearer}, Scopes: []string{"orders:read"}, Resources: []string{"https://orders.example/"}}
	noGrant := &storage.Client{ID: "c2", GrantTypes: []string{"client_credentials"}}
	public := &storage.Client{ID: "c3", Public: true, GrantTypes: []string{GrantTypeJWTBearer}}
	ok := claims(iss, "svc-a", now)

	cases := []struct {
		name      string
		assertion string
		client    fosite.Client
		require   bool
		err       *fosite.RFC6749Error
		hint      string
	}{
		{"valid, no client", idp.sign(t, ok, nil), nil, false, nil, ""},
		{"valid, client", idp.sign(t, with(ok, "jti", "j2"), nil), confidential, false, nil, ""},
		{"no assertion", "", nil, false, fosite.ErrInvalidRequest, "missing"},
		{"garbage", "xx.yy.zz", nil, false, fosite.ErrInvalidGrant, "base64url"},
		{"unknown issuer", idp.sign(t, with(ok, "iss", "https://nobody.example"), nil), nil, false, fosite.ErrInvalidGrant, "not trusted"},
		{"subject not covered", idp.sign(t, with(ok, "sub", "svc-b"), nil), nil, false, fosite.ErrInvalidGrant, "this subject"},
		{"trust expired", idp.sign(t, with(ok, "sub", "old"), nil), nil, false, fosite.ErrInvalidGrant, "expired"},
		{"kid of another issuer's key", other.sign(t, ok, nil), nil, false, fosite.ErrInvalidGrant, "o registered key"},
		{"wrong audience", idp.sign(t, with(ok, "aud", "https://orders.example/"), nil), nil, false, fosite.ErrInvalidGrant, "other than"},
		{"client without the grant type", idp.sign(t, ok, nil), noGrant, false, fosite.ErrUnauthorizedClient, "jwt-bearer"},
		{"public client", idp.sign(t, ok, nil), public, false, fosite.ErrUnauthorizedClient, "Public clients"},
		{"client required", idp.sign(t, ok, nil), nil, true, fosite.ErrInvalidClient, "requires client authentication"},
		{"resource outside the trust", idp.sign(t, with(ok, "jti", "j3"), nil), nil, false, ErrInvalidTarget, ""},
		{"scope outside the trust", idp.sign(t, with(ok, "jti", "j4"), nil), nil, false, fosite.ErrInvalidScope, "trust"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.RequireClientAuth = c.require
			ctx := context.Background()
			ar := bearerRequest(c.assertion, c.client)
			switch c.name {
			case "resource outside the trust":
				ar.Form.Set("resource", "https://x.example/")
			case "scope outside the trust":
				ar.SetRequestedScopes(fosite.Arguments{"x"})
			}
			err := h.HandleTokenEndpointRequest(ctx, ar)
			if c.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", fosite.ErrorToRFC6749Error(err).GetDescription())
				}
				if ar.GetSession().GetSubject() != "svc-a" || !slices.Equal(ar.GetGrantedAudience(), fosite.Arguments{"https://orders.example/"}) {
					t.Fatalf("subject %q, audience %v", ar.GetSession().GetSubject(), ar.GetGrantedAudience())
				}
				if c.client != nil {
					if !slices.Equal(ar.GetGrantedScopes(), fosite.Arguments{"orders:read"}) || ar.GetClient().GetID() != "c1" {
						t.Fatalf("client %q, scopes %v", ar.GetClient().GetID(), ar.GetGrantedScopes())
					}
				} else if ar.GetClient().GetID() != iss || !slices.Equal(ar.GetGrantedScopes(), fosite.Arguments{"orders:read", "orders:write"}) {
					t.Fatalf("client %q, scopes %v", ar.GetClient().GetID(), ar.GetGrantedScopes())
				}
				return
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err.ErrorField)
			}
			if d := fosite.ErrorToRFC6749Error(err).GetDescription(); !strings.Contains(d, c.hint) {
				t.Fatalf("description %q, want %q", d, c.hint)
			}
			if len(ar.GetGrantedAudience()) != 0 {
				t.Fatal("a refused request granted an audience")
			}
		})
	}
}

func TestJWTBearerPopulate(t *testing.T) {
	now := time.Now()
	idp := newKey(t, jose.EdDSA, "idp-1")
	const iss = "https://idp.example"
	store := &fakeTokens{}
	h := &JWTBearer{
		Trusts: memTrusts{{Issuer: iss, AllowAnySubject: true, JWKS: idp.set(), Scopes: []string{"a"}, Resources: []string{"https://r.example/"}}},
		JTIs:   &memJTIs{}, Keys: &KeySets{}, Audiences: []string{tokenURL},
		Resolver:     Resolver{Resources: fakeResources{{Identifier: "https://r.example/", Scopes: []string{"a"}, Default: true}}},
		AccessTokens: store, AccessTokenStorage: store,
	}
	raw := idp.sign(t, claims(iss, "anyone", now), nil)
	run := func(client fosite.Client) (fosite.AccessResponder, error) {
		ctx := context.Background()
		ar := bearerRequest(raw, client)
		if err := h.HandleTokenEndpointRequest(ctx, ar); err != nil {
			return nil, err
		}
		resp := fosite.NewAccessResponse()
		return resp, h.PopulateTokenEndpointResponse(ctx, ar, resp)
	}
	resp, err := run(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stored even without client authentication, so that introspection answers for it.
	if resp.GetAccessToken() != "token-anyone" || resp.GetTokenType() != "bearer" || len(store.stored) != 1 {
		t.Fatalf("response %v, stored %v", resp.ToMap(), store.stored)
	}
	// The same assertion again passes the checks but is refused when it is used.
	if _, err := run(nil); !errors.Is(err, fosite.ErrInvalidGrant) || !strings.Contains(fosite.ErrorToRFC6749Error(err).GetDescription(), "already been used") {
		t.Fatalf("replay: %v", err)
	}
	ar := bearerRequest(raw, nil)
	// Another grant type is not ours.
	ar.GrantTypes = fosite.Arguments{"client_credentials"}
	if err := h.HandleTokenEndpointRequest(context.Background(), ar); !errors.Is(err, fosite.ErrUnknownRequest) {
		t.Fatalf("other grant: %v", err)
	}
	if err := h.PopulateTokenEndpointResponse(context.Background(), ar, fosite.NewAccessResponse()); !errors.Is(err, fosite.ErrUnknownRequest) {
		t.Fatalf("other grant: %v", err)
	}
}

// memClients is an in-memory storage.ClientStore.
type memClients map[string]*storage.Client

func (m memClients) Client(_ context.Context, id string) (*storage.Client, error) {
	if c, ok := m[id]; ok {
		return c.Clone(), nil
	}
	return nil, storage.ErrNotFound
}
func (m memClients) SaveClient(context.Context, *storage.Client) error { return nil }
func (m memClients) DeleteClient(context.Context, string) error        { return nil }

func TestPrivateKeyJWT(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ck := newKey(t, jose.ES256, "c-1")
	rk := newKey(t, jose.RS256, "c-r")
	clients := memClients{
		"pkj":    {ID: "pkj", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKS: ck.set()},
		"pinned": {ID: "pinned", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "RS256", JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{ck.public(""), rk.public("sig")}}},
		"secret": {ID: "secret", SecretHash: []byte("x"), JWKS: ck.set()},
		"down":   {ID: "down", TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, JWKSURI: "http://127.0.0.1:1/jwks"},
	}
	fallbackCalls := 0
	p := &PrivateKeyJWT{
		Clients: clients, JTIs: &memJTIs{}, Keys: &KeySets{}, Audiences: []string{tokenURL, asIssuer},
		Now: func() time.Time { return now },
		Fallback: func(context.Context, *http.Request, url.Values) (fosite.Client, error) {
			fallbackCalls++
			return nil, fosite.ErrInvalidClient
		},
	}
	cl := func(id string) map[string]any { return claims(id, id, now) }
	form := func(assertion string, kv ...string) url.Values {
		f := url.Values{"client_assertion_type": {ClientAssertionTypeJWTBearer}, "client_assertion": {assertion}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	replayed := ck.sign(t, cl("pkj"), nil)
	cases := []struct {
		name string
		form url.Values
		hdr  string
		want string // client id, or "" for an error
		hint string
		code error // the error; nil means invalid_client
	}{
		{"valid", form(ck.sign(t, cl("pkj"), nil)), "", "pkj", "", nil},
		{"valid with client_id and issuer aud", form(ck.sign(t, with(cl("pkj"), "aud", asIssuer), nil), "client_id", "pkj"), "", "pkj", "", nil},
		{"first use", form(replayed), "", "pkj", "", nil},
		{"replayed", form(replayed), "", "", "already been used", nil},
		{"pinned alg", form(rk.sign(t, cl("pinned"), nil)), "", "pinned", "", nil},
		// Before the signature verifies with the client's key, every failure is the same.
		{"pinned alg, other alg", form(ck.sign(t, cl("pinned"), nil)), "", "", authFailed, nil},
		{"wrong assertion type", form(ck.sign(t, cl("pkj"), nil), "client_assertion_type", "urn:x"), "", "", "client_assertion_type", nil},
		{"no assertion", form(""), "", "", "missing", nil},
		{"iss differs from sub", form(ck.sign(t, with(cl("pkj"), "iss", "other"), nil)), "", "", "iss and sub", nil},
		{"client_id differs", form(ck.sign(t, cl("pkj"), nil), "client_id", "secret"), "", "", "client_id parameter", nil},
		{"unknown client", form(ck.sign(t, cl("ghost"), nil)), "", "", authFailed, nil},
		{"client not registered for private_key_jwt", form(ck.sign(t, cl("secret"), nil)), "", "", authFailed, nil},
		{"signed by another key", form(rk.sign(t, cl("pkj"), nil)), "", "", authFailed, nil},
		// A client's keys that cannot be fetched say no more than an unknown client (no 503,
		// which would tell that the client exists and where its keys live).
		{"client's jwks_uri unreachable", form(ck.sign(t, cl("down"), nil)), "", "", authFailed, nil},
		{"also basic auth", form(ck.sign(t, cl("pkj"), nil)), "Basic cGtqOng=", "", "more than one", fosite.ErrInvalidRequest},
		{"also client_secret", form(ck.sign(t, cl("pkj"), nil), "client_secret", "x"), "", "", "more than one", fosite.ErrInvalidRequest},
		{"no jti", form(ck.sign(t, with(cl("pkj"), "jti", nil), nil)), "", "", "no jti", nil},
		{"too long-lived", form(ck.sign(t, with(cl("pkj"), "exp", now.Add(time.Hour).Unix()), nil)), "", "", "longer than", nil},
		{"wrong aud", form(ck.sign(t, with(cl("pkj"), "aud", "https://evil.example/token"), nil)), "", "", "other than", nil},
		{"expired", form(ck.sign(t, with(cl("pkj"), "exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix()), nil)), "", "", "expired", nil},
		{"garbage", form("garbage"), "", "", "compact JWS", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tokenURL, nil)
			if c.hdr != "" {
				r.Header.Set("Authorization", c.hdr)
			}
			client, err := p.Authenticate(context.Background(), r, c.form)
			if c.want != "" {
				if err != nil || client.GetID() != c.want {
					t.Fatalf("client %v, err %v", client, err)
				}
				return
			}
			code := c.code
			if code == nil {
				code = fosite.ErrInvalidClient
			}
			if !errors.Is(err, code) {
				t.Fatalf("err = %v, want %v", err, code)
			}
			if d := fosite.ErrorToRFC6749Error(err).GetDescription(); !strings.Contains(d, c.hint) {
				t.Fatalf("description %q, want %q", d, c.hint)
			}
		})
	}
	if fallbackCalls != 0 {
		t.Fatalf("fallback called %d times for assertion requests", fallbackCalls)
	}
	if _, err := p.Authenticate(context.Background(), httptest.NewRequest(http.MethodPost, tokenURL, nil), url.Values{"client_id": {"secret"}}); err == nil || fallbackCalls != 1 {
		t.Fatalf("fallback: %v, %d calls", err, fallbackCalls)
	}
}
