package provider

import (
	"context"
	"net/http"
	"slices"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// serveAuthorize is the authorization endpoint (RFC 6749 §3.1) for the code flow with PKCE.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	if err := checkParams(ar.GetRequestForm()); err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	if jkt := ar.GetRequestForm().Get("dpop_jkt"); jkt != "" {
		if err := checkDPoPJKT(jkt); err != nil {
			p.writeAuthorizeError(ctx, w, ar, err)
			return
		}
	}
	indicators, err := handlers.Indicators(ar.GetRequestForm())
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	rss, err := p.resolver.ForAuthorization(ctx, ar.GetClient(), indicators)
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	resources := make([]string, len(rss))
	for i, rs := range rss {
		resources[i] = rs.Identifier
	}
	for _, s := range ar.GetRequestedScopes() {
		if !slices.ContainsFunc(rss, func(rs *storage.ResourceServer) bool { return slices.Contains(rs.Scopes, s) }) {
			p.writeAuthorizeError(ctx, w, ar, fosite.ErrInvalidScope.WithHintf("No requested resource server accepts scope '%s'.", strict.Echo(s)))
			return
		}
	}

	if p.cfg.Authenticator == nil {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("This authorization server has no user login configured."))
		return
	}
	authn, ok := p.cfg.Authenticator.Authenticate(w, r)
	if !ok {
		return
	}
	if authn == nil || authn.Subject == "" {
		p.writeAuthorizeError(ctx, w, ar, fosite.ErrServerError.WithDebug("Authenticator returned no subject"))
		return
	}
	granted := slices.Clone([]string(ar.GetRequestedScopes()))
	if p.cfg.Consenter != nil {
		g, ok := p.cfg.Consenter.Consent(w, r, ConsentRequest{
			ClientID: ar.GetClient().GetID(), Subject: authn.Subject, Scopes: granted, Resources: slices.Clone(resources),
		})
		if !ok {
			return
		}
		granted = slices.DeleteFunc(g, func(s string) bool { return !ar.GetRequestedScopes().Has(s) })
	}
	for _, s := range granted {
		ar.GrantScope(s)
	}
	// The grant covers every resolved resource; each access token later names one of them.
	ar.SetRequestedAudience(resources)
	for _, id := range resources {
		ar.GrantAudience(id)
	}
	sess := &storage.Session{
		DPoPJKT:  ar.GetRequestForm().Get("dpop_jkt"),
		Subject:  authn.Subject,
		AuthTime: authn.AuthTime.UTC(),
		ACR:      authn.ACR,
		AMR:      slices.Clone(authn.AMR),
		Extra:    authn.Extra,
	}
	resp, err := p.oauth.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		p.writeAuthorizeError(ctx, w, ar, err)
		return
	}
	p.outage.ok() // the code's session committed
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// writeAuthorizeError answers an authorization request with an error. A store that cannot be
// reached is temporarily_unavailable (RFC 6749 §4.1.2.1): sent to the client's redirect URI
// once that is validated, else — the client could not even be read — answered here with 503
// and Retry-After.
func (p *Provider) writeAuthorizeError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	if unavailable(err) {
		err = p.temporarilyUnavailable(err)
		if !ar.IsRedirectURIValid() {
			handlers.SetUnavailable(w.Header())
		}
	}
	noteError(ctx, err) // for the request's log line (observe.go)
	p.oauth.WriteAuthorizeError(ctx, w, ar, bounded(err))
}
