// Package handlers holds the protocol pieces mandate adds to fosite, each usable in a plain
// fosite server (Example_fosite composes them) and assembled, batteries included, by the
// provider package:
//
//   - RFC 8707 resource indicators: [ParseIndicator], [Indicators], [TokenIndicators], the
//     [Resolver] (the one funnel every grant gets its audience through), [ResourceIndicators]
//     (a fosite token endpoint handler for client_credentials) and [ResourcePolicy] (the
//     audience mapper: a strategy.PolicySource that turns the granted resource server into the
//     access token's aud, scopes, lifetime and algorithm), [ExactAudience] for fosite's audience
//     matching, [ErrInvalidTarget].
//   - RFC 7523: the jwt-bearer grant ([JWTBearer], trusts from a storage.TrustStore, with keys
//     inline, at a jwks_uri or named by the issuer's RFC 8414 metadata, claims transcription
//     for grants from a peer authorization server, and a [SubjectMapper] linking an asserted
//     subject to the application's own) and private_key_jwt client
//     authentication ([PrivateKeyJWT], a fosite client authentication strategy), on one strict
//     assertion verifier (allow-listed asymmetric algorithms, canonical encoding, strict claims,
//     aud naming this server, bounded lifetime, single-use jti).
//   - RFC 8414 metadata ([Metadata], [MetadataHandler], [WellKnownPath]) and the JWKS document
//     ([JWKSHandler]).
//   - RFC 8693 token exchange identifiers ([GrantTypeTokenExchange], the token types); the
//     exchange itself is the provider's.
package handlers
