package strategy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// GrantTokenType is the JWS typ header of the JWT authorization grants [JWT.MintGrant] signs:
// "JWT" (https://www.rfc-editor.org/rfc/rfc7519#section-5.1). It is not at+jwt, so neither a
// resource server (RFC 9068 §4: strategy/verify refuses any other typ) nor this server's own
// introspection and token exchange ([JWT.VerifyAccessToken]) ever take a grant for an access
// token; and its aud names an authorization server, which no resource server is.
const GrantTokenType = "JWT"

// maxActChain bounds the act chains read back from a session.
const maxActChain = 32

// Grant is what a token exchange decided for one JWT authorization grant for a peer
// authorization server (identity and authorization chaining across domains,
// https://datatracker.ietf.org/doc/draft-ietf-oauth-identity-chaining/, §2.3): [JWT.MintGrant]
// signs it.
type Grant struct {
	// Audience is the peer's issuer identifier: the aud claim, one string. Required.
	Audience string
	// Subject is the sub claim. Required.
	Subject string
	// TTL is exp - iat; it must be positive.
	TTL time.Duration
	// NotAfter, when set, caps exp: a grant never outlives the token it was exchanged for.
	NotAfter time.Time
	// Scopes, when not empty, are the scope claim (space-separated).
	Scopes []string
	// Act, when set, is the act claim (RFC 8693 §4.1).
	Act *Actor
	// Claims are the further claims transcribed into the grant (client_id, auth_time, acr,
	// amr, application claims). None may be one the grant sets itself: iss, sub, aud, exp,
	// iat, nbf, jti, scope, act.
	Claims map[string]any
	// SigningAlg is the JWS algorithm; empty means the KeySource's default.
	SigningAlg string
}

// grantClaims is the fixed part of a grant's payload, in the order it is serialized.
type grantClaims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
	Jti   string `json:"jti"`
	Scope string `json:"scope,omitempty"`
	Act   *Actor `json:"act,omitempty"`
}

// ownGrantClaims are the claims MintGrant sets itself.
var ownGrantClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "act"}

// MintGrant signs the JWT authorization grant g describes, with this server's keys (the
// KeySource's key for g.SigningAlg):
//
//   - header: alg, kid, typ "JWT" ([GrantTokenType]);
//   - claims: iss (this issuer), sub, aud (g.Audience, a string), exp (now + TTL, at most
//     NotAfter), iat (now), jti (128 random bits, base64url; the peer uses it once), scope
//     when there are scopes, act when there is an actor, and g.Claims.
//
// The result's Signature is empty: a grant is not recorded by this server. Claim mappers are
// not consulted: what a grant carries is the peer entry's transcription rule.
func (j *JWT) MintGrant(ctx context.Context, g Grant) (Minted, error) {
	switch {
	case g.Audience == "":
		return Minted{}, errors.New("strategy: a grant needs an audience")
	case g.Subject == "":
		return Minted{}, errors.New("strategy: a grant needs a subject")
	case g.TTL <= 0:
		return Minted{}, errors.New("strategy: a grant's TTL must be positive")
	case g.Act != nil && g.Act.Depth() > maxActChain:
		return Minted{}, errors.New("strategy: the grant's act chain is too deep")
	}
	for a := g.Act; a != nil; a = a.Act {
		if a.Subject == "" {
			return Minted{}, errors.New("strategy: an actor without sub")
		}
	}
	for name := range g.Claims {
		if slices.Contains(ownGrantClaims, name) {
			return Minted{}, fmt.Errorf("strategy: a grant's claim %q is its own, not a transcribed one", name)
		}
	}
	key, err := j.keys.SigningKey(ctx, g.SigningAlg)
	if err != nil {
		return Minted{}, fmt.Errorf("strategy: signing key: %w", err)
	}
	now := j.now().Unix()
	c := grantClaims{
		Iss: j.issuer, Sub: g.Subject, Aud: g.Audience,
		Exp: now + ExpiresIn(g.TTL), Iat: now, Jti: newJTI(),
		Scope: strings.Join(g.Scopes, " "), Act: g.Act,
	}
	if !g.NotAfter.IsZero() && c.Exp > g.NotAfter.Unix() {
		c.Exp = g.NotAfter.Unix()
		if c.Exp <= now {
			return Minted{}, errors.New("strategy: NotAfter is not in the future")
		}
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return Minted{}, fmt.Errorf("strategy: encode grant claims: %w", err)
	}
	if len(g.Claims) > 0 {
		more, err := json.Marshal(g.Claims)
		if err != nil {
			return Minted{}, fmt.Errorf("strategy: encode transcribed claims: %w", err)
		}
		payload = append(append(payload[:len(payload)-1], ','), more[1:]...)
	}
	token, err := key.SignJWT(GrantTokenType, payload)
	if err != nil {
		return Minted{}, err
	}
	if len(token) > MaxTokenSize {
		return Minted{}, fmt.Errorf("strategy: grant is %d bytes, more than %d", len(token), MaxTokenSize)
	}
	return Minted{Token: token, IssuedAt: time.Unix(now, 0), ExpiresAt: time.Unix(c.Exp, 0)}, nil
}

// transcribed splits a session's transcribed claims (storage.Session.Transcribed: what an RFC
// 7523 grant carried over, as its trust allowed) into the act chain and the other claims.
// Registered claims other than act are refused: a grant handler never transcribes them.
func transcribed(sess *storage.Session) (*Actor, map[string]any, error) {
	if len(sess.Transcribed) == 0 {
		return nil, nil, nil
	}
	var act *Actor
	var out map[string]any
	for name, v := range sess.Transcribed {
		switch {
		case name == "act":
			b, err := json.Marshal(v)
			if err != nil {
				return nil, nil, fmt.Errorf("strategy: transcribed act: %w", err)
			}
			if err := json.Unmarshal(b, &act); err != nil || act == nil || act.Depth() > maxActChain {
				return nil, nil, errors.New("strategy: the transcribed act is not an actor chain")
			}
			for a := act; a != nil; a = a.Act {
				if a.Subject == "" {
					return nil, nil, errors.New("strategy: the transcribed act has an actor without sub")
				}
			}
		case IsReservedClaim(name):
			return nil, nil, fmt.Errorf("strategy: the registered claim %q cannot be transcribed", name)
		default:
			if out == nil {
				out = make(map[string]any, len(sess.Transcribed))
			}
			out[name] = copyValue(v)
		}
	}
	return act, out, nil
}
