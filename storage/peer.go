package storage

import (
	"context"
	"slices"
	"time"
)

// Peer is another authorization server that this one issues JWT authorization grants for, in
// identity and authorization chaining across trust domains
// (https://datatracker.ietf.org/doc/draft-ietf-oauth-identity-chaining/, §2.3): a client of
// this server exchanges a token of this server (RFC 8693, requested_token_type
// urn:ietf:params:oauth:token-type:jwt, resource = the peer's Issuer) for a short-lived JWT
// signed with this server's keys and addressed to the peer, and presents it there with the RFC
// 7523 §2.1 jwt-bearer grant. The peer, for its part, registers this server as a [Trust].
//
// A peer is the "out" half of a trust relationship: what this server may say about its
// subjects to that one. Nothing is sent to a server that is not registered.
type Peer struct {
	// Issuer is the peer's issuer identifier (RFC 8414 §2): the resource value that names it
	// in a token exchange and the aud of every grant for it, exactly.
	Issuer string
	// Name is a human-readable label; never used for decisions.
	Name string
	// TokenEndpoint is the peer's token endpoint, which the token exchange response names for
	// the client. Empty means the token_endpoint of the peer's RFC 8414 metadata, fetched when
	// first needed.
	TokenEndpoint string
	// Scopes the grants for this peer may carry (their scope claim, in the peer's vocabulary).
	// Empty: grants carry no scope claim, and the peer applies its own trust's scopes.
	Scopes []string
	// Claims lists the claims of the subject token that may be transcribed into the grant,
	// beyond iss, sub, aud, iat, exp, jti and scope, which every grant carries: "act" (the
	// delegation chain: required for any exchange that is not impersonation), "client_id"
	// (the client that obtained the grant), "auth_time", "acr", "amr", and application claims
	// by name. Empty (the default): none.
	Claims []string
	// MaxGrantLifetime bounds exp - iat of the grants for this peer; zero means the
	// provider's default (five minutes). A grant never outlives its subject token either.
	MaxGrantLifetime time.Duration
	// SigningAlg is the JWS algorithm the grants are signed with; empty means the provider's
	// default.
	SigningAlg string
	// CreatedAt and UpdatedAt are maintained by the store.
	CreatedAt, UpdatedAt time.Time
}

// Clone returns a deep copy that shares nothing mutable with p.
func (p *Peer) Clone() *Peer {
	if p == nil {
		return nil
	}
	out := *p
	out.Scopes = slices.Clone(p.Scopes)
	out.Claims = slices.Clone(p.Claims)
	return &out
}

// PeerStore keeps the peer authorization servers this server issues JWT authorization grants
// for ([Peer]).
type PeerStore interface {
	// Peer returns the peer whose Issuer equals issuer exactly, or ErrNotFound.
	Peer(ctx context.Context, issuer string) (*Peer, error)
	// Peers lists every registered peer, ordered by Issuer.
	Peers(ctx context.Context) ([]Peer, error)
	// SavePeer creates the peer or replaces the one with the same Issuer.
	SavePeer(ctx context.Context, p *Peer) error
	// DeletePeer removes it; ErrNotFound if there is none.
	DeletePeer(ctx context.Context, issuer string) error
}
