package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// ClientAssertionTypeJWTBearer is the RFC 7523 §2.2 client_assertion_type.
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// PrivateKeyJWT is client authentication with RFC 7523 §2.2 assertions (private_key_jwt), as
// a fosite.ClientAuthenticationStrategy ([PrivateKeyJWT.Authenticate]). fosite's built-in
// version rejects EdDSA and keys without "use"; this one accepts RS256, PS256, ES256, ES384
// and EdDSA, keys whose use is "sig" or absent (never "enc"), and uses the jti with one atomic
// store operation.
//
// A request that carries client_assertion or client_assertion_type is authenticated here and
// nowhere else: iss and sub must both be the client_id (and equal the client_id parameter if
// one is sent); the client must be registered with token_endpoint_auth_method private_key_jwt
// and, if it registered token_endpoint_auth_signing_alg, sign with that algorithm; aud must name
// this server (see [AssertionRules.Audiences]); exp is required and exp - iat at most
// MaxLifetime; jti is required and single-use. Any failure is invalid_client (RFC 7523 §3.2).
// Other requests go to Fallback (fosite's DefaultClientAuthenticationStrategy).
//
// See https://www.rfc-editor.org/rfc/rfc7523#section-2.2.
type PrivateKeyJWT struct {
	// Clients finds registered clients.
	Clients storage.ClientStore
	// JTIs records used assertions.
	JTIs storage.JTIStore
	// Keys provides the clients' keys.
	Keys *KeySets
	// Audiences are the aud values naming this server (token endpoint URL, issuer).
	Audiences []string
	// MaxLifetime bounds exp - iat; zero means [DefaultClientAssertionLifetime].
	MaxLifetime time.Duration
	// Leeway absorbs clock skew; zero means [DefaultAssertionLeeway].
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Fallback authenticates requests without a client assertion. Required.
	Fallback fosite.ClientAuthenticationStrategy
}

// Authenticate implements fosite.ClientAuthenticationStrategy.
func (p *PrivateKeyJWT) Authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if !HasClientAssertion(form) {
		if p.Fallback == nil {
			return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.")
		}
		return p.Fallback(ctx, r, form)
	}
	c, err := p.authenticate(ctx, r, form)
	if err != nil {
		var ae *AssertionError
		if errors.As(err, &ae) {
			return nil, fosite.ErrInvalidClient.WithHint(sentence(ae.Reason))
		}
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) {
			return nil, err
		}
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return c, nil
}

// HasClientAssertion reports whether form carries RFC 7523 §2.2 client authentication.
func HasClientAssertion(form url.Values) bool {
	_, a := form["client_assertion"]
	_, t := form["client_assertion_type"]
	return a || t
}

func (p *PrivateKeyJWT) authenticate(ctx context.Context, r *http.Request, form url.Values) (*storage.Client, error) {
	switch {
	case form.Get("client_assertion_type") != ClientAssertionTypeJWTBearer:
		return nil, reject("the client_assertion_type must be %s", ClientAssertionTypeJWTBearer)
	case form.Get("client_assertion") == "":
		return nil, reject("the client_assertion parameter is missing")
	case form.Get("client_secret") != "" || r != nil && r.Header.Get("Authorization") != "":
		// RFC 6749 §2.3: one authentication method per request.
		return nil, reject("the request uses more than one client authentication method")
	}
	a, err := ParseAssertion(form.Get("client_assertion"))
	if err != nil {
		return nil, err
	}
	if a.Issuer != a.Subject {
		return nil, reject("the client assertion's iss and sub must both be the client_id")
	}
	if id := form.Get("client_id"); id != "" && id != a.Subject {
		return nil, reject("the client assertion's sub is not the client_id parameter")
	}
	client, err := p.Clients.Client(ctx, a.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, reject("the client is not registered")
	} else if err != nil {
		return nil, err
	}
	if client.GetTokenEndpointAuthMethod() != storage.AuthMethodPrivateKeyJWT {
		return nil, reject("the client is not registered for private_key_jwt authentication")
	}
	keys, err := p.Keys.For(ctx, client.JWKS, client.JWKSURI)
	if err != nil {
		return nil, err
	}
	maxLife := p.MaxLifetime
	if maxLife <= 0 {
		maxLife = DefaultClientAssertionLifetime
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if err := a.Verify(ctx, keys, AssertionRules{
		Audiences: p.Audiences, Algorithm: client.TokenEndpointAuthSigningAlg, MaxLifetime: maxLife, Leeway: p.Leeway, Now: now(),
	}); err != nil {
		return nil, err
	}
	// The jti is recorded here, before the grant writes anything: if the store becomes
	// unreachable after this, the request fails with 503 and the client assertion is spent.
	// The client signs a new one for its retry, as it does for every request.
	if err := UseAssertion(ctx, p.JTIs, "client-assertion", a, p.Leeway); err != nil {
		return nil, err
	}
	return client, nil
}
