package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Config configures a Provider. The zero value of every optional field is a documented,
// safe default; New validates the rest and returns an error (it never panics).
type Config struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414 §2): an https URL
	// without query or fragment (http only for loopback hosts), whose path needs no
	// percent-encoding. Endpoints live below its path.
	// Required.
	Issuer string

	// Secret is the application's master secret, at least 32 random bytes. mandate derives
	// from it the key that encrypts stored signing keys, the key of client-secret hashes and
	// the HMAC key of authorization codes and refresh tokens. Changing it invalidates all
	// three. Required.
	Secret []byte

	// Storage persists clients, resource servers, tokens, keys, trusts, peers and JWT IDs.
	// Required: the embedded default is gormstore.Open(ctx, "sqlite:"+path) (a file of SQLite,
	// pure Go), PostgreSQL and MySQL/MariaDB are a DSN away, and any other storage.Store plugs
	// in. The provider does not close it. Taking it from the application keeps the provider
	// free of gorm and database drivers: a program links the stores it uses, no others.
	Storage storage.Store

	// Keys signs access tokens. If nil, keys are generated, rotated and kept in Storage
	// (encrypted under a key derived from Secret), using SigningAlgorithms and Rotation.
	Keys strategy.KeySource

	// SigningAlgorithms lists the JWS algorithms keys are kept for when Keys is nil; the first
	// is the default for resource servers that name none. Default ["RS256"] (RFC 9068 §2.1
	// makes RS256 the one every resource server supports). Allowed: RS256, PS256, ES256,
	// ES384, EdDSA.
	SigningAlgorithms []string

	// Rotation tunes key rotation when Keys is nil. Zero fields take strategy's defaults.
	Rotation Rotation

	// ClaimMappers add application claims (roles, groups, entitlements, tenant …) to access
	// tokens, in order. A mapper that sets a registered claim fails the request.
	ClaimMappers []strategy.ClaimMapper

	// Users loads the application's user for a subject, for claim mappers
	// (strategy.TokenRequest.User). Optional.
	Users strategy.Users

	// SubjectMapper, when set, decides the subject of a token granted for a JWT from a trusted
	// issuer — a jwt-bearer assertion or a token exchange's subject token — linking another
	// trust domain's subject to the application's own, or refusing it
	// (handlers.ErrUnknownSubject). Without it the token's sub is the JWT's.
	SubjectMapper handlers.SubjectMapper

	// Authenticator tells who is logged in at the authorization endpoint. If nil, the
	// authorization endpoint answers every request with login_required: only grants without a
	// user (client_credentials, jwt-bearer) work.
	Authenticator Authenticator

	// Consenter decides which scopes a user grants. If nil, every requested scope the client
	// and resource servers allow is granted (first-party use).
	Consenter Consenter

	// StatelessAccessTokens stops persisting access tokens: no row per token, so issuance
	// costs little more than the signature. Introspection validates a signed token itself
	// either way; without its row, revoking an access token records its jti in a deny list
	// (JTIStore) that introspection consults until the token expires. What is lost: revoking a refresh token or detecting its
	// reuse cannot reach the access tokens already issued from it (they stay valid until they
	// expire, as they do anyway at resource servers that validate locally). Default false:
	// every access token is persisted.
	StatelessAccessTokens bool

	// JWTBearerRequireClientAuth makes client authentication mandatory for the RFC 7523 §2.1
	// jwt-bearer grant. By default it is optional: the signed assertion authenticates the party,
	// and the token's client_id is then the assertion's issuer. Credentials that are presented
	// must be valid either way (a bad one is invalid_client).
	JWTBearerRequireClientAuth bool
	// AssertionLeeway absorbs clock skew in the exp, nbf, iat and lifetime checks of RFC 7523
	// assertions (jwt-bearer grants and private_key_jwt). Default 30 seconds; at most 5 minutes.
	AssertionLeeway time.Duration
	// MaxAssertionLifetime bounds exp - iat of jwt-bearer assertions whose trust sets no
	// max_assertion_lifetime. Default 1 hour (golang.org/x/oauth2/jwt's lifetime).
	MaxAssertionLifetime time.Duration
	// MaxClientAssertionLifetime bounds exp - iat of private_key_jwt client assertions.
	// Default 10 minutes.
	MaxClientAssertionLifetime time.Duration

	// MaxDelegationDepth bounds the act chain of a token minted by an RFC 8693 token exchange:
	// how many actors it may name (the acting party and those nested inside). Default
	// DefaultMaxDelegationDepth (4); at most 32.
	MaxDelegationDepth int
	// ExchangePolicy, if set, decides each token exchange that mandate's own rules accept
	// and may narrow its scopes. Optional: the rules hold without it.
	ExchangePolicy ExchangePolicy

	// DPoPNonces makes the token endpoint require its nonce in DPoP proofs (RFC 9449 §8): a
	// proof without the current one is answered use_dpop_nonce, with the nonce in a DPoP-Nonce
	// header. Nonces are stateless — a time window under an HMAC keyed from Secret — so every
	// instance with the same Secret issues and accepts the same ones, and none is stored.
	// Default off: a proof's freshness rests on its iat and single-use jti.
	DPoPNonces bool
	// DPoPNoncePeriod is how often the nonce changes; a nonce is accepted for one to two
	// periods. Default 5 minutes.
	DPoPNoncePeriod time.Duration

	// AccessTokenTTL is the access-token lifetime for resource servers that set none.
	// Default 10 minutes.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh-token lifetime. Default 30 days.
	RefreshTokenTTL time.Duration
	// AuthorizeCodeTTL is the authorization-code lifetime. Default 1 minute.
	AuthorizeCodeTTL time.Duration

	// GCInterval is how often expired codes, tokens and JWT IDs are deleted from Storage.
	// Default 10 minutes; negative disables it (the application calls DeleteExpired itself).
	GCInterval time.Duration

	// MaxBodyBytes bounds request bodies at every endpoint. Default 64 KiB.
	MaxBodyBytes int64

	// Logger receives operational messages (never secrets or tokens): server errors with their
	// cause, outages. Default slog.Default(), the application's own default logger.
	Logger *slog.Logger

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// ---- Operations: audit events and metrics (observe.go, events.go, metrics.go) ----

	// Events receives an audit event for every outcome that matters (tokens issued and
	// exchanged, introspections, revocations, failed client authentications, key rotations,
	// setups applied, admin changes), synchronously: see [Events]. Nil: none.
	Events Events
	// MeterProvider receives the provider's metrics (requests counted with their latency by
	// endpoint and outcome, tokens by grant and resource, key rotations, storage errors; see the
	// Metric* names), on the OpenTelemetry metric API: the application picks the exporter.
	// Nil: no metrics, and nothing is measured.
	MeterProvider metric.MeterProvider
}

// Rotation tunes the built-in key rotation (see strategy.RotationConfig).
type Rotation struct {
	// Period is how long a key signs before its successor takes over.
	Period time.Duration
	// Propagation is how long a next key is published before it signs; it must cover the
	// resource servers' JWKS cache lifetime, and New refuses less than the max-age the JWKS
	// endpoint sends (handlers.JWKSMaxAge, 5 minutes).
	Propagation time.Duration
	// Retention is how long a retired key stays published (default 24h). Every access-token
	// lifetime must fit in it: New and Apply refuse longer ones.
	Retention time.Duration
	// Reload is how often this instance re-reads the key set from Storage and rotates it when a
	// transition is due (default strategy.DefaultReload, 1 minute). With several instances the
	// first to find a transition due commits it; a store that reports changes
	// (storage.KeyWatcher: gormstore within its change-poll interval, on PostgreSQL at once)
	// makes the others publish the new set without waiting for their own reload.
	Reload time.Duration
}

// Authentication is what an Authenticator knows about the logged-in user.
type Authentication struct {
	// Subject is the user's stable identifier; it becomes the token's sub. Required.
	Subject string
	// AuthTime, ACR and AMR describe the authentication event (RFC 9068 §2.2.1); optional.
	AuthTime time.Time
	ACR      string
	AMR      []string
	// Extra is copied into the session for claim mappers (strategy.TokenRequest.Extra).
	Extra map[string]any
}

// Authenticator is the application's login, consulted at the authorization endpoint.
type Authenticator interface {
	// Authenticate returns the logged-in user. When nobody is logged in it answers the request
	// itself — typically with a redirect to the application's login page that comes back to
	// r.URL — and returns ok false.
	Authenticate(w http.ResponseWriter, r *http.Request) (a *Authentication, ok bool)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(w http.ResponseWriter, r *http.Request) (*Authentication, bool)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(w http.ResponseWriter, r *http.Request) (*Authentication, bool) {
	return f(w, r)
}

// ConsentRequest describes what a client asks a user for.
type ConsentRequest struct {
	ClientID  string
	Subject   string
	Scopes    []string
	Resources []string
}

// Consenter asks the user which scopes to grant.
type Consenter interface {
	// Consent returns the scopes the user grants (a subset of req.Scopes). When the user has
	// not decided yet it answers the request itself (a consent page) and returns ok false.
	Consent(w http.ResponseWriter, r *http.Request, req ConsentRequest) (granted []string, ok bool)
}

// ConsenterFunc adapts a function to Consenter.
type ConsenterFunc func(w http.ResponseWriter, r *http.Request, req ConsentRequest) ([]string, bool)

// Consent implements Consenter.
func (f ConsenterFunc) Consent(w http.ResponseWriter, r *http.Request, req ConsentRequest) ([]string, bool) {
	return f(w, r, req)
}

// withDefaults returns a copy of c with defaults applied.
func (c Config) withDefaults() Config {
	if len(c.SigningAlgorithms) == 0 {
		c.SigningAlgorithms = []string{"RS256"}
	}
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = 10 * time.Minute
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = 30 * 24 * time.Hour
	}
	if c.AuthorizeCodeTTL == 0 {
		c.AuthorizeCodeTTL = time.Minute
	}
	if c.AssertionLeeway == 0 {
		c.AssertionLeeway = handlers.DefaultAssertionLeeway
	}
	if c.MaxAssertionLifetime == 0 {
		c.MaxAssertionLifetime = handlers.DefaultGrantAssertionLifetime
	}
	if c.MaxClientAssertionLifetime == 0 {
		c.MaxClientAssertionLifetime = handlers.DefaultClientAssertionLifetime
	}
	if c.MaxDelegationDepth == 0 {
		c.MaxDelegationDepth = DefaultMaxDelegationDepth
	}
	if c.GCInterval == 0 {
		c.GCInterval = 10 * time.Minute
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate checks a defaulted Config.
func (c Config) validate() error {
	var errs []error
	if _, err := ParseIssuer(c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if c.Storage == nil {
		errs = append(errs, errors.New(`provider: Storage is required: gormstore.Open(ctx, "sqlite:"+path) is the embedded SQLite store, or give a postgres:// or mysql:// DSN`))
	}
	if len(c.Secret) < 32 {
		errs = append(errs, errors.New("provider: Secret must be at least 32 bytes"))
	}
	for _, alg := range c.SigningAlgorithms {
		if !supportedAlg(alg) {
			errs = append(errs, fmt.Errorf("provider: SigningAlgorithms: %q is not supported (%s)", alg, verify.AlgorithmNames()))
		}
	}
	for name, d := range map[string]time.Duration{"AccessTokenTTL": c.AccessTokenTTL, "RefreshTokenTTL": c.RefreshTokenTTL, "AuthorizeCodeTTL": c.AuthorizeCodeTTL} {
		if d < time.Second {
			errs = append(errs, fmt.Errorf("provider: %s must be at least one second", name))
		}
	}
	if c.Rotation.Propagation > 0 && c.Rotation.Propagation < handlers.JWKSMaxAge {
		errs = append(errs, fmt.Errorf("provider: Rotation.Propagation must be at least %s, the JWKS cache lifetime, or resource servers meet a new key before they can know it", handlers.JWKSMaxAge))
	}
	if c.Rotation.Retention != 0 && c.Rotation.Retention < c.AccessTokenTTL {
		errs = append(errs, errors.New("provider: Rotation.Retention must be at least AccessTokenTTL, or retired keys vanish before their tokens expire"))
	}
	if c.AssertionLeeway < 0 || c.AssertionLeeway > 5*time.Minute {
		errs = append(errs, errors.New("provider: AssertionLeeway must be between 0 and 5 minutes"))
	}
	for name, d := range map[string]time.Duration{"MaxAssertionLifetime": c.MaxAssertionLifetime, "MaxClientAssertionLifetime": c.MaxClientAssertionLifetime} {
		if d < time.Second || d > 24*time.Hour {
			errs = append(errs, fmt.Errorf("provider: %s must be between 1s and 24h", name))
		}
	}
	if c.MaxDelegationDepth < 1 || c.MaxDelegationDepth > maxActorDepth {
		errs = append(errs, fmt.Errorf("provider: MaxDelegationDepth must be between 1 and %d", maxActorDepth))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("provider: MaxBodyBytes must be at least 1024"))
	}
	// An interface holding a nil pointer (or a nil func adapter) is not nil: it would pass the
	// "nil means default" checks and panic on first use.
	for name, v := range map[string]any{"Storage": c.Storage, "Keys": c.Keys, "Users": c.Users, "Authenticator": c.Authenticator, "Consenter": c.Consenter, "ExchangePolicy": c.ExchangePolicy} {
		if isNilValue(v) {
			errs = append(errs, fmt.Errorf("provider: %s holds a nil %T; leave the field unset instead", name, v))
		}
	}
	for i, m := range c.ClaimMappers {
		if m == nil || isNilValue(m) {
			errs = append(errs, fmt.Errorf("provider: ClaimMappers[%d] is nil", i))
		}
	}
	return errors.Join(errs...)
}

// isNilValue reports whether v is a non-nil interface value that holds a nil pointer, map,
// slice, func, channel or interface.
func isNilValue(v any) bool {
	if v == nil {
		return false
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// ParseIssuer checks an issuer identifier (RFC 8414 §2): an absolute https URL with a host,
// without query, fragment or user info, whose path needs no percent-encoding; http is accepted
// for loopback hosts only (development and tests). A trailing slash is kept: the issuer is
// compared exactly everywhere.
func ParseIssuer(issuer string) (*url.URL, error) {
	u, err := url.Parse(issuer)
	switch {
	case issuer == "":
		return nil, errors.New("provider: Issuer is required")
	case err != nil:
		return nil, fmt.Errorf("provider: Issuer: %w", err)
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		return nil, fmt.Errorf("provider: Issuer %q must be an https URL (http only for loopback hosts)", issuer)
	case u.Hostname() == "" || u.User != nil:
		return nil, fmt.Errorf("provider: Issuer %q must name a host and no user info", issuer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return nil, fmt.Errorf("provider: Issuer %q must not have a query or fragment", issuer)
	case u.EscapedPath() != u.Path:
		// A percent-encoded path is matched decoded by some routers (net/http.ServeMux, chi)
		// and would have to be pattern-escaped for others; one spelling keeps the issuer
		// exact, the endpoints routable and the metadata URLs right.
		return nil, fmt.Errorf("provider: Issuer %q: the path must not need percent-encoding (letters, digits, - . _ ~ and /)", issuer)
	}
	return u, nil
}

// supportedAlg reports the JWS algorithms mandate signs access tokens with ([strategy.Supported]).
func supportedAlg(alg string) bool { return strategy.Supported(alg) }

// isLoopback is the one loopback rule ([strict.LoopbackHost]).
func isLoopback(host string) bool { return strict.LoopbackHost(host) }

// contextKey types keep the provider's context values private.
type targetKey struct{}

func withTarget(ctx context.Context, t *tokenTarget) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}
