// Package dpop is RFC 9449, Demonstrating Proof of Possession
// (https://www.rfc-editor.org/rfc/rfc9449), for both ends of a request: the [Checker] that an
// authorization server's token endpoint and a resource server (strategy/verify's middleware)
// run on a DPoP proof, and the client side — a [Signer] that makes proofs and a [Transport]
// that sends them with every request, for golang.org/x/oauth2 users:
//
//	signer, err := dpop.NewSigner(privateKey)   // an ECDSA P-256, RSA or Ed25519 key
//	client := &http.Client{Transport: &dpop.Transport{Signer: signer}}
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, client) // token requests carry a proof
//	tok, err := clientcredentials.Config{…}.Token(ctx)      // tok.TokenType == "DPoP", bound
//	api := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok)) // Authorization: DPoP …, proof with ath
//
// The checker follows RFC 9449 §4.3 to the letter: one compact JWS with typ dpop+jwt, an
// asymmetric algorithm of the allow-list, a public key in jwk (never a private one), a valid
// signature, htm and htu matching the request (htu compared without query and fragment,
// scheme and host case-insensitively, default ports removed), iat within a window, a jti used
// once (atomically, through a [Replay] the caller supplies: the authorization server's store
// across instances, or [NewMemoryReplay] at a resource server), the server's nonce when it
// asks for one ([Nonces]: stateless, rotating, valid across instances sharing a key), and — at
// a resource server — ath equal to the hash of the access token presented with it. Everything
// the proof carries is decoded with the strategy/verify/strict rules.
//
// The package imports only go-jose and the standard library (and strict), like
// strategy/verify.
package dpop
