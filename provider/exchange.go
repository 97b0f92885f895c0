package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// DefaultMaxDelegationDepth is Config.MaxDelegationDepth's default: how many actors an act
// chain may hold.
const DefaultMaxDelegationDepth = 4

// ExchangeRequest is what an [ExchangePolicy] sees of one token exchange, after mandate's own
// rules accepted it. Its slices are copies.
type ExchangeRequest struct {
	// ClientID is the client presenting the subject token (the new token's client_id).
	ClientID string
	// Subject is the new token's sub: the subject token's, or for a JWT from a trusted issuer
	// what Config.SubjectMapper made of it.
	Subject string
	// SubjectClientID is the client the subject token was issued to; for a JWT from a trusted
	// issuer, that issuer.
	SubjectClientID string
	// SubjectTokenType is the subject_token_type.
	SubjectTokenType string
	// Act is the new token's act claim (nil for impersonation): the acting party, with the
	// subject token's earlier actors nested inside.
	Act *strategy.Actor
	// Resource is the resource server the new token is for (its aud).
	Resource string
	// Scopes are the scopes the new token would carry.
	Scopes []string
	// RequestedTokenType is what the exchange issues: handlers.TokenTypeAccessToken, or
	// handlers.TokenTypeJWT for a JWT authorization grant for a peer authorization server
	// (Resource is then the peer's issuer).
	RequestedTokenType string
}

// ExchangePolicy lets the application decide each RFC 8693 token exchange that mandate's own
// rules accept (see [Provider] for them; they hold with or without a policy).
type ExchangePolicy interface {
	// Exchange returns the scopes the new token carries, a subset of r.Scopes (members
	// outside it are dropped), or an error to refuse the exchange: the client is then told
	// invalid_grant ("The token exchange is refused by policy."), and the error is logged.
	Exchange(ctx context.Context, r ExchangeRequest) (scopes []string, err error)
}

// ExchangePolicyFunc adapts a function to [ExchangePolicy].
type ExchangePolicyFunc func(ctx context.Context, r ExchangeRequest) ([]string, error)

// Exchange calls f.
func (f ExchangePolicyFunc) Exchange(ctx context.Context, r ExchangeRequest) ([]string, error) {
	return f(ctx, r)
}

// exchanged is a subject or actor token that passed its checks.
type exchanged struct {
	param    string // subject_token or actor_token
	typ      string
	subject  string
	clientID string   // the client it was issued to (a trusted JWT: its issuer)
	issuer   string   // iss
	aud      []string // its audience (this server's own tokens: the resource server)
	scopes   []string
	exp      time.Time
	act      *strategy.Actor
	mayAct   *strategy.Actor
	authTime time.Time
	acr      string
	amr      []string

	trust     *storage.Trust      // type jwt: the trust it was accepted under
	assertion *handlers.Assertion // type jwt: to be used up once the exchange succeeds
	claims    map[string]any      // type access_token: every claim, for transcription to a peer
}

// tokenExchange is the RFC 8693 token exchange grant
// (https://www.rfc-editor.org/rfc/rfc8693#section-2): a resource server's client trades the
// access token it received for one to call another resource server on behalf of the same
// subject. The rules, in the order they are checked:
//
//   - The client authenticates, is confidential and has the token-exchange grant type.
//   - subject_token and subject_token_type are required; actor_token_type must come with
//     actor_token and only with it. Types: access_token (a signed access token of this
//     server: signature by its keys, typ at+jwt, not expired, not revoked; an encrypted one,
//     which only its resource server can read, is refused) and jwt (a JWT from a trusted
//     issuer, under that trust's rules, as for the jwt-bearer grant, used up once exchanged).
//     Anything else is invalid_request naming the parameter. requested_token_type, if sent,
//     must be access_token, or jwt for a JWT authorization grant for a peer authorization
//     server (see grantForPeer in chaining.go: the rules below up to the delegation depth apply to
//     it too). audience is refused everywhere in favour of resource: a peer is named by its
//     issuer identifier as the resource.
//   - Anti-splicing. The presenter of an access_token subject token must be one of its
//     audiences: the client must serve (Client.Serves) the resource server the token is for.
//     So a token for B can be exchanged only by B, never by C that happened to see it. An
//     actor_token must be the presenter's own: issued to it (client_id) with its own client
//     id as sub, or a trusted JWT whose sub is its client id. So the chain cannot name an
//     actor other than the one that presents it, and the subject and actor tokens cannot come
//     from two unrelated flows.
//   - may_act in the subject token must name the acting party (sub, and iss if it has one),
//     else invalid_grant.
//   - The new token: sub is the subject token's; client_id the presenter; act is
//     {"sub": presenter} with the subject token's own act nested inside (RFC 8693 §4.1,
//     newest outermost), unless the client is registered to Impersonate; a chain deeper than
//     MaxDelegationDepth is refused; aud comes from resource as for every grant; scope is at
//     most the subject token's ∩ the client's ∩ the resource server's (widening is
//     invalid_scope); exp never later than the subject token's; auth_time, acr and amr carry
//     over; no refresh token.
//   - The application's ExchangePolicy, if any, decides last and may narrow the scopes.
func (p *Provider) tokenExchange(ctx context.Context, r *http.Request, proof *dpop.Proof) (*tokenResponse, error) {
	form := r.PostForm
	client, err := p.oauth.AuthenticateClient(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if client.IsPublic() {
		return nil, fosite.ErrUnauthorizedClient.WithHint("Public clients may not exchange tokens.")
	}
	if !client.GetGrantTypes().Has(handlers.GrantTypeTokenExchange) {
		return nil, fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the token-exchange grant.")
	}
	sc, _ := client.(*storage.Client)
	if sc == nil {
		return nil, fosite.ErrServerError.WithDebug("provider: token exchange: client is not a *storage.Client")
	}
	if err := checkExchangeParams(form); err != nil {
		return nil, err
	}

	subject, err := p.exchangedToken(ctx, "subject_token", form.Get("subject_token"), form.Get("subject_token_type"))
	if err != nil {
		return nil, err
	}
	if subject.typ == handlers.TokenTypeAccessToken && !slices.ContainsFunc(subject.aud, func(a string) bool { return slices.Contains(sc.Serves, a) }) {
		return nil, fosite.ErrInvalidRequest.WithHint("The client is not an audience of the subject_token: a client may exchange only access tokens issued for a resource server it serves.")
	}
	// The acting party: the presenter, proved by an actor token if there is one.
	actor := &strategy.Actor{Subject: sc.ID}
	actorIssuer := p.issuer
	var actorToken *exchanged
	if form.Get("actor_token") != "" {
		if actorToken, err = p.exchangedToken(ctx, "actor_token", form.Get("actor_token"), form.Get("actor_token_type")); err != nil {
			return nil, err
		}
		switch {
		case actorToken.subject != sc.ID:
			return nil, fosite.ErrInvalidRequest.WithHint("The actor_token's sub is not the client presenting it.")
		case actorToken.typ == handlers.TokenTypeAccessToken && actorToken.clientID != sc.ID:
			return nil, fosite.ErrInvalidRequest.WithHint("The actor_token was not issued to the client presenting it.")
		case actorToken.typ == handlers.TokenTypeJWT:
			actor.Issuer, actorIssuer = actorToken.issuer, actorToken.issuer
		}
	}
	if m := subject.mayAct; m != nil {
		iss := m.Issuer
		if iss == "" {
			iss = subject.issuer
		}
		if m.Subject != actor.Subject || iss != actorIssuer {
			return nil, fosite.ErrInvalidGrant.WithHint("The subject_token's may_act does not name the acting party.")
		}
	}
	act := subject.act.Clone()
	if !sc.Impersonate {
		actor.Act = act
		act = actor
	}
	if max := p.cfg.MaxDelegationDepth; act.Depth() > max {
		return nil, fosite.ErrInvalidRequest.WithHintf("The delegation chain would hold %d actors; at most %d are allowed.", act.Depth(), max)
	}
	if form.Get("requested_token_type") == handlers.TokenTypeJWT {
		return p.grantForPeer(ctx, sc, form, subject, actorToken, act)
	}

	// The target, as for every grant; a trusted JWT's subject stays within its trust.
	indicators, err := handlers.TokenIndicators(form)
	if err != nil {
		return nil, err
	}
	var granted []string
	if subject.trust != nil {
		granted = intersect(subject.trust.Resources, sc.Resources)
	}
	rs, err := p.resolver.ForToken(ctx, client, indicators, granted)
	if err != nil {
		return nil, err
	}
	scopes, err := exchangeScopes(form.Get("scope"), subject.scopes, sc.Scopes, rs)
	if err != nil {
		return nil, err
	}
	jkt, err := binding(proof, client, rs)
	if err != nil {
		return nil, err
	}
	if scopes, err = p.exchangePolicy(ctx, sc, subject, act, rs.Identifier, handlers.TokenTypeAccessToken, scopes); err != nil {
		return nil, err
	}

	if err := p.useUp(ctx, subject, actorToken); err != nil {
		return nil, err
	}
	ar := &fosite.AccessRequest{
		GrantTypes:       fosite.Arguments{handlers.GrantTypeTokenExchange},
		HandledGrantType: fosite.Arguments{handlers.GrantTypeTokenExchange},
		Request: fosite.Request{
			RequestedAt:       p.cfg.Now().UTC(),
			Client:            client,
			RequestedScope:    fosite.RemoveEmpty(strings.Split(form.Get("scope"), " ")),
			GrantedScope:      scopes,
			RequestedAudience: fosite.Arguments{},
			GrantedAudience:   fosite.Arguments{rs.Identifier},
			Form:              url.Values{},
			Session: &storage.Session{
				Subject: subject.subject, AuthTime: subject.authTime, ACR: subject.acr, AMR: subject.amr,
			},
		},
	}
	target := &tokenTarget{rs: rs, scopes: scopes, act: act, notAfter: subject.exp, jkt: jkt}
	m, err := p.tokens.mint(ctx, ar, target)
	if err != nil {
		return nil, err
	}
	ar.ID = m.Signature // a grant of this one token, as for client_credentials
	if err := p.fstore.CreateAccessTokenSession(ctx, m.Signature, ar); err != nil {
		return nil, err
	}
	resp := p.tokenResponse(m.Token, target)
	resp.IssuedTokenType = handlers.TokenTypeAccessToken
	return resp, nil
}

// exchangePolicy asks Config.ExchangePolicy, if any, about an exchange the rules accept, and
// narrows scopes to what it allows.
func (p *Provider) exchangePolicy(ctx context.Context, sc *storage.Client, subject *exchanged, act *strategy.Actor, resource, tokenType string, scopes []string) ([]string, error) {
	if p.cfg.ExchangePolicy == nil {
		return scopes, nil
	}
	allowed, err := p.cfg.ExchangePolicy.Exchange(ctx, ExchangeRequest{
		ClientID: sc.ID, Subject: subject.subject, SubjectClientID: subject.clientID, SubjectTokenType: subject.typ,
		Act: act.Clone(), Resource: resource, Scopes: slices.Clone(scopes), RequestedTokenType: tokenType,
	})
	if err != nil {
		p.log.Info("token exchange refused by policy", "client_id", sc.ID, "error", err.Error())
		return nil, fosite.ErrInvalidGrant.WithHint("The token exchange is refused by policy.")
	}
	return intersect(scopes, allowed), nil
}

// useUp uses up the trusted JWTs among the exchanged tokens: they are single-use (across the
// token exchange and the jwt-bearer grant alike), and used up only once the exchange is decided.
func (p *Provider) useUp(ctx context.Context, tokens ...*exchanged) error {
	for _, e := range tokens {
		if e != nil && e.assertion != nil {
			err := handlers.UseAssertion(ctx, p.store, handlers.GrantAssertionNamespace, e.assertion, p.cfg.AssertionLeeway)
			var ae *handlers.AssertionError
			if errors.As(err, &ae) {
				return fosite.ErrInvalidRequest.WithHintf("The '%s' has already been used.", e.param)
			} else if err != nil {
				return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
			}
		}
	}
	return nil
}

// checkExchangeParams checks the request parameters of RFC 8693 §2.1 that do not need a token
// looked at.
func checkExchangeParams(form url.Values) error {
	switch {
	case form.Get("subject_token") == "":
		return fosite.ErrInvalidRequest.WithHint("The 'subject_token' parameter is missing.")
	case form.Get("subject_token_type") == "":
		return fosite.ErrInvalidRequest.WithHint("The 'subject_token_type' parameter is missing.")
	case form.Get("actor_token") != "" && form.Get("actor_token_type") == "":
		return fosite.ErrInvalidRequest.WithHint("The 'actor_token_type' parameter is required with 'actor_token'.")
	case form.Get("actor_token") == "" && form.Has("actor_token_type"):
		return fosite.ErrInvalidRequest.WithHint("The 'actor_token_type' parameter must not be sent without 'actor_token'.")
	}
	if t := form.Get("requested_token_type"); t != "" && t != handlers.TokenTypeAccessToken && t != handlers.TokenTypeJWT {
		return fosite.ErrInvalidRequest.WithHintf("The 'requested_token_type' '%s' is not supported; this server issues %s, and %s for a peer authorization server.",
			strict.Echo(t), handlers.TokenTypeAccessToken, handlers.TokenTypeJWT)
	}
	return nil
}

// exchangedToken checks a subject or actor token (param names which) of type typ.
func (p *Provider) exchangedToken(ctx context.Context, param, token, typ string) (*exchanged, error) {
	if len(token) > verify.MaxTokenSize {
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' is longer than %d bytes.", param, verify.MaxTokenSize)
	}
	switch typ {
	case handlers.TokenTypeAccessToken:
		return p.exchangedAccessToken(ctx, param, token)
	case handlers.TokenTypeJWT:
		a, trust, err := p.bearer.Verify(ctx, token)
		var subject string
		if err == nil {
			subject = a.Subject
			if param == "subject_token" { // an actor keeps the name its issuer gave it
				subject, err = p.bearer.Subject(ctx, a, trust)
			}
		}
		if err != nil {
			var ae *handlers.AssertionError
			if errors.As(err, &ae) {
				return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' is not a JWT this server accepts: %s.", param, ae.Reason)
			}
			if e := handlers.KeysUnavailable(err); e != nil {
				return nil, e
			}
			return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		}
		e := &exchanged{param: param, typ: typ, subject: subject, clientID: a.Issuer, issuer: a.Issuer,
			scopes: trust.Scopes, exp: a.Expiry, trust: trust, assertion: a}
		if _, err := a.Claim("may_act", &e.mayAct); err != nil || e.mayAct != nil && (e.mayAct.Subject == "" || e.mayAct.Act != nil) {
			return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has a may_act claim that is not an object with a sub.", param)
		}
		if _, err := a.Claim("act", &e.act); err != nil || !qualify(e.act, a.Issuer) {
			return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has an act claim that is not an actor chain.", param)
		}
		return e, nil
	case "":
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s_type' parameter is missing.", param)
	case handlers.TokenTypeRefreshToken, handlers.TokenTypeIDToken, handlers.TokenTypeSAML1, handlers.TokenTypeSAML2:
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s_type' '%s' is not exchanged here; send an access token (%s) or a JWT from a trusted issuer (%s).",
			param, typ, handlers.TokenTypeAccessToken, handlers.TokenTypeJWT)
	}
	return nil, fosite.ErrInvalidRequest.WithHintf("The '%s_type' '%s' is unknown.", param, strict.Echo(typ))
}

// exchangedAccessToken checks an access token of this server given as a subject or actor token.
func (p *Provider) exchangedAccessToken(ctx context.Context, param, token string) (*exchanged, error) {
	switch strings.Count(token, ".") {
	case 2:
	case 4:
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' is an encrypted access token, which only its resource server can read; it cannot be exchanged.", param)
	default:
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' is not an access token of this server (a refresh token or code is not one).", param)
	}
	claims, err := p.tokens.VerifyAccessToken(ctx, token)
	switch {
	case errors.Is(err, fosite.ErrTokenExpired):
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has expired.", param)
	case errors.Is(err, fosite.ErrServerError):
		return nil, err
	case err != nil:
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' is not a valid access token of this server.", param)
	}
	if live, err := p.live(ctx, token, claims); err != nil {
		return nil, err // the store cannot tell: 503
	} else if !live {
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has been revoked.", param)
	}
	e := &exchanged{param: param, typ: handlers.TokenTypeAccessToken, issuer: p.issuer, claims: claims}
	var ok bool
	e.subject, _ = claims["sub"].(string)
	e.clientID, _ = claims["client_id"].(string)
	e.aud = audience(claims["aud"])
	if s, _ := claims["scope"].(string); s != "" {
		e.scopes = strings.Fields(s)
	}
	if e.exp, ok = unixClaim(claims["exp"]); !ok || e.subject == "" || e.clientID == "" || len(e.aud) == 0 {
		return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' lacks a claim every access token carries.", param)
	}
	e.authTime, _ = unixClaim(claims["auth_time"])
	e.acr, _ = claims["acr"].(string)
	if amr, ok := claims["amr"].([]any); ok {
		for _, v := range amr {
			if s, ok := v.(string); ok {
				e.amr = append(e.amr, s)
			}
		}
	}
	if v, ok := claims["act"]; ok {
		if e.act, err = actorFrom(v, 0); err != nil {
			return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has an act claim that is not an actor chain.", param)
		}
	}
	if v, ok := claims["may_act"]; ok {
		if e.mayAct, err = actorFrom(v, 0); err != nil || e.mayAct.Act != nil {
			return nil, fosite.ErrInvalidRequest.WithHintf("The '%s' has a may_act claim that is not an object with a sub.", param)
		}
	}
	return e, nil
}

// maxActorDepth bounds the act chains read from tokens (a deeper one is refused, not cut).
const maxActorDepth = 32

// actorFrom reads an act or may_act claim of this server's token: an object with a string sub,
// optionally a string iss and a nested act.
func actorFrom(v any, depth int) (*strategy.Actor, error) {
	if depth >= maxActorDepth {
		return nil, errors.New("provider: act chain too deep")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("provider: actor is %T", v)
	}
	a := &strategy.Actor{}
	a.Subject, _ = m["sub"].(string)
	if a.Subject == "" {
		return nil, errors.New("provider: actor without sub")
	}
	if iss, ok := m["iss"]; ok {
		if a.Issuer, ok = iss.(string); !ok {
			return nil, errors.New("provider: actor iss is not a string")
		}
	}
	if next, ok := m["act"]; ok {
		var err error
		if a.Act, err = actorFrom(next, depth+1); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// qualify checks a chain decoded from a trusted issuer's JWT (every actor has a sub, the chain
// is at most maxActorDepth long) and gives actors without iss that issuer's: in a token of
// this server they would otherwise read as this server's subjects.
func qualify(a *strategy.Actor, iss string) bool {
	if a.Depth() > maxActorDepth {
		return false
	}
	for ; a != nil; a = a.Act {
		if a.Subject == "" {
			return false
		}
		if a.Issuer == "" {
			a.Issuer = iss
		}
	}
	return true
}

// unixClaim reads a NumericDate claim as VerifyAccessToken decodes it (a json.Number).
func unixClaim(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return time.Time{}, false
		}
		i = int64(f)
	}
	return time.Unix(i, 0), true
}

// exchangeScopes applies RFC 8693 §2.1's scope to the subject token's scopes: requested must
// lie within the subject token's, the client's and the resource server's (invalid_scope
// otherwise); none requested gives the subject token's scopes that both allow.
func exchangeScopes(requested string, subject, client []string, rs *storage.ResourceServer) ([]string, error) {
	req := fosite.RemoveEmpty(strings.Split(requested, " "))
	for _, s := range req {
		if !slices.Contains(subject, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The scope '%s' is not in the subject_token; an exchange never widens scope.", strict.Echo(s))
		}
	}
	if len(req) == 0 {
		return intersect(intersect(subject, client), rs.Scopes), nil
	}
	return handlers.GrantScopes(req, client, rs)
}
