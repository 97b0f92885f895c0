package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
)

// serveIntrospect is the RFC 7662 introspection endpoint. Callers authenticate as confidential
// clients (any method the token endpoint accepts). An access token is answered with exactly the
// claims it carries (iss sub aud exp iat jti client_id scope …) plus token_type, not values
// re-derived from the stored grant; a refresh token with the grant's. Anything invalid,
// expired, revoked or unknown is {"active": false}.
//
// Who may introspect what (RFC 7662 §2.1 and §4 leave it to the server): the client a token was
// issued to; for an access token, also a client that Serves its audience (the resource server
// it is for); and a client registered with IntrospectAll. For anyone else the token is
// {"active": false}, exactly as if it did not exist, so that introspection cannot be used to
// read other clients' tokens or to learn that they are valid.
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
	resp := map[string]any{"active": false}
	if claims, ok := p.signedAccessToken(ctx, token); ok {
		// A signed access token of this server answers with its own claims, which its
		// signature vouches for, if the caller may see it and it is still live.
		cid, _ := claims["client_id"].(string)
		live := false
		if mayIntrospect(client, cid, audience(claims["aud"])) {
			var err error
			if live, err = p.live(ctx, token, claims); err != nil {
				// The store cannot tell whether the token was revoked: neither active nor
				// inactive, but 503 (RFC 7662 §2.3 lets the server answer errors).
				p.writeTokenError(ctx, w, r, nil, err)
				return
			}
		}
		if live {
			resp = claims
			resp["active"] = true
			resp["token_type"] = tokenType(claims)
		}
	} else {
		// Refresh tokens, and encrypted access tokens (which only their resource server can
		// read; their session keeps their claims).
		hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
		use, ar, err := p.oauth.IntrospectToken(ctx, token, hint, &storage.Session{})
		if unavailable(err) {
			p.writeTokenError(ctx, w, r, nil, err)
			return
		}
		if err == nil && ar != nil {
			var aud []string
			if use == fosite.AccessToken {
				aud = ar.GetGrantedAudience() // one resource server per access token
			}
			if mayIntrospect(client, ar.GetClient().GetID(), aud) {
				resp = p.introspection(use, ar)
			}
		}
	}
	p.outage.ok()
	noteIntrospection(ctx, client.GetID(), resp) // for the log line and event (observe.go)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if wantsJWT(r.Header) {
		jwt, err := p.introspectionJWT(ctx, client.GetID(), resp)
		if err != nil {
			p.writeTokenError(ctx, w, r, nil, err)
			return
		}
		w.Header().Set("Content-Type", introspectionJWTType)
		_, _ = w.Write([]byte(jwt))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(resp)
}

// introspectionJWTType is the media type of an RFC 9701 introspection response, and (without
// "application/") its JWT's typ.
const introspectionJWTType = "application/token-introspection+jwt"

// wantsJWT reports whether an introspection request asks for a JWT response (RFC 9701 §4): its
// Accept header names application/token-introspection+jwt (with a non-zero q, if any).
func wantsJWT(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(mt), introspectionJWTType) {
				continue
			}
			if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok && strings.Trim(q, "0.") == "" {
				continue // q=0: not acceptable
			}
			return true
		}
	}
	return false
}

// introspectionJWT signs an introspection response for the caller (RFC 9701 §5,
// https://www.rfc-editor.org/rfc/rfc9701#section-5): typ token-introspection+jwt, iss this
// server, aud the caller, iat now, and the response as the token_introspection claim. There is
// no sub and no exp at the top level, so that it can never pass for an access token (which its
// typ already prevents).
func (p *Provider) introspectionJWT(ctx context.Context, caller string, resp map[string]any) (string, error) {
	key, err := p.keys.SigningKey(ctx, "")
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(map[string]any{
		"iss": p.issuer, "aud": caller, "iat": p.cfg.Now().Unix(), "token_introspection": resp,
	})
	if err != nil {
		return "", err
	}
	return key.SignJWT(strings.TrimPrefix(introspectionJWTType, "application/"), payload)
}

// introspectionAlgs lists the algorithm JWT introspection responses are signed with (the
// default signing key's); none when no key signs right now.
func (p *Provider) introspectionAlgs(ctx context.Context) []string {
	key, err := p.keys.SigningKey(ctx, "")
	if err != nil {
		return nil
	}
	return []string{string(key.Algorithm)}
}

// tokenType is an access token's token_type in an introspection response (RFC 7662 §2.2):
// DPoP for one bound to a DPoP key (RFC 9449 §6.2), else Bearer.
func tokenType(claims map[string]any) string {
	if cnf, ok := claims["cnf"].(map[string]any); ok && cnf["jkt"] != nil {
		return "DPoP"
	}
	return "Bearer"
}

// mayIntrospect applies the introspection policy (see serveIntrospect) to a caller and a token
// issued to clientID for the audiences aud (none for a refresh token).
func mayIntrospect(caller fosite.Client, clientID string, aud []string) bool {
	if caller.GetID() == clientID {
		return true
	}
	c, ok := caller.(*storage.Client)
	if !ok {
		return false
	}
	if c.IntrospectAll {
		return true
	}
	for _, a := range aud {
		if slices.Contains(c.Serves, a) {
			return true
		}
	}
	return false
}

// audience reads an aud claim: a string or an array of strings.
func audience(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
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
		out["token_type"] = tokenType(out)
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
		if sess.DPoPJKT != "" {
			out["cnf"] = map[string]any{"jkt": sess.DPoPJKT} // a public client's bound refresh token
		}
	}
	return out
}

// signedAccessToken returns the claims of a valid signed access token of this server (three
// parts; signature, typ, iss and exp checked), or false for anything else.
func (p *Provider) signedAccessToken(ctx context.Context, token string) (map[string]any, bool) {
	if strings.Count(token, ".") != 2 {
		return nil, false
	}
	claims, err := p.tokens.VerifyAccessToken(ctx, token)
	if err != nil {
		return nil, false
	}
	return claims, true
}

// live reports whether a valid signed access token was not revoked: with stateless access
// tokens, its jti is not on the deny list; else its row still exists (revocation deletes it).
// A store that cannot be reached returns its error: the caller answers 503, neither active nor
// inactive. Any other store error counts as revoked: introspection must not call a token active
// when it cannot tell.
func (p *Provider) live(ctx context.Context, token string, claims map[string]any) (bool, error) {
	// The client it was issued to was not deleted (manage.go).
	if ok, err := p.partyLive(ctx, claims); !ok || err != nil {
		return false, err
	}
	if p.cfg.StatelessAccessTokens {
		denied, err := p.denied(ctx, claims)
		return !denied, err
	}
	sig := strategy.AccessTokenSignature(token)
	if c, ok := p.store.(storage.AccessTokenChecker); ok {
		live, err := c.AccessTokenExists(ctx, sig)
		if unavailable(err) {
			return false, err
		}
		if err != nil {
			p.log.Error("introspection token lookup", "error", err.Error())
		}
		return live && err == nil, nil
	}
	_, err := p.fstore.GetAccessTokenSession(ctx, sig, &storage.Session{})
	if unavailable(err) {
		return false, err
	}
	if err != nil && !errors.Is(err, fosite.ErrNotFound) {
		p.log.Error("introspection token lookup", "error", err.Error())
	}
	return err == nil, nil
}

// denyKey is the JTIStore key recording a revoked unpersisted access token.
func denyKey(claims map[string]any) string {
	jti, _ := claims["jti"].(string)
	return "revoked-access-token:" + jti
}

// denied reports whether an unpersisted access token was revoked. A store that cannot be
// reached returns its error; any other store error counts as revoked: introspection must not
// call a token active when it cannot tell.
func (p *Provider) denied(ctx context.Context, claims map[string]any) (bool, error) {
	used, err := p.store.JTIUsed(ctx, denyKey(claims))
	if unavailable(err) {
		return true, err
	}
	if err != nil {
		p.log.Error("introspection deny list", "error", err.Error())
		return true, nil
	}
	return used, nil
}

// revokeStateless revokes an unpersisted access token (RFC 7009 §2.1): the caller must be the
// client it was issued to; its jti goes to the deny list until the token expires.
func (p *Provider) revokeStateless(ctx context.Context, r *http.Request, claims map[string]any) error {
	client, err := p.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return fosite.ErrInvalidClient.WithWrap(err).WithHint("Client authentication failed.")
	}
	if cid, _ := claims["client_id"].(string); cid != client.GetID() {
		return fosite.ErrUnauthorizedClient.WithHint("The token was not issued to this client.")
	}
	n, _ := claims["exp"].(json.Number) // VerifyAccessToken checked it is an integer
	exp, _ := n.Int64()
	err = p.store.UseJTI(ctx, denyKey(claims), time.Unix(exp, 0))
	if err != nil && !errors.Is(err, storage.ErrJTIUsed) {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return nil
}

// serveRevoke is the RFC 7009 revocation endpoint. Revoking either token of a grant revokes the
// grant's refresh and access tokens (RFC 7009 §2.1); unknown tokens are answered 200.
func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := p.readForm(w, r); err != nil {
		p.writeTokenError(ctx, w, r, nil, err)
		return
	}
	var err error
	if claims, ok := p.signedAccessToken(ctx, r.PostForm.Get("token")); ok && p.cfg.StatelessAccessTokens {
		err = p.revokeStateless(ctx, r, claims)
	} else {
		err = p.oauth.NewRevocationRequest(ctx, r)
	}
	switch {
	case unavailable(err):
		// First: a client that could not be read is not invalid_client, and a token that
		// could not be looked up is not unknown. 503 temporarily_unavailable, Retry-After.
		p.writeTokenError(ctx, w, r, nil, err)
	case errors.Is(err, fosite.ErrInvalidClient):
		// Checked first: the failed authentication of an unknown client wraps not_found, which
		// must not pass for an unknown token (RFC 7009 §2.2.1: invalid_client, 401).
		p.writeTokenError(ctx, w, r, nil, err)
	case err == nil,
		// A token of another client, or one that is unknown or already dead: 200, revoking
		// nothing and revealing nothing (RFC 7009 §2.2).
		errors.Is(err, fosite.ErrUnauthorizedClient), errors.Is(err, fosite.ErrNotFound),
		errors.Is(err, fosite.ErrInactiveToken), errors.Is(err, fosite.ErrUnknownRequest):
		p.outage.ok()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		w.WriteHeader(http.StatusOK)
	default:
		// fosite's writer would answer 200 even for a server error; this says what happened.
		p.writeTokenError(ctx, w, r, nil, err)
	}
}
