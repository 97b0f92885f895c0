package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// serveIntrospect is the RFC 7662 introspection endpoint. Callers authenticate as confidential
// clients (any method the token endpoint accepts). An access token is answered with exactly the
// claims it carries (iss sub aud exp iat jti client_id scope …) plus token_type, not values
// re-derived from the stored grant; a refresh token with the grant's. Anything invalid,
// expired, revoked or unknown is {"active": false}.
//
// See https://www.rfc-editor.org/rfc/rfc7662#section-2.
func (p *Provider) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.readForm(w, r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		p.writeTokenError(ctx, w, r, nil, fosite.ErrInvalidClient.WithHint("Introspection callers authenticate as clients, not with bearer tokens."))
		return
	}
	client, err := p.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		p.writeTokenError(ctx, w, r, nil, fosite.ErrInvalidClient.WithWrap(err).WithHint("Client authentication failed."))
		return
	}
	if client.IsPublic() {
		p.writeTokenError(ctx, w, r, nil, fosite.ErrInvalidClient.WithHint("Public clients may not introspect tokens."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		p.writeTokenError(ctx, w, r, nil, fosite.ErrInvalidRequest.WithHint("The 'token' parameter is missing."))
		return
	}
	hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	use, ar, err := p.oauth.IntrospectToken(ctx, token, hint, &storage.Session{})
	resp := map[string]any{"active": false}
	if err == nil && ar != nil {
		resp = p.introspection(use, ar)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

// introspection builds the response for an active token.
func (p *Provider) introspection(use fosite.TokenUse, ar fosite.AccessRequester) map[string]any {
	sess, _ := ar.GetSession().(*storage.Session)
	if use == fosite.AccessToken && sess != nil && len(sess.AccessToken) > 0 {
		out := make(map[string]any, len(sess.AccessToken)+2)
		for k, v := range sess.AccessToken {
			out[k] = v
		}
		out["active"] = true
		out["token_type"] = "Bearer"
		return out
	}
	out := map[string]any{
		"active":    true,
		"iss":       p.issuer,
		"client_id": ar.GetClient().GetID(),
		"iat":       ar.GetRequestedAt().Unix(),
	}
	if s := strings.Join(ar.GetGrantedScopes(), " "); s != "" {
		out["scope"] = s
	}
	if sess != nil {
		if sess.Subject != "" {
			out["sub"] = sess.Subject
		}
		if exp := sess.GetExpiresAt(fosite.TokenType(use)); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
	}
	return out
}

// serveRevoke is the RFC 7009 revocation endpoint. Revoking either token of a grant revokes the
// grant's refresh and access tokens (RFC 7009 §2.1); unknown tokens are answered 200.
func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.readForm(w, r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	err := p.oauth.NewRevocationRequest(ctx, r)
	if err != nil {
		err = p.normalizeError(err)
		if _, _, basic := r.BasicAuth(); basic && errors.Is(err, fosite.ErrInvalidClient) {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+p.issuer+`", charset="UTF-8"`)
		}
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}
