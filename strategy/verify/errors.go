package verify

import "errors"

// Sentinel errors returned (wrapped) by [Verifier.Verify] and [New]. Branch on them with
// [errors.Is]. No error message produced by this package ever contains the token or any part of
// it; messages may contain a short, quoted header or claim value such as an algorithm name.
var (
	// ErrMalformed: the token is not a well-formed compact JWS (or JWE): wrong number of parts,
	// bad base64url, invalid or duplicate JSON members, a claim of the wrong JSON type, a
	// forbidden header (jku, x5u, jwk, x5c, crit, b64, zip), or a token longer than [MaxTokenSize].
	ErrMalformed = errors.New("verify: malformed token")

	// ErrType: the JOSE header typ is not at+jwt or application/at+jwt
	// (RFC 9068 §4 — this is what tells an access token from an ID token).
	ErrType = errors.New("verify: wrong token type")

	// ErrAlgorithm: the header alg is not in [Config.Algorithms], or does not fit the key.
	ErrAlgorithm = errors.New("verify: algorithm not allowed")

	// ErrUnknownKey: no usable key with the header kid, even after a refetch of the key set.
	ErrUnknownKey = errors.New("verify: unknown signing key")

	// ErrSignature: the signature does not verify with the key named by kid.
	ErrSignature = errors.New("verify: invalid signature")

	// ErrIssuer: iss is not exactly [Config.Issuer]; the message names both (shortened).
	ErrIssuer = errors.New("verify: wrong issuer")

	// ErrAudience: aud does not contain [Config.Audience], or is neither a string nor an array
	// of strings. The message names the token's (first) audience and the expected one
	// (shortened): identifiers match exactly, so "https://a.example" is not
	// "https://a.example/".
	ErrAudience = errors.New("verify: wrong audience")

	// ErrExpired: exp is not after now minus the leeway.
	ErrExpired = errors.New("verify: token expired")

	// ErrNotYetValid: nbf or iat lies further in the future than the leeway allows.
	ErrNotYetValid = errors.New("verify: token not yet valid")

	// ErrMissingClaim: one of the claims RFC 9068 §2.2 makes mandatory (iss, exp, aud, sub,
	// client_id, iat, jti) is absent or empty.
	ErrMissingClaim = errors.New("verify: missing required claim")

	// ErrDecrypt: an encrypted (JWE) token could not be decrypted, or the verifier has no
	// decryption key, or the JWE does not carry a nested JWT.
	ErrDecrypt = errors.New("verify: cannot decrypt token")

	// ErrBinding: the token's key binding does not hold: a sender-constrained token (cnf)
	// given to [Verifier.Verify], a token without cnf.jkt given to [Verifier.VerifyDPoP], or
	// a proof by another key than the one the token is bound to (RFC 9449 §7). A proof that is
	// itself invalid wraps [dpop.ErrInvalidProof] instead.
	ErrBinding = errors.New("verify: token binding does not hold")

	// ErrKeysUnavailable: the verifier has never obtained a key set (discovery or the JWKS
	// fetch failed and no earlier set is cached). This is a server-side condition, not a bad
	// token; [Verifier.Middleware] answers it with 503.
	ErrKeysUnavailable = errors.New("verify: signing keys unavailable")

	// ErrRevoked: [Config.Revoked] says the token was revoked.
	ErrRevoked = errors.New("verify: token revoked")

	// ErrRevocationUnavailable: [Config.Revoked] could not tell whether the token was revoked
	// (its error is wrapped too). A server-side condition, not a bad token;
	// [Verifier.Middleware] answers it with 503.
	ErrRevocationUnavailable = errors.New("verify: revocation status unavailable")

	// ErrConfig: [New] was given an invalid [Config].
	ErrConfig = errors.New("verify: invalid configuration")
)
