package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Limits and defaults of RFC 7523 assertion checking.
const (
	// MaxAssertionSize bounds an assertion, in bytes. Real ones are under 2 KiB; x5c, the
	// usual reason for a bigger one, is refused anyway.
	MaxAssertionSize = 8 << 10
	// DefaultAssertionLeeway absorbs clock skew in exp, nbf, iat and the lifetime bound: the
	// resource-server verifier's default too (verify.DefaultLeeway), small enough that an
	// expired assertion is refused within half a minute.
	DefaultAssertionLeeway = 30 * time.Second
	// DefaultGrantAssertionLifetime bounds exp - iat of an authorization-grant assertion
	// (RFC 7523 §2.1) whose trust sets no MaxAssertionLifetime: one hour, the lifetime
	// golang.org/x/oauth2/jwt and Google-style service-account libraries use by default.
	DefaultGrantAssertionLifetime = time.Hour
	// DefaultClientAssertionLifetime bounds exp - iat of a private_key_jwt client assertion
	// (RFC 7523 §2.2). A client signs one per request, so it needs little; ten minutes is what
	// common client libraries (MSAL, for one) use.
	DefaultClientAssertionLifetime = 10 * time.Minute
	// maxNoJTILifetime bounds exp - iat of an assertion accepted without jti (a trust with
	// JTIOptional): replay is then checked on a hash of the signed content, which the store
	// keeps only until exp, so the window stays short.
	maxNoJTILifetime = 5 * time.Minute
)

// AssertionError is an assertion refused for a reason the caller may tell the client: the
// token endpoint answers it with invalid_grant (RFC 7523 §3.1) or invalid_client (§3.2).
// Reason never names a key the server knows.
type AssertionError struct {
	Reason string
}

func (e *AssertionError) Error() string { return "handlers: assertion rejected: " + e.Reason }

func reject(format string, args ...any) error {
	return &AssertionError{Reason: fmt.Sprintf(format, args...)}
}

// Assertion is a parsed RFC 7523 JWT whose signature has not been checked yet: the claims are
// only good for finding the keys to check it with ([JWTBearer.Verify]).
type Assertion struct {
	// Algorithm and KeyID are the JOSE header's alg and kid.
	Algorithm, KeyID string
	// Issuer, Subject and ID are iss, sub and jti; Audience is aud (a string becomes one
	// element).
	Issuer, Subject, ID string
	Audience            []string
	// Expiry, NotBefore and IssuedAt are exp, nbf and iat; zero when absent.
	Expiry, NotBefore, IssuedAt time.Time

	jws     *jose.JSONWebSignature
	payload []byte            // the decoded claims
	content [sha256.Size]byte // contentHash of the decoded header and payload
	proven  bool              // the signature verified with a registered key
}

// Claim decodes the claim name of a verified assertion into v (strictly: see [strict.Check]);
// it reports false when the assertion has no such claim or it was never verified.
func (a *Assertion) Claim(name string, v any) (bool, error) {
	if !a.proven {
		return false, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(a.payload, &all); err != nil {
		return false, err
	}
	raw, ok := all[name]
	if !ok {
		return false, nil
	}
	return true, strict.Unmarshal(raw, v)
}

// parseAssertion parses a compact JWS assertion (RFC 7523 §3): at most [MaxAssertionSize]
// bytes, three segments in canonical base64url ([strict.Segment]: one signed content has one
// encoding, so that a replay key derived from it cannot be dodged by re-encoding), one
// signature, alg among [verify.DefaultAlgorithms] (asymmetric only: none and HS256/384/512 are never accepted — an HMAC "signature" keyed with a public key's bytes would otherwise verify), and none of the header parameters jku, x5u, jwk,
// x5c or crit — keys come only from what the server registered, nothing an assertion names is
// ever fetched or trusted. Header and claims are decoded strictly ([strict.Check]): a member
// given twice, or a registered name in another case ({"sub":"user","Sub":"admin"}), is refused.
// A typ of at+jwt (an RFC 9068 access token) is refused; any other typ, or none, is accepted.
// iss and sub must be non-empty strings, aud a string or an array of strings. Errors are
// *[AssertionError].
func parseAssertion(raw string) (*Assertion, error) {
	switch {
	case raw == "":
		return nil, reject("the assertion is empty")
	case len(raw) > MaxAssertionSize:
		return nil, reject("the assertion is longer than %d bytes", MaxAssertionSize)
	case strings.Count(raw, ".") != 2:
		return nil, reject("the assertion is not a compact JWS (a JWT with three parts)")
	}
	hb, pb, err := strict.Compact(raw)
	if err != nil {
		return nil, reject("the assertion is not canonical base64url (unpadded, no white space, unused bits zero)")
	}
	var h assertionHeader
	var nb [8][]byte
	names, err := assertionHeaderSchema.Names(hb, nb[:0])
	if err != nil {
		return nil, reject("the assertion's header is not a JSON object with unique members (%s)", strictReason(err))
	}
	for _, n := range names {
		switch string(n) {
		case "jku", "x5u", "jwk", "x5c", "crit":
			return nil, reject("the header parameter %q is not accepted; keys are registered with the server", string(n))
		}
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, reject("the assertion's typ header is not a string")
	}
	if strings.EqualFold(h.Typ, "at+jwt") || strings.EqualFold(h.Typ, "application/at+jwt") {
		// RFC 9068 §4: an access token must not be mistaken for another kind of JWT.
		return nil, reject("an access token is not an assertion")
	}
	jws, err := jose.ParseSignedCompact(raw, verify.DefaultAlgorithms())
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, reject("the algorithm %q is not accepted (%s)", strict.Echo(string(alg.Got)), verify.AlgorithmNames())
		}
		return nil, reject("the assertion is not a valid compact JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, reject("the assertion must carry exactly one signature")
	}
	var c jwt.Claims
	if err := assertionClaimsSchema.Unmarshal(pb, &c); err != nil {
		if errors.Is(err, strict.ErrDuplicate) || errors.Is(err, strict.ErrCaseVariant) {
			return nil, reject("the assertion's claims are ambiguous (%s)", strictReason(err))
		}
		return nil, reject("the assertion's claims are not a JSON object of the right types")
	}
	a := &Assertion{
		Algorithm: jws.Signatures[0].Header.Algorithm,
		KeyID:     jws.Signatures[0].Header.KeyID,
		Issuer:    c.Issuer, Subject: c.Subject, ID: c.ID,
		Audience: []string(c.Audience),
		jws:      jws,
		payload:  pb,
		content:  contentHash(hb, pb),
	}
	for p, t := range map[*time.Time]*jwt.NumericDate{&a.Expiry: c.Expiry, &a.NotBefore: c.NotBefore, &a.IssuedAt: c.IssuedAt} {
		if t != nil {
			*p = t.Time()
		}
	}
	switch {
	case a.Issuer == "":
		return nil, reject("the assertion has no iss claim")
	case a.Subject == "":
		return nil, reject("the assertion has no sub claim")
	}
	return a, nil
}

// assertionHeader is the header member parseAssertion reads itself; go-jose reads the rest.
type assertionHeader struct {
	Typ string `json:"typ"`
}

// The strict layouts of an assertion's header and claims, worked out once; never modified.
var (
	assertionHeaderSchema = strict.SchemaOf((*assertionHeader)(nil))
	assertionClaimsSchema = strict.SchemaOf((*jwt.Claims)(nil))
)

// strictReason names what the strict decoder refused, for a client-facing message.
func strictReason(err error) string {
	switch {
	case errors.Is(err, strict.ErrDuplicate):
		return "a member appears twice"
	case errors.Is(err, strict.ErrCaseVariant):
		return "a member differs from a registered name only in case"
	}
	return "malformed JSON"
}

// contentHash is the SHA-256 of the decoded header and payload: what the signature vouches
// for, independent of how it was encoded and of the signature (which ECDSA lets anyone
// re-randomize).
func contentHash(header, payload []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(header)))
	h.Write(n[:])
	h.Write(header)
	h.Write(payload)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// assertionRules are the claim checks of [JWTBearer.Verify].
type assertionRules struct {
	// Audiences are the values that identify this server: its token endpoint URL and its
	// issuer identifier. aud must contain at least one of them and nothing else.
	Audiences []string
	// Algorithm, if set, is the only alg accepted (a client's
	// token_endpoint_auth_signing_alg).
	Algorithm string
	// MaxLifetime bounds exp - iat (exp - now without iat). Required.
	MaxLifetime time.Duration
	// Leeway absorbs clock skew in every time check. Zero means [DefaultAssertionLeeway].
	Leeway time.Duration
	// JTIOptional accepts an assertion without jti if its lifetime is at most
	// maxNoJTILifetime (5 minutes); [UseAssertion] then guards replay with a hash of its signed content.
	JTIOptional bool
	// Now is the time of the check.
	Now time.Time
}

// verify checks the signature with the key named by kid (or the only key that fits alg) in
// keys, then the claims (RFC 7523 §3): aud per assertionRules.Audiences; exp present and
// after now; nbf and iat, if present, not after now; exp - (iat or now) at most MaxLifetime;
// jti present unless JTIOptional allows otherwise. Every time check allows the leeway. Errors
// that reject the assertion are *[AssertionError]; others are server-side, among them a key set
// that cannot be fetched (wrapping verify.ErrKeysUnavailable: the issuer's fault or the
// network's, not the assertion's; see [KeysUnavailable]).
func (a *Assertion) verify(ctx context.Context, keys *verify.KeySet, r assertionRules) error {
	if r.Algorithm != "" && a.Algorithm != r.Algorithm {
		return reject("the algorithm %q is not the one registered for this client", strict.Echo(a.Algorithm))
	}
	key, err := keys.Key(ctx, a.KeyID, jose.SignatureAlgorithm(a.Algorithm))
	switch {
	case errors.Is(err, verify.ErrUnknownKey):
		return reject("no registered key of the issuer matches the assertion's kid and alg")
	case errors.Is(err, verify.ErrKeysUnavailable):
		return fmt.Errorf("handlers: the issuer's keys cannot be obtained at the moment: %w", err)
	case err != nil:
		return fmt.Errorf("handlers: assertion keys: %w", err)
	}
	if _, err := a.jws.Verify(key); err != nil {
		return reject("the signature does not verify")
	}
	a.proven = true
	return a.checkClaims(r)
}

func (a *Assertion) checkClaims(r assertionRules) error {
	leeway := r.Leeway
	if leeway <= 0 {
		leeway = DefaultAssertionLeeway
	}
	if len(a.Audience) == 0 {
		return reject("the assertion has no aud claim")
	}
	for _, v := range a.Audience {
		if !slices.Contains(r.Audiences, v) {
			// rfc7523bis: an assertion meant for several parties could be replayed by any of them.
			return reject("the aud claim names a party other than this authorization server")
		}
	}
	now := r.Now
	switch {
	case a.Expiry.IsZero():
		return reject("the assertion has no exp claim")
	case !now.Before(a.Expiry.Add(leeway)):
		return reject("the assertion has expired")
	case !a.NotBefore.IsZero() && a.NotBefore.After(now.Add(leeway)):
		return reject("the assertion is not valid yet (nbf)")
	case !a.IssuedAt.IsZero() && a.IssuedAt.After(now.Add(leeway)):
		return reject("the assertion is issued in the future (iat)")
	}
	start := a.IssuedAt
	if start.IsZero() {
		start = now
	}
	life := a.Expiry.Sub(start)
	if life > r.MaxLifetime+leeway {
		return reject("the assertion lives %s (exp - iat), longer than the %s allowed", life.Round(time.Second), r.MaxLifetime)
	}
	if a.ID == "" {
		if !r.JTIOptional {
			return reject("the assertion has no jti claim")
		}
		if life > maxNoJTILifetime+leeway {
			return reject("an assertion without jti may live at most %s (exp - iat)", maxNoJTILifetime)
		}
	}
	return nil
}

// UseAssertion marks a verified assertion as used, atomically across every instance sharing
// jtis, and fails with an *[AssertionError] when it was used before. The key is namespace, the
// issuer and the jti; for an assertion without jti, a SHA-256 of its decoded content (header
// and payload: not their encoding, which parseAssertion also requires to be canonical, and
// not the signature, which ECDSA lets anyone re-randomize). It is kept until exp plus the
// leeway, past which [JWTBearer.Verify] refuses the assertion anyway.
func UseAssertion(ctx context.Context, jtis storage.JTIStore, namespace string, a *Assertion, leeway time.Duration) error {
	key, exp := AssertionJTI(namespace, a, leeway)
	return assertionUse(jtis.UseJTI(ctx, key, exp))
}

// assertionUse is UseAssertion's error for the outcome err of the store's write.
func assertionUse(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrJTIUsed):
		return reject("the assertion has already been used")
	}
	return fmt.Errorf("handlers: record assertion use: %w", err)
}

// AssertionJTI is the key under which [UseAssertion] records a's use, and until when.
func AssertionJTI(namespace string, a *Assertion, leeway time.Duration) (key string, expiresAt time.Time) {
	if leeway <= 0 {
		leeway = DefaultAssertionLeeway
	}
	if a.ID != "" {
		key = namespace + "\x00" + a.Issuer + "\x00jti\x00" + a.ID
	} else {
		key = namespace + "\x00" + a.Issuer + "\x00sha256\x00" + hex.EncodeToString(a.content[:])
	}
	return key, a.Expiry.Add(leeway)
}

// AssertionUsed is the outcome of recording an assertion's use (the error of a store write
// under its [AssertionJTI]) as the grant answers it: storage.ErrJTIUsed is invalid_grant ("the
// assertion has already been used"), another error a server error (temporarily_unavailable
// when the store is unreachable).
func AssertionUsed(err error) error {
	if err == nil {
		return nil
	}
	return grantError(assertionUse(err))
}

// KeySets hands out the verification keys of trusts and clients: a fresh static set for keys
// registered inline, and one cached [verify.KeySet] per jwks_uri (or per issuer, for a trust
// whose keys its RFC 8414 metadata names), shared by every request
// (single-flight fetches, refetch on an unknown kid at most once per MinRefreshInterval). The
// zero value is ready to use. It is safe for concurrent use.
type KeySets struct {
	// Config tunes the remote key sets.
	Config verify.KeySetConfig
	// Max bounds how many jwks_uri sets are cached; zero means 1024. When full, the cache is
	// emptied (the URIs come from registered trusts and clients, so this only matters after
	// many registrations change).
	Max int

	mu         sync.Mutex
	remoteSets map[string]*verify.KeySet // by jwks_uri, or by issuer for metadata-keyed trusts
}

// forKeys returns the key set of inline keys set, or else of jwksURI. Neither is an
// *[AssertionError] (nothing registered to check with).
func (k *KeySets) forKeys(ctx context.Context, set *jose.JSONWebKeySet, jwksURI string) (*verify.KeySet, error) {
	if set != nil && len(set.Keys) > 0 {
		ks, err := verify.NewStaticKeySet(set)
		if err != nil {
			return nil, reject("no usable signature key is registered for the assertion's issuer")
		}
		return ks, nil
	}
	if jwksURI == "" {
		return nil, reject("no keys are registered for the assertion's issuer")
	}
	return k.remote(jwksURI, func() (*verify.KeySet, error) { return verify.NewRemoteKeySet(ctx, jwksURI, k.Config) })
}

// forTrust returns the key set of a trust: the one its issuer's RFC 8414 metadata names when
// the trust says so (storage.Trust.MetadataKeys), else its inline keys or jwks_uri.
func (k *KeySets) forTrust(ctx context.Context, t *storage.Trust) (*verify.KeySet, error) {
	if !t.MetadataKeys {
		return k.forKeys(ctx, t.JWKS, t.JWKSURI)
	}
	return k.remote("metadata\x00"+t.Issuer, func() (*verify.KeySet, error) { return verify.NewIssuerKeySet(ctx, t.Issuer, k.Config) })
}

// remote returns the cached remote key set of name, made by create when there is none yet.
func (k *KeySets) remote(name string, create func() (*verify.KeySet, error)) (*verify.KeySet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ks, ok := k.remoteSets[name]; ok {
		return ks, nil
	}
	ks, err := create()
	if err != nil {
		return nil, fmt.Errorf("handlers: key set: %w", err)
	}
	limit := k.Max
	if limit <= 0 {
		limit = 1024
	}
	if k.remoteSets == nil || len(k.remoteSets) >= limit {
		k.remoteSets = make(map[string]*verify.KeySet)
	}
	k.remoteSets[name] = ks
	return ks, nil
}
