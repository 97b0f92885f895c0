package handlers

import (
	"net/http"

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
