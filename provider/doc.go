// Package provider is mandate's embedding surface: a [Config], [New], and the [*Provider] it
// returns, an http.Handler serving an OAuth 2.0 authorization server that issues RFC 9068 JWT
// access tokens for registered resource servers (RFC 8707).
//
// A minimal embedding:
//
//	p, err := provider.New(ctx, provider.Config{
//		Issuer:  "https://auth.example.com",
//		Secret:  secret, // 32+ random bytes the application keeps
//		Storage: store,  // gormstore.Open(ctx, "sqlite:"+path), or postgres://…, mysql://…
//	})
//	if err != nil { … }
//	defer p.Close()
//	mux := http.NewServeMux()
//	for _, pattern := range p.Patterns() {
//		mux.Handle(pattern, p)
//	}
//
// The provider routes on absolute paths derived from the issuer, so it mounts unchanged on
// net/http's ServeMux, chi (r.Handle), gin (gin.WrapH) and echo (echo.WrapHandler), without
// prefix stripping.
//
// Endpoints, below the issuer's path: /token (RFC 6749 §3.2), /authorize (§3.1),
// /introspect (RFC 7662), /revoke (RFC 7009), /jwks.json (RFC 7517), and the RFC 8414 metadata
// at /.well-known/oauth-authorization-server inserted before the issuer's path.
//
// While the store cannot be reached (storage.ErrUnavailable: the database is down or
// restarting), the endpoints that need it answer 503 with the RFC 6749 error
// temporarily_unavailable and Retry-After, never 500, and a client that could not be read is
// not invalid_client; the outage is logged once per interval, and the provider recovers by
// itself when the store does. A JWT from a trusted issuer whose keys cannot be fetched (jwt-bearer
// grant, token exchange) is answered the same way: the JWT may be good, and a retry may succeed.
//
// Grants: client_credentials, authorization_code with PKCE (S256 only, required for public
// clients) and refresh_token with rotation and reuse detection, the RFC 7523 jwt-bearer grant
// and RFC 8693 token exchange. No implicit and no password grant (RFC 9700).
//
// # Chaining across trust domains
//
// Identity and authorization chaining across domains
// (https://datatracker.ietf.org/doc/draft-ietf-oauth-identity-chaining/) composes the token
// exchange and the jwt-bearer grant of two mandate servers. Service B of domain X, serving a
// request of A, must call service C of domain Y, whose resource servers trust only Y's
// authorization server:
//
//  1. B exchanges A's access token at X (grant_type token-exchange, subject_token_type
//     access_token, requested_token_type urn:ietf:params:oauth:token-type:jwt, resource = Y's
//     issuer identifier — the audience parameter stays refused). X answers with a JWT
//     authorization grant (issued_token_type …:jwt, token_type N_A) and names Y's token
//     endpoint (token_endpoint, from Y's entry or Y's RFC 8414 metadata).
//  2. B presents the grant at Y's token endpoint with the jwt-bearer grant and resource = C.
//  3. C, a strategy/verify resource server trusting Y only, sees sub = A and act = {sub: B,
//     iss: X}.
//
// Domain X registers Y as a peer ([storage.Peer]; "peers" in the [Setup]) and the client of B
// lists Y's issuer among its resources. Domain Y trusts X's issuer ([storage.Trust] with
// MetadataKeys: X's keys come from the jwks_uri of X's metadata; "jwks_from_metadata" in the
// Setup), for the subjects, scopes and resources it chooses, and says what it transcribes.
//
// The rules chosen, and why:
//
//   - The grant's aud is Y's issuer identifier, one string: RFC 7523 lets a server accept its
//     issuer or its token endpoint, rfc7523bis prefers the issuer after the audience-injection
//     attacks on private_key_jwt, and the draft (§2.3.3) recommends one audience so that Y
//     cannot replay the grant at a third server. mandate accepts either form on the way in.
//   - The grant is a JWT with typ "JWT" (never at+jwt) and aud an authorization server, so no
//     resource server (strategy/verify requires at+jwt and its own aud) and no endpoint of X
//     (introspection, token exchange, jwt-bearer) takes it for an access token.
//   - Lifetime: the peer entry's max_grant_lifetime, by default [DefaultGrantLifetime] (five
//     minutes: enough to reach Y, little for a thief), never past the subject token's exp; a
//     fresh jti that Y uses once (its trust's max_assertion_lifetime bounds exp - iat there).
//   - Scope: in Y's vocabulary, at most the peer entry's scopes ∩ the subject token's ∩ the
//     client's (the draft's §2.5: not higher privileged than the subject token). A peer entry
//     with scopes never gets a grant without a scope claim.
//   - Claims out (the peer entry's claims): iss, sub, aud, iat, exp, jti and scope always;
//     act, client_id, auth_time, acr, amr and application claims of the subject token only as
//     listed. Default: none. A delegation needs act: for a peer that does not allow it the
//     exchange is refused (invalid_target), never sent as if the subject called directly.
//   - Claims in (the trust's transcribe): act (actors without iss qualified with X's issuer,
//     at most MaxDelegationDepth), scope (an upper bound: the token never gets more than the
//     grant says), auth_time, acr, amr, application claims. Default: none, and a grant with
//     act is then refused (invalid_grant), for the same reason. Anything else is dropped.
//   - Subject: Y's trust says which subjects X may vouch for (subject, or allow_any_subject).
//     The token's sub is the grant's sub, which Y's resource servers must read as an X subject,
//     unless Y's [Config].SubjectMapper links it to one of Y's own (or refuses it: invalid_grant);
//     the actors in act keep X's names, qualified with X's issuer.
//
// Every bad input is refused with an RFC 6749/8693 error naming the rule, nothing issued: a
// grant for an unregistered peer or one the client may not name (invalid_target), a scope
// beyond the peer entry (invalid_scope), a replayed grant, a grant for another server, signed
// by X for another iss, expired, for a subject X may not vouch for, or carrying an act Y does
// not transcribe (invalid_grant). TestChainingAcrossDomains runs the whole flow and these
// refusals on SQLite and PostgreSQL.
package provider
