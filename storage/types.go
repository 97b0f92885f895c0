package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
)

// Token endpoint authentication methods (RFC 7591 §2, RFC 7523 §2.2).
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	AuthMethodNone          = "none"
)

// Client is a registered OAuth 2.0 client. It implements fosite.Client,
// fosite.ClientWithSecretRotation and fosite.OpenIDConnectClient (the last one is what
// private_key_jwt client authentication reads).
type Client struct {
	// ID is the client_id.
	ID string
	// Name is a human-readable label; never used for decisions.
	Name string
	// SecretHash is the hashed client secret; empty for public and private_key_jwt clients.
	// The plain secret is never stored.
	SecretHash []byte
	// RotatedSecretHashes are older secrets still accepted during a rotation.
	RotatedSecretHashes [][]byte
	// Public marks a client that cannot keep a secret (RFC 6749 §2.1); it must use PKCE.
	Public bool
	// RedirectURIs are matched exactly.
	RedirectURIs []string
	// GrantTypes the client may use.
	GrantTypes []string
	// ResponseTypes the client may use at the authorization endpoint; empty means "code".
	ResponseTypes []string
	// Scopes the client may be granted.
	Scopes []string
	// Resources lists the identifiers of the resource servers (RFC 8707) this client may get
	// tokens for. Empty means none: access is granted explicitly.
	Resources []string
	// Serves lists the identifiers of the resource servers this client is: the credentials a
	// resource server authenticates with. Such a client may introspect the access tokens
	// issued for them (RFC 7662 §2.1).
	Serves []string
	// IntrospectAll lets the client introspect every token of this server (a gateway, an
	// operations tool). Without it a client introspects only the tokens issued to it and those
	// for a resource server it Serves; for any other token it is told {"active": false}.
	IntrospectAll bool
	// Impersonate makes the client's RFC 8693 token exchanges impersonation: the tokens it
	// obtains carry no act claim naming it, so a resource server sees the subject as if it
	// called directly. Off by default (delegation: act names the client); only for a fully
	// trusted gateway.
	Impersonate bool
	// DPoPBoundAccessTokens makes the client always use DPoP (RFC 9449 §5.2): a token request
	// without a proof is refused, so every token it obtains is bound to its key.
	DPoPBoundAccessTokens bool
	// TokenEndpointAuthMethod is one of the AuthMethod constants; empty means
	// client_secret_basic for confidential clients and none for public ones.
	TokenEndpointAuthMethod string
	// TokenEndpointAuthSigningAlg restricts the private_key_jwt assertion algorithm; empty
	// allows every algorithm the server supports.
	TokenEndpointAuthSigningAlg string
	// JWKS holds the client's public keys inline (private_key_jwt).
	JWKS *jose.JSONWebKeySet
	// JWKSURI is where the client publishes its public keys, as an alternative to JWKS.
	JWKSURI string
	// CreatedAt and UpdatedAt are maintained by the store.
	CreatedAt, UpdatedAt time.Time
}

var (
	_ fosite.Client                   = (*Client)(nil)
	_ fosite.ClientWithSecretRotation = (*Client)(nil)
	_ fosite.OpenIDConnectClient      = (*Client)(nil)
)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRotatedHashes implements fosite.ClientWithSecretRotation.
func (c *Client) GetRotatedHashes() [][]byte { return c.RotatedSecretHashes }

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return c.ResponseTypes
}

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client.
func (c *Client) IsPublic() bool { return c.Public }

// GetAudience implements fosite.Client: the resource servers the client may use.
func (c *Client) GetAudience() fosite.Arguments { return c.Resources }

// GetRequestURIs implements fosite.OpenIDConnectClient; request_uri is not supported.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient. fosite speaks go-jose v3, so the keys
// are converted at this boundary only.
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet {
	if c.JWKS == nil {
		return nil
	}
	out := &josev3.JSONWebKeySet{Keys: make([]josev3.JSONWebKey, 0, len(c.JWKS.Keys))}
	for _, k := range c.JWKS.Keys {
		out.Keys = append(out.Keys, josev3.JSONWebKey{
			Key: k.Key, KeyID: k.KeyID, Algorithm: k.Algorithm, Use: k.Use,
			Certificates: k.Certificates,
		})
	}
	return out
}

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient; request objects are
// not supported.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient, applying the default.
func (c *Client) GetTokenEndpointAuthMethod() string {
	switch {
	case c.TokenEndpointAuthMethod != "":
		return c.TokenEndpointAuthMethod
	case c.Public:
		return AuthMethodNone
	default:
		return AuthMethodSecretBasic
	}
}

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return c.TokenEndpointAuthSigningAlg }

// Clone returns a deep copy that shares nothing mutable with c.
func (c *Client) Clone() *Client {
	if c == nil {
		return nil
	}
	out := *c
	out.SecretHash = slices.Clone(c.SecretHash)
	if c.RotatedSecretHashes != nil {
		out.RotatedSecretHashes = make([][]byte, len(c.RotatedSecretHashes))
		for i, h := range c.RotatedSecretHashes {
			out.RotatedSecretHashes[i] = slices.Clone(h)
		}
	}
	out.RedirectURIs = slices.Clone(c.RedirectURIs)
	out.GrantTypes = slices.Clone(c.GrantTypes)
	out.ResponseTypes = slices.Clone(c.ResponseTypes)
	out.Scopes = slices.Clone(c.Scopes)
	out.Resources = slices.Clone(c.Resources)
	out.Serves = slices.Clone(c.Serves)
	out.JWKS = cloneKeySet(c.JWKS)
	return &out
}

// ResourceServer is a registered protected resource (RFC 8707): the policy for the access
// tokens issued for it. No Go peer models it; node-oidc-provider's resource-server info is the
// closest relative.
type ResourceServer struct {
	// Identifier is the resource indicator: an absolute URI without fragment. It is the
	// access token's aud, exactly.
	Identifier string
	// Name is a human-readable label.
	Name string
	// Scopes the resource server accepts; a token for it carries only these.
	Scopes []string
	// AccessTokenTTL is the lifetime of access tokens for it; zero means the provider default.
	AccessTokenTTL time.Duration
	// SigningAlg is the JWS algorithm of its access tokens; empty means the provider default.
	SigningAlg string
	// Encryption, when set, is the resource server's public key: its access tokens are
	// encrypted to it (JWE) after signing.
	Encryption *jose.JSONWebKey
	// DPoPRequired makes its access tokens DPoP-bound always (RFC 9449; RFC 9728's
	// dpop_bound_access_tokens_required): a token request for it without a proof is refused.
	DPoPRequired bool
	// Default marks the resource server used when a request names none. At most one is.
	Default bool
	// CreatedAt and UpdatedAt are maintained by the store.
	CreatedAt, UpdatedAt time.Time
}

// Clone returns a deep copy that shares nothing mutable with rs.
func (rs *ResourceServer) Clone() *ResourceServer {
	if rs == nil {
		return nil
	}
	out := *rs
	out.Scopes = slices.Clone(rs.Scopes)
	if rs.Encryption != nil {
		k := *rs.Encryption
		k.Certificates = slices.Clone(k.Certificates)
		out.Encryption = &k
	}
	return &out
}

// Trust is an RFC 7523 §2.1 trust relationship: assertions from Issuer, about Subject (or any
// subject), signed by one of its keys, may be exchanged for access tokens within Scopes and
// Resources until ExpiresAt.
type Trust struct {
	// ID identifies the trust; stores generate one when it is empty on save.
	ID string
	// Issuer is the assertion's iss, matched exactly.
	Issuer string
	// Subject is the assertion's sub this trust covers; ignored when AllowAnySubject.
	Subject string
	// AllowAnySubject lets the issuer assert any subject.
	AllowAnySubject bool
	// JWKS holds the issuer's public keys inline.
	JWKS *jose.JSONWebKeySet
	// JWKSURI is where the issuer publishes its keys, as an alternative to JWKS.
	JWKSURI string
	// MetadataKeys takes the issuer's keys from its RFC 8414 metadata, as an alternative to
	// JWKS and JWKSURI: the jwks_uri of the document at the issuer's well-known URL (whose
	// issuer member must equal Issuer exactly, §3.3), fetched when first needed and cached as
	// a resource server's verifier caches it. For a peer authorization server that issues JWT
	// authorization grants (draft-ietf-oauth-identity-chaining §2.2); Issuer is then an https
	// URL.
	MetadataKeys bool
	// Transcribe lists the claims of an accepted assertion that carry over into the access
	// token (claims transcription, draft-ietf-oauth-identity-chaining §2.5): "act" (the
	// delegation chain, its actors qualified with Issuer), "scope" (an upper bound on the
	// token's scopes), "auth_time", "acr", "amr", and application claims by name. Every other
	// claim of the assertion is dropped. Empty (the default): the token carries its own claims
	// only, and an assertion with an act claim is refused, as dropping act would present a
	// delegation as the subject's own call.
	Transcribe []string
	// Scopes that tokens obtained through this trust may carry.
	Scopes []string
	// Resources (identifiers) those tokens may be issued for.
	Resources []string
	// ExpiresAt ends the trust; zero means it does not expire.
	ExpiresAt time.Time
	// MaxAssertionLifetime bounds exp - iat (or exp - now) of accepted assertions; zero means
	// the provider default.
	MaxAssertionLifetime time.Duration
	// JTIOptional accepts assertions without jti (golang.org/x/oauth2/jwt sends none), but only
	// short-lived ones (5 minutes). Replay is then checked on a hash of their signed content
	// (header and payload), which re-encoding the signature cannot change.
	JTIOptional bool
	// CreatedAt and UpdatedAt are maintained by the store.
	CreatedAt, UpdatedAt time.Time
}

// Clone returns a deep copy that shares nothing mutable with t.
func (t *Trust) Clone() *Trust {
	if t == nil {
		return nil
	}
	out := *t
	out.JWKS = cloneKeySet(t.JWKS)
	out.Scopes = slices.Clone(t.Scopes)
	out.Resources = slices.Clone(t.Resources)
	out.Transcribe = slices.Clone(t.Transcribe)
	return &out
}

// KeyState is where a signing key is in its life.
type KeyState string

// Key states: a next key is published but does not sign yet; the current key signs; a retired
// key is published until every token it signed has expired.
const (
	KeyNext    KeyState = "next"
	KeyCurrent KeyState = "current"
	KeyRetired KeyState = "retired"
)

// Key is one of the authorization server's signing keys as stored.
type Key struct {
	// ID is the JWS kid.
	ID string
	// Algorithm is the JWS alg the key signs with (RS256, PS256, ES256, ES384, EdDSA).
	Algorithm string
	// State is next, current or retired.
	State KeyState
	// Public is the public key as a JWK (JSON).
	Public []byte
	// Sealed is the private key, encrypted by the key source (AES-GCM under the application's
	// key-encryption key). The store never sees it in the clear.
	Sealed []byte
	// CreatedAt is when the key was generated.
	CreatedAt time.Time
	// ActivatesAt is when a next key may become current.
	ActivatesAt time.Time
	// RetiredAt is when the key stopped signing; zero while it signs or waits.
	RetiredAt time.Time
	// RemoveAt is when a retired key may leave the published set.
	RemoveAt time.Time
}

// Clone returns a deep copy of k.
func (k Key) Clone() Key {
	k.Public = slices.Clone(k.Public)
	k.Sealed = slices.Clone(k.Sealed)
	return k
}

// Session is the fosite session mandate stores with every code and token: who the subject is,
// how they authenticated, and the claims of the access token minted with it, so that
// introspection answers with exactly the token's own claims.
type Session struct {
	// Subject is the resource owner (empty for client_credentials, where the client is).
	Subject string `json:"sub,omitempty"`
	// Username is shown in introspection responses when set.
	Username string `json:"username,omitempty"`
	// AuthTime, ACR and AMR describe the user authentication, when there was one.
	AuthTime time.Time `json:"auth_time,omitzero"`
	ACR      string    `json:"acr,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	// Extra holds what the application's Authenticator attached to the session, for claim
	// mappers to read.
	Extra map[string]any `json:"extra,omitempty"`
	// ExpiresAt is fosite's per-token-type expiry.
	ExpiresAt map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
	// AccessToken holds the claims of the access token last minted with this session.
	AccessToken map[string]any `json:"access_token,omitempty"`
	// Transcribed holds the claims an RFC 7523 grant carries over into the access token minted
	// with this session, as its trust allows (Trust.Transcribe): "act" as a JSON object, and
	// application claims by name. The token strategy adds them to the token.
	Transcribed map[string]any `json:"transcribed,omitempty"`
	// DPoPJKT is the RFC 7638 thumbprint of the DPoP key the grant is bound to (RFC 9449): the
	// dpop_jkt of the authorization request, for its code (§10), and the key of a public
	// client's token request, for its refresh tokens (§5). A request that redeems the code or
	// a refresh token must carry a proof by that key.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

var _ fosite.Session = (*Session)(nil)

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = make(map[fosite.TokenType]time.Time)
	}
	s.ExpiresAt[key] = exp.UTC()
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	if s.ExpiresAt == nil {
		return time.Time{}
	}
	return s.ExpiresAt[key]
}

// GetUsername implements fosite.Session.
func (s *Session) GetUsername() string { return s.Username }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string { return s.Subject }

// SetSubject implements the RFC 7523 session contract.
func (s *Session) SetSubject(sub string) { s.Subject = sub }

// Clone implements fosite.Session with a deep copy.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	out := *s
	out.AMR = slices.Clone(s.AMR)
	out.Extra = deepCopyMap(s.Extra)
	out.ExpiresAt = maps.Clone(s.ExpiresAt)
	out.AccessToken = deepCopyMap(s.AccessToken)
	out.Transcribed = deepCopyMap(s.Transcribed)
	return &out
}

// UnmarshalJSON decodes a session so that the numbers in Extra and AccessToken read back as
// they were written: an integer that fits is an int64 (an application's 64-bit account id is
// not rounded to the nearest float64, as encoding/json's default would round it), whether
// written 1000, 1e3 or 1000.0; another number a float64; and an integer beyond int64 or a
// number out of float64's range a json.Number, which encodes back to the same text.
func (s *Session) UnmarshalJSON(data []byte) error {
	type plain Session // the fields, without this method
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("storage: session: data after the JSON value")
	}
	exactNumbers(p.Extra)
	exactNumbers(p.AccessToken)
	exactNumbers(p.Transcribed)
	*s = Session(p)
	return nil
}

// exactNumbers replaces, in place, the json.Numbers of a decoded JSON value (see
// Session.UnmarshalJSON) and returns v.
func exactNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if !strings.ContainsAny(string(t), ".eE") {
			if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
				return i
			}
			return t
		}
		f, err := strconv.ParseFloat(string(t), 64)
		switch {
		case err != nil:
			return t
		case f != math.Trunc(f):
			return f
		case f >= -(1<<63) && f < 1<<63:
			return int64(f) // 2.0 or 1e3 is an integer, as the same number written 2 or 1000 would be
		}
		return t
	case map[string]any:
		for k, e := range t {
			t[k] = exactNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = exactNumbers(e)
		}
	}
	return v
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return deepCopyMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopyValue(e)
		}
		return out
	case []string:
		return slices.Clone(t)
	default:
		return v
	}
}

func cloneKeySet(s *jose.JSONWebKeySet) *jose.JSONWebKeySet {
	if s == nil {
		return nil
	}
	out := &jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(s.Keys))}
	for i, k := range s.Keys {
		k.Certificates = slices.Clone(k.Certificates)
		out.Keys[i] = k
	}
	return out
}
