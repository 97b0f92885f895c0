package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// wellKnownSuffix is the RFC 8414 well-known URI suffix for OAuth 2.0 authorization servers.
const wellKnownSuffix = "oauth-authorization-server"

// JWKSMaxAge is the max-age of the JWKS document's Cache-Control: how long a resource server
// that honours it may go without seeing a newly published key. Key rotation must publish a next
// key at least this long before it signs.
const JWKSMaxAge = 5 * time.Minute

// Metadata is the RFC 8414 §2 authorization-server metadata document. Members that mandate does
// not use are left out rather than sent empty.
//
// See https://www.rfc-editor.org/rfc/rfc8414#section-2.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	ServiceDocumentation                       string   `json:"service_documentation,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	// RevocationEndpointAuthSigningAlgValuesSupported is required when the methods above
	// include private_key_jwt (RFC 8414 §2).
	RevocationEndpointAuthSigningAlgValuesSupported []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionEndpoint                           string   `json:"introspection_endpoint,omitempty"`
	IntrospectionEndpointAuthMethodsSupported       []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	// IntrospectionEndpointAuthSigningAlgValuesSupported is required when the methods above
	// include private_key_jwt (RFC 8414 §2).
	IntrospectionEndpointAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	CodeChallengeMethodsSupported                      []string `json:"code_challenge_methods_supported,omitempty"`
	// IdentityChainingRequestedTokenTypesSupported lists the requested_token_type values a
	// token exchange accepts for chaining across domains
	// (draft-ietf-oauth-identity-chaining §3).
	IdentityChainingRequestedTokenTypesSupported []string `json:"identity_chaining_requested_token_types_supported,omitempty"`
	// DPoPSigningAlgValuesSupported lists the algorithms the token endpoint accepts DPoP proofs
	// signed with (RFC 9449 §5.1).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// IntrospectionSigningAlgValuesSupported lists the algorithms of JWT introspection
	// responses (RFC 9701 §7).
	IntrospectionSigningAlgValuesSupported []string `json:"introspection_signing_alg_values_supported,omitempty"`
}

// WellKnownPath returns the path at which the RFC 8414 metadata of issuer is served: the
// well-known segment is inserted between the host and the issuer's path, whose trailing slash
// is removed first (RFC 8414 §3.1). Issuer https://a.example/oauth2 gives
// /.well-known/oauth-authorization-server/oauth2.
func WellKnownPath(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("handlers: issuer: %w", err)
	}
	return "/.well-known/" + wellKnownSuffix + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// WellKnownURL returns the absolute URL of issuer's RFC 8414 metadata document.
func WellKnownURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("handlers: issuer: %w", err)
	}
	p, err := WellKnownPath(issuer)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}).String(), nil
}

// MetadataHandler serves the metadata document returned by get, freshly on every request (so
// that newly registered scopes appear), with a short public cache lifetime. If get fails (the
// store that lists the scopes cannot be reached) it answers 503 with Retry-After.
func MetadataHandler(get func(context.Context) (*Metadata, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		md, err := get(r.Context())
		if err != nil {
			SetUnavailable(w.Header())
			http.Error(w, "metadata unavailable", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, md, "public, max-age=300")
	})
}

// PublicKeySource is what the JWKS endpoint needs of a key source.
type PublicKeySource interface {
	// PublicKeys returns the keys to publish, public members only.
	PublicKeys(ctx context.Context) ([]jose.JSONWebKey, error)
}

// JWKSHandler serves the signing keys as an RFC 7517 JWK Set. Only public keys are ever
// written: a private key handed in by mistake is reduced to its public part. The cache lifetime
// is short compared with key rotation's propagation time, so resource servers see a next key
// long before it signs. If the key source fails it answers 503 with Retry-After.
//
// See https://www.rfc-editor.org/rfc/rfc7517#section-5.
func JWKSHandler(keys PublicKeySource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ks, err := keys.PublicKeys(r.Context())
		if err != nil {
			SetUnavailable(w.Header())
			http.Error(w, "keys unavailable", http.StatusServiceUnavailable)
			return
		}
		set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(ks))}
		for _, k := range ks {
			if !k.IsPublic() {
				k = k.Public()
			}
			if !k.Valid() {
				continue
			}
			set.Keys = append(set.Keys, k)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		writeJSON(w, set, fmt.Sprintf("public, max-age=%d, stale-if-error=86400", int(JWKSMaxAge/time.Second)))
	})
}

func writeJSON(w http.ResponseWriter, v any, cacheControl string) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
