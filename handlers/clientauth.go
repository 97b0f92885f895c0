package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
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
// this server (see assertionRules.Audiences); exp is required and exp - iat at most
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
//
// A request uses one authentication method (RFC 6749 §2.3): an Authorization header, a
// client_secret in the body and a client_assertion exclude each other, two Authorization
// headers are refused, and a client_id parameter must name the client of a Basic header. Each
// is invalid_request (RFC 6749 §5.2).
//
// Failures that depend on what the server knows — an unknown client, a client registered for
// another method, a key or signature that does not match — are one generic invalid_client
// ("Client authentication failed."), whatever the method, so that nobody learns from the
// answer whether a client exists or how it authenticates; the reason goes to the error's debug
// text (server side only). A private_key_jwt assertion whose signature verified with the
// client's registered key has proved who sent it, so what is wrong with it after that (expired,
// wrong aud, replayed) is said.
func (p *PrivateKeyJWT) Authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if err := oneMethod(r, form); err != nil {
		return nil, err
	}
	if !hasClientAssertion(form) {
		if p.Fallback == nil {
			return nil, fosite.ErrInvalidClient.WithHint(authFailed)
		}
		c, err := p.Fallback(ctx, r, form)
		if err != nil {
			return nil, generic(err)
		}
		return c, nil
	}
	c, err := p.authenticate(ctx, form)
	if err != nil {
		var (
			ae *AssertionError
			un *unproven
		)
		switch {
		case errors.As(err, &un):
			return nil, fosite.ErrInvalidClient.WithHint(authFailed).WithDebug(un.reason)
		case errors.As(err, &ae):
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

// authFailed is the hint of every client-authentication failure that must not say more.
const authFailed = "Client authentication failed."

// generic turns an invalid_client of fosite's secret authentication into the generic answer,
// keeping the cause in the chain and the original hint as debug text; other errors
// (invalid_request for a malformed header, server errors) pass.
func generic(err error) error {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) || !errors.Is(err, fosite.ErrInvalidClient) {
		return err
	}
	return fosite.ErrInvalidClient.WithWrap(err).WithHint(authFailed).WithDebug(strings.TrimSpace(rfc.HintField + " " + rfc.DebugField))
}

// unproven is a private_key_jwt failure before the assertion's signature verified with a
// registered key: answered generically.
type unproven struct{ reason string }

func (u *unproven) Error() string { return "handlers: client authentication: " + u.reason }

// oneMethod enforces RFC 6749 §2.3: one client authentication method per request.
func oneMethod(r *http.Request, form url.Values) error {
	var header int
	if r != nil {
		header = len(r.Header.Values("Authorization"))
	}
	if header > 1 {
		return fosite.ErrInvalidRequest.WithHint("The request carries more than one Authorization header.")
	}
	_, secret := form["client_secret"]
	methods := header
	if secret {
		methods++
	}
	if hasClientAssertion(form) {
		methods++
	}
	if methods > 1 {
		return fosite.ErrInvalidRequest.WithHint("The request uses more than one client authentication method; RFC 6749 section 2.3 allows one.")
	}
	if header == 1 {
		if user, _, ok := r.BasicAuth(); ok {
			// RFC 6749 §2.3.1: the Basic user name is the form-urlencoded client_id.
			id, err := url.QueryUnescape(user)
			if err != nil {
				return fosite.ErrInvalidRequest.WithHint("The client_id in the Authorization header is not form-urlencoded.")
			}
			if v, ok := form["client_id"]; ok && (len(v) != 1 || v[0] != id) {
				return fosite.ErrInvalidRequest.WithHint("The client_id parameter does not name the client of the Authorization header.")
			}
		}
	}
	return nil
}

// hasClientAssertion reports whether form carries RFC 7523 §2.2 client authentication.
func hasClientAssertion(form url.Values) bool {
	_, a := form["client_assertion"]
	_, t := form["client_assertion_type"]
	return a || t
}

func (p *PrivateKeyJWT) authenticate(ctx context.Context, form url.Values) (*storage.Client, error) {
	// What the request alone shows is said precisely: it reveals nothing about the server.
	switch {
	case form.Get("client_assertion_type") != ClientAssertionTypeJWTBearer:
		return nil, reject("the client_assertion_type must be %s", ClientAssertionTypeJWTBearer)
	case form.Get("client_assertion") == "":
		return nil, reject("the client_assertion parameter is missing")
	}
	a, err := parseAssertion(form.Get("client_assertion"))
	if err != nil {
		return nil, err
	}
	if a.Issuer != a.Subject {
		return nil, reject("the client assertion's iss and sub must both be the client_id")
	}
	if id := form.Get("client_id"); id != "" && id != a.Subject {
		return nil, reject("the client assertion's sub is not the client_id parameter")
	}
	// From here until the signature verifies, a failure depends on what is registered.
	client, err := p.Clients.Client(ctx, a.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &unproven{"the client is not registered"}
	} else if err != nil {
		return nil, err
	}
	if client.GetTokenEndpointAuthMethod() != storage.AuthMethodPrivateKeyJWT {
		return nil, &unproven{"the client is not registered for private_key_jwt authentication"}
	}
	keys, err := p.Keys.forKeys(ctx, client.JWKS, client.JWKSURI)
	var ae *AssertionError
	if errors.As(err, &ae) {
		return nil, &unproven{ae.Reason}
	} else if err != nil {
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
	err = a.verify(ctx, keys, assertionRules{
		Audiences: p.Audiences, Algorithm: client.TokenEndpointAuthSigningAlg, MaxLifetime: maxLife, Leeway: p.Leeway, Now: now(),
	})
	if errors.As(err, &ae) && !a.proven {
		return nil, &unproven{ae.Reason}
	} else if errors.Is(err, verify.ErrKeysUnavailable) {
		return nil, &unproven{"the client's keys cannot be obtained at the moment"}
	} else if err != nil {
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
