package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Setup is a declarative configuration: resource servers, clients, RFC 7523 trusts and peer
// authorization servers, as an application keeps them in a JSON file. [ParseSetup] validates the file on its own;
// [Provider.Apply] checks what needs the provider (the issuer, resource servers the file names
// without declaring them, which must be stored) and creates or updates every entry (entries
// absent from the file are left alone), so it can run on every start.
//
//	{
//	  "issuer": "https://auth.example.com",
//	  "resource_servers": [{"identifier": "https://orders.example.com/", "scopes": ["orders:read"],
//	                        "access_token_ttl": "10m", "signing_alg": "ES256", "default": true}],
//	  "clients": [{"client_id": "billing", "client_secret": "…", "grant_types": ["client_credentials"],
//	               "scopes": ["orders:read"], "resources": ["https://orders.example.com/"]}],
//	  "trusted_issuers": [{"issuer": "https://idp.partner.example", "subject": "svc-a",
//	                       "jwks_uri": "https://idp.partner.example/jwks", "scopes": ["orders:read"],
//	                       "resources": ["https://orders.example.com/"], "expires_at": "2027-01-01T00:00:00Z"}]
//	}
//
// Chaining across trust domains (draft-ietf-oauth-identity-chaining) takes one entry on each
// side. Domain X lists domain Y's authorization server among its "peers" (and the client that
// exchanges tokens for grants lists that issuer among its "resources"); domain Y trusts X's
// issuer for grants, keyed to X's metadata, with what it transcribes:
//
//	"peers": [{"issuer": "https://as.y.example", "scopes": ["stock:read"], "claims": ["act"],
//	           "max_grant_lifetime": "2m"}]
//
//	"trusted_issuers": [{"issuer": "https://as.x.example", "allow_any_subject": true,
//	                     "jwks_from_metadata": true, "transcribe": ["act", "scope"],
//	                     "scopes": ["stock:read"], "resources": ["https://stock.y.example/"],
//	                     "max_assertion_lifetime": "5m"}]
type Setup struct {
	Issuer          string          `json:"issuer,omitempty"`
	ResourceServers []SetupResource `json:"resource_servers"`
	Clients         []SetupClient   `json:"clients"`
	TrustedIssuers  []SetupTrust    `json:"trusted_issuers"`
	Peers           []SetupPeer     `json:"peers"`
}

// SetupResource declares a storage.ResourceServer.
type SetupResource struct {
	Identifier     string           `json:"identifier"`
	Name           string           `json:"name,omitempty"`
	Scopes         []string         `json:"scopes"`
	AccessTokenTTL string           `json:"access_token_ttl,omitempty"`
	SigningAlg     string           `json:"signing_alg,omitempty"`
	EncryptionKey  *jose.JSONWebKey `json:"encryption_key,omitempty"`
	Default        bool             `json:"default,omitempty"`
	// DPoPRequired is storage.ResourceServer.DPoPRequired.
	DPoPRequired bool `json:"dpop_bound_access_tokens_required,omitempty"`
}

// SetupClient declares a storage.Client. client_secret is hashed before it is stored;
// client_secret_hash takes an existing bcrypt hash instead. resources may name resource
// servers and peer authorization servers (the grants it may obtain by token exchange).
type SetupClient struct {
	ClientID                    string              `json:"client_id"`
	Name                        string              `json:"name,omitempty"`
	ClientSecret                string              `json:"client_secret,omitempty"`
	ClientSecretHash            string              `json:"client_secret_hash,omitempty"`
	Public                      bool                `json:"public,omitempty"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method,omitempty"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty"`
	GrantTypes                  []string            `json:"grant_types"`
	RedirectURIs                []string            `json:"redirect_uris,omitempty"`
	Scopes                      []string            `json:"scopes"`
	Resources                   []string            `json:"resources"`
	Serves                      []string            `json:"serves,omitempty"`
	IntrospectAll               bool                `json:"introspect_all,omitempty"`
	Impersonate                 bool                `json:"impersonate,omitempty"`
	DPoPBoundAccessTokens       bool                `json:"dpop_bound_access_tokens,omitempty"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI                     string              `json:"jwks_uri,omitempty"`
}

// SetupTrust declares a storage.Trust. Its keys are given by exactly one of jwks, jwks_uri and
// jwks_from_metadata (the issuer's RFC 8414 metadata names its jwks_uri: for a peer
// authorization server, whose issuer is then an https URL). transcribe lists the claims of an
// accepted grant that reach the access token (storage.Trust.Transcribe).
type SetupTrust struct {
	ID                   string              `json:"id,omitempty"`
	Issuer               string              `json:"issuer"`
	Subject              string              `json:"subject,omitempty"`
	AllowAnySubject      bool                `json:"allow_any_subject,omitempty"`
	JWKS                 *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI              string              `json:"jwks_uri,omitempty"`
	JWKSFromMetadata     bool                `json:"jwks_from_metadata,omitempty"`
	Transcribe           []string            `json:"transcribe"`
	Scopes               []string            `json:"scopes"`
	Resources            []string            `json:"resources"`
	ExpiresAt            string              `json:"expires_at,omitempty"`
	MaxAssertionLifetime string              `json:"max_assertion_lifetime,omitempty"`
	JTIOptional          bool                `json:"jti_optional,omitempty"`
}

// SetupPeer declares a storage.Peer: an authorization server of another trust domain that
// this one issues JWT authorization grants for. issuer is its issuer identifier (the resource
// value that names it, and the grants' aud); claims are what a grant may transcribe (act,
// client_id, auth_time, acr, amr, application claims; scope is governed by scopes);
// max_grant_lifetime is a duration of at most an hour (default 5m).
type SetupPeer struct {
	Issuer           string   `json:"issuer"`
	Name             string   `json:"name,omitempty"`
	TokenEndpoint    string   `json:"token_endpoint,omitempty"`
	Scopes           []string `json:"scopes"`
	Claims           []string `json:"claims"`
	MaxGrantLifetime string   `json:"max_grant_lifetime,omitempty"`
	SigningAlg       string   `json:"signing_alg,omitempty"`
}

// maxSetupBytes bounds a setup file.
const maxSetupBytes = 8 << 20

// LoadSetup reads and validates a setup file.
func LoadSetup(path string) (*Setup, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("provider: setup: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSetupBytes+1))
	if err != nil {
		return nil, fmt.Errorf("provider: setup %s: %w", path, err)
	}
	s, err := ParseSetup(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseSetup decodes and validates a setup document. Unknown or repeated fields, malformed URIs,
// unknown algorithms or grant types, duplicate identifiers and inconsistent client
// authentication are errors whose message names the field, e.g. `clients[1].redirect_uris[0]: …`.
// References to resource servers the document does not declare are checked by
// [Provider.Apply], against the store.
func ParseSetup(data []byte) (*Setup, error) {
	if len(data) > maxSetupBytes {
		return nil, fmt.Errorf("provider: setup: larger than %d bytes", maxSetupBytes)
	}
	var s Setup
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		if path, problem := fieldError(data, reflect.TypeFor[Setup](), ""); path != "" {
			return nil, fmt.Errorf("provider: setup: %s: %s", path, problem)
		}
		return nil, fmt.Errorf("provider: setup: %w", err)
	}
	if dec.More() {
		return nil, errors.New("provider: setup: trailing data after the JSON object")
	}
	// A member given twice, or in another case than its name, was read silently by
	// encoding/json (the last one wins; names match case-insensitively).
	if err := strict.Check(data, &s); err != nil {
		return nil, fmt.Errorf("provider: setup: %w", err)
	}
	if err := s.validate(nil, nil); err != nil {
		return nil, err
	}
	return &s, nil
}

// fieldError returns the path of the first member of data that t (a struct, or a slice of
// them) does not declare, or whose value does not decode into its field, like
// "clients[2].secret" or "resource_servers[0].scopes", and what is wrong with it; "" if there is
// none. Members whose type is not one of ours (JWKs) are decoded by their own decoders.
func fieldError(data []byte, t reflect.Type, path string) (string, string) {
	switch t.Kind() {
	case reflect.Pointer:
		return fieldError(data, t.Elem(), path)
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(data, &items) != nil {
			break
		}
		for i, item := range items {
			if p, problem := fieldError(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p, problem
			}
		}
		return "", ""
	case reflect.Struct:
		if t.PkgPath() != reflect.TypeFor[Setup]().PkgPath() {
			break
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(data, &members) != nil {
			break
		}
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields[name] = f.Type
		}
		for _, name := range slices.Sorted(maps.Keys(members)) {
			p := name
			if path != "" {
				p = path + "." + name
			}
			ft, ok := fields[name]
			if !ok {
				return p, "unknown field"
			}
			if q, problem := fieldError(members[name], ft, p); q != "" {
				return q, problem
			}
		}
		return "", ""
	}
	// A value of another kind, or a struct or list that is not one: does it decode?
	if err := json.Unmarshal(data, reflect.New(t).Interface()); err != nil && path != "" {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return path, fmt.Sprintf("a JSON %s where %s belongs", te.Value, jsonKind(t))
		}
		return path, err.Error()
	}
	return "", ""
}

// jsonKind names what JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	}
	return "an object"
}

// validate checks the setup on its own. Whether a referenced resource server (or, among a
// client's resources, a peer) exists is asked of stored and storedPeer (nil: not checked here,
// as ParseSetup cannot see the store): a setup may name ones it does not declare, if they are
// stored already.
func (s *Setup) validate(stored, storedPeer func(identifier string) bool) error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("provider: setup: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if s.Issuer != "" {
		if _, err := ParseIssuer(s.Issuer); err != nil {
			bad("issuer", "%v", err)
		}
	}
	resources := map[string]bool{}
	// unknown reports a reference to a resource server that is neither declared nor stored
	// (the store is asked only when stored is given; a near miss of a declared one — the same
	// but for a trailing slash — is refused at once: resource identifiers match exactly).
	unknown := func(r string) bool {
		if resources[r] {
			return false
		}
		for d := range resources {
			if strings.TrimSuffix(d, "/") == strings.TrimSuffix(r, "/") {
				return true
			}
		}
		return stored != nil && !stored(r)
	}
	peers := map[string]bool{}
	for _, pe := range s.Peers {
		peers[pe.Issuer] = true
	}
	defaults := 0
	for i, rs := range s.ResourceServers {
		f := fmt.Sprintf("resource_servers[%d]", i)
		if err := handlers.ParseIndicator(rs.Identifier); err != nil {
			bad(f+".identifier", "%q is not a valid resource indicator: %s", rs.Identifier, hintOf(err))
		}
		if resources[rs.Identifier] {
			bad(f+".identifier", "duplicate resource server %q", rs.Identifier)
		}
		if !peers[rs.Identifier] && storedPeer != nil && storedPeer(rs.Identifier) {
			bad(f+".identifier", "%q is a peer authorization server too; a resource value must name one or the other", rs.Identifier)
		}
		resources[rs.Identifier] = true
		checkScopes(bad, f+".scopes", rs.Scopes)
		if rs.AccessTokenTTL != "" {
			if d, err := time.ParseDuration(rs.AccessTokenTTL); err != nil || d < time.Second || d > 24*time.Hour {
				bad(f+".access_token_ttl", "%q must be a duration between 1s and 24h, like \"10m\"", rs.AccessTokenTTL)
			}
		}
		if rs.SigningAlg != "" && !supportedAlg(rs.SigningAlg) {
			bad(f+".signing_alg", "%q is not supported (%s)", rs.SigningAlg, verify.AlgorithmNames())
		}
		if k := rs.EncryptionKey; k != nil && (!k.IsPublic() || !k.Valid() || k.Use == "sig") {
			bad(f+".encryption_key", "must be a valid public key for encryption")
		}
		if rs.Default {
			defaults++
		}
	}
	if defaults > 1 {
		bad("resource_servers", "%d resource servers are marked default; at most one may be", defaults)
	}
	clients := map[string]bool{}
	for i, c := range s.Clients {
		f := fmt.Sprintf("clients[%d]", i)
		if strings.TrimSpace(c.ClientID) == "" || len(c.ClientID) > 255 || strings.ContainsAny(c.ClientID, "\x00\r\n") {
			bad(f+".client_id", "must be 1 to 255 printable characters")
		}
		if clients[c.ClientID] {
			bad(f+".client_id", "duplicate client %q", c.ClientID)
		}
		clients[c.ClientID] = true
		method := c.authMethod()
		switch method {
		case storage.AuthMethodSecretBasic, storage.AuthMethodSecretPost:
			if c.Public {
				bad(f+".token_endpoint_auth_method", "a public client authenticates with \"none\"")
			}
			if (c.ClientSecret == "") == (c.ClientSecretHash == "") {
				bad(f+".client_secret", "exactly one of client_secret and client_secret_hash is required for %s", method)
			}
			if c.ClientSecret != "" && len(c.ClientSecret) < 16 {
				bad(f+".client_secret", "must be at least 16 characters (generated secrets are better)")
			}
			if h := c.ClientSecretHash; h != "" && !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") && !strings.HasPrefix(h, secretHashPrefix) {
				bad(f+".client_secret_hash", "must be a bcrypt hash (or one exported from a server with the same secret)")
			}
		case storage.AuthMethodPrivateKeyJWT:
			// As for the secret methods: "public" and an authentication method contradict each
			// other (fosite refuses such a client's requests that carry no assertion).
			if c.Public {
				bad(f+".token_endpoint_auth_method", "a public client authenticates with \"none\"")
			}
			if c.ClientSecret != "" || c.ClientSecretHash != "" {
				bad(f+".client_secret", "a private_key_jwt client has no secret")
			}
			if c.JWKS == nil && c.JWKSURI == "" {
				bad(f+".jwks", "a private_key_jwt client needs jwks or jwks_uri")
			}
		case storage.AuthMethodNone:
			if !c.Public {
				bad(f+".token_endpoint_auth_method", "\"none\" is only for public clients")
			}
			if c.ClientSecret != "" || c.ClientSecretHash != "" {
				bad(f+".client_secret", "a public client has no secret")
			}
		default:
			bad(f+".token_endpoint_auth_method", "%q is not supported (client_secret_basic, client_secret_post, private_key_jwt, none)", method)
		}
		if a := c.TokenEndpointAuthSigningAlg; a != "" && !supportedAlg(a) {
			bad(f+".token_endpoint_auth_signing_alg", "%q is not supported (%s)", a, verify.AlgorithmNames())
		}
		if c.JWKS != nil && c.JWKSURI != "" {
			bad(f+".jwks_uri", "give jwks or jwks_uri, not both")
		}
		checkKeySet(bad, f+".jwks", c.JWKS)
		checkHTTPSURL(bad, f+".jwks_uri", c.JWKSURI)
		if len(c.GrantTypes) == 0 {
			bad(f+".grant_types", "at least one grant type is required")
		}
		for j, g := range c.GrantTypes {
			switch g {
			case "client_credentials", handlers.GrantTypeJWTBearer, handlers.GrantTypeTokenExchange:
				if c.Public {
					bad(fmt.Sprintf("%s.grant_types[%d]", f, j), "%q needs a confidential client", g)
				}
			case "authorization_code", "refresh_token":
			default:
				bad(fmt.Sprintf("%s.grant_types[%d]", f, j), "%q is not supported (authorization_code, refresh_token, client_credentials, %s, %s)", g, handlers.GrantTypeJWTBearer, handlers.GrantTypeTokenExchange)
			}
		}
		if c.Impersonate && !slices.Contains(c.GrantTypes, handlers.GrantTypeTokenExchange) {
			bad(f+".impersonate", "only a client with the %s grant exchanges tokens", handlers.GrantTypeTokenExchange)
		}
		if slices.Contains(c.GrantTypes, "authorization_code") && len(c.RedirectURIs) == 0 {
			bad(f+".redirect_uris", "authorization_code needs at least one redirect URI")
		}
		for j, u := range c.RedirectURIs {
			checkRedirectURI(bad, fmt.Sprintf("%s.redirect_uris[%d]", f, j), u)
		}
		checkScopes(bad, f+".scopes", c.Scopes)
		for j, r := range c.Resources {
			if peers[r] || storedPeer != nil && !resources[r] && storedPeer(r) {
				continue // a peer authorization server: grants for it by token exchange
			}
			if unknown(r) {
				bad(fmt.Sprintf("%s.resources[%d]", f, j), "%q is neither declared nor stored as a resource server or a peer", r)
			}
		}
		for j, r := range c.Serves {
			if unknown(r) {
				bad(fmt.Sprintf("%s.serves[%d]", f, j), "%q is neither declared nor stored as a resource server", r)
			}
		}
		if (len(c.Serves) > 0 || c.IntrospectAll) && (c.Public || c.authMethod() == storage.AuthMethodNone) {
			bad(f+".serves", "a public client cannot stand for a resource server or introspect")
		}
	}
	trusts := map[string]bool{}
	for i, t := range s.TrustedIssuers {
		f := fmt.Sprintf("trusted_issuers[%d]", i)
		if t.Issuer == "" || len(t.Issuer) > 2048 || strings.ContainsAny(t.Issuer, "\x00\r\n") {
			bad(f+".issuer", "is required (up to 2048 printable characters)")
		}
		if t.AllowAnySubject == (t.Subject != "") {
			bad(f+".subject", "give a subject, or allow_any_subject, not both or neither")
		}
		id := t.trustID()
		if trusts[id] {
			bad(f, "duplicate trust for issuer %q and subject %q", t.Issuer, t.Subject)
		}
		trusts[id] = true
		switch n := btoi(t.JWKS != nil) + btoi(t.JWKSURI != "") + btoi(t.JWKSFromMetadata); {
		case n > 1 && t.JWKSFromMetadata:
			bad(f+".jwks_from_metadata", "give one of jwks, jwks_uri and jwks_from_metadata")
		case n > 1:
			bad(f+".jwks_uri", "give jwks or jwks_uri, not both")
		case n == 0:
			bad(f+".jwks", "a trust needs jwks or jwks_uri (or jwks_from_metadata): its keys verify the issuer's assertions")
		}
		checkKeySet(bad, f+".jwks", t.JWKS)
		checkHTTPSURL(bad, f+".jwks_uri", t.JWKSURI)
		if t.JWKSFromMetadata {
			if err := strict.FetchURL(t.Issuer); err != nil || strings.ContainsAny(t.Issuer, "?#") {
				bad(f+".issuer", "%q: keys from metadata need an issuer that is an https URL without query or fragment", t.Issuer)
			}
		}
		seenClaims := map[string]bool{}
		for j, c := range t.Transcribe {
			field := fmt.Sprintf("%s.transcribe[%d]", f, j)
			switch {
			case !handlers.Transcribable(c):
				bad(field, "%q is a registered claim the token sets itself; transcribable: act, scope, auth_time, acr, amr and application claims", c)
			case seenClaims[c]:
				bad(field, "duplicate claim %q", c)
			}
			seenClaims[c] = true
		}
		checkScopes(bad, f+".scopes", t.Scopes)
		for j, r := range t.Resources {
			if unknown(r) {
				bad(fmt.Sprintf("%s.resources[%d]", f, j), "%q is neither declared nor stored as a resource server", r)
			}
		}
		if t.ExpiresAt != "" {
			if _, err := time.Parse(time.RFC3339, t.ExpiresAt); err != nil {
				bad(f+".expires_at", "%q is not an RFC 3339 time", t.ExpiresAt)
			}
		}
		if t.MaxAssertionLifetime != "" {
			if d, err := time.ParseDuration(t.MaxAssertionLifetime); err != nil || d < time.Second || d > 24*time.Hour {
				bad(f+".max_assertion_lifetime", "%q must be a duration between 1s and 24h", t.MaxAssertionLifetime)
			}
		}
	}
	seenPeers := map[string]bool{}
	for i, pe := range s.Peers {
		f := fmt.Sprintf("peers[%d]", i)
		if _, err := ParseIssuer(pe.Issuer); err != nil {
			bad(f+".issuer", "%q is not an issuer identifier (an https URL without query or fragment)", pe.Issuer)
		} else if err := handlers.ParseIndicator(pe.Issuer); err != nil {
			bad(f+".issuer", "%q cannot be sent as a resource parameter: %s", pe.Issuer, hintOf(err))
		}
		if seenPeers[pe.Issuer] {
			bad(f+".issuer", "duplicate peer %q", pe.Issuer)
		}
		seenPeers[pe.Issuer] = true
		if resources[pe.Issuer] || stored != nil && stored(pe.Issuer) {
			bad(f+".issuer", "%q is a resource server too; a resource value must name one or the other", pe.Issuer)
		}
		checkHTTPSURL(bad, f+".token_endpoint", pe.TokenEndpoint)
		checkScopes(bad, f+".scopes", pe.Scopes)
		seenClaims := map[string]bool{}
		for j, c := range pe.Claims {
			field := fmt.Sprintf("%s.claims[%d]", f, j)
			switch {
			case c == "" || strategy.IsReservedClaim(c) && !slices.Contains(chainedClaims, c):
				bad(field, "%q is not transcribed to a peer: act, client_id, auth_time, acr, amr and application claims are (scope is governed by scopes)", c)
			case seenClaims[c]:
				bad(field, "duplicate claim %q", c)
			}
			seenClaims[c] = true
		}
		if pe.MaxGrantLifetime != "" {
			if d, err := time.ParseDuration(pe.MaxGrantLifetime); err != nil || d < time.Second || d > MaxGrantLifetime {
				bad(f+".max_grant_lifetime", "%q must be a duration between 1s and %s, like \"2m\"", pe.MaxGrantLifetime, MaxGrantLifetime)
			}
		}
		if pe.SigningAlg != "" && !supportedAlg(pe.SigningAlg) {
			bad(f+".signing_alg", "%q is not supported (%s)", pe.SigningAlg, verify.AlgorithmNames())
		}
	}
	return errors.Join(errs...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c SetupClient) authMethod() string {
	switch {
	case c.TokenEndpointAuthMethod != "":
		return c.TokenEndpointAuthMethod
	case c.Public:
		return storage.AuthMethodNone
	default:
		return storage.AuthMethodSecretBasic
	}
}

func (t SetupTrust) trustID() string {
	if t.ID != "" {
		return t.ID
	}
	if t.AllowAnySubject {
		return t.Issuer + " *"
	}
	return t.Issuer + " " + t.Subject
}

func hintOf(err error) string {
	var rfc interface{ GetDescription() string }
	if errors.As(err, &rfc) {
		return rfc.GetDescription()
	}
	return err.Error()
}

func checkScopes(bad func(string, string, ...any), field string, scopes []string) {
	seen := map[string]bool{}
	for j, s := range scopes {
		// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		ok := s != ""
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
				ok = false
			}
		}
		if !ok {
			bad(fmt.Sprintf("%s[%d]", field, j), "%q is not a valid scope token (RFC 6749 §3.3)", s)
		}
		if seen[s] {
			bad(fmt.Sprintf("%s[%d]", field, j), "duplicate scope %q", s)
		}
		seen[s] = true
	}
}

func checkKeySet(bad func(string, string, ...any), field string, set *jose.JSONWebKeySet) {
	if set == nil {
		return
	}
	for j, k := range set.Keys {
		f := fmt.Sprintf("%s.keys[%d]", field, j)
		switch {
		case !k.IsPublic():
			bad(f, "is a private or symmetric key; publish public keys only")
		case !k.Valid():
			bad(f, "is not a valid key")
		case k.Use == "enc":
			bad(f, "has use \"enc\"; signing keys only")
		case k.Algorithm != "" && !supportedAlg(k.Algorithm):
			bad(f+".alg", "%q is not supported (%s)", k.Algorithm, verify.AlgorithmNames())
		}
	}
}

func checkHTTPSURL(bad func(string, string, ...any), field, v string) {
	if v == "" {
		return
	}
	u, err := url.Parse(v)
	if err != nil || u.Hostname() == "" || u.Fragment != "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		bad(field, "%q must be an absolute https URL without fragment", v)
	}
}

func checkRedirectURI(bad func(string, string, ...any), field, v string) {
	u, err := url.Parse(v)
	switch {
	case err != nil || !u.IsAbs():
		bad(field, "%q is not an absolute URI", v)
	case u.Fragment != "" || strings.Contains(v, "#"):
		bad(field, "%q must not contain a fragment", v)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		bad(field, "%q uses http for a non-loopback host; use https", v)
	}
}

// Apply creates or updates every resource server, client, trust and peer of s in the
// provider's storage, in one transaction: on error nothing is written. A setup for another issuer
// (Setup.Issuer set and not this provider's) is refused; a resource server named but not
// declared must be stored already; every signing_alg gets its keys (the built-in rotating
// keys create them; fixed Config.Keys must hold one).
func (p *Provider) Apply(ctx context.Context, s *Setup) (err error) {
	if s.Issuer != "" && s.Issuer != p.issuer {
		return fmt.Errorf("provider: setup: issuer %q is not this provider's issuer %q: the file is for another server", s.Issuer, p.issuer)
	}
	for i, pe := range s.Peers {
		if pe.Issuer == p.issuer {
			return fmt.Errorf("provider: setup: peers[%d].issuer: %q is this provider's own issuer; a server is not its own peer", i, pe.Issuer)
		}
	}
	if err := p.validateSetup(ctx, s); err != nil {
		return err
	}
	// Keys for every algorithm the setup names, before its transaction: a key written inside
	// it would be rolled back with it while this instance already signs with it.
	for i, r := range s.ResourceServers {
		if err := p.ensureKey(ctx, r.SigningAlg); err != nil {
			return fmt.Errorf("provider: setup: resource_servers[%d].signing_alg: %q: %w", i, r.SigningAlg, err)
		}
	}
	for i, pe := range s.Peers {
		if err := p.ensureKey(ctx, pe.SigningAlg); err != nil {
			return fmt.Errorf("provider: setup: peers[%d].signing_alg: %q: %w", i, pe.SigningAlg, err)
		}
	}
	ctx, err = p.store.BeginTX(ctx)
	if err != nil {
		return fmt.Errorf("provider: apply setup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = p.store.Rollback(ctx)
		}
	}()
	for i, r := range s.ResourceServers {
		if err := p.checkResourcePolicy(ctx, fmt.Sprintf("resource_servers[%d]", i), r); err != nil {
			return err
		}
		if err := p.store.SaveResourceServer(ctx, r.record()); err != nil {
			return fmt.Errorf("provider: apply setup: resource server %q: %w", r.Identifier, err)
		}
	}
	for _, sc := range s.Clients {
		c, err := p.clientRecord(ctx, sc)
		if err != nil {
			return fmt.Errorf("provider: apply setup: client %q: %w", sc.ClientID, err)
		}
		if err := p.store.SaveClient(ctx, c); err != nil {
			return fmt.Errorf("provider: apply setup: client %q: %w", sc.ClientID, err)
		}
	}
	for _, st := range s.TrustedIssuers {
		t := st.record()
		if err := p.store.SaveTrust(ctx, t); err != nil {
			return fmt.Errorf("provider: apply setup: trust %q: %w", t.ID, err)
		}
	}
	for _, sp := range s.Peers {
		if err := p.store.SavePeer(ctx, sp.record()); err != nil {
			return fmt.Errorf("provider: apply setup: peer %q: %w", sp.Issuer, err)
		}
	}
	if err := p.store.Commit(ctx); err != nil {
		return fmt.Errorf("provider: apply setup: %w", err)
	}
	p.setupApplied(ctx, s) // log line, audit event (manage.go)
	return nil
}

// validateSetup checks s as Apply does before writing: on its own, and against the store
// (the resource servers and peers it names without declaring them must be stored).
func (p *Provider) validateSetup(ctx context.Context, s *Setup) error {
	var lookupErr error
	lookup := func(get func(string) error) func(string) bool {
		return func(id string) bool {
			err := get(id)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				lookupErr = err
			}
			return err == nil
		}
	}
	if err := s.validate(
		lookup(func(id string) error { _, err := p.store.ResourceServer(ctx, id); return err }),
		lookup(func(id string) error { _, err := p.store.Peer(ctx, id); return err }),
	); err != nil {
		return errors.Join(err, lookupErr)
	}
	return nil
}

// record is the storage.ResourceServer a validated entry declares.
func (r SetupResource) record() *storage.ResourceServer {
	rs := &storage.ResourceServer{
		Identifier: r.Identifier, Name: r.Name, Scopes: slices.Clone(r.Scopes),
		SigningAlg: r.SigningAlg, Encryption: r.EncryptionKey, Default: r.Default, DPoPRequired: r.DPoPRequired,
	}
	if r.AccessTokenTTL != "" {
		rs.AccessTokenTTL, _ = time.ParseDuration(r.AccessTokenTTL)
	}
	return rs
}

// clientRecord is the storage.Client a validated entry declares, its secret hashed.
func (p *Provider) clientRecord(ctx context.Context, sc SetupClient) (*storage.Client, error) {
	c := &storage.Client{
		ID: sc.ClientID, Name: sc.Name, Public: sc.Public,
		RedirectURIs: slices.Clone(sc.RedirectURIs), GrantTypes: slices.Clone(sc.GrantTypes),
		Scopes: slices.Clone(sc.Scopes), Resources: slices.Clone(sc.Resources),
		Serves: slices.Clone(sc.Serves), IntrospectAll: sc.IntrospectAll, Impersonate: sc.Impersonate,
		DPoPBoundAccessTokens:   sc.DPoPBoundAccessTokens,
		TokenEndpointAuthMethod: sc.authMethod(), TokenEndpointAuthSigningAlg: sc.TokenEndpointAuthSigningAlg,
		JWKS: sc.JWKS, JWKSURI: sc.JWKSURI,
	}
	switch {
	case sc.ClientSecret != "":
		h, err := p.hasher.Hash(ctx, []byte(sc.ClientSecret))
		if err != nil {
			return nil, err
		}
		c.SecretHash = h
	case sc.ClientSecretHash != "":
		c.SecretHash = []byte(sc.ClientSecretHash)
	}
	return c, nil
}

// record is the storage.Peer a validated entry declares.
func (sp SetupPeer) record() *storage.Peer {
	pe := &storage.Peer{
		Issuer: sp.Issuer, Name: sp.Name, TokenEndpoint: sp.TokenEndpoint,
		Scopes: slices.Clone(sp.Scopes), Claims: slices.Clone(sp.Claims), SigningAlg: sp.SigningAlg,
	}
	if sp.MaxGrantLifetime != "" {
		pe.MaxGrantLifetime, _ = time.ParseDuration(sp.MaxGrantLifetime)
	}
	return pe
}

// PeerSetup is the setup entry that declares pe (the inverse of what Apply stores).
func PeerSetup(pe *storage.Peer) SetupPeer {
	sp := SetupPeer{Issuer: pe.Issuer, Name: pe.Name, TokenEndpoint: pe.TokenEndpoint, Scopes: nonNilStrings(pe.Scopes),
		Claims: nonNilStrings(pe.Claims), SigningAlg: pe.SigningAlg}
	if pe.MaxGrantLifetime > 0 {
		sp.MaxGrantLifetime = pe.MaxGrantLifetime.String()
	}
	return sp
}

// record is the storage.Trust a validated entry declares.
func (st SetupTrust) record() *storage.Trust {
	t := &storage.Trust{
		ID: st.trustID(), Issuer: st.Issuer, Subject: st.Subject, AllowAnySubject: st.AllowAnySubject,
		JWKS: st.JWKS, JWKSURI: st.JWKSURI, MetadataKeys: st.JWKSFromMetadata, Transcribe: slices.Clone(st.Transcribe),
		Scopes: slices.Clone(st.Scopes), Resources: slices.Clone(st.Resources), JTIOptional: st.JTIOptional,
	}
	if st.ExpiresAt != "" {
		t.ExpiresAt, _ = time.Parse(time.RFC3339, st.ExpiresAt)
	}
	if st.MaxAssertionLifetime != "" {
		t.MaxAssertionLifetime, _ = time.ParseDuration(st.MaxAssertionLifetime)
	}
	return t
}

// ensureKey makes sure a key signs with alg ("" is the default): the built-in rotating keys
// create one (Ensure); fixed keys (Config.Keys) must already hold one.
func (p *Provider) ensureKey(ctx context.Context, alg string) error {
	if e, ok := p.keys.(interface {
		Ensure(ctx context.Context, alg string) error
	}); ok && alg != "" {
		return e.Ensure(ctx, alg)
	}
	if _, err := p.keys.SigningKey(ctx, alg); err != nil {
		return fmt.Errorf("no signing key for it among Config.Keys: %w", err)
	}
	return nil
}

// checkResourcePolicy refuses a resource server this provider could not issue tokens for: a
// lifetime longer than retired keys stay published.
func (p *Provider) checkResourcePolicy(ctx context.Context, field string, r SetupResource) error {
	if r.AccessTokenTTL != "" {
		if d, _ := time.ParseDuration(r.AccessTokenTTL); d > p.retention {
			return fmt.Errorf("provider: setup: %s.access_token_ttl: %s is longer than key retention %s", field, d, p.retention)
		}
	}
	return nil
}
