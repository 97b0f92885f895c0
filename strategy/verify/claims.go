package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Claims is the payload of a verified access token: the registered claims of
// RFC 9068 §2.2 (https://www.rfc-editor.org/rfc/rfc9068#section-2.2), typed, plus the raw
// payload for the application's own claims (see [Claims.Decode]).
//
// A Claims returned by [Verifier.Verify] always has a non-empty Issuer, Subject, Audience, ID
// and ClientID and non-zero ExpiresAt and IssuedAt. Treat it as read-only.
type Claims struct {
	Issuer    string    // iss, exactly [Config.Issuer]
	Subject   string    // sub: the resource owner, or the client for client_credentials
	Audience  []string  // aud, always containing [Config.Audience]
	ExpiresAt time.Time // exp
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; zero if absent
	ID        string    // jti
	ClientID  string    // client_id
	Scope     string    // scope: space-delimited (RFC 9068 §2.2.3); empty if absent
	AuthTime  time.Time // auth_time; zero if absent
	ACR       string    // acr; empty if absent
	AMR       []string  // amr; nil if absent

	// Act is the act claim (RFC 8693 §4.1): the party calling on behalf of Subject, with the
	// earlier actors of the delegation chain nested inside (newest outermost). Only Act itself
	// counts for access control ([Verifier.RequireActor]); the nested actors are a record.
	// Nil when the caller acts for itself.
	Act *Actor
	// MayAct is the may_act claim (RFC 8693 §4.4): the one party that may exchange this token
	// to act for Subject. Nil if absent.
	MayAct *Actor
	// Confirmation is the cnf claim (RFC 7800 §3.1): the key the token is bound to. Nil for a
	// bearer token. [Verifier.Verify] never returns a bound token; [Verifier.VerifyDPoP]
	// returns one whose Confirmation.JKT is the proof's key.
	Confirmation *Confirmation

	raw []byte
}

// Confirmation is a cnf claim (https://www.rfc-editor.org/rfc/rfc7800#section-3.1).
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key the token is bound to (RFC 9449
	// §6.1); empty when the token is bound some other way (such as mutual TLS, RFC 8705),
	// which this package cannot check.
	JKT string `json:"jkt"`
}

// Actor is an RFC 8693 actor: an act or may_act claim object
// (https://www.rfc-editor.org/rfc/rfc8693#section-4.1).
type Actor struct {
	// Subject is sub: the acting party (for actors of the token's issuer, a client id).
	Subject string `json:"sub"`
	// Issuer is iss when the actor's sub belongs to another issuer than the token's.
	Issuer string `json:"iss,omitempty"`
	// Act is the actor before this one, if any.
	Act *Actor `json:"act,omitempty"`
}

// Chain returns the actors from a (the current one) to the first, one per element.
func (a *Actor) Chain() []Actor {
	var out []Actor
	for ; a != nil; a = a.Act {
		out = append(out, Actor{Subject: a.Subject, Issuer: a.Issuer})
	}
	return out
}

// MaxActorDepth bounds the act chains Verify accepts.
const MaxActorDepth = 32

// actorSchema is the member layout of Actor, worked out once. It is never modified.
var actorSchema = strict.SchemaOf((*Actor)(nil))

// decodeActor decodes an act or may_act claim: an object with a non-empty string sub,
// optionally a string iss and (act only) a nested act, at most MaxActorDepth deep.
func decodeActor(name string, raw json.RawMessage, nested bool) (*Actor, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	var a *Actor
	if err := actorSchema.Unmarshal(raw, &a); err != nil || a == nil {
		return nil, fmt.Errorf("%w: %s is not an actor object", ErrMalformed, name)
	}
	if a.Depth() > MaxActorDepth || !nested && a.Act != nil {
		return nil, fmt.Errorf("%w: %s nests too deeply", ErrMalformed, name)
	}
	for x := a; x != nil; x = x.Act {
		if x.Subject == "" {
			return nil, fmt.Errorf("%w: %s has an actor without sub", ErrMalformed, name)
		}
	}
	return a, nil
}

// decodeConfirmation decodes a cnf claim: an object whose jkt, if present, is a non-empty
// string. Other confirmation methods are kept as a binding this package cannot check.
func decodeConfirmation(raw json.RawMessage) (*Confirmation, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil || len(members) == 0 {
		return nil, fmt.Errorf("%w: cnf is not a non-empty object", ErrMalformed)
	}
	c := &Confirmation{}
	if jkt, ok := members["jkt"]; ok {
		if err := json.Unmarshal(jkt, &c.JKT); err != nil || c.JKT == "" {
			return nil, fmt.Errorf("%w: cnf.jkt is not a non-empty string", ErrMalformed)
		}
	}
	return c, nil
}

// Depth is the number of actors in the chain a is the newest of (0 for nil).
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Act {
		n++
	}
	return n
}

// Scopes returns the scope claim split at spaces (RFC 6749 §3.3,
// https://www.rfc-editor.org/rfc/rfc6749#section-3.3). It returns nil when there is no scope.
func (c *Claims) Scopes() []string {
	f := strings.Fields(c.Scope)
	if len(f) == 0 {
		return nil
	}
	return f
}

// HasScope reports whether the scope claim contains s exactly (scope tokens are
// case-sensitive).
func (c *Claims) HasScope(s string) bool {
	if s == "" {
		return false
	}
	rest := c.Scope
	for rest != "" {
		var tok string
		tok, rest, _ = strings.Cut(rest, " ")
		if tok == s {
			return true
		}
	}
	return false
}

// Decode unmarshals the whole payload into v with encoding/json, for the application's own
// claims — roles, groups and entitlements (RFC 9068 §2.2.3.1), a tenant, anything the
// authorization server's claim mappers add:
//
//	var app struct {
//		Roles  []string `json:"roles"`
//		Tenant string   `json:"tenant"`
//	}
//	if err := claims.Decode(&app); err != nil { … }
func (c *Claims) Decode(v any) error {
	if err := json.Unmarshal(c.raw, v); err != nil {
		return fmt.Errorf("verify: decode claims: %w", err)
	}
	return nil
}

// Raw returns a copy of the verified JSON payload.
func (c *Claims) Raw() []byte {
	return bytes.Clone(c.raw)
}

// payload is the JSON shape of the registered claims. Numbers are float64 so that JSON strings
// ("numeric strings") are type errors; pointers tell absent/null from zero.
type payload struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	Exp      *float64        `json:"exp"`
	Iat      *float64        `json:"iat"`
	Nbf      *float64        `json:"nbf"`
	Jti      string          `json:"jti"`
	ClientID string          `json:"client_id"`
	Scope    string          `json:"scope"`
	AuthTime *float64        `json:"auth_time"`
	ACR      string          `json:"acr"`
	AMR      []string        `json:"amr"`
	Act      json.RawMessage `json:"act"`
	MayAct   json.RawMessage `json:"may_act"`
	Cnf      json.RawMessage `json:"cnf"`
}

// payloadSchema is the member layout of payload, worked out once. It is never modified.
var payloadSchema = strict.SchemaOf((*payload)(nil))

// checkNames refuses duplicate members (at any depth) and case variants of the registered
// claim names payload decodes: encoding/json would keep the last duplicate and match names
// case-insensitively.
func checkNames(data []byte) error {
	switch err := payloadSchema.Check(data); {
	case errors.Is(err, strict.ErrDuplicate):
		return fmt.Errorf("%w: duplicate member in payload", ErrMalformed)
	case errors.Is(err, strict.ErrCaseVariant):
		return fmt.Errorf("%w: member name differs from a registered claim only in case", ErrMalformed)
	case err != nil:
		return fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	return nil
}

// decodeAudience accepts a JSON string or an array of strings (RFC 7519 §4.1.3).
func decodeAudience(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, fmt.Errorf("%w: aud", ErrMissingClaim)
	}
	switch raw[0] {
	case '"':
		// Fast path: no escapes, so the JSON string (already validated by the decoder) is its
		// own content.
		if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return []string{string(inner)}, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%w: aud is not a string", ErrAudience)
		}
		return []string{s}, nil
	case '[':
		var ps []*string
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, fmt.Errorf("%w: aud is not an array of strings", ErrAudience)
		}
		a := make([]string, len(ps))
		for i, p := range ps {
			if p == nil {
				return nil, fmt.Errorf("%w: aud array holds null", ErrAudience)
			}
			a[i] = *p
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: aud is neither a string nor an array of strings", ErrAudience)
}

// maxNumericDate is 9999-12-31T23:59:59Z; larger NumericDates are refused as malformed.
const maxNumericDate = 253402300799

// numericDate converts an RFC 7519 NumericDate (seconds since the epoch, possibly fractional).
func numericDate(name string, f *float64) (time.Time, error) {
	if f == nil {
		return time.Time{}, nil
	}
	v := *f
	if !(v >= 0 && v <= maxNumericDate) {
		return time.Time{}, fmt.Errorf("%w: %s out of range", ErrMalformed, name)
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
