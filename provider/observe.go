package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
)

// Every request the provider serves ends in one outcome: a log line (Config.Logger, Info), an
// audit event (Config.Events) and the request metrics (Config.MeterProvider). The endpoints
// note what they decided in the request's outcome record (noteMinted, noteError,
// noteIntrospection); serveObserved reads it once the response is written. Nothing secret is
// ever noted: client IDs, jti, kid, resource and error codes, never a token, secret, assertion
// or key.

// outcome is what one request decided, noted by the endpoint that served it.
type outcome struct {
	// A minted access token (the last one, if a request minted several).
	minted    bool
	clientID  string
	subject   string
	resource  string
	scopes    []string
	kid, jti  string
	expiresAt time.Time
	actor     string
	refresh   bool
	jkt       string // the DPoP key's thumbprint, for a bound token

	// The error answered, if any: its RFC 6749 code and description.
	errCode, reason string

	// event is the audit event of an issued token, kept here so that emitting it allocates
	// nothing more.
	event TokenExchanged

	// An introspection's answer.
	introspected     bool
	introCaller      string
	introActive      bool
	introTokenClient string
}

type outcomeKey struct{}

// noted returns the outcome record of the request ctx belongs to, or nil.
func noted(ctx context.Context) *outcome {
	o, _ := ctx.Value(outcomeKey{}).(*outcome)
	return o
}

// noteMinted records an access token minted for req.
func noteMinted(ctx context.Context, req fosite.Requester, t *tokenTarget, m strategy.Minted) {
	o := noted(ctx)
	if o == nil {
		return
	}
	o.minted = true
	if c := req.GetClient(); c != nil {
		o.clientID = c.GetID()
	}
	if s, ok := req.GetSession().(*storage.Session); ok && s != nil {
		o.subject = s.Subject
	}
	if o.subject == "" {
		o.subject = o.clientID
	}
	o.resource, o.scopes, o.kid, o.jti, o.expiresAt, o.jkt = t.rs.Identifier, t.scopes, m.KeyID, m.JTI, m.ExpiresAt, t.jkt
	if t.act != nil {
		o.actor = t.act.Subject
	}
}

// noteError records the error a request is answered with.
func noteError(ctx context.Context, err error) {
	o := noted(ctx)
	if o == nil || err == nil {
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	o.errCode, o.reason = rfc.ErrorField, rfc.GetDescription()
}

// noteIntrospection records an introspection's answer.
func noteIntrospection(ctx context.Context, caller string, resp map[string]any) {
	o := noted(ctx)
	if o == nil {
		return
	}
	o.introspected, o.introCaller = true, caller
	o.introActive, _ = resp["active"].(bool)
	if o.introActive {
		o.introTokenClient, _ = resp["client_id"].(string)
	}
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage, noting that the request
// issued a refresh token.
func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	err := s.TokenStore.CreateRefreshTokenSession(ctx, signature, accessSignature, req)
	if o := noted(ctx); o != nil && err == nil {
		o.refresh = true
	}
	return err
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// endpointOf names the endpoint a path is served by ("" for none).
func (p *Provider) endpointOf(path string) string {
	switch path {
	case p.paths.token:
		return "token"
	case p.paths.authorize:
		return "authorize"
	case p.paths.introspect:
		return "introspect"
	case p.paths.revoke:
		return "revoke"
	case p.paths.jwks:
		return "jwks"
	case p.paths.wellKnown:
		return "metadata"
	}
	return ""
}

// serveObserved serves r (Provider.route) and then records its outcome.
func (p *Provider) serveObserved(w http.ResponseWriter, r *http.Request) {
	endpoint := p.endpointOf(r.URL.Path)
	if endpoint == "" {
		http.NotFound(w, r)
		return
	}
	start := time.Now()
	o := &outcome{}
	sw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), outcomeKey{}, o))
	p.route(sw, r)
	p.finish(r, endpoint, o, sw, time.Since(start))
}

// finish logs, emits and measures the outcome of one request.
func (p *Provider) finish(r *http.Request, endpoint string, o *outcome, sw *statusWriter, d time.Duration) {
	ctx := r.Context()
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	result := "ok"
	switch {
	case o.errCode != "":
		result = o.errCode
	case status == http.StatusServiceUnavailable:
		result = fosite.ErrTemporarilyUnavailable.ErrorField
	case status >= 400:
		result = http.StatusText(status)
	}
	p.metrics.request(ctx, endpoint, result, d)
	now := p.cfg.Now()
	grant := formValue(r, "grant_type")
	info := p.log.Enabled(ctx, slog.LevelInfo)

	switch endpoint {
	case "token":
		if o.errCode != "" {
			claimed := claimedClient(r)
			if info {
				p.log.LogAttrs(ctx, slog.LevelInfo, "token refused", slog.String("grant_type", grant),
					slog.String("client_id", claimed), slog.String("error", o.errCode), slog.String("reason", o.reason))
			}
			p.authFailed(ctx, now, endpoint, claimed, o)
			return
		}
		if status != http.StatusOK {
			return
		}
		if !o.minted { // a JWT authorization grant for a peer (token exchange): no access token
			resource := formValue(r, "resource")
			if info {
				p.log.LogAttrs(ctx, slog.LevelInfo, "grant issued", slog.String("grant_type", grant),
					slog.String("client_id", claimedClient(r)), slog.String("resource", resource))
			}
			p.emit(ctx, &TokenExchanged{TokenIssued: TokenIssued{At: At{now}, GrantType: grant, ClientID: claimedClient(r), Resource: resource},
				IssuedTokenType: handlers.TokenTypeJWT})
			return
		}
		p.metrics.token(ctx, grant, o.resource)
		if info {
			p.log.LogAttrs(ctx, slog.LevelInfo, "token issued", slog.String("grant_type", grant),
				slog.String("client_id", o.clientID), slog.String("resource", o.resource), slog.String("scope", strings.Join(o.scopes, " ")),
				slog.String("kid", o.kid), slog.String("jti", o.jti), slog.Time("exp", o.expiresAt), slog.Bool("refresh_token", o.refresh),
				slog.String("dpop_jkt", o.jkt))
		}
		if p.cfg.Events == nil {
			return
		}
		// The event lives in the request's outcome record, which is allocated anyway.
		o.event = TokenExchanged{TokenIssued: TokenIssued{At: At{now}, GrantType: grant, ClientID: o.clientID, Subject: o.subject,
			Resource: o.resource, Scopes: o.scopes, KeyID: o.kid, JTI: o.jti, ExpiresAt: o.expiresAt, RefreshToken: o.refresh,
			DPoPJKT: o.jkt}}
		if grant == handlers.GrantTypeTokenExchange {
			o.event.Actor, o.event.IssuedTokenType = o.actor, handlers.TokenTypeAccessToken
			p.emit(ctx, &o.event)
			return
		}
		p.emit(ctx, &o.event.TokenIssued)
	case "introspect":
		if o.errCode != "" {
			claimed := claimedClient(r)
			if info {
				p.log.LogAttrs(ctx, slog.LevelInfo, "introspection refused", slog.String("client_id", claimed),
					slog.String("error", o.errCode), slog.String("reason", o.reason))
			}
			p.authFailed(ctx, now, endpoint, claimed, o)
			return
		}
		if !o.introspected {
			return
		}
		if info {
			p.log.LogAttrs(ctx, slog.LevelInfo, "token introspected", slog.String("client_id", o.introCaller),
				slog.Bool("active", o.introActive), slog.String("token_client_id", o.introTokenClient))
		}
		p.emit(ctx, &Introspected{At: At{now}, ClientID: o.introCaller, Active: o.introActive, TokenClientID: o.introTokenClient})
	case "revoke":
		claimed := claimedClient(r)
		if o.errCode != "" {
			if info {
				p.log.LogAttrs(ctx, slog.LevelInfo, "revocation refused", slog.String("client_id", claimed),
					slog.String("error", o.errCode), slog.String("reason", o.reason))
			}
			p.authFailed(ctx, now, endpoint, claimed, o)
			return
		}
		if status != http.StatusOK {
			return
		}
		hint := formValue(r, "token_type_hint")
		if info {
			p.log.LogAttrs(ctx, slog.LevelInfo, "token revoked", slog.String("client_id", claimed), slog.String("token_type_hint", hint))
		}
		p.emit(ctx, &Revoked{At: At{now}, ClientID: claimed, TokenTypeHint: hint})
	case "authorize":
		if !info {
			return
		}
		client := r.URL.Query().Get("client_id")
		if client == "" {
			client = formValue(r, "client_id")
		}
		switch {
		case o.errCode != "":
			p.log.LogAttrs(ctx, slog.LevelInfo, "authorization refused", slog.String("client_id", client),
				slog.String("error", o.errCode), slog.String("reason", o.reason))
		case status/100 == 3 && strings.Contains(sw.Header().Get("Location"), "code="):
			p.log.LogAttrs(ctx, slog.LevelInfo, "authorization code issued", slog.String("client_id", client))
		}
	}
}

// authFailed emits ClientAuthFailed for an invalid_client answer.
func (p *Provider) authFailed(ctx context.Context, now time.Time, endpoint, claimed string, o *outcome) {
	if o.errCode != fosite.ErrInvalidClient.ErrorField {
		return
	}
	p.emit(ctx, &ClientAuthFailed{At: At{now}, Endpoint: endpoint, ClientID: claimed, Reason: o.reason})
}

// formValue is a parsed form parameter ("" when the body was not read).
func formValue(r *http.Request, name string) string {
	if r.PostForm == nil {
		return ""
	}
	return r.PostForm.Get(name)
}

// claimedClient is the client_id a request claims, unverified, for logs and events: the HTTP
// Basic user, the client_id parameter, or the iss of a client assertion (decoded, never
// verified here, never logged whole).
func claimedClient(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		if id, err := url.QueryUnescape(u); err == nil {
			return bounded256(id)
		}
		return bounded256(u)
	}
	if id := formValue(r, "client_id"); id != "" {
		return bounded256(id)
	}
	if a := formValue(r, "client_assertion"); a != "" {
		parts := strings.Split(a, ".")
		if len(parts) == 3 && len(parts[1]) < 8<<10 {
			if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				var c struct {
					Iss string `json:"iss"`
				}
				if json.Unmarshal(payload, &c) == nil {
					return bounded256(c.Iss)
				}
			}
		}
	}
	return ""
}

// bounded256 cuts an identifier from a request to 256 bytes for the log.
func bounded256(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}
