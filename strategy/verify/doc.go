// Package verify is the resource-server side of mandate: it validates RFC 9068 JWT access tokens
// (https://www.rfc-editor.org/rfc/rfc9068#section-4) locally, with keys found through the
// issuer's RFC 8414 metadata, and protects HTTP handlers with RFC 6750 bearer-token semantics.
//
// It imports only go-jose v4 and the standard library, so a resource server that imports it
// pulls in neither fosite nor gorm.
//
// # Verifying tokens
//
//	v, err := verify.New(ctx, verify.Config{
//		Issuer:   "https://auth.example.com",   // the authorization server
//		Audience: "https://orders.example.com/", // this service: the RFC 8707 resource, exactly
//	})
//	if err != nil { … }
//	claims, err := v.Verify(ctx, rawToken)
//	switch {
//	case errors.Is(err, verify.ErrExpired): …
//	case err != nil: …
//	}
//	fmt.Println(claims.Subject, claims.ClientID, claims.HasScope("orders:read"))
//
// New reads https://auth.example.com/.well-known/oauth-authorization-server, checks that its
// issuer is exactly the configured one, and fetches the JWKS at its jwks_uri. The key set is
// cached: it is refreshed in the background every [Config.RefreshInterval] (shorter if the
// JWKS response's Cache-Control says so), refetched at once when a token names an unknown kid
// (one fetch shared by all waiting requests, at most one such refetch per
// [Config.MinRefreshInterval]), and kept when the issuer is unreachable or answers garbage.
//
// # net/http
//
//	mux := http.NewServeMux()
//	mux.Handle("GET /orders", v.Middleware(v.RequireScope("orders:read")(listOrders)))
//
//	func listOrders(w http.ResponseWriter, r *http.Request) {
//		claims, _ := verify.FromContext(r.Context())
//		var app struct{ Roles []string `json:"roles"` }
//		_ = claims.Decode(&app)
//		…
//	}
//
// RFC 9728 protected-resource metadata, so that clients can find the authorization server:
//
//	meta := v.Metadata()
//	meta.ScopesSupported = []string{"orders:read", "orders:write"}
//	h, err := meta.Handler()
//	path, _ := verify.WellKnownPath(meta.Resource)
//	mux.Handle("GET "+path, h)
//
// and set [Config.ResourceMetadata] to the URL from [MetadataURL] so that every 401 points at it.
//
// # chi
//
//	r := chi.NewRouter()
//	r.Use(v.Middleware)
//	r.With(v.RequireScope("orders:read")).Get("/orders", listOrders)
//
// # gin
//
// gin has no adapter for net/http middleware; this one runs the verifier and hands the request,
// now carrying the claims, on to the rest of the chain:
//
//	func Auth(mw func(http.Handler) http.Handler) gin.HandlerFunc {
//		return func(c *gin.Context) {
//			passed := false
//			mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//				passed, c.Request = true, r
//			})).ServeHTTP(c.Writer, c.Request)
//			if !passed {
//				c.Abort() // the verifier has written the 400/401/403
//			}
//		}
//	}
//
//	r := gin.New()
//	r.GET("/orders", Auth(v.Middleware), Auth(v.RequireScope("orders:read")), func(c *gin.Context) {
//		claims, _ := verify.FromContext(c.Request.Context())
//		…
//	})
//	h, _ := v.Metadata().Handler()
//	r.GET(path, gin.WrapH(h))
//
// # echo
//
//	e := echo.New()
//	e.Use(echo.WrapMiddleware(v.Middleware))
//	e.GET("/orders", listOrders, echo.WrapMiddleware(v.RequireScope("orders:read")))
//	// in the handler: verify.FromContext(c.Request().Context())
//	e.GET(path, echo.WrapHandler(h))
//
// # DPoP (RFC 9449)
//
// The middleware also takes DPoP-bound tokens: "Authorization: DPoP <token>" with a proof in the
// DPoP header, for this request (htm, htu), this token (ath), used once (an in-memory replay
// cache, or [Config.DPoPReplay]), by the key the token's cnf.jkt names ([Verifier.VerifyDPoP];
// package [dpop] for the checker and for clients' proofs). A bound token sent as Bearer, and
// [Verifier.Verify] of one, are refused: it is worth nothing without the key.
// [Config.DPoPRequired] refuses bearer tokens altogether. The proof names the URL the client
// called; behind a reverse proxy that is not the one the server sees, so say it:
//
//	v, err := verify.New(ctx, verify.Config{
//		Issuer: issuer, Audience: "https://orders.example.com/",
//		DPoPRequired: true,
//		ExternalURL:  "https://api.example.com/orders-svc", // what clients call; the proxy strips /orders-svc
//	})
//
// or, behind a proxy that overwrites them, trust its Forwarded / X-Forwarded-Proto and
// X-Forwarded-Host headers with [Config.TrustForwardedHeaders].
//
// # Decisions
//
//   - Strict RFC 9068: iss, exp, aud, sub, client_id, iat and jti are required, because §2.2
//     requires the issuer to send them; typ must be at+jwt, so an ID token signed by the same key
//     is refused.
//   - Only asymmetric algorithms; none and HS* cannot even be configured. Keys come only from the
//     configured key set: jku, x5u, jwk and x5c headers are refused, never followed, and so is
//     any crit header (none is understood).
//   - Private, symmetric and encryption ("use":"enc") keys in a JWKS are skipped, never used.
//   - New fetches the keys eagerly and fails if it cannot; [Config.Lazy] defers that to the first
//     request for resource servers that must start while the authorization server is down.
//   - Verification is local: a revoked token is accepted until it expires unless
//     [Config.Revoked] asks someone (RFC 7662 introspection, a deny list) about every token that
//     passed the other checks; when it cannot tell, the middleware answers 503, never 200.
package verify
