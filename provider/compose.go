package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/hmac"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// compose builds fosite's configuration and handler chain. The handlers are constructed
// directly, with their dependencies typed, instead of through compose.Factory, whose unchecked
// interface{} type assertions panic on a missing method: here the compiler checks them.
func (p *Provider) compose() error {
	cfg := p.cfg
	fc := &fosite.Config{
		AccessTokenLifespan:            cfg.AccessTokenTTL,
		RefreshTokenLifespan:           cfg.RefreshTokenTTL,
		AuthorizeCodeLifespan:          cfg.AuthorizeCodeTTL,
		GlobalSecret:                   derive(cfg.Secret, "mandate hmac tokens"),
		TokenURL:                       p.paths.tokenURL,
		AccessTokenIssuer:              p.issuer,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       handlers.ExactAudience,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ClientSecretsHasher:            p.hasher,
		RefreshTokenScopes:             []string{},
		SendDebugMessagesToClients:     false,
		TokenEntropy:                   32,
		MinParameterEntropy:            fosite.MinParameterEntropy,
	}
	hmacStrategy := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc)
	jwt, err := strategy.NewJWT(strategy.JWTConfig{
		Issuer:       p.issuer,
		Keys:         p.keys,
		HMAC:         hmacStrategy,
		ClaimMappers: cfg.ClaimMappers,
		Users:        cfg.Users,
		Now:          cfg.Now,
	})
	if err != nil {
		return err
	}
	tokens := &accessTokens{JWT: jwt, defaultTTL: cfg.AccessTokenTTL}
	if _, rotating := p.keys.(*strategy.RotatingKeys); rotating {
		tokens.ensure = p.ensureKey
	}
	store := &fositeStore{TokenStore: p.store, clients: p.store, stateless: cfg.StatelessAccessTokens}
	p.tokens, p.fstore = tokens, store

	explicit := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy: tokens, RefreshTokenStrategy: tokens, AuthorizeCodeStrategy: tokens,
		CoreStorage: store, TokenRevocationStorage: store, Config: fc,
	}
	refresh := &oauth2.RefreshTokenGrantHandler{
		AccessTokenStrategy: tokens, RefreshTokenStrategy: tokens, TokenRevocationStorage: store, Config: fc,
	}
	// fosite's PKCE handler deletes the code's PKCE record while it checks the verifier, before
	// the code exchange's transaction begins (so that a wrong verifier spends it). A store that
	// becomes unreachable after that point fails the exchange with 503 and leaves the code
	// unused but without its PKCE record: the retry is invalid_grant, and the client starts a
	// new authorization (TestCodeWithPKCEStoreDown). Codes without PKCE, and refresh tokens,
	// change only inside their transaction and can be retried.
	pkceHandler := &pkce.Handler{AuthorizeCodeStrategy: tokens, Storage: store, Config: fc}
	// RFC 7523: assertions name this server by its token endpoint URL (golang.org/x/oauth2/jwt's
	// default) or its issuer identifier (rfc7523bis).
	keySets := &handlers.KeySets{Config: verify.KeySetConfig{Logger: p.log, Now: cfg.Now}}
	audiences := []string{p.paths.tokenURL, p.issuer}
	p.resolver = handlers.Resolver{Resources: p.store}
	bearer := &handlers.JWTBearer{
		Trusts: p.store, JTIs: p.store, Keys: keySets, Audiences: audiences, Resolver: p.resolver,
		AccessTokens: tokens, AccessTokenStorage: store,
		Subjects: cfg.SubjectMapper, RequireClientAuth: cfg.JWTBearerRequireClientAuth, MaxLifetime: cfg.MaxAssertionLifetime,
		Leeway: cfg.AssertionLeeway, Now: cfg.Now, MaxDelegationDepth: cfg.MaxDelegationDepth,
	}
	p.bearer = bearer
	fc.AuthorizeEndpointHandlers = fosite.AuthorizeEndpointHandlers{explicit, pkceHandler}
	fc.TokenEndpointHandlers = fosite.TokenEndpointHandlers{
		// client_credentials, jwt-bearer and token exchange never reach fosite (credentials.go,
		// exchange.go).
		onlyOwnGrant{explicit}, onlyOwnGrant{refresh}, onlyOwnGrant{pkceHandler},
	}
	fc.TokenIntrospectionHandlers = fosite.TokenIntrospectionHandlers{
		&oauth2.CoreValidator{CoreStrategy: tokens, CoreStorage: store, Config: fc},
	}
	fc.RevocationHandlers = fosite.RevocationHandlers{
		&oauth2.TokenRevocationHandler{TokenRevocationStorage: store, RefreshTokenStrategy: tokens, AccessTokenStrategy: tokens},
	}
	p.oauth = &fosite.Fosite{Store: store, Config: fc}
	clientAuth := &handlers.PrivateKeyJWT{
		Clients: p.store, JTIs: p.store, Keys: keySets, Audiences: audiences,
		MaxLifetime: cfg.MaxClientAssertionLifetime, Leeway: cfg.AssertionLeeway, Now: cfg.Now,
		Fallback: p.oauth.DefaultClientAuthenticationStrategy,
	}
	fc.ClientAuthenticationStrategy = authOnce(clientAuth.Authenticate)
	return nil
}

// onlyOwnGrant runs a fosite token handler's response step only for the grant it handles.
// fosite calls every handler's PopulateTokenEndpointResponse on every token request, and each
// handler that does not own the grant answers with a fresh ErrUnknownRequest carrying a stack
// trace: a few microseconds per handler per token, spent on nothing.
type onlyOwnGrant struct{ fosite.TokenEndpointHandler }

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (h onlyOwnGrant) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, req, resp)
}

// clientAuthMemo keeps the outcome of one request's client authentication: the token endpoint
// authenticates before fosite does (fosite ignores the errors of a grant that may skip client
// authentication), and a private_key_jwt assertion must not be used twice by one request.
type clientAuthMemo struct {
	done   bool
	client fosite.Client
	err    error
}

type clientAuthKey struct{}

// withClientAuthMemo returns a context in which the client is authenticated at most once.
func withClientAuthMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, clientAuthKey{}, &clientAuthMemo{})
}

// authOnce wraps a client authentication strategy with the per-request memo, when the context
// has one.
func authOnce(auth fosite.ClientAuthenticationStrategy) fosite.ClientAuthenticationStrategy {
	return func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		m, ok := ctx.Value(clientAuthKey{}).(*clientAuthMemo)
		if !ok {
			return auth(ctx, r, form)
		}
		if !m.done {
			m.client, m.err = auth(ctx, r, form)
			m.done = true
		}
		return m.client, m.err
	}
}

// tokenTarget is the resource funnel's decision for one token request.
type tokenTarget struct {
	rs *storage.ResourceServer
	// scopes are the token's scopes when the funnel decided them (client_credentials); nil
	// means "the grant's scopes that rs accepts", computed when the token is minted, because
	// fosite grants the code's scopes only then.
	scopes []string
	// act and notAfter come from a token exchange: the act claim, and the subject token's
	// expiry, which the new token may not outlive.
	act      *strategy.Actor
	notAfter time.Time
	// jkt is the thumbprint of the DPoP key the token is bound to; empty for a bearer token.
	jkt string
	// ttl is the access token's lifetime (exp - iat), set when it is minted.
	ttl time.Duration
}

// accessTokens is the strategy fosite's handlers see: strategy.JWT, with the resource funnel's
// decision turned into the token's policy.
type accessTokens struct {
	*strategy.JWT
	defaultTTL time.Duration
	// ensure creates a key for an algorithm (Provider.ensureKey); nil with fixed keys.
	ensure func(ctx context.Context, alg string) error
}

var _ oauth2.CoreStrategy = (*accessTokens)(nil)

// errNoTarget means an access token was requested outside the token endpoint's funnel; it
// cannot happen through the provider's own routes.
var errNoTarget = errors.New("provider: access token requested without a resolved resource")

// GenerateAccessToken implements oauth2.AccessTokenStrategy, for fosite's grant handlers: the
// funnel's decision comes in the context.
func (a *accessTokens) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	t, ok := ctx.Value(targetKey{}).(*tokenTarget)
	if !ok || t.rs == nil {
		return "", "", errNoTarget
	}
	m, err := a.mint(ctx, req, t)
	return m.Token, m.Signature, err
}

// mint mints the access token t describes for req, and records its lifetime in t.
func (a *accessTokens) mint(ctx context.Context, req fosite.Requester, t *tokenTarget) (strategy.Minted, error) {
	scopes := t.scopes
	if scopes == nil {
		scopes = intersect(req.GetGrantedScopes(), t.rs.Scopes)
		t.scopes = scopes // for the token response's scope member
	}
	ttl := t.rs.AccessTokenTTL
	if ttl <= 0 {
		ttl = a.defaultTTL
	}
	policy := strategy.Policy{
		Audience:   t.rs.Identifier,
		Scopes:     scopes,
		TTL:        ttl,
		SigningAlg: t.rs.SigningAlg,
		Encryption: t.rs.Encryption,
		Act:        t.act,
		NotAfter:   t.notAfter,
		JKT:        t.jkt,
	}
	m, err := a.JWT.Mint(ctx, req, policy)
	if errors.Is(err, strategy.ErrNoSigningKey) && a.ensure != nil {
		// A resource server saved with an algorithm no key signs with yet (through Store(),
		// not Apply): the built-in keys create one, once.
		if eerr := a.ensure(ctx, t.rs.SigningAlg); eerr != nil {
			return m, errors.Join(err, eerr)
		}
		m, err = a.JWT.Mint(ctx, req, policy)
	}
	if err != nil {
		return m, err
	}
	t.ttl = m.ExpiresAt.Sub(m.IssuedAt)
	noteMinted(ctx, req, t, m) // for the request's log line, event and metrics (observe.go)
	return m, nil
}

// fositeStore adapts storage.Store to fosite.Storage: clients come from the ClientStore.
type fositeStore struct {
	storage.TokenStore
	clients storage.ClientStore
	// stateless: access tokens get no row (Config.StatelessAccessTokens).
	stateless bool
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage; with stateless access tokens
// it writes nothing: the token is its own record.
func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	if s.stateless {
		return nil
	}
	return s.TokenStore.CreateAccessTokenSession(ctx, signature, req)
}

var (
	_ fosite.Storage                = (*fositeStore)(nil)
	_ oauth2.CoreStorage            = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage       = (*fositeStore)(nil)
)

// GetClient implements fosite.ClientManager.
func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.clients.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// errFositeAssertion: fosite's own client-assertion path is never taken (handlers.PrivateKeyJWT
// authenticates every request that carries a client assertion before fosite's strategy could).
var errFositeAssertion = errors.New("provider: fosite's client-assertion path is not used")

// ClientAssertionJWTValid implements fosite.ClientManager. It is never called (see
// errFositeAssertion) and refuses, should that ever change.
func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error {
	return errFositeAssertion
}

// SetClientAssertionJWT implements fosite.ClientManager. It is never called and refuses.
func (s *fositeStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errFositeAssertion
}
