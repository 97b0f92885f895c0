package strategy

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Policy is what the provider decided for one access token, from the resource server it is
// for (RFC 8707, https://www.rfc-editor.org/rfc/rfc8707). The provider puts it into the
// context with [WithPolicy] before fosite's NewAccessResponse; [JWT.GenerateAccessToken]
// fails without it, so a token never goes out with an empty aud.
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
}

type policyKey struct{}

// WithPolicy returns a context carrying p for the next access token minted with it.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// PolicyFrom returns the Policy put into ctx by [WithPolicy], if any.
func PolicyFrom(ctx context.Context) (Policy, bool) {
	p, ok := ctx.Value(policyKey{}).(Policy)
	return p, ok
}
