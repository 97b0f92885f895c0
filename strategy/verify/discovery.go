package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// ServerMetadata is what this package reads of an authorization server's RFC 8414 metadata
// (https://www.rfc-editor.org/rfc/rfc8414#section-2).
type ServerMetadata struct {
	// Issuer is the issuer identifier: equal to the one asked for, exactly (§3.3).
	Issuer string `json:"issuer"`
	// TokenEndpoint is the token endpoint URL (absent for an implicit-only server).
	TokenEndpoint string `json:"token_endpoint"`
	// JWKSURI is where the server publishes its signing keys.
	JWKSURI string `json:"jwks_uri"`
}

// Discover fetches the RFC 8414 metadata of the authorization server issuer from its
// well-known URL (https://www.rfc-editor.org/rfc/rfc8414#section-3.1: the well-known segment
// inserted before the issuer's path), with the rules of every fetch of this package: https (or
// http to a loopback host), redirects checked the same way and at most three, a bounded body,
// JSON without duplicate or case-variant members ([strict.Unmarshal]). The document's issuer
// must equal issuer exactly (§3.3), and token_endpoint and jwks_uri, when present, must be
// URLs that [strict.FetchURL] accepts. client nil means a client with [DefaultFetchTimeout].
func Discover(ctx context.Context, client *http.Client, issuer string) (*ServerMetadata, error) {
	if err := checkIssuer(issuer); err != nil {
		return nil, fmt.Errorf("%w: issuer: %w", ErrConfig, err)
	}
	if client == nil {
		client = &http.Client{Timeout: DefaultFetchTimeout}
	}
	md, err := fetchMetadata(ctx, client, issuer)
	if err != nil {
		return nil, err
	}
	for _, m := range []struct{ name, url string }{{"token_endpoint", md.TokenEndpoint}, {"jwks_uri", md.JWKSURI}} {
		if m.url == "" {
			continue
		}
		if err := checkURL(m.url); err != nil {
			return nil, fmt.Errorf("verify: metadata %s: %w", m.name, err)
		}
	}
	return md, nil
}

// fetchMetadata reads issuer's metadata document and checks its issuer member (§3.3).
func fetchMetadata(ctx context.Context, client *http.Client, issuer string) (*ServerMetadata, error) {
	metaURL, err := wellKnownURL(issuer, "oauth-authorization-server")
	if err != nil {
		return nil, err
	}
	body, _, err := get(ctx, client, metaURL)
	if err != nil {
		return nil, fmt.Errorf("verify: fetch authorization server metadata: %w", err)
	}
	var md ServerMetadata
	if err := strict.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("verify: authorization server metadata is not valid JSON: %w", err)
	}
	// RFC 8414 §3.3: the issuer in the metadata must be identical to the one we started from.
	if md.Issuer != issuer {
		return nil, fmt.Errorf("verify: metadata issuer %q does not equal the configured issuer", strict.Echo(md.Issuer))
	}
	return &md, nil
}

// NewIssuerKeySet returns a [KeySet] of the signing keys of the authorization server issuer,
// found as a [Verifier] finds its issuer's: the jwks_uri of its RFC 8414 metadata ([Discover]),
// then the JWK Set there, cached and refreshed like any remote KeySet. It is how an
// authorization server trusts a peer's JWT authorization grants by the keys the peer
// publishes (draft-ietf-oauth-identity-chaining §2.2). It does no network I/O: the first
// [KeySet.Key] discovers and fetches. ctx's values (not its cancellation) are used for every
// fetch.
func NewIssuerKeySet(ctx context.Context, issuer string, cfg KeySetConfig) (*KeySet, error) {
	if err := checkIssuer(issuer); err != nil {
		return nil, fmt.Errorf("%w: issuer: %w", ErrConfig, err)
	}
	return newRemoteKeySet(ctx, issuer, "", cfg)
}

// discover reads the issuer's RFC 8414 metadata and returns its jwks_uri
// (https://www.rfc-editor.org/rfc/rfc8414#section-3). Only jwks_uri is checked: a verifier
// needs nothing else of the document.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	md, err := fetchMetadata(ctx, client, issuer)
	if err != nil {
		return "", err
	}
	if md.JWKSURI == "" {
		return "", errors.New("verify: authorization server metadata has no jwks_uri")
	}
	if err := checkURL(md.JWKSURI); err != nil {
		return "", fmt.Errorf("verify: metadata jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}
