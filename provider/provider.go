package provider

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// Provider is an OAuth 2.0 authorization server. It is an http.Handler that serves the paths
// listed by Patterns and answers 404 to everything else. Create it with New; it is safe for
// concurrent use.
type Provider struct {
	cfg      Config
	log      *slog.Logger
	issuer   string
	paths    endpoints
	oauth    *fosite.Fosite
	store    storage.Store
	keys     strategy.KeySource
	resolver handlers.Resolver
	hasher   *SecretHasher
	metadata http.Handler
	jwks     http.Handler
	// tokens mints and checks access tokens.
	tokens *accessTokens
	// bearer is the RFC 7523 grant, whose rules also check token exchanges' JWTs.
	bearer *handlers.JWTBearer
	// fstore is the store as fosite's handlers see it (stateless access tokens get no row).
	fstore *fositeStore
	// retention is how long retired keys stay published; no access token may outlive it.
	retention time.Duration
	// outage logs failures of an unreachable store once per interval (see outageLog).
	outage *outageLog
	// peerMeta caches the token endpoints found in peer authorization servers' metadata.
	peerMeta *peerEndpoints
	// dpop checks the DPoP proofs of token requests.
	dpop *dpop.Checker
	// metrics are the instruments of Config.MeterProvider; nil without one (metrics.go).
	metrics *metrics

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closers   []func() error
}

// endpoints are the absolute paths the provider serves and their URLs.
type endpoints struct {
	token, authorize, introspect, revoke, jwks, wellKnown     string
	tokenURL, authorizeURL, introspectURL, revokeURL, jwksURL string
}

func newEndpoints(iss *url.URL) (endpoints, error) {
	base := strings.TrimSuffix(iss.EscapedPath(), "/")
	abs := func(p string) string { return (&url.URL{Scheme: iss.Scheme, Host: iss.Host, Path: p}).String() }
	wk, err := handlers.WellKnownPath(iss.String())
	if err != nil {
		return endpoints{}, err
	}
	e := endpoints{
		token: base + "/token", authorize: base + "/authorize", introspect: base + "/introspect",
		revoke: base + "/revoke", jwks: base + "/jwks.json", wellKnown: wk,
	}
	e.tokenURL, e.authorizeURL, e.introspectURL = abs(e.token), abs(e.authorize), abs(e.introspect)
	e.revokeURL, e.jwksURL = abs(e.revoke), abs(e.jwks)
	return e, nil
}

// New validates cfg, opens what it needs (storage, keys) and returns a ready Provider. Errors
// name the offending field; New never panics on bad configuration. Call Close when done.
func New(ctx context.Context, cfg Config) (_ *Provider, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	iss, _ := ParseIssuer(cfg.Issuer)
	paths, err := newEndpoints(iss)
	if err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, issuer: cfg.Issuer, paths: paths, peerMeta: &peerEndpoints{}}
	p.outage = newOutageLog(p.log, time.Now, outageLogInterval, outageSettle)
	if p.metrics, err = newMetrics(cfg.MeterProvider); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()

	p.store = cfg.Storage

	p.hasher, err = NewSecretHasher(derive(cfg.Secret, "mandate client-secret hash"))
	if err != nil {
		return nil, err
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	p.keys = cfg.Keys
	p.retention = cfg.Rotation.Retention
	if p.retention == 0 {
		p.retention = strategy.DefaultRetention
	}
	if p.keys == nil {
		rk, err := strategy.NewRotatingKeys(ctx, strategy.RotationConfig{
			Store:       p.store,
			KEK:         derive(cfg.Secret, "mandate key-encryption key"),
			Algorithms:  cfg.SigningAlgorithms,
			Period:      cfg.Rotation.Period,
			Propagation: cfg.Rotation.Propagation,
			Retention:   p.retention,
			Reload:      cfg.Rotation.Reload,
			Now:         cfg.Now,
			OnRotate:    p.keysRotated, // log line, metric, audit event (manage.go)
			OnError: func(err error) {
				if unavailable(err) {
					p.outage.fail(err) // the keys in memory keep signing
					return
				}
				p.log.Error("signing key rotation", "error", err.Error())
			},
		})
		if err != nil {
			return nil, fmt.Errorf("provider: signing keys: %w", err)
		}
		p.keys = rk
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			rk.Run(runCtx)
		}()
	}

	if err := p.compose(); err != nil {
		return nil, err
	}
	if p.dpop, err = p.newDPoP(); err != nil {
		return nil, err
	}
	if cfg.GCInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.collect(runCtx, cfg.GCInterval)
		}()
	}
	p.metadata = handlers.MetadataHandler(func(ctx context.Context) (*handlers.Metadata, error) {
		md, err := p.Metadata(ctx)
		if unavailable(err) {
			p.outage.fail(err) // MetadataHandler answers 503 with Retry-After
		}
		return md, err
	})
	p.jwks = handlers.JWKSHandler(p.keys)
	return p, nil
}

// derive returns a 32-byte key for one purpose from the application's secret (HKDF-SHA-256).
func derive(secret []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil { // HKDF fails only for lengths over 255 hashes; callers reject a nil key
		return nil
	}
	return k
}

// collect deletes expired codes, tokens and JWT IDs every interval until ctx is done.
func (p *Provider) collect(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := p.store.DeleteExpired(ctx, p.cfg.Now(), 0)
			if err != nil && ctx.Err() == nil && unavailable(err) {
				p.outage.fail(err) // the next run collects what this one could not
			} else if err != nil && ctx.Err() == nil {
				p.log.Error("garbage collection", "error", err.Error())
			} else if n > 0 {
				p.log.Debug("garbage collection", "deleted", n)
			}
		}
	}
}

// Patterns returns the paths to mount the provider on, for any router: the endpoints below the
// issuer's path and the RFC 8414 metadata path, which sits before it.
func (p *Provider) Patterns() []string {
	return []string{p.paths.wellKnown, p.paths.token, p.paths.authorize, p.paths.introspect, p.paths.revoke, p.paths.jwks}
}

// Issuer returns the issuer identifier, exactly as configured.
func (p *Provider) Issuer() string { return p.issuer }

// Store returns the storage the provider uses (the embedded one when Config.Storage was nil),
// for registering clients, resource servers and trusts.
func (p *Provider) Store() storage.Store { return p.store }

// Hasher returns the client-secret hasher, for storing the hash of a client's secret.
func (p *Provider) Hasher() *SecretHasher { return p.hasher }

// ServeHTTP routes by absolute path; every request's outcome is logged, measured and, where it
// matters, emitted as an audit event (observe.go).
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.serveObserved(w, r) }

// route routes by absolute path.
func (p *Provider) route(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case p.paths.token:
		p.serveToken(w, r)
	case p.paths.authorize:
		p.serveAuthorize(w, r)
	case p.paths.introspect:
		p.serveIntrospect(w, r)
	case p.paths.revoke:
		p.serveRevoke(w, r)
	case p.paths.jwks:
		p.jwks.ServeHTTP(w, r)
	case p.paths.wellKnown:
		p.metadata.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// Close stops background work and closes what New opened. It is safe to call more than once.
func (p *Provider) Close() error {
	var errs []error
	p.closeOnce.Do(func() {
		if p.stop != nil {
			p.stop()
		}
		p.wg.Wait()
		for i := len(p.closers) - 1; i >= 0; i-- {
			errs = append(errs, p.closers[i]())
		}
	})
	return errors.Join(errs...)
}

// Metadata returns the RFC 8414 metadata document. scopes_supported lists the scopes of every
// registered resource server. Clients authenticate at the token, introspection and revocation
// endpoints with a secret or with private_key_jwt (RFC 7523 §2.2, signed with one of
// verify.DefaultAlgorithms); the jwt-bearer grant (RFC 7523 §2.1) is listed with the others,
// and identity_chaining_requested_token_types_supported says that a token exchange issues access
// tokens and, for a registered peer, JWT authorization grants (draft-ietf-oauth-identity-chaining §3).
func (p *Provider) Metadata(ctx context.Context) (*handlers.Metadata, error) {
	rss, err := p.store.ResourceServers(ctx)
	if err != nil {
		return nil, fmt.Errorf("provider: metadata: %w", err)
	}
	var scopes []string
	for _, rs := range rss {
		for _, s := range rs.Scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	clientAuth := []string{storage.AuthMethodSecretBasic, storage.AuthMethodSecretPost, storage.AuthMethodPrivateKeyJWT}
	var algs []string
	for _, a := range verify.DefaultAlgorithms() {
		algs = append(algs, string(a))
	}
	return &handlers.Metadata{
		Issuer:                            p.issuer,
		AuthorizationEndpoint:             p.paths.authorizeURL,
		TokenEndpoint:                     p.paths.tokenURL,
		JWKSURI:                           p.paths.jwksURL,
		ScopesSupported:                   scopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{"authorization_code", "client_credentials", "refresh_token", handlers.GrantTypeJWTBearer, handlers.GrantTypeTokenExchange},
		TokenEndpointAuthMethodsSupported: slices.Concat(clientAuth, []string{storage.AuthMethodNone}),
		TokenEndpointAuthSigningAlgValuesSupported:         algs,
		RevocationEndpoint:                                 p.paths.revokeURL,
		RevocationEndpointAuthMethodsSupported:             slices.Concat(clientAuth, []string{storage.AuthMethodNone}),
		RevocationEndpointAuthSigningAlgValuesSupported:    algs,
		IntrospectionEndpoint:                              p.paths.introspectURL,
		IntrospectionEndpointAuthMethodsSupported:          clientAuth,
		IntrospectionEndpointAuthSigningAlgValuesSupported: algs,
		CodeChallengeMethodsSupported:                      []string{"S256"},
		IdentityChainingRequestedTokenTypesSupported:       []string{handlers.TokenTypeAccessToken, handlers.TokenTypeJWT},
		DPoPSigningAlgValuesSupported:                      algs,
		IntrospectionSigningAlgValuesSupported:             p.introspectionAlgs(ctx),
	}, nil
}
