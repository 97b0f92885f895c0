package handlers

import (
	"net/http"
	"strconv"

	"github.com/ory/fosite"
)

// ErrInvalidTarget is the RFC 8707 §2 error: the requested resource is invalid, missing,
// unknown, or malformed. Like fosite's own errors it is never mutated: use WithHint and friends,
// which copy it.
var ErrInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, missing, unknown, or malformed.",
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
