package handlers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// clientManager is the fosite.ClientManager a fosite server needs, over mandate's ClientStore.
type clientManager struct{ *gormstore.Store }

func (m clientManager) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := m.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// fosite's own client-assertion path is never taken: PrivateKeyJWT authenticates assertions.
func (clientManager) ClientAssertionJWTValid(context.Context, string) error {
	return fosite.ErrJTIKnown
}
func (clientManager) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return fosite.ErrJTIKnown
}

// Example_fosite composes mandate's pieces into a plain fosite server, without the provider
// package: the RFC 9068 access-token strategy with the RFC 8707 audience mapper
// (ResourceIndicators + ResourcePolicy), private_key_jwt client authentication, the RFC 7523
// grant, and RFC 8414 metadata with the JWKS. A resource server then validates the token on its
// own with strategy/verify.
func Example_fosite() {
	ctx := context.Background()
	store, err := gormstore.Open(ctx, "sqlite::memory:")
	if err != nil {
		panic(err)
	}
	defer store.Close()
	orders := "https://orders.example.com/"
	_ = store.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: orders, Scopes: []string{"orders:read"},
		AccessTokenTTL: 5 * time.Minute, SigningAlg: "ES256", Default: true})
	hash, _ := bcrypt.GenerateFromPassword([]byte("billing-secret"), bcrypt.MinCost) // fosite's default hasher
	_ = store.SaveClient(ctx, &storage.Client{ID: "billing", SecretHash: hash, GrantTypes: []string{"client_credentials"},
		Scopes: []string{"orders:read"}, Resources: []string{orders}})

	srv := httptest.NewServer(nil)
	defer srv.Close()
	issuer := srv.URL
	h, err := newFositeServer(store, issuer)
	if err != nil {
		panic(err)
	}
	srv.Config.Handler = h
	tokenURL := issuer + "/token"

	// Service A asks for a token for the orders service...
	cc := clientcredentials.Config{ClientID: "billing", ClientSecret: "billing-secret", TokenURL: tokenURL,
		Scopes: []string{"orders:read"}, EndpointParams: url.Values{"resource": {orders}}}
	tok, err := cc.Token(ctx)
	if err != nil {
		panic(err)
	}
	// ...which validates it on its own, from the published metadata and keys.
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: orders})
	if err != nil {
		panic(err)
	}
	claims, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Subject, claims.ClientID, claims.Audience, claims.Scope)
	// Output: billing billing [https://orders.example.com/] orders:read
}

// newFositeServer is a plain fosite server made of mandate's pieces, on store, for issuer: the
// token endpoint at /token, the JWKS at /jwks.json and the RFC 8414 metadata.
func newFositeServer(store *gormstore.Store, issuer string) (http.Handler, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := strategy.NewSigningKey("key-1", jose.ES256, priv)
	if err != nil {
		return nil, err
	}
	keys, err := strategy.StaticKeys(key)
	if err != nil {
		return nil, err
	}
	fc := &fosite.Config{
		AccessTokenLifespan: 10 * time.Minute, TokenURL: issuer + "/token", GlobalSecret: make([]byte, 32),
		ScopeStrategy: fosite.ExactScopeStrategy, AudienceMatchingStrategy: handlers.ExactAudience,
	}
	resolver := handlers.Resolver{Resources: store}
	tokens, err := strategy.NewJWT(strategy.JWTConfig{
		Issuer: issuer, Keys: keys, HMAC: oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc),
		Policies: handlers.ResourcePolicy{Resources: store, DefaultTTL: fc.AccessTokenLifespan},
	})
	if err != nil {
		return nil, err
	}
	keySets := &handlers.KeySets{}
	audiences := []string{fc.TokenURL, issuer}
	fc.TokenEndpointHandlers = fosite.TokenEndpointHandlers{
		&oauth2.ClientCredentialsGrantHandler{
			HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: tokens, AccessTokenStorage: store, Config: fc}, Config: fc,
		},
		handlers.ResourceIndicators{Resolver: resolver}, // after the grant handler: it narrows what that granted
		&handlers.JWTBearer{Trusts: store, JTIs: store, Keys: keySets, Audiences: audiences,
			Resolver: resolver, AccessTokens: tokens, AccessTokenStorage: store},
	}
	f := &fosite.Fosite{Store: clientManager{store}, Config: fc}
	fc.ClientAuthenticationStrategy = (&handlers.PrivateKeyJWT{Clients: store, JTIs: store, Keys: keySets,
		Audiences: audiences, Fallback: f.DefaultClientAuthenticationStrategy}).Authenticate

	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		ar, err := f.NewAccessRequest(r.Context(), r, &storage.Session{})
		if err != nil {
			f.WriteAccessError(r.Context(), w, ar, err)
			return
		}
		resp, err := f.NewAccessResponse(r.Context(), ar)
		if err != nil {
			f.WriteAccessError(r.Context(), w, ar, err)
			return
		}
		f.WriteAccessResponse(r.Context(), w, ar, resp)
	})
	mux.Handle("GET /jwks.json", handlers.JWKSHandler(keys))
	wellKnown, err := handlers.WellKnownPath(issuer)
	if err != nil {
		return nil, err
	}
	mux.Handle("GET "+wellKnown, handlers.MetadataHandler(func(context.Context) (*handlers.Metadata, error) {
		return &handlers.Metadata{Issuer: issuer, TokenEndpoint: fc.TokenURL, JWKSURI: issuer + "/jwks.json",
			ResponseTypesSupported: []string{"code"}, GrantTypesSupported: []string{"client_credentials", handlers.GrantTypeJWTBearer},
			TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "private_key_jwt"}}, nil
	}))
	return mux, nil
}
