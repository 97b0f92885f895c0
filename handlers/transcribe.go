package handlers

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
)

// DefaultMaxDelegationDepth bounds the act chain a grant may transcribe into an access token
// when [JWTBearer.MaxDelegationDepth] is zero: the provider's default too.
const DefaultMaxDelegationDepth = 4

// maxReadActDepth bounds the act chains decoded from an assertion before any other check.
const maxReadActDepth = 32

// transcribable are the registered claims a trust may transcribe from an accepted
// assertion into the access token (storage.Trust.Transcribe), beside application claims,
// which are any claim that is not registered ([strategy.IsReservedClaim]):
//
//   - act: the delegation chain (RFC 8693 §4.1), its actors without iss qualified with the
//     assertion's issuer; at most the delegation depth long;
//   - scope: an upper bound on the token's scopes (a space-separated string);
//   - auth_time, acr, amr: the user's authentication (RFC 9068 §2.2.1).
var transcribable = []string{"act", "scope", "auth_time", "acr", "amr"}

// Transcribable reports whether a trust may list name in storage.Trust.Transcribe: one of act,
// scope, auth_time, acr and amr, or a claim name that is not registered.
func Transcribable(name string) bool {
	return name != "" && (slices.Contains(transcribable, name) || !strategy.IsReservedClaim(name))
}

// transcription is what an accepted assertion carries over into the access token, as its trust
// allows (claims transcription, draft-ietf-oauth-identity-chaining §2.5).
type transcription struct {
	claims   map[string]any // act (as a JSON object) and application claims, for the session
	scope    []string       // the scope claim, when transcribed and present
	bounded  bool           // scope bounds the token's scopes
	authTime time.Time
	acr      string
	amr      []string
}

// transcribe applies trust.Transcribe to a verified assertion. An act claim that the trust does
// not transcribe is refused, not dropped: without it the token would present a delegation as
// the subject's own call. Every other claim the trust does not name is dropped. Errors are
// *[AssertionError].
func transcribe(a *Assertion, trust *storage.Trust, maxDepth int) (*transcription, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDelegationDepth
	}
	out := &transcription{}
	allowed := func(name string) bool { return slices.Contains(trust.Transcribe, name) }
	var act *strategy.Actor
	if ok, err := a.Claim("act", &act); err != nil || ok && act == nil {
		return nil, reject("the act claim is not an actor chain")
	} else if ok {
		if !allowed("act") {
			return nil, reject("the assertion carries an act claim (a delegation), which the trust in its issuer does not transcribe")
		}
		if n := act.Depth(); n > maxReadActDepth || n > maxDepth {
			return nil, reject("the act chain holds %d actors; at most %d are allowed", n, maxDepth)
		}
		for x := act; x != nil; x = x.Act {
			if x.Subject == "" {
				return nil, reject("the act claim has an actor without sub")
			}
			if x.Issuer == "" {
				x.Issuer = a.Issuer // in the new token, an unqualified actor would be this server's
			}
		}
		out.claims = map[string]any{"act": actorObject(act)}
	}
	for _, name := range trust.Transcribe {
		var err error
		switch {
		case name == "act":
		case name == "scope":
			var s string
			if out.bounded, err = a.Claim("scope", &s); err != nil {
				return nil, reject("the scope claim is not a string")
			}
			out.scope = strings.Fields(s)
		case name == "auth_time":
			var n json.Number
			ok, err := a.Claim("auth_time", &n)
			v, nerr := n.Int64()
			if err != nil || ok && (nerr != nil || v <= 0) {
				return nil, reject("the auth_time claim is not a positive NumericDate")
			}
			if ok {
				out.authTime = time.Unix(v, 0).UTC()
			}
		case name == "acr":
			if _, err = a.Claim("acr", &out.acr); err != nil {
				return nil, reject("the acr claim is not a string")
			}
		case name == "amr":
			if _, err = a.Claim("amr", &out.amr); err != nil {
				return nil, reject("the amr claim is not an array of strings")
			}
		case Transcribable(name):
			var raw json.RawMessage
			ok, err := a.Claim(name, &raw)
			if err != nil {
				return nil, reject("the claim %q is not valid JSON", name)
			}
			if ok {
				if out.claims == nil {
					out.claims = map[string]any{}
				}
				out.claims[name] = raw
			}
		}
		// Any other registered claim is never transcribed: the token sets it itself.
	}
	return out, nil
}

// actorObject is a chain as the JSON object the session stores.
func actorObject(a *strategy.Actor) map[string]any {
	m := map[string]any{"sub": a.Subject}
	if a.Issuer != "" {
		m["iss"] = a.Issuer
	}
	if a.Act != nil {
		m["act"] = actorObject(a.Act)
	}
	return m
}
