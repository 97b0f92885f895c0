package provider

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Identity and authorization chaining across trust domains
// (https://datatracker.ietf.org/doc/draft-ietf-oauth-identity-chaining/): the token exchange's
// way out of this domain. The way in is the RFC 7523 jwt-bearer grant with a trust in the
// other domain's authorization server (storage.Trust with MetadataKeys and Transcribe).

// DefaultGrantLifetime bounds exp - iat of a JWT authorization grant for a peer whose entry
// sets no MaxGrantLifetime: long enough to reach the peer's token endpoint, short enough that a
// leaked grant is soon useless (the draft's §5.5 mitigations: short-lived, single-use).
const DefaultGrantLifetime = 5 * time.Minute

// MaxGrantLifetime is the longest lifetime a peer entry may set.
const MaxGrantLifetime = time.Hour

// chainedClaims are the registered claims a peer entry may transcribe into a grant
// (storage.Peer.Claims), beside application claims.
var chainedClaims = []string{"act", "client_id", "auth_time", "acr", "amr"}

// grantForPeer issues a JWT authorization grant for a peer authorization server
// (draft-ietf-oauth-identity-chaining §2.3): the token exchange with requested_token_type
// urn:ietf:params:oauth:token-type:jwt, after the exchange's own rules (client, subject and
// actor tokens, anti-splicing, may_act, the delegation depth) accepted it. The rules, in the
// order they are checked:
//
//   - resource names the peer by its issuer identifier, exactly, as registered
//     (storage.Peer); audience is refused as everywhere. An unregistered peer, or one the
//     client does not list among its resources, is invalid_target.
//   - The subject token is an access token of this server: a JWT of a trusted issuer is not
//     vouched for to another domain (invalid_request).
//   - Scopes, in the peer's vocabulary: each requested scope must be one the peer entry allows
//     (invalid_scope naming the entry), in the subject token (an exchange never widens scope;
//     the draft's §2.5 "not higher privileged than the subject_token") and the client's. None
//     requested: the subject token's ∩ the client's ∩ the peer's. A peer entry with scopes
//     never gets a grant without any (the peer would read no scope claim as "its own trust's
//     scopes"); one without scopes gets no scope claim.
//   - Claims transcription (§2.5): iss, sub, aud, iat, exp, jti and scope always; the peer
//     entry's Claims decide the rest (act, client_id, auth_time, acr, amr, application claims
//     of the subject token). A delegation (any act) for a peer that does not allow act is
//     refused (invalid_target), never sent without it.
//   - The application's ExchangePolicy, if any, decides last, as for access tokens
//     (RequestedTokenType tells the two apart).
//   - The grant: typ JWT, signed with this server's keys, aud the peer's issuer (one value,
//     as rfc7523bis and the draft's §2.3.3 recommend: a grant cannot be replayed at another
//     server), a fresh jti (the peer uses it once), exp at most the peer entry's
//     MaxGrantLifetime (default [DefaultGrantLifetime]) and never after the subject token's.
//     Nothing is stored here.
//   - The response (RFC 8693 §2.2.1): access_token is the grant, issued_token_type
//     urn:ietf:params:oauth:token-type:jwt, token_type N_A, expires_in, scope, resource (the
//     peer), and token_endpoint: where to present it (the peer entry's, or the one its RFC
//     8414 metadata names; left out when that cannot be fetched).
func (p *Provider) grantForPeer(ctx context.Context, sc *storage.Client, form url.Values, subject, actorToken *exchanged, act *strategy.Actor) (*tokenResponse, error) {
	indicators, err := handlers.TokenIndicators(form)
	if err != nil {
		return nil, err
	}
	if len(indicators) == 0 {
		return nil, handlers.ErrInvalidTarget.WithHint("A JWT authorization grant is for one peer authorization server: name it with the 'resource' parameter (its issuer identifier).")
	}
	peer, err := p.store.Peer(ctx, indicators[0])
	if errors.Is(err, storage.ErrNotFound) {
		return nil, handlers.ErrInvalidTarget.WithHint("The resource is not a registered peer authorization server; a JWT authorization grant is issued only for one.")
	} else if err != nil {
		return nil, err
	}
	if !slices.Contains(sc.Resources, peer.Issuer) {
		return nil, handlers.ErrInvalidTarget.WithHint("The client is not allowed to request grants for this peer authorization server.")
	}
	if subject.typ != handlers.TokenTypeAccessToken {
		return nil, fosite.ErrInvalidRequest.WithHint("Only an access token of this server is exchanged for a grant for a peer authorization server; a JWT of a trusted issuer is not vouched for to another domain.")
	}

	scopes, err := peerScopes(form, subject.scopes, sc.Scopes, peer)
	if err != nil {
		return nil, err
	}
	claims, err := transcribeForPeer(peer, sc, subject, act)
	if err != nil {
		return nil, err
	}
	if p.cfg.ExchangePolicy != nil {
		if scopes, err = p.exchangePolicy(ctx, sc, subject, act, peer.Issuer, handlers.TokenTypeJWT, scopes); err != nil {
			return nil, err
		}
		if len(peer.Scopes) > 0 && len(scopes) == 0 {
			return nil, fosite.ErrInvalidScope.WithHint("The policy leaves no scope for this peer, and a grant without a scope claim would carry the peer's own default.")
		}
	}

	life := peer.MaxGrantLifetime
	if life <= 0 {
		life = DefaultGrantLifetime
	}
	g := strategy.Grant{
		Audience: peer.Issuer, Subject: subject.subject, TTL: life, NotAfter: subject.exp,
		Scopes: scopes, Claims: claims, SigningAlg: peer.SigningAlg,
	}
	if slices.Contains(peer.Claims, "act") {
		g.Act = act // actors without iss are this server's: the grant's issuer
	}
	m, err := p.tokens.MintGrant(ctx, g)
	if errors.Is(err, strategy.ErrNoSigningKey) && p.tokens.ensure != nil {
		if eerr := p.tokens.ensure(ctx, peer.SigningAlg); eerr != nil {
			return nil, errors.Join(err, eerr)
		}
		m, err = p.tokens.MintGrant(ctx, g)
	}
	if err != nil {
		return nil, err
	}
	if len(m.Token) > handlers.MaxAssertionSize {
		return nil, handlers.ErrInvalidTarget.WithHintf("The grant would be larger than the %d bytes a peer accepts; the peer entry transcribes too much.", handlers.MaxAssertionSize)
	}
	if err := p.useUp(ctx, actorToken); err != nil {
		return nil, err
	}
	return &tokenResponse{
		AccessToken: m.Token, TokenType: "N_A", ExpiresIn: int64(m.ExpiresAt.Sub(m.IssuedAt) / time.Second),
		Scope: strings.Join(scopes, " "), Resource: peer.Issuer, IssuedTokenType: handlers.TokenTypeJWT,
		TokenEndpoint: p.peerTokenEndpoint(ctx, peer),
	}, nil
}

// peerScopes decides the scope claim of a grant for peer (see grantForPeer).
func peerScopes(form url.Values, subject, client []string, peer *storage.Peer) ([]string, error) {
	var requested []string
	if v := form.Get("scope"); v != "" {
		requested = fosite.RemoveEmpty(strings.Split(v, " "))
	}
	for _, s := range requested {
		switch {
		case !slices.Contains(peer.Scopes, s):
			return nil, fosite.ErrInvalidScope.WithHintf("The peer entry for '%s' does not allow scope '%s'.", strict.Echo(peer.Issuer), strict.Echo(s))
		case !slices.Contains(subject, s):
			return nil, fosite.ErrInvalidScope.WithHintf("The scope '%s' is not in the subject_token; an exchange never widens scope.", strict.Echo(s))
		case !slices.Contains(client, s):
			return nil, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", strict.Echo(s))
		}
	}
	scopes := requested
	if len(requested) == 0 {
		scopes = intersect(intersect(subject, client), peer.Scopes)
	}
	scopes = slices.Compact(scopes)
	if len(peer.Scopes) > 0 && len(scopes) == 0 {
		return nil, fosite.ErrInvalidScope.WithHintf("No scope of the subject_token that the client may request is one the peer entry for '%s' allows.", strict.Echo(peer.Issuer))
	}
	return scopes, nil
}

// transcribeForPeer returns the claims the peer entry transcribes from the subject token (and
// the request) into the grant, beside act, which the caller sets; it refuses a delegation the
// entry would not carry.
func transcribeForPeer(peer *storage.Peer, sc *storage.Client, subject *exchanged, act *strategy.Actor) (map[string]any, error) {
	if act != nil && !slices.Contains(peer.Claims, "act") {
		return nil, handlers.ErrInvalidTarget.WithHintf("The peer entry for '%s' does not allow the act claim, which this delegation needs: a grant without it would present the client's call as the subject's own.", strict.Echo(peer.Issuer))
	}
	out := map[string]any{}
	for _, name := range peer.Claims {
		switch name {
		case "act":
		case "client_id":
			out[name] = sc.ID
		case "auth_time":
			if !subject.authTime.IsZero() {
				out[name] = subject.authTime.Unix()
			}
		case "acr":
			if subject.acr != "" {
				out[name] = subject.acr
			}
		case "amr":
			if len(subject.amr) > 0 {
				out[name] = slices.Clone(subject.amr)
			}
		default:
			if strategy.IsReservedClaim(name) {
				continue // never transcribed (setup validation refuses the entry)
			}
			if v, ok := subject.claims[name]; ok {
				out[name] = v
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// peerEndpoints caches the token endpoints found in peers' RFC 8414 metadata.
type peerEndpoints struct {
	mu sync.Mutex
	m  map[string]peerEndpoint
}

type peerEndpoint struct {
	url   string // "" after a failed fetch
	until time.Time
}

// How long a discovered token endpoint, and a failed discovery, are remembered; how long a
// token exchange waits for one.
const (
	peerEndpointTTL     = time.Hour
	peerEndpointRetry   = time.Minute
	peerEndpointTimeout = 3 * time.Second
	maxPeerEndpoints    = 1024
)

// peerTokenEndpoint returns where the client presents a grant for peer: the entry's token
// endpoint, or the one its metadata names (cached), or "" when that cannot be fetched now.
func (p *Provider) peerTokenEndpoint(ctx context.Context, peer *storage.Peer) string {
	if peer.TokenEndpoint != "" {
		return peer.TokenEndpoint
	}
	c := p.peerMeta
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[peer.Issuer]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.url
	}
	ctx, cancel := context.WithTimeout(ctx, peerEndpointTimeout)
	defer cancel()
	md, err := verify.Discover(ctx, nil, peer.Issuer)
	e = peerEndpoint{until: now.Add(peerEndpointRetry)}
	if err != nil {
		p.log.Warn("peer authorization server metadata", "issuer", peer.Issuer, "error", err.Error())
	} else if md.TokenEndpoint != "" {
		e = peerEndpoint{url: md.TokenEndpoint, until: now.Add(peerEndpointTTL)}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxPeerEndpoints {
		c.m = make(map[string]peerEndpoint)
	}
	c.m[peer.Issuer] = e
	c.mu.Unlock()
	return e.url
}
