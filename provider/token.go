package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// serveToken is the token endpoint (RFC 6749 §3.2): the single funnel for every grant.
func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	ctx := withClientAuthMemo(r.Context())
	if err := p.readForm(w, r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	if err := p.checkTokenRequest(r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	proof, err := p.tokenProof(ctx, w, r)
	if err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	if r.PostForm.Get("grant_type") == handlers.GrantTypeJWTBearer && hasClientCredentials(r) {
		// fosite ignores client-authentication errors of a grant that may skip client
		// authentication: credentials that are presented must be valid, so check them first
		// (the memo in ctx makes fosite reuse this outcome).
		if _, err := p.oauth.AuthenticateClient(ctx, r, r.PostForm); err != nil {
			if !errors.Is(err, fosite.ErrServerError) {
				err = fosite.ErrInvalidClient.WithWrap(err).WithHint(clientAuthHint(err))
			}
			p.writeTokenError(ctx, w, r, nil, err)
			return
		}
	}
	switch r.PostForm.Get("grant_type") {
	case handlers.GrantTypeTokenExchange:
		resp, err := p.tokenExchange(ctx, r, proof)
		if err != nil {
			p.writeTokenError(ctx, w, r, nil, err)
			return
		}
		writeTokenResponse(w, resp)
		return
	case "client_credentials", handlers.GrantTypeJWTBearer:
		grant := p.clientCredentials
		if r.PostForm.Get("grant_type") == handlers.GrantTypeJWTBearer {
			grant = p.jwtBearer
		}
		resp, err := grant(ctx, r, proof)
		if err != nil {
			p.writeTokenError(ctx, w, r, nil, err)
			return
		}
		if !p.cfg.StatelessAccessTokens || r.PostForm.Get("grant_type") == handlers.GrantTypeJWTBearer {
			p.outage.ok() // the token's row (or the assertion's jti) committed
		}
		writeTokenResponse(w, resp)
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, &storage.Session{})
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	if gt := ar.GetGrantTypes(); gt.ExactOne("authorization_code") || gt.ExactOne("refresh_token") {
		if err := bindGrant(ar, proof); err != nil {
			p.writeTokenError(ctx, w, r, ar, err)
			return
		}
	}
	target, err := p.resolveTarget(ctx, ar)
	if err == nil {
		target.jkt, err = binding(proof, ar.GetClient(), target.rs)
	}
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	resp, err := p.oauth.NewAccessResponse(withTarget(ctx, target), ar)
	if err != nil {
		p.writeTokenError(ctx, w, r, ar, err)
		return
	}
	out := p.tokenResponse(resp.GetAccessToken(), target)
	out.RefreshToken, _ = resp.GetExtra("refresh_token").(string)
	p.outage.ok() // every other grant wrote to the store (a code, a refresh token, a jti)
	writeTokenResponse(w, out)
}

// tokenResponse is a successful token response (RFC 6749 §5.1,
// https://www.rfc-editor.org/rfc/rfc6749#section-5.1), the same for every grant.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// ExpiresIn is the token's own lifetime, exp - iat.
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Scope is the access token's scopes (fosite would echo the whole grant's).
	Scope string `json:"scope"`
	// Resource names the one resource server the token is for, so that a client that sent
	// none learns which default it got (draft-ietf-oauth-resource-token-resp; clients that
	// do not know the member ignore it).
	Resource string `json:"resource"`
	// IssuedTokenType is RFC 8693 §2.2.1's issued_token_type, in token exchange responses.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	// TokenEndpoint, in the response that issues a JWT authorization grant for a peer
	// authorization server, is the peer's token endpoint, where the client presents the grant
	// (a mandate extension; clients that do not know it ignore it).
	TokenEndpoint string `json:"token_endpoint,omitempty"`
}

// tokenResponse is the answer for the access token minted for t.
func (p *Provider) tokenResponse(token string, t *tokenTarget) *tokenResponse {
	typ := "bearer"
	if t.jkt != "" {
		typ = "DPoP" // RFC 9449 §5
	}
	return &tokenResponse{
		AccessToken: token, TokenType: typ, Scope: strings.Join(t.scopes, " "), Resource: t.rs.Identifier,
		ExpiresIn: strategy.ExpiresIn(t.ttl),
	}
}

// writeTokenResponse writes resp as JSON, never to be cached (RFC 6749 §5.1).
func writeTokenResponse(w http.ResponseWriter, resp *tokenResponse) {
	body, err := json.Marshal(resp)
	if err != nil {
		// Only strings and an integer: cannot happen.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// resolveTarget applies RFC 8707 to a token request that went through fosite: which resource
// server the access token is for, and, for a refresh request, which scopes it carries.
func (p *Provider) resolveTarget(ctx context.Context, ar fosite.AccessRequester) (*tokenTarget, error) {
	gt := ar.GetGrantTypes()
	if gt.ExactOne(handlers.GrantTypeJWTBearer) {
		// The grant handler resolved the resource and scopes within the trust and granted them.
		aud := ar.GetGrantedAudience()
		if len(aud) != 1 {
			return nil, errNoTarget
		}
		rs, err := p.store.ResourceServer(ctx, aud[0])
		if err != nil {
			return nil, err
		}
		return &tokenTarget{rs: rs, scopes: slices.Clone(ar.GetGrantedScopes())}, nil
	}
	indicators, err := handlers.TokenIndicators(ar.GetRequestForm())
	if err != nil {
		return nil, err
	}
	// authorization_code or refresh_token: fosite set the requested audience to the original
	// authorization's, which the authorization endpoint made equal to the granted resources.
	granted := append([]string{}, ar.GetRequestedAudience()...)
	// And the token may only be for a resource the client may still use: one taken from its
	// registration since the authorization is refused.
	still := intersect(granted, ar.GetClient().GetAudience())
	if len(indicators) == 1 && slices.Contains(granted, indicators[0]) && !slices.Contains(still, indicators[0]) {
		return nil, handlers.ErrInvalidTarget.WithHint("The client may no longer request tokens for this resource.")
	}
	rs, err := p.resolver.ForToken(ctx, ar.GetClient(), indicators, still)
	if err != nil {
		return nil, err
	}
	t := &tokenTarget{rs: rs}
	if gt.ExactOne("refresh_token") {
		if t.scopes, err = refreshScopes(ar, rs); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// intersect returns the members of a that are also in b, in a's order.
func intersect(a, b []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return !slices.Contains(b, s) })
}

// refreshScopes applies a refresh request's scope parameter (RFC 6749 §6): none means the
// grant's scopes that rs accepts (nil: decided when the token is minted); a narrower set must
// lie within the grant and be accepted by rs, else invalid_scope. fosite replaces the
// requested scopes with the grant's, so the parameter is read from the form; the grant itself,
// stored again with the new refresh token, keeps all its scopes.
func refreshScopes(ar fosite.AccessRequester, rs *storage.ResourceServer) ([]string, error) {
	requested := fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("scope"), " "))
	if len(requested) == 0 {
		return nil, nil
	}
	granted := ar.GetGrantedScopes()
	for _, s := range requested {
		if !granted.Has(s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The scope '%s' was not granted to this refresh token.", strict.Echo(s))
		}
	}
	return handlers.GrantScopes(requested, granted, rs)
}

// hasClientCredentials reports whether a token request presents client credentials of any
// kind.
func hasClientCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.PostForm.Get("client_id") != "" ||
		r.PostForm.Get("client_secret") != "" || r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type")
}

// clientAuthHint is the hint of a failed client authentication: the authenticator's own when
// it gave one (private_key_jwt says what was wrong with the assertion), else a generic one.
func clientAuthHint(err error) string {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && errors.Is(err, fosite.ErrInvalidClient) && rfc.HintField != "" {
		return rfc.HintField
	}
	return "Client authentication failed."
}

// readForm bounds and parses the request body and enforces RFC 6749 §3.2's "parameters MUST NOT
// be included more than once" (resource, which RFC 8707 lets repeat, excepted), and refuses
// fosite's non-standard audience parameter in favour of resource.
func (p *Provider) readForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return fosite.ErrInvalidRequest.WithHintf("HTTP method is '%s', expected 'POST'.", strict.Echo(r.Method))
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
// authentication at all is invalid_client (fosite: invalid_request), as RFC 6749 §5.2 says —
// except for the jwt-bearer grant when client authentication is optional for it.
func (p *Provider) checkTokenRequest(r *http.Request) error {
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "":
		return fosite.ErrInvalidRequest.WithHint("The 'grant_type' parameter is missing.")
	case "authorization_code", "client_credentials", "refresh_token", handlers.GrantTypeTokenExchange:
	case handlers.GrantTypeJWTBearer:
		if !p.cfg.JWTBearerRequireClientAuth {
			return nil // the assertion authenticates; presented credentials are checked later
		}
	default:
		return fosite.ErrUnsupportedGrantType.WithHintf("The grant type '%s' is not supported.", strict.Echo(gt))
	}
	if !hasClientCredentials(r) {
		return fosite.ErrInvalidClient.WithHint("The request carries no client authentication.")
	}
	return nil
}

// checkParams refuses repeated parameters (other than resource) and the audience parameter.
func checkParams(form map[string][]string) error {
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return fosite.ErrInvalidRequest.WithHintf("The parameter '%s' must not be repeated.", strict.Echo(k))
		}
	}
	if _, ok := form["audience"]; ok {
		return fosite.ErrInvalidRequest.WithHint("The 'audience' parameter is not supported; name the target resource server with the RFC 8707 'resource' parameter.")
	}
	return nil
}

// writeTokenError answers with an RFC 6749 §5.2 error. Lost races and reused codes (which
// fosite reports as server errors from inside its transaction) become invalid_grant; an
// invalid_client for a request that authenticated with HTTP Basic carries WWW-Authenticate; a
// store that cannot be reached is 503 temporarily_unavailable with Retry-After, whatever error
// (invalid_client of a client that could not be read, server_error) it surfaced as.
func (p *Provider) writeTokenError(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	err = p.normalizeError(err)
	noteError(ctx, err) // for the request's log line, event and metrics (observe.go)
	if errors.Is(err, fosite.ErrTemporarilyUnavailable) {
		handlers.SetUnavailable(w.Header())
	} else if errors.Is(err, fosite.ErrInvalidClient) {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+p.issuer+`", charset="UTF-8"`)
		}
	}
	p.oauth.WriteAccessError(ctx, w, ar, err)
}

// normalizeError maps store-level outcomes to protocol errors and logs server errors (an
// unreachable store's once per interval, see outageLog).
func (p *Provider) normalizeError(err error) error {
	if unavailable(err) {
		return p.temporarilyUnavailable(err)
	}
	switch {
	case errors.Is(err, fosite.ErrInvalidatedAuthorizeCode), errors.Is(err, fosite.ErrSerializationFailure):
		return fosite.ErrInvalidGrant.WithHint("The authorization grant has already been used or is being used concurrently.")
	}
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		// A plain error from a store or the strategy: a server error, explained in the log only.
		err = fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
		p.metrics.storageError(context.Background(), "error") // a store's or the strategy's own error
	}
	if errors.Is(err, fosite.ErrServerError) {
		e := fosite.ErrorToRFC6749Error(err)
		p.log.Error("server error", "error", e.GetDescription(), "debug", e.Debug())
	}
	return bounded(err)
}

// maxHint bounds the hint of an error description: hints quote parts of the request, which
// must not come back as a megabyte of the attacker's choosing.
const maxHint = 256

// bounded returns err with its description and hint cut to a bounded length and reduced to
// the characters RFC 6749 §5.2 allows in error_description (printable ASCII without '"' and
// '\'): a double quote becomes a single one, anything else outside the set '?'.
func bounded(err error) error {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		return err
	}
	hint, desc := strict.Text(rfc.HintField, maxHint), strict.Text(rfc.DescriptionField, 2*maxHint)
	if hint == rfc.HintField && desc == rfc.DescriptionField {
		return err
	}
	e := *rfc // copied, never mutated: fosite's sentinels are shared
	e.HintField, e.DescriptionField = hint, desc
	return &e
}
