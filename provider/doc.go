// Package provider is mandate's embedding surface: a [Config], [New], and the [*Provider] it
// returns, an http.Handler serving an OAuth 2.0 authorization server that issues RFC 9068 JWT
// access tokens for registered resource servers (RFC 8707).
//
// A minimal embedding:
//
//	p, err := provider.New(ctx, provider.Config{
//		Issuer:  "https://auth.example.com",
//		Secret:  secret, // 32+ random bytes the application keeps
//		Storage: store,  // nil: embedded SQLite in DataDir
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
// itself when the store does.
//
// Grants: client_credentials, authorization_code with PKCE (S256 only, required for public
// clients) and refresh_token with rotation and reuse detection. No implicit and no password
// grant (RFC 9700).
package provider
