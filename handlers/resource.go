package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// MaxIndicatorLength bounds one resource indicator. Longer values are refused before any
// parsing or lookup.
const MaxIndicatorLength = 2048

// ParseIndicator checks one RFC 8707 §2 resource indicator: an absolute http or https URI
// without a fragment, with a host, no user info, at most MaxIndicatorLength bytes, and in the
// form it would be registered (no percent-encoded unreserved characters, no dot segments).
// The error is ErrInvalidTarget with a hint naming the rule that failed.
//
// See https://www.rfc-editor.org/rfc/rfc8707#section-2.
func ParseIndicator(v string) error {
	switch {
	case v == "":
		return ErrInvalidTarget.WithHint("The resource parameter is empty.")
	case len(v) > MaxIndicatorLength:
		return ErrInvalidTarget.WithHintf("The resource indicator is longer than %d bytes.", MaxIndicatorLength)
	case strings.ContainsAny(v, " \t\r\n\x00\\"):
		return ErrInvalidTarget.WithHint("The resource indicator contains white space, control characters or backslashes.")
	case strings.Contains(v, "#"):
		return ErrInvalidTarget.WithHint("The resource indicator must not contain a fragment component.")
	}
	u, err := url.Parse(v)
	if err != nil {
		return ErrInvalidTarget.WithHint("The resource indicator is not a valid URI.")
	}
	switch {
	case !u.IsAbs():
		return ErrInvalidTarget.WithHint("The resource indicator must be an absolute URI.")
	case u.Scheme != "https" && u.Scheme != "http":
		return ErrInvalidTarget.WithHint("The resource indicator must be an http or https URI.")
	case u.Hostname() == "" || u.Opaque != "":
		return ErrInvalidTarget.WithHint("The resource indicator must name a host.")
	case u.User != nil:
		return ErrInvalidTarget.WithHint("The resource indicator must not contain user information.")
	case hasDotSegment(u.EscapedPath()):
		return ErrInvalidTarget.WithHint("The resource indicator must not contain dot segments.")
	case hasEncodedUnreserved(v):
		return ErrInvalidTarget.WithHint("The resource indicator must not percent-encode unreserved characters.")
	}
	return nil
}

// hasDotSegment reports "." or ".." path segments, which would make two spellings of one
// resource.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") {
			return true
		}
	}
	return false
}

// hasEncodedUnreserved reports a percent-encoded unreserved character (RFC 3986 §2.3), another
// way to spell the same resource differently.
func hasEncodedUnreserved(v string) bool {
	for i := 0; i+2 < len(v); i++ {
		if v[i] != '%' {
			continue
		}
		b, ok := unhex(v[i+1], v[i+2])
		if !ok {
			continue
		}
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("-._~", b) >= 0 {
			return true
		}
	}
	return false
}

func unhex(a, b byte) (byte, bool) {
	h, ok1 := hexVal(a)
	l, ok2 := hexVal(b)
	return h<<4 | l, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MaxIndicators bounds how many resource values one request may carry. An authorization
// covering more resource servers than this is better split; the bound keeps a request that
// names thousands (each parsed and looked up) from costing more than it should.
const MaxIndicators = 32

// Indicators returns the validated resource indicators of a request form, duplicates removed,
// in the order given. More than [MaxIndicators] values (duplicates included) are
// invalid_target. It runs in time linear in the number of values.
func Indicators(form url.Values) ([]string, error) {
	vals := form["resource"]
	if len(vals) > MaxIndicators {
		return nil, ErrInvalidTarget.WithHintf("The request names more than %d resources.", MaxIndicators)
	}
	out := make([]string, 0, len(vals))
	seen := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		if err := ParseIndicator(v); err != nil {
			return nil, err
		}
		if _, dup := seen[v]; !dup {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out, nil
}

// TokenIndicators returns a token request's one resource indicator (RFC 8707 §2.2: one access
// token, one audience, even if the values repeat), or none.
func TokenIndicators(form url.Values) ([]string, error) {
	if len(form["resource"]) > 1 {
		return nil, ErrInvalidTarget.WithHint("Only one resource may be requested per access token; request one token per resource.")
	}
	return Indicators(form)
}

// Resolver maps resource indicators to registered resource servers, with the client's
// permissions and the grant's limits applied. It is the single funnel through which every grant
// — client_credentials, authorization_code, refresh_token, jwt-bearer and the token exchange —
// gets its audience. The rules (RFC 8707):
//
//   - A resource value is an absolute http(s) URI with a host, without fragment, user info, dot
//     segments or percent-encoded unreserved characters, at most [MaxIndicatorLength] bytes, at
//     most [MaxIndicators] values; it must equal a registered resource server's identifier
//     exactly (never by prefix) that the client lists among its resources. Anything else is
//     invalid_target with a description naming the rule.
//   - At the authorization endpoint several may be named; the grant covers all of them. At the
//     token endpoint one access token names one resource server: a code or refresh grant may
//     only narrow to one it covers, and only to one the client still lists.
//   - No resource: the default resource server if the client (or grant) may use it; for a
//     grant that does not cover it, the one resource it was granted; else invalid_target —
//     never an empty aud.
//   - Scopes ([GrantScopes]): requested ∩ the client's ∩ the resource server's, else
//     invalid_scope; a token for B carries only B's scopes.
type Resolver struct {
	// Resources looks resource servers up by identifier.
	Resources ResourceLookup
}

// ResourceLookup finds resource servers; storage.ResourceStore satisfies it, and so does a cache
// in front of it.
type ResourceLookup interface {
	ResourceServer(ctx context.Context, identifier string) (*storage.ResourceServer, error)
	ResourceServers(ctx context.Context) ([]storage.ResourceServer, error)
}

// defaultServer returns the default resource server, or ErrInvalidTarget if none is configured.
func (r Resolver) defaultServer(ctx context.Context) (*storage.ResourceServer, error) {
	all, err := r.Resources.ResourceServers(ctx)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	for i := range all {
		if all[i].Default {
			return &all[i], nil
		}
	}
	return nil, ErrInvalidTarget.WithHint("The request names no resource and no default resource server is configured.")
}

func (r Resolver) lookup(ctx context.Context, allowed []string, id string) (*storage.ResourceServer, error) {
	rs, err := r.Resources.ResourceServer(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrInvalidTarget.WithHint("The resource is not a registered resource server.")
	} else if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if !slices.Contains(allowed, rs.Identifier) {
		return nil, ErrInvalidTarget.WithHint("The client is not allowed to request tokens for this resource.")
	}
	return rs, nil
}

// ForAuthorization resolves the resources of an authorization request (RFC 8707 §2.1): every
// indicator must name a resource server the client may use; none means the default one. The
// grant then covers all of them.
func (r Resolver) ForAuthorization(ctx context.Context, client fosite.Client, indicators []string) ([]*storage.ResourceServer, error) {
	if len(indicators) == 0 {
		rs, err := r.defaultServer(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(client.GetAudience(), rs.Identifier) {
			return nil, ErrInvalidTarget.WithHint("The request names no resource and the client may not use the default resource server.")
		}
		return []*storage.ResourceServer{rs}, nil
	}
	out := make([]*storage.ResourceServer, 0, len(indicators))
	for _, id := range indicators {
		rs, err := r.lookup(ctx, client.GetAudience(), id)
		if err != nil {
			return nil, err
		}
		out = append(out, rs)
	}
	return out, nil
}

// ForToken resolves the one resource server an access token is for (RFC 8707 §2.2). granted is
// the grant's resource set for code and refresh grants (the token may only narrow it), or nil for
// grants without a prior authorization (client_credentials, jwt-bearer), where the client's
// permissions apply instead. Several indicators are invalid_target: one audience per token.
// With none, the default resource server is used if it is allowed, else the only granted one.
func (r Resolver) ForToken(ctx context.Context, client fosite.Client, indicators []string, granted []string) (*storage.ResourceServer, error) {
	allowed := client.GetAudience()
	if granted != nil {
		allowed = granted
	}
	switch len(indicators) {
	case 1:
		rs, err := r.lookup(ctx, allowed, indicators[0])
		if err != nil && granted != nil && errors.Is(err, ErrInvalidTarget) {
			return nil, ErrInvalidTarget.WithHint("The resource was not granted by the authorization this token request relies on.")
		}
		return rs, err
	case 0:
	default:
		return nil, ErrInvalidTarget.WithHint("Only one resource may be requested per access token; request one token per resource.")
	}
	def, err := r.defaultServer(ctx)
	if err != nil && !errors.Is(err, ErrInvalidTarget) {
		return nil, err // the store failed: not a statement about the request
	}
	if err == nil && slices.Contains(allowed, def.Identifier) {
		return def, nil
	}
	if len(granted) == 1 {
		return r.lookup(ctx, granted, granted[0])
	}
	if len(granted) > 1 {
		return nil, ErrInvalidTarget.WithHint("The grant covers several resources; name the one this token is for with the resource parameter.")
	}
	if err != nil {
		return nil, err
	}
	return nil, ErrInvalidTarget.WithHint("The request names no resource and the client may not use the default resource server.")
}

// ResourceIndicators is RFC 8707 at the token endpoint of a plain fosite server, for the
// client_credentials grant: a fosite.TokenEndpointHandler to list after fosite's
// ClientCredentialsGrantHandler. It resolves the request's resource parameter to the one
// resource server the token is for (one the client lists in its registration; the default
// resource server when none is named; anything else is invalid_target), and grants exactly it
// as the audience and the requested scopes that the client and the resource server both allow
// (invalid_scope otherwise; none requested: all of them). fosite's own audience parameter is
// refused in favour of resource. Pair it with [ResourcePolicy], which turns what it granted into
// the access token's policy. mandate's provider applies the same rules itself, to every grant.
type ResourceIndicators struct {
	Resolver Resolver
}

var _ fosite.TokenEndpointHandler = ResourceIndicators{}

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (ResourceIndicators) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne("client_credentials")
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (ResourceIndicators) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler: it grants the resource
// server and scopes.
func (h ResourceIndicators) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	req, ok := ar.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithDebug("handlers: resource indicators: the request is not a *fosite.AccessRequest")
	}
	form := ar.GetRequestForm()
	if _, ok := form["audience"]; ok {
		return fosite.ErrInvalidRequest.WithHint("The 'audience' parameter is not supported; name the target resource server with the RFC 8707 'resource' parameter.")
	}
	indicators, err := TokenIndicators(form)
	if err != nil {
		return err
	}
	rs, err := h.Resolver.ForToken(ctx, ar.GetClient(), indicators, nil)
	if err != nil {
		return err
	}
	scopes, err := GrantScopes(ar.GetRequestedScopes(), ar.GetClient().GetScopes(), rs)
	if err != nil {
		return err
	}
	req.GrantedAudience = fosite.Arguments{rs.Identifier}
	req.GrantedScope = fosite.Arguments(scopes)
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler; the grant handler
// issues the token.
func (ResourceIndicators) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	return nil
}

// ResourcePolicy is the RFC 8707 audience mapper as a strategy.PolicySource: the policy of an
// access token is that of the one resource server its request was granted (GrantedAudience
// must hold exactly one, as [ResourceIndicators] and [JWTBearer] grant): aud its identifier,
// the granted scopes it accepts, its lifetime (DefaultTTL when it sets none), algorithm and
// encryption key. A request granted no audience, or several, mints nothing (invalid_target).
type ResourcePolicy struct {
	Resources  ResourceLookup
	DefaultTTL time.Duration
}

// Policy implements strategy.PolicySource.
func (p ResourcePolicy) Policy(ctx context.Context, req fosite.Requester) (strategy.Policy, error) {
	aud := req.GetGrantedAudience()
	if len(aud) != 1 {
		return strategy.Policy{}, ErrInvalidTarget.WithHint("An access token is for exactly one resource server.")
	}
	rs, err := p.Resources.ResourceServer(ctx, aud[0])
	if errors.Is(err, storage.ErrNotFound) {
		return strategy.Policy{}, ErrInvalidTarget.WithHint("The resource is not a registered resource server.")
	} else if err != nil {
		return strategy.Policy{}, fmt.Errorf("handlers: resource policy: %w", err)
	}
	ttl := rs.AccessTokenTTL
	if ttl <= 0 {
		ttl = p.DefaultTTL
	}
	return strategy.Policy{
		Audience: rs.Identifier, Scopes: intersect(req.GetGrantedScopes(), rs.Scopes), TTL: ttl,
		SigningAlg: rs.SigningAlg, Encryption: rs.Encryption,
	}, nil
}

// GrantScopes computes the scopes of a token for rs (RFC 8707 §2, RFC 6749 §3.3): requested ∩
// the client's ∩ the resource server's. A requested scope outside either set is invalid_scope.
// With no scope requested, the client's scopes that the resource server accepts are granted.
func GrantScopes(requested, client []string, rs *storage.ResourceServer) ([]string, error) {
	if len(requested) == 0 {
		return intersect(client, rs.Scopes), nil
	}
	out := make([]string, 0, len(requested))
	for _, s := range requested {
		if !slices.Contains(client, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", strict.Echo(s))
		}
		if !slices.Contains(rs.Scopes, s) {
			return nil, fosite.ErrInvalidScope.WithHintf("The resource server '%s' does not accept scope '%s'.", rs.Identifier, strict.Echo(s))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// intersect returns the members of a that are also in b, in a's order, without duplicates.
func intersect(a, b []string) []string {
	out := make([]string, 0, len(a))
	for _, s := range a {
		if slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ExactAudience is a fosite.AudienceMatchingStrategy that matches resource identifiers exactly
// (never by prefix) and answers invalid_target.
func ExactAudience(allowed []string, requested []string) error {
	for _, a := range requested {
		if !slices.Contains(allowed, a) {
			return ErrInvalidTarget.WithHintf("The client is not allowed to request tokens for the resource '%s'.", strict.Echo(a))
		}
	}
	return nil
}
