package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
)

// serveToken is the token endpoint (RFC 6749 §3.2): the single funnel for every grant.
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.readForm(w, r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	if err := p.checkTokenRequest(r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, &storage.Session{})
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	target, err := p.resolveTarget(ctx, ar)
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	resp, err := p.oauth.NewAccessResponse(withTarget(ctx, target), ar)
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	// RFC 6749 §5.1: scope is the access token's (fosite would echo the whole grant's), and
	// resource names the one resource server the token is for, so a client that sent none
	// learns which default it got (draft-ietf-oauth-resource-token-resp; clients that do not
	// know the member ignore it).
	resp.SetScopes(target.scopes)
	resp.SetExtra("resource", target.rs.Identifier)
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// resolveTarget applies RFC 8707 to a token request: which resource server the access token is
// for, and — for grants without a prior authorization — which scopes it carries.
func (p *Provider) resolveTarget(ctx context.Context, ar fosite.AccessRequester) (*tokenTarget, error) {
	indicators, err := handlers.Indicators(ar.GetRequestForm())
	if err != nil {
		return nil, err
	}
	gt := ar.GetGrantTypes()
	if gt.ExactOne("authorization_code") || gt.ExactOne("refresh_token") {
		// fosite set the requested audience to the original authorization's, which the
		// authorization endpoint made equal to the granted resources.
		granted := append([]string{}, ar.GetRequestedAudience()...)
		rs, err := p.resolver.ForToken(ctx, ar.GetClient(), indicators, granted)
		if err != nil {
			return nil, err
		}
		return &tokenTarget{rs: rs}, nil
	}
	rs, err := p.resolver.ForToken(ctx, ar.GetClient(), indicators, nil)
	if err != nil {
		return nil, err
	}
	scopes, err := handlers.GrantScopes(ar.GetRequestedScopes(), ar.GetClient().GetScopes(), rs)
	if err != nil {
		return nil, err
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	ar.GrantAudience(rs.Identifier)
	return &tokenTarget{rs: rs, scopes: scopes}, nil
}

// readForm bounds and parses the request body and enforces RFC 6749 §3.2's "parameters MUST NOT
// be included more than once" (resource, which RFC 8707 lets repeat, excepted), and refuses
// fosite's non-standard audience parameter in favour of resource.
func (p *Provider) readForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return fosite.ErrInvalidRequest.WithHintf("HTTP method is '%s', expected 'POST'.", r.Method)
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fosite.ErrInvalidRequest.WithHint("The request body is too large.")
		}
		return fosite.ErrInvalidRequest.WithHint("The request body is not a valid form.")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return fosite.ErrInvalidRequest.WithHint("The request body must be application/x-www-form-urlencoded.")
	}
	return checkParams(r.PostForm)
}

// checkTokenRequest answers what fosite would answer less precisely: an unsupported grant type
// is unsupported_grant_type (fosite: invalid_request), and a request that carries no client
// authentication at all is invalid_client (fosite: invalid_request), as RFC 6749 §5.2 says.
func (p *Provider) checkTokenRequest(r *http.Request) error {
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "":
		return fosite.ErrInvalidRequest.WithHint("The 'grant_type' parameter is missing.")
	case "authorization_code", "client_credentials", "refresh_token":
	default:
		return fosite.ErrUnsupportedGrantType.WithHintf("The grant type '%s' is not supported.", gt)
	}
	if r.Header.Get("Authorization") == "" && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return fosite.ErrInvalidClient.WithHint("The request carries no client authentication.")
	}
	return nil
}

// checkParams refuses repeated parameters (other than resource) and the audience parameter.
func checkParams(form map[string][]string) error {
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return fosite.ErrInvalidRequest.WithHintf("The parameter '%s' must not be repeated.", k)
		}
	}
	if _, ok := form["audience"]; ok {
		return fosite.ErrInvalidRequest.WithHint("The 'audience' parameter is not supported; name the target resource server with the RFC 8707 'resource' parameter.")
	}
	return nil
}

// writeTokenError answers with an RFC 6749 §5.2 error. Lost races and reused codes (which
// fosite reports as server errors from inside its transaction) become invalid_grant; an
// invalid_client for a request that authenticated with HTTP Basic carries WWW-Authenticate.
func (p *Provider) writeTokenError(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	err = p.normalizeError(err)
	if errors.Is(err, fosite.ErrInvalidClient) {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+p.issuer+`", charset="UTF-8"`)
		}
	}
	p.oauth.WriteAccessError(ctx, w, ar, err)
}

// normalizeError maps store-level outcomes to protocol errors and logs server errors.
func (p *Provider) normalizeError(err error) error {
	switch {
	case errors.Is(err, fosite.ErrInvalidatedAuthorizeCode), errors.Is(err, fosite.ErrSerializationFailure):
		return fosite.ErrInvalidGrant.WithHint("The authorization grant has already been used or is being used concurrently.")
	}
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		// A plain error from a store or the strategy: a server error, explained in the log only.
		err = fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if errors.Is(err, fosite.ErrServerError) {
		e := fosite.ErrorToRFC6749Error(err)
		p.log.Error("server error", "error", e.GetDescription(), "debug", e.Debug())
	}
	return err
}
