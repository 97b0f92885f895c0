package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/strategy/verify"
)

// ErrInvalidTarget is the RFC 8707 §2 error: the requested resource is invalid, missing,
// unknown, or malformed. Like fosite's own errors it is never mutated: use WithHint and friends,
// which copy it.
var ErrInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, missing, unknown, or malformed.",
	CodeField:        http.StatusBadRequest,
}

// ErrInvalidDPoPProof is RFC 9449's invalid_dpop_proof (§5, §12.2): the DPoP proof of a token
// request is missing where one is required, duplicated, or invalid. Never mutated, like
// ErrInvalidTarget.
var ErrInvalidDPoPProof = &fosite.RFC6749Error{
	ErrorField:       "invalid_dpop_proof",
	DescriptionField: "The DPoP proof is missing or invalid.",
	CodeField:        http.StatusBadRequest,
}

// ErrUseDPoPNonce is RFC 9449's use_dpop_nonce (§8): the proof must carry the nonce the
// answer's DPoP-Nonce header gives. Never mutated, like ErrInvalidTarget.
var ErrUseDPoPNonce = &fosite.RFC6749Error{
	ErrorField:       "use_dpop_nonce",
	DescriptionField: "The DPoP proof must carry the server's nonce.",
	CodeField:        http.StatusBadRequest,
}

// RetryAfter is the Retry-After, in seconds, of a 503 answered because something the answer
// needs (the store) cannot be reached right now: long enough that clients do not hammer a
// restarting database, short enough that a retry lands soon after it is back.
const RetryAfter = 2

// SetUnavailable sets the headers of a 503 that the client may retry: Retry-After
// ([RetryAfter] seconds, RFC 9110 §10.2.3) and Cache-Control: no-store, so that no cache keeps
// the failure.
func SetUnavailable(h http.Header) {
	h.Set("Retry-After", strconv.Itoa(RetryAfter))
	h.Set("Cache-Control", "no-store")
}

// KeysUnavailable returns the error a token request answers when err says that the keys of a
// trusted issuer could not be fetched (verify.ErrKeysUnavailable: its JWKS or metadata
// unreachable or broken, and no earlier copy cached): 503 temporarily_unavailable, which the
// provider sends with Retry-After, because the JWT may well be good and a retry may succeed.
// Answering invalid_grant would tell the client to throw away a grant it can still use. It
// returns nil for any other error. Client authentication does not use it: an unreachable
// jwks_uri of a client stays the generic invalid_client, which says nothing of the client.
func KeysUnavailable(err error) *fosite.RFC6749Error {
	if !errors.Is(err, verify.ErrKeysUnavailable) {
		return nil
	}
	return fosite.ErrTemporarilyUnavailable.WithHint("The keys of the JWT's issuer cannot be obtained at the moment; retry later.").WithWrap(err).WithDebug(err.Error())
}
