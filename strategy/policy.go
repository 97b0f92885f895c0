package strategy

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
)

// Policy is what was decided for one access token, from the resource server it is for (RFC
// 8707, https://www.rfc-editor.org/rfc/rfc8707). [JWT.Mint] takes it explicitly;
// [JWT.GenerateAccessToken], which fosite calls, asks its [PolicySource]. Minting fails without
// an Audience, so a token never goes out with an empty aud.
type Policy struct {
	// Audience is the resource server's identifier: the token's aud, exactly one.
	Audience string
	// Scopes are the scopes of this token; they may be narrower than the grant's. The scope
	// claim is omitted when empty.
	Scopes []string
	// TTL is the access token's lifetime; it must be positive.
	TTL time.Duration
	// SigningAlg is the JWS algorithm; empty means the KeySource's default.
	SigningAlg string
	// Encryption, when set, is the resource server's public key: the signed token is then
	// encrypted to it (a nested JWT, JWS inside JWE, with cty "at+jwt"). RSA keys use
	// RSA-OAEP-256 and EC keys ECDH-ES+A256KW unless the key names its alg; content is
	// encrypted with A256GCM.
	Encryption *jose.JSONWebKey
	// Act, when set, is the token's act claim (RFC 8693 §4.1): the party acting for the
	// subject, with the earlier actors nested inside (newest outermost).
	Act *Actor
	// MayAct, when set, is the token's may_act claim (RFC 8693 §4.4): the one party that may
	// later exchange this token to act for its subject.
	MayAct *Actor
	// NotAfter, when set, caps exp: a token minted from another (a token exchange) never
	// outlives it.
	NotAfter time.Time
	// JKT, when set, binds the token to a DPoP key (RFC 9449 §6.1): it is the key's RFC 7638
	// thumbprint, and the token carries it as cnf.jkt.
	JKT string
}

// Actor is an RFC 8693 actor (https://www.rfc-editor.org/rfc/rfc8693#section-4.1): the act and
// may_act claim objects. Act, in an act claim, is the actor before this one.
type Actor struct {
	// Subject is sub: the acting party. Required.
	Subject string `json:"sub"`
	// Issuer is iss, when the subject is qualified by an issuer other than the token's.
	Issuer string `json:"iss,omitempty"`
	// Act is the previous actor of a delegation chain, if any.
	Act *Actor `json:"act,omitempty"`
}

// Depth is the number of actors in the chain a is the newest of (0 for nil).
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Act {
		n++
	}
	return n
}

// Clone returns a deep copy of the chain.
func (a *Actor) Clone() *Actor {
	if a == nil {
		return nil
	}
	out := *a
	out.Act = a.Act.Clone()
	return &out
}

// PolicySource decides the [Policy] of the access token fosite asks [JWT.GenerateAccessToken]
// for. handlers.ResourcePolicy derives it from the request's one granted audience (an RFC 8707
// resource server); the provider's own funnel is another.
type PolicySource interface {
	// Policy returns the policy of the token minted for requester.
	Policy(ctx context.Context, requester fosite.Requester) (Policy, error)
}

// PolicySourceFunc adapts a function to [PolicySource].
type PolicySourceFunc func(ctx context.Context, requester fosite.Requester) (Policy, error)

// Policy calls f.
func (f PolicySourceFunc) Policy(ctx context.Context, requester fosite.Requester) (Policy, error) {
	return f(ctx, requester)
}
