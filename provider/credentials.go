package provider

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4,
// https://www.rfc-editor.org/rfc/rfc6749#section-4.4), the grant of nearly every
// service-to-service token. It is mandate's own rather than fosite's: it uses the funnel's
// shared pieces — fosite's client authentication (with private_key_jwt), the resource
// resolver, the token strategy and the store — but none of fosite's generic request and
// response machinery, which copies the request for storage, calls every grant handler and
// encodes the answer through a map: a quarter of a token's cost around its signature.
//
// The checks are fosite's, with its errors: client authentication, a confidential client, the
// grant type among the client's; then the resource funnel, whose scope rule (requested ∩ the
// client's ∩ the resource server's, else invalid_scope) covers fosite's scope check.
func (p *Provider) clientCredentials(ctx context.Context, r *http.Request, proof *dpop.Proof) (*tokenResponse, error) {
	form := r.PostForm
	client, err := p.oauth.AuthenticateClient(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if client.IsPublic() {
		return nil, fosite.ErrInvalidGrant.WithHint("The OAuth 2.0 Client is marked as public and is thus not allowed to use authorization grant 'client_credentials'.")
	}
	if !client.GetGrantTypes().Has("client_credentials") {
		return nil, fosite.ErrUnauthorizedClient.WithHint("The OAuth 2.0 Client is not allowed to use authorization grant 'client_credentials'.")
	}
	requested := fosite.RemoveEmpty(strings.Split(form.Get("scope"), " "))
	indicators, err := handlers.TokenIndicators(form)
	if err != nil {
		return nil, err
	}
	rs, err := p.resolver.ForToken(ctx, client, indicators, nil)
	if err != nil {
		return nil, err
	}
	scopes, err := handlers.GrantScopes(requested, client.GetScopes(), rs)
	if err != nil {
		return nil, err
	}
	jkt, err := binding(proof, client, rs)
	if err != nil {
		return nil, err
	}

	ar := &fosite.AccessRequest{
		GrantTypes:       fosite.Arguments{"client_credentials"},
		HandledGrantType: fosite.Arguments{"client_credentials"},
		Request: fosite.Request{
			ID:                uuid.NewString(), // until the token is signed (below)
			RequestedAt:       p.cfg.Now().UTC(),
			Client:            client,
			RequestedScope:    requested,
			GrantedScope:      scopes,
			RequestedAudience: fosite.Arguments{},
			GrantedAudience:   fosite.Arguments{rs.Identifier},
			// The stored request keeps no form values, as fosite's Sanitize would leave it.
			Form:    url.Values{},
			Session: &storage.Session{},
		},
	}
	target := &tokenTarget{rs: rs, scopes: scopes, jkt: jkt}
	m, err := p.tokens.mint(ctx, ar, target)
	if err != nil {
		return nil, err
	}
	// The grant is this one token: its ID is the token's signature, which lets a store find
	// the grant through the token's key (gormstore then writes no request-index entry for it).
	ar.ID = m.Signature
	if err := p.fstore.CreateAccessTokenSession(ctx, m.Signature, ar); err != nil {
		return nil, err
	}
	return p.tokenResponse(m.Token, target), nil
}

// jwtBearer is the RFC 7523 jwt-bearer grant (https://www.rfc-editor.org/rfc/rfc7523#section-2.1),
// served like clientCredentials: the grant handler's checks (handlers.JWTBearer, also fosite's
// handler for a plain fosite server) and the same minting, without fosite's generic request
// and response machinery. serveToken has already checked client credentials that are presented.
func (p *Provider) jwtBearer(ctx context.Context, r *http.Request, proof *dpop.Proof) (*tokenResponse, error) {
	form := r.PostForm
	ar := &fosite.AccessRequest{
		GrantTypes:       fosite.Arguments{handlers.GrantTypeJWTBearer},
		HandledGrantType: fosite.Arguments{handlers.GrantTypeJWTBearer},
		Request: fosite.Request{
			ID:                uuid.NewString(), // until the token is signed (below)
			RequestedAt:       p.cfg.Now().UTC(),
			RequestedScope:    fosite.RemoveEmpty(strings.Split(form.Get("scope"), " ")),
			RequestedAudience: fosite.Arguments{},
			Form:              form,
			Session:           &storage.Session{},
		},
	}
	if hasClientCredentials(r) {
		client, err := p.oauth.AuthenticateClient(ctx, r, form) // the memo of serveToken's check
		if err != nil {
			return nil, err
		}
		ar.Client = client
	}
	a, err := p.bearer.Grant(ctx, ar)
	if err != nil {
		return nil, err
	}
	// A store that writes a token together with a JWT ID records the assertion's use with the
	// token, in one commit, and a token that could not be stored leaves the assertion usable
	// for a retry (the price: a replayed assertion is refused after its token was signed, not
	// before); otherwise the use comes first, as in handlers.JWTBearer.
	jti, jtiExp := handlers.AssertionJTI(handlers.GrantAssertionNamespace, a, p.bearer.Leeway)
	units, _ := p.store.(storage.JTITokenWriter)
	if p.cfg.StatelessAccessTokens {
		units = nil // no token row to write the use with
	}
	if units == nil {
		if err := handlers.AssertionUsed(p.store.UseJTI(ctx, jti, jtiExp)); err != nil {
			return nil, err
		}
	}
	target, err := p.resolveTarget(ctx, ar)
	if err != nil {
		return nil, err
	}
	if target.jkt, err = binding(proof, ar.GetClient(), target.rs); err != nil {
		return nil, err
	}
	m, err := p.tokens.mint(ctx, ar, target)
	if err != nil {
		return nil, err
	}
	// One token per grant, as for client_credentials: the grant's ID is the token's signature.
	// The stored request keeps no form values (the assertion among them), as Sanitize would.
	ar.ID, ar.Form = m.Signature, url.Values{}
	if units != nil {
		err = handlers.AssertionUsed(units.CreateAccessTokenSessionUsingJTI(ctx, m.Signature, ar, jti, jtiExp))
	} else {
		err = p.fstore.CreateAccessTokenSession(ctx, m.Signature, ar)
	}
	if err != nil {
		return nil, err
	}
	return p.tokenResponse(m.Token, target), nil
}
