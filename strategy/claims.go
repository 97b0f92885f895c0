package strategy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrNoUsers is returned by [TokenRequest.User] when no [Users] lookup is configured.
var ErrNoUsers = errors.New("strategy: no Users lookup configured")

// TokenRequest is the read-only view of one access-token request that [ClaimMapper]s see.
// Its slices and maps are copies: a mapper may change them without effect on the token.
type TokenRequest struct {
	// ClientID is the client the token is issued to (the client_id claim).
	ClientID string
	// Subject is the resource owner; empty for client_credentials, where the token's sub is
	// the ClientID.
	Subject string
	// GrantType is the grant being served (client_credentials, authorization_code,
	// refresh_token, urn:ietf:params:oauth:grant-type:jwt-bearer,
	// urn:ietf:params:oauth:grant-type:token-exchange), or empty if unknown.
	GrantType string
	// Act is a copy of the token's act claim (RFC 8693 §4.1) when the token is minted by a
	// token exchange: the party acting for Subject, earlier actors nested inside.
	Act *Actor
	// Audience is the resource server the token is for (the aud claim).
	Audience string
	// Scopes are the token's scopes.
	Scopes []string
	// AuthTime, ACR and AMR describe the user's authentication, when there was one.
	AuthTime time.Time
	ACR      string
	AMR      []string
	// Extra is a copy of what the application's Authenticator attached to the session.
	Extra map[string]any

	user *userLoader
}

// User loads the application's user for Subject through the configured [Users] lookup, at most
// once per token however many mappers ask. It returns (nil, nil) when Subject is empty (a
// client acting for itself), and an error wrapping [ErrNoUsers] when no lookup is configured.
func (r TokenRequest) User(ctx context.Context) (any, error) {
	if r.Subject == "" {
		return nil, nil
	}
	if r.user == nil || r.user.users == nil {
		return nil, ErrNoUsers
	}
	return r.user.load(ctx, r.Subject)
}

type userLoader struct {
	users Users
	once  sync.Once
	user  any
	err   error
}

func (l *userLoader) load(ctx context.Context, subject string) (any, error) {
	l.once.Do(func() {
		l.user, l.err = l.users.User(ctx, subject)
		if l.err != nil {
			l.err = fmt.Errorf("strategy: load user: %w", l.err)
		}
	})
	return l.user, l.err
}

// ClaimMapper adds application claims to access tokens: roles, groups and entitlements
// (https://www.rfc-editor.org/rfc/rfc9068#section-2.2.3.1), tenant ids, anything that
// marshals to JSON. Returning a registered claim ([IsReservedClaim]) or a claim another mapper
// already set is an error, and so is any error the mapper returns: no token is minted.
//
// One registered claim is a mapper's to set: may_act (RFC 8693 §4.4), as an [Actor] or a
// JSON object with a string sub (and optionally iss). It names the one party that may exchange
// the token to act for its subject, fixing a delegation chain in advance.
type ClaimMapper interface {
	// MapClaims returns the claims to add to the token described by r; nil or an empty map
	// adds none. It is called once per token, on the token endpoint's hot path.
	MapClaims(ctx context.Context, r TokenRequest) (map[string]any, error)
}

// ClaimMapperFunc adapts a function to [ClaimMapper].
type ClaimMapperFunc func(ctx context.Context, r TokenRequest) (map[string]any, error)

// MapClaims calls f.
func (f ClaimMapperFunc) MapClaims(ctx context.Context, r TokenRequest) (map[string]any, error) {
	return f(ctx, r)
}

// Users loads the application's own user for a subject, for claim mappers (see
// [TokenRequest.User]). mandate never looks inside the returned value.
type Users interface {
	// User returns the application's user for subject (the token's resource owner).
	User(ctx context.Context, subject string) (any, error)
}

// UsersFunc adapts a function to [Users].
type UsersFunc func(ctx context.Context, subject string) (any, error)

// User calls f.
func (f UsersFunc) User(ctx context.Context, subject string) (any, error) { return f(ctx, subject) }

// reservedClaims are the claims mandate sets or that have a registered meaning a mapper must
// not forge: RFC 7519 §4.1, RFC 9068 §2.2, RFC 7800 (cnf), RFC 8693 §4 (act, may_act), OpenID
// (azp, nonce, sid), and the RFC 7662 §2.2 members an introspection response adds beside them.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"client_id", "scope", "auth_time", "acr", "amr",
	"cnf", "act", "may_act",
	"azp", "nonce", "sid",
	"active", "token_type", "username",
}

// ReservedClaims returns, in a fresh slice, the claim names a [ClaimMapper] may not set.
func ReservedClaims() []string { return slices.Clone(reservedClaims) }

// IsReservedClaim reports whether a [ClaimMapper] may not set the claim name.
func IsReservedClaim(name string) bool { return slices.Contains(reservedClaims, name) }

// copyExtra deep-copies a session's Extra for a TokenRequest.
func copyExtra(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return copyExtra(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	case []string:
		return slices.Clone(t)
	default:
		return v
	}
}
