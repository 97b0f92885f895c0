// Package strategy mints mandate's tokens: RFC 9068 JWT access tokens
// (https://www.rfc-editor.org/rfc/rfc9068) signed with go-jose v4, and the keys that sign them.
//
// [JWT] implements fosite's oauth2.CoreStrategy. Access tokens are JWTs with header
// typ "at+jwt" (https://www.rfc-editor.org/rfc/rfc9068#section-2.1) and the claims of
// https://www.rfc-editor.org/rfc/rfc9068#section-2.2: iss, sub, aud (one resource server,
// a string), exp, iat, jti, client_id, scope, and auth_time, acr and amr when the user
// authenticated. Authorization codes and refresh tokens are delegated to an HMAC strategy.
//
// What goes into one access token is decided before it is minted, as a [Policy]: the resource
// server it is for (RFC 8707), its scopes, lifetime, algorithm and, for a token exchange, its
// act claim. [JWT.Mint] takes the policy as an argument; [JWT.GenerateAccessToken], which fosite
// calls, asks the configured [PolicySource] (handlers.ResourcePolicy reads the request's one
// granted audience). The strategy refuses to mint without an audience, so no token ever leaves
// without one.
//
// Applications add their own claims (roles, groups, entitlements per
// https://www.rfc-editor.org/rfc/rfc9068#section-2.2.3.1, tenant ids) with [ClaimMapper]s, which
// see a read-only [TokenRequest] and may load the application's user through [Users]. A mapper
// that sets a registered claim ([IsReservedClaim]) is an error, never a silent override.
//
// Keys come from a [KeySource]:
//
//   - [StaticKeys] holds fixed keys: files ([LoadKeyFile], PEM or JWK) or any crypto.Signer,
//     so that a KMS or HSM key works ([NewSigningKey]).
//   - [RotatingKeys] keeps keys in a storage.KeyStore, sealed with AES-256-GCM under an
//     application-supplied key-encryption key, and moves each one through
//     next → current → retired: a next key is published for at least
//     [RotationConfig.Propagation] before it signs, and a retired key stays published for
//     [RotationConfig.Retention] after it stopped signing. Several instances sharing one
//     store agree on the keys through the store's compare-and-swap.
//
// Only asymmetric algorithms are ever used: RS256, PS256, ES256, ES384 and EdDSA ([Algorithms],
// the same list as verify.DefaultAlgorithms); "none" and HMAC-signed access tokens are never
// emitted nor accepted. [RotatingKeys.Ensure] adds an algorithm at run time: the provider calls
// it for every resource server's signing_alg.
package strategy
