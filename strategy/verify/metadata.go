package verify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// ProtectedResourceMetadata is the RFC 9728 §2 metadata document of a protected resource
// (https://www.rfc-editor.org/rfc/rfc9728#section-2). [Verifier.Metadata] fills in what the
// verifier knows; add scopes, a name and documentation, then serve it with
// [ProtectedResourceMetadata.Handler] at the path [WellKnownPath] returns.
type ProtectedResourceMetadata struct {
	// Resource is the resource identifier: the aud value tokens carry. Required.
	Resource string `json:"resource"`
	// AuthorizationServers lists issuer identifiers of authorization servers for this resource.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// JWKSURI is where the resource publishes its own public keys (e.g. its JWE encryption key).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// ScopesSupported lists the scopes used to request access to the resource.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported lists how tokens may be sent: "header", "body", "query".
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceSigningAlgValuesSupported lists JWS algorithms the resource signs responses with.
	ResourceSigningAlgValuesSupported []string `json:"resource_signing_alg_values_supported,omitempty"`
	// DPoPSigningAlgValuesSupported lists the algorithms DPoP proofs may be signed with
	// (RFC 9728 §2, RFC 9449).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// DPoPBoundAccessTokensRequired says that the resource accepts only DPoP-bound tokens.
	DPoPBoundAccessTokensRequired bool `json:"dpop_bound_access_tokens_required,omitempty"`
	// ResourceName is a human-readable name.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is a URL of human-readable documentation.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// ResourcePolicyURI is a URL about the resource's data-use policy.
	ResourcePolicyURI string `json:"resource_policy_uri,omitempty"`
	// ResourceTOSURI is a URL of the resource's terms of service.
	ResourceTOSURI string `json:"resource_tos_uri,omitempty"`
}

// Metadata returns the RFC 9728 metadata this verifier implies: resource = [Config.Audience],
// authorization_servers = {[Config.Issuer]}, bearer_methods_supported from the token delivery
// methods the middleware accepts, the DPoP proof algorithms and, with [Config.DPoPRequired],
// dpop_bound_access_tokens_required.
func (v *Verifier) Metadata() ProtectedResourceMetadata {
	m := ProtectedResourceMetadata{
		Resource:                      v.audience,
		AuthorizationServers:          []string{v.issuer},
		BearerMethodsSupported:        []string{"header"},
		DPoPSigningAlgValuesSupported: strings.Fields(v.dpopAlgs),
		DPoPBoundAccessTokensRequired: v.dpopRequired,
	}
	if v.form {
		m.BearerMethodsSupported = append(m.BearerMethodsSupported, "body")
	}
	if v.query {
		m.BearerMethodsSupported = append(m.BearerMethodsSupported, "query")
	}
	return m
}

// Handler checks m and returns an http.Handler that serves it as JSON to GET and HEAD. Mount it
// at [WellKnownPath](m.Resource).
func (m ProtectedResourceMetadata) Handler() (http.Handler, error) {
	if _, err := WellKnownPath(m.Resource); err != nil {
		return nil, err
	}
	for _, s := range m.AuthorizationServers {
		if err := checkIssuer(s); err != nil {
			return nil, fmt.Errorf("verify: metadata authorization server %q: %w", strict.Echo(s), err)
		}
	}
	for _, b := range m.BearerMethodsSupported {
		if !slices.Contains([]string{"header", "body", "query"}, b) {
			return nil, fmt.Errorf("verify: metadata bearer method %q is not header, body or query", strict.Echo(b))
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("verify: metadata: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	}), nil
}

// WellKnownPath returns the path at which the RFC 9728 metadata of resource is served
// (RFC 9728 §3.1): /.well-known/oauth-protected-resource, followed by the resource's path
// without a terminating "/" ("https://b.example/api/" → "/.well-known/oauth-protected-resource/api").
// resource must be an absolute https URL (http only for loopback hosts) without fragment.
func WellKnownPath(resource string) (string, error) {
	u, err := MetadataURL(resource)
	if err != nil {
		return "", err
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	return p.EscapedPath(), nil
}

// MetadataURL returns the absolute URL of the RFC 9728 metadata of resource, the value for
// [Config.ResourceMetadata].
func MetadataURL(resource string) (string, error) {
	if err := checkURL(resource); err != nil {
		return "", fmt.Errorf("verify: resource %q: %w", strict.Echo(resource), err)
	}
	return wellKnownURL(resource, "oauth-protected-resource")
}
