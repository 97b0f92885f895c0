package handlers

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/storage"
)

// ErrUnknownSubject is what a [SubjectMapper] returns (wrapped or not) to refuse a JWT's
// subject: the grant fails with invalid_grant (a token exchange with invalid_request), and the
// JWT stays unused.
var ErrUnknownSubject = errors.New("handlers: the subject is not known here")

// maxSubjectLength bounds a mapped subject, as the JWTs it comes from are bounded.
const maxSubjectLength = 1024

// SubjectMapper decides whose token a JWT from a trusted issuer yields — the RFC 7523 jwt-bearer
// grant's assertion, or a token exchange's subject token of type jwt: the local subject for the
// JWT's issuer and sub. It is where an application links a subject of another trust domain to
// its own user model (draft-ietf-oauth-identity-chaining §2.5 lets the receiving server change
// the subject), or refuses subjects it does not know with [ErrUnknownSubject]. It runs after
// the JWT, its trust and its signature are checked, and before the JWT is used up. Any other
// error fails the request with server_error (temporarily_unavailable when it wraps
// storage.ErrUnavailable). Without a mapper the token's sub is the JWT's sub.
//
// The trust is chosen by the JWT's own sub (storage.Trust.Subject), and an actor token's
// subject is never mapped: an act chain names each actor as its issuer knows it, with iss.
// Keep mapped subjects out of the namespace of client IDs: a client_credentials token's sub is
// its client's ID (RFC 9068 §2.2), and a user must never pass for a client, nor the reverse.
type SubjectMapper interface {
	// MapSubject returns the subject the token is issued for: non-empty, at most 1024 bytes of
	// UTF-8.
	MapSubject(ctx context.Context, r SubjectRequest) (string, error)
}

// SubjectMapperFunc adapts a function to [SubjectMapper].
type SubjectMapperFunc func(ctx context.Context, r SubjectRequest) (string, error)

// MapSubject calls f.
func (f SubjectMapperFunc) MapSubject(ctx context.Context, r SubjectRequest) (string, error) {
	return f(ctx, r)
}

// SubjectRequest is what a [SubjectMapper] decides on.
type SubjectRequest struct {
	// Issuer and Subject are the JWT's iss and sub.
	Issuer, Subject string
	// Trust is the trust the JWT was accepted under (a copy).
	Trust *storage.Trust
	// Assertion is the verified JWT, for its other claims ([Assertion.Claim]).
	Assertion *Assertion
}

// Subject is the subject of a token granted for a, a JWT verified under trust: a's sub, or what
// Subjects maps it to. A refusal is an *[AssertionError].
func (h *JWTBearer) Subject(ctx context.Context, a *Assertion, trust *storage.Trust) (string, error) {
	if h.Subjects == nil {
		return a.Subject, nil
	}
	sub, err := h.Subjects.MapSubject(ctx, SubjectRequest{Issuer: a.Issuer, Subject: a.Subject, Trust: trust.Clone(), Assertion: a})
	switch {
	case errors.Is(err, ErrUnknownSubject):
		return "", reject("the subject is not known here")
	case err != nil:
		return "", fmt.Errorf("handlers: subject mapper: %w", err)
	case sub == "" || len(sub) > maxSubjectLength || !utf8.ValidString(sub):
		return "", fmt.Errorf("handlers: subject mapper: a subject of %d bytes, or not UTF-8, for %q", len(sub), a.Issuer)
	}
	return sub, nil
}
