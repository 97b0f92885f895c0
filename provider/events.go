package provider

import (
	"context"
	"time"
)

// Events receives the provider's audit events: one per outcome that matters (a token issued,
// a token exchange, an introspection, a revocation, a failed client authentication, a key
// rotation, a setup applied, a change through the admin API).
//
// Delivery is synchronous: Event runs on the goroutine that served the request, after the
// response was written to the http.ResponseWriter and before ServeHTTP returns (a key
// rotation's on the rotating goroutine; a setup's in Apply). It must return quickly and must
// not block: an application that ships events over the network hands them to a queue of its
// own (a buffered channel and a goroutine, dropping or counting when it is full). It may be
// called concurrently. The events carry no token, secret, assertion or key material: only
// identifiers (client_id, jti, kid, resource, subject).
type Events interface {
	Event(ctx context.Context, e Event)
}

// EventsFunc adapts a function to [Events].
type EventsFunc func(ctx context.Context, e Event)

// Event implements [Events].
func (f EventsFunc) Event(ctx context.Context, e Event) { f(ctx, e) }

// Event is one audit event: a *TokenIssued, *TokenExchanged, *Introspected, *Revoked,
// *ClientAuthFailed, *KeyRotated, *SetupApplied or *AdminChange. Switch on its type.
type Event interface {
	// Kind names the event ("token_issued", "token_exchange", "introspection", "revocation",
	// "client_authentication_failed", "key_rotated", "setup_applied", "admin_change").
	Kind() string
	// When is when it happened.
	When() time.Time
}

// At is when an event happened; every event embeds it.
type At struct{ Time time.Time }

// When implements [Event].
func (a At) When() time.Time { return a.Time }

// TokenIssued: the token endpoint issued an access token (any grant but the token exchange,
// which is [TokenExchanged]).
type TokenIssued struct {
	At
	// GrantType is the grant_type of the request.
	GrantType string
	// ClientID is the token's client_id (for a jwt-bearer grant without client
	// authentication, the assertion's issuer).
	ClientID string
	// Subject is the token's sub.
	Subject string
	// Resource is the resource server the token is for (its aud).
	Resource string
	// Scopes are the token's scopes.
	Scopes []string
	// KeyID is the kid of the key that signed it; JTI is its jti.
	KeyID, JTI string
	// ExpiresAt is its exp.
	ExpiresAt time.Time
	// RefreshToken reports that a refresh token was issued with it.
	RefreshToken bool
	// DPoPJKT is the thumbprint of the DPoP key the token is bound to (RFC 9449); "" for a
	// bearer token.
	DPoPJKT string
}

// TokenExchanged: an RFC 8693 token exchange issued a token.
type TokenExchanged struct {
	TokenIssued
	// Actor is the sub of the party acting for the subject (the new token's act), "" for an
	// impersonation.
	Actor string
	// IssuedTokenType is the RFC 8693 issued_token_type (an access token, or a JWT
	// authorization grant for a peer authorization server, whose Resource is the peer).
	IssuedTokenType string
}

// Introspected: an RFC 7662 introspection was answered.
type Introspected struct {
	At
	// ClientID is the authenticated caller.
	ClientID string
	// Active is the answer; TokenClientID the introspected token's client_id when active.
	Active        bool
	TokenClientID string
}

// Revoked: an RFC 7009 revocation request was answered 200 (which it is also for an unknown
// token, by design: the event does not tell whether anything was revoked).
type Revoked struct {
	At
	// ClientID is the authenticated caller; TokenTypeHint its token_type_hint, if any.
	ClientID, TokenTypeHint string
}

// ClientAuthFailed: a client failed to authenticate at the token, introspection or revocation
// endpoint (the answer was invalid_client).
type ClientAuthFailed struct {
	At
	// Endpoint is "token", "introspect" or "revoke".
	Endpoint string
	// ClientID is the client_id the request claimed (HTTP Basic user, client_id parameter or
	// assertion issuer), unverified; "" when it claimed none.
	ClientID string
	// Reason is the error description sent to the client.
	Reason string
}

// KeyRotated: the signing keys changed: a key became current (KeyID, the one that signs
// from now on), a next key was published, or retired keys were dropped.
type KeyRotated struct {
	At
	// Algorithm is the JWS algorithm of the key that became current; KeyID its kid, ""
	// when no key became current (only a next key added or retired ones dropped).
	Algorithm, KeyID string
	// Next lists the kids of keys published but not signing yet; Retired those that stopped
	// signing in this change.
	Next, Retired []string
}

// SetupApplied: [Provider.Apply] wrote a setup.
type SetupApplied struct {
	At
	// How many entries of each kind it created or updated.
	ResourceServers, Clients, TrustedIssuers, Peers int
}

// AdminChange: a change through the admin API or [Manager].
type AdminChange struct {
	At
	// Action is "create", "update", "delete", "rotate_secret" or "rotate_keys".
	Action string
	// Target is "client", "resource_server", "trusted_issuer" or "keys"; ID names the record.
	Target, ID string
	// By is the sub of the admin token that made the change, "" for a call made in code or
	// from the command line.
	By string
}

// Kind implements [Event].
func (*TokenIssued) Kind() string { return "token_issued" }

// Kind implements [Event].
func (*TokenExchanged) Kind() string { return "token_exchange" }

// Kind implements [Event].
func (*Introspected) Kind() string { return "introspection" }

// Kind implements [Event].
func (*Revoked) Kind() string { return "revocation" }

// Kind implements [Event].
func (*ClientAuthFailed) Kind() string { return "client_authentication_failed" }

// Kind implements [Event].
func (*KeyRotated) Kind() string { return "key_rotated" }

// Kind implements [Event].
func (*SetupApplied) Kind() string { return "setup_applied" }

// Kind implements [Event].
func (*AdminChange) Kind() string { return "admin_change" }

// emit hands e to the application's Events, if any.
func (p *Provider) emit(ctx context.Context, e Event) {
	if p.cfg.Events != nil {
		p.cfg.Events.Event(ctx, e)
	}
}
