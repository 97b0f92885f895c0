package handlers

// RFC 8693 token exchange (https://www.rfc-editor.org/rfc/rfc8693): the grant type and the
// token type identifiers of §3.
const (
	// GrantTypeTokenExchange is the RFC 8693 §2.1 grant type.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken names an OAuth 2.0 access token (of this server, as a subject or
	// actor token; the issued token's issued_token_type).
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeJWT names a JWT; as a subject or actor token, one from a trusted issuer of the
	// RFC 7523 trust store.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// TokenTypeRefreshToken, TokenTypeIDToken, TokenTypeSAML1 and TokenTypeSAML2 are the other
	// types RFC 8693 §3 registers; mandate exchanges none of them.
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeSAML1        = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2        = "urn:ietf:params:oauth:token-type:saml2"
)
