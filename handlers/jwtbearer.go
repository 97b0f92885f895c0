package handlers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// GrantTypeJWTBearer is the RFC 7523 §2.1 grant type.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// GrantAssertionNamespace is the [UseAssertion] namespace of JWTs from trusted issuers, whether
// presented as a jwt-bearer assertion or as a token exchange's subject or actor token: one JWT
// is used once, through either door (a peer's JWT authorization grant included).
const GrantAssertionNamespace = "jwt-bearer"

// JWTBearer is the RFC 7523 §2.1 authorization grant as a fosite.TokenEndpointHandler: an
// assertion from a trusted issuer ([storage.Trust]) is exchanged for an access token whose sub
// is the assertion's sub (or what Subjects maps it to). Unlike fosite's handler/rfc7523 it
// parses with an algorithm allow-list, never copies the assertion's aud into the token, and uses
// the assertion's jti with one atomic store operation, so of concurrent uses of one assertion
// exactly one gets a token.
//
// HandleTokenEndpointRequest checks the assertion, resolves the one resource server the token
// is for (RFC 8707 resource, through Resolver, within the trust's resources — and the client's,
// when one authenticated — the default resource server when none is named) and the scopes
// (requested, or all, within the trust's, the client's and the resource server's, and the
// assertion's scope claim when the trust transcribes it), grants them on the request, and uses
// the assertion up: a refused resource, scope or subject leaves it unused.
//
// Claims transcription (draft-ietf-oauth-identity-chaining §2.5, for grants from a peer
// authorization server): the trust's Transcribe names what of the assertion carries over into
// the token, through the session (storage.Session.Transcribed and its authentication fields):
// act (actors qualified with the assertion's issuer, at most MaxDelegationDepth), scope (an
// upper bound), auth_time, acr, amr and application claims by name. By default nothing does,
// and an assertion with an act claim is refused (invalid_grant), since dropping act would
// present a delegation as the subject's own call; any other claim is dropped. PopulateTokenEndpointResponse issues an access token (never a refresh token) through
// AccessTokens, whose policy reads the granted audience ([ResourcePolicy] does).
//
// Client authentication is optional unless RequireClientAuth is set; credentials that are
// presented must be valid, which the caller ensures by authenticating before fosite does
// (fosite ignores client-authentication errors of a grant that may skip it). Without client
// authentication the token's client_id is the assertion's issuer. The token is recorded in
// AccessTokenStorage either way, so that introspection answers for it.
//
// See https://www.rfc-editor.org/rfc/rfc7523#section-2.1.
type JWTBearer struct {
	// Trusts finds the trust relationships of an issuer.
	Trusts storage.TrustStore
	// JTIs records used assertions.
	JTIs storage.JTIStore
	// Keys provides the trusts' keys.
	Keys *KeySets
	// Audiences are the aud values naming this server (token endpoint URL, issuer).
	Audiences []string
	// Resolver maps the request's resource parameter to the resource server the token is for.
	Resolver Resolver
	// AccessTokens mints the access token; AccessTokenStorage records it.
	AccessTokens       oauth2.AccessTokenStrategy
	AccessTokenStorage oauth2.AccessTokenStorage
	// Subjects, when set, maps the assertion's subject to the token's (see [SubjectMapper]).
	Subjects SubjectMapper
	// RequireClientAuth makes client authentication mandatory for this grant.
	RequireClientAuth bool
	// MaxDelegationDepth bounds an act chain a trust transcribes into the token; zero means
	// [DefaultMaxDelegationDepth].
	MaxDelegationDepth int
	// MaxLifetime bounds assertions of trusts without MaxAssertionLifetime; zero means
	// [DefaultGrantAssertionLifetime].
	MaxLifetime time.Duration
	// Leeway absorbs clock skew; zero means [DefaultAssertionLeeway].
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ fosite.TokenEndpointHandler = (*JWTBearer)(nil)

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *JWTBearer) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(GrantTypeJWTBearer)
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (h *JWTBearer) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return !h.RequireClientAuth
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler: it verifies the assertion
// against the issuer's trust, grants the resource server and scopes (see [JWTBearer.Grant]),
// and uses the assertion up.
func (h *JWTBearer) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	a, err := h.Grant(ctx, ar)
	if err != nil {
		return err
	}
	if err := UseAssertion(ctx, h.JTIs, GrantAssertionNamespace, a, h.Leeway); err != nil {
		return grantError(err)
	}
	return nil
}

// Grant is HandleTokenEndpointRequest without using the assertion up: it returns the verified
// assertion, which the caller records as used ([AssertionJTI], with GrantAssertionNamespace)
// before it answers — together with the token, in one unit, where the store can
// (storage.JTITokenWriter), so that a token that could not be stored leaves the assertion
// unused for a retry. Errors are fosite's.
func (h *JWTBearer) Grant(ctx context.Context, ar fosite.AccessRequester) (*Assertion, error) {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return nil, fosite.ErrUnknownRequest
	}
	client := ar.GetClient()
	authed := client != nil && client.GetID() != ""
	switch {
	case authed && client.IsPublic():
		// A public client's client_id proves nothing; it would only put a name on the token.
		return nil, fosite.ErrUnauthorizedClient.WithHint("Public clients may not use the jwt-bearer grant.")
	case authed && !client.GetGrantTypes().Has(GrantTypeJWTBearer):
		return nil, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the jwt-bearer grant.")
	case !authed && h.RequireClientAuth:
		return nil, fosite.ErrInvalidClient.WithHint("The jwt-bearer grant requires client authentication.")
	}
	form := ar.GetRequestForm()
	if len(form["assertion"]) != 1 || form.Get("assertion") == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("The 'assertion' parameter is missing.")
	}
	req, ok := ar.(*fosite.AccessRequest)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("handlers: jwt-bearer: the request is not a *fosite.AccessRequest")
	}
	sess, ok := ar.GetSession().(*storage.Session)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("handlers: jwt-bearer: session is not a *storage.Session")
	}
	a, trust, err := h.Verify(ctx, form.Get("assertion"))
	if err != nil {
		return nil, grantError(err)
	}
	tr, err := transcribe(a, trust, h.MaxDelegationDepth)
	if err != nil {
		return nil, grantError(err)
	}
	// The trust plays the part of a prior authorization: the token is for one of its resources
	// and carries its scopes at most (narrowed to the client's when one authenticated).
	scopes, resources := trust.Scopes, trust.Resources
	if authed {
		scopes, resources = intersect(trust.Scopes, client.GetScopes()), intersect(trust.Resources, client.GetAudience())
	} else {
		// RFC 9068 §2.2 wants a client_id: the party that obtained the token is the issuer.
		client = &fosite.DefaultClient{ID: a.Issuer, GrantTypes: fosite.Arguments{GrantTypeJWTBearer}}
	}
	indicators, err := TokenIndicators(form)
	if err != nil {
		return nil, err
	}
	rs, err := h.Resolver.ForToken(ctx, client, indicators, slices.Clone(resources))
	if err != nil {
		return nil, err
	}
	requested := ar.GetRequestedScopes()
	for _, s := range requested {
		if !slices.Contains(scopes, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The trust in the assertion's issuer does not allow scope '%s'.", strict.Echo(s))
		}
		if tr.bounded && !slices.Contains(tr.scope, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The assertion's scope claim does not include scope '%s'; a grant is never widened.", strict.Echo(s))
		}
	}
	if tr.bounded {
		scopes = intersect(scopes, tr.scope)
	}
	granted, err := GrantScopes(requested, scopes, rs)
	if err != nil {
		return nil, err
	}
	subject, err := h.Subject(ctx, a, trust)
	if err != nil {
		return nil, grantError(err)
	}
	sess.SetSubject(subject)
	if len(tr.claims) > 0 {
		sess.Transcribed = tr.claims
	}
	if !tr.authTime.IsZero() {
		sess.AuthTime = tr.authTime
	}
	if tr.acr != "" {
		sess.ACR = tr.acr
	}
	if len(tr.amr) > 0 {
		sess.AMR = tr.amr
	}
	req.Client = client
	req.GrantedAudience = fosite.Arguments{rs.Identifier}
	req.GrantedScope = fosite.Arguments(granted)
	return a, nil
}

// Verify checks raw as a JWT from a trusted issuer, with the rules of this grant: parsed by
// parseAssertion, the trust covering its issuer and subject found and unexpired, the
// signature checked with the trust's keys, aud naming this server, the lifetime bounded by the
// trust's MaxAssertionLifetime (else MaxLifetime), jti required unless the trust has
// JTIOptional. It does not use the assertion up ([UseAssertion] does). The RFC 8693 token
// exchange applies the same rules to a subject or actor token of type jwt. Errors that reject
// the JWT are *[AssertionError].
func (h *JWTBearer) Verify(ctx context.Context, raw string) (*Assertion, *storage.Trust, error) {
	now := h.now()
	a, err := parseAssertion(raw)
	if err != nil {
		return nil, nil, err
	}
	trust, err := h.trust(ctx, a, now)
	if err != nil {
		return nil, nil, err
	}
	keys, err := h.Keys.forTrust(ctx, trust)
	if err != nil {
		return nil, nil, err
	}
	maxLife := trust.MaxAssertionLifetime
	if maxLife <= 0 {
		maxLife = h.MaxLifetime
	}
	if maxLife <= 0 {
		maxLife = DefaultGrantAssertionLifetime
	}
	if err := a.verify(ctx, keys, assertionRules{
		Audiences: h.Audiences, MaxLifetime: maxLife, Leeway: h.Leeway, JTIOptional: trust.JTIOptional, Now: now,
	}); err != nil {
		return nil, nil, err
	}
	return a, trust, nil
}

// trust picks the trust covering a's issuer and subject: a subject-specific one before an
// any-subject one, an unexpired one before an expired one.
func (h *JWTBearer) trust(ctx context.Context, a *Assertion, now time.Time) (*storage.Trust, error) {
	trusts, err := h.Trusts.Trusts(ctx, a.Issuer)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if len(trusts) == 0 {
		return nil, reject("the assertion's issuer is not trusted")
	}
	var best *storage.Trust
	rank := func(t *storage.Trust) int {
		r := 0
		if t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt) {
			r += 2
		}
		if !t.AllowAnySubject {
			r++
		}
		return r
	}
	for i := range trusts {
		t := &trusts[i]
		if t.Issuer != a.Issuer || !(t.AllowAnySubject || t.Subject == a.Subject) {
			continue
		}
		if best == nil || rank(t) > rank(best) {
			best = t
		}
	}
	switch {
	case best == nil:
		return nil, reject("the issuer is not trusted to assert this subject")
	case !best.ExpiresAt.IsZero() && !now.Before(best.ExpiresAt):
		return nil, reject("the trust in this issuer has expired")
	}
	return best, nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler: it issues the access
// token for what HandleTokenEndpointRequest granted.
func (h *JWTBearer) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	token, signature, err := h.AccessTokens.GenerateAccessToken(ctx, ar)
	if err != nil {
		return err
	}
	if err := h.AccessTokenStorage.CreateAccessTokenSession(ctx, signature, ar.Sanitize(nil)); err != nil {
		return err
	}
	resp.SetAccessToken(token)
	resp.SetTokenType("bearer")
	if exp := ar.GetSession().GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
		resp.SetExpiresIn(exp.Sub(h.now()))
	}
	resp.SetScopes(ar.GetGrantedScopes())
	return nil
}

func (h *JWTBearer) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// grantError turns a rejection into invalid_grant (RFC 7523 §3.1) and anything else into a
// server error.
func grantError(err error) error {
	var ae *AssertionError
	if errors.As(err, &ae) {
		return fosite.ErrInvalidGrant.WithHint(sentence(ae.Reason))
	}
	if e := KeysUnavailable(err); e != nil {
		return e
	}
	return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
}

// sentence capitalizes r and ends it with a period, as fosite's hints read.
func sentence(r string) string {
	if r == "" {
		return r
	}
	b := []byte(r)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b) + "."
}
