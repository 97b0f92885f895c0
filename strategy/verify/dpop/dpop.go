package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// HeaderName is the request header that carries a proof (RFC 9449 §4.1) and NonceHeader the
// response header that carries the server's nonce (§8).
const (
	HeaderName  = "DPoP"
	NonceHeader = "DPoP-Nonce"
	// Type is the proof's JOSE typ.
	Type = "dpop+jwt"
)

// Limits and defaults of [Checker].
const (
	// MaxProofSize bounds a proof, in bytes. Real ones are under 1 KiB (an RSA jwk makes them
	// bigger, but not this big).
	MaxProofSize = 8 << 10
	// DefaultMaxAge is how old a proof's iat may be.
	DefaultMaxAge = 2 * time.Minute
	// DefaultLeeway is how far in the future a proof's iat may be (clock skew).
	DefaultLeeway = 30 * time.Second
	// maxJTI bounds a proof's jti.
	maxJTI = 256
)

// Errors of [Checker.Check]; compare with errors.Is. Their messages say what failed and never
// contain the proof or the token.
var (
	// ErrInvalidProof is RFC 9449's invalid_dpop_proof.
	ErrInvalidProof = errors.New("dpop: invalid DPoP proof")
	// ErrUseNonce is RFC 9449's use_dpop_nonce: the server requires its nonce; a *NonceError
	// carries the one to use.
	ErrUseNonce = errors.New("dpop: the server's nonce is required")
)

// NonceError is an [ErrUseNonce] with the nonce the client must send next (in a DPoP-Nonce
// header of the answer).
type NonceError struct {
	Nonce, Reason string
}

func (e *NonceError) Error() string { return ErrUseNonce.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrUseNonce) hold.
func (e *NonceError) Unwrap() error { return ErrUseNonce }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
}

// Replay records used proofs. Use must be atomic: of concurrent calls with one key exactly one
// reports fresh (an authorization server's storage.JTIStore, shared by every instance; a
// resource server's [NewMemoryReplay]).
type Replay interface {
	// Use records key as used until until and reports whether it was unused.
	Use(ctx context.Context, key string, until time.Time) (fresh bool, err error)
}

// ReplayFunc adapts a function to [Replay].
type ReplayFunc func(ctx context.Context, key string, until time.Time) (bool, error)

// Use calls f.
func (f ReplayFunc) Use(ctx context.Context, key string, until time.Time) (bool, error) {
	return f(ctx, key, until)
}

// Checker checks DPoP proofs (RFC 9449 §4.3). The zero value of every field but Replay is a
// documented default. It is safe for concurrent use.
type Checker struct {
	// Algorithms the proof may be signed with. Nil means strict.Algorithms (RS256, PS256,
	// ES256, ES384, EdDSA); only asymmetric algorithms are ever accepted.
	Algorithms []jose.SignatureAlgorithm
	// MaxAge is how old iat may be; zero means [DefaultMaxAge].
	MaxAge time.Duration
	// Leeway is how far in the future iat may be; zero means [DefaultLeeway].
	Leeway time.Duration
	// Replay makes every jti single use. Required.
	Replay Replay
	// Nonces, when set, makes the server's nonce required (RFC 9449 §8).
	Nonces *Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Request is what a proof is checked against.
type Request struct {
	// Method is the HTTP method (htm).
	Method string
	// URL is the request's target URI as the server is addressed (htu): scheme, host, port and
	// path; a query and fragment are ignored.
	URL string
	// AccessToken is the access token presented with the proof, at a resource server (ath);
	// empty at the token endpoint, where a proof must carry no ath.
	AccessToken string
}

// Proof is a checked proof.
type Proof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of Key, base64url: the jkt a bound
	// token's cnf carries.
	Thumbprint string
	// Key is the proof's public key.
	Key jose.JSONWebKey
	// Algorithm is the proof's alg.
	Algorithm jose.SignatureAlgorithm
	// ID is jti, IssuedAt iat, Nonce the nonce it carried.
	ID       string
	IssuedAt time.Time
	Nonce    string
}

// header and claims are what a proof may hold; decoded strictly.
type header struct {
	Typ string          `json:"typ"`
	Alg string          `json:"alg"`
	JWK json.RawMessage `json:"jwk"`
	Kid json.RawMessage `json:"kid"`
	Jku json.RawMessage `json:"jku"`
	X5u json.RawMessage `json:"x5u"`
	X5c json.RawMessage `json:"x5c"`
	Cri json.RawMessage `json:"crit"`
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// Check verifies proof for req. Errors wrap [ErrInvalidProof], or [ErrUseNonce] (a
// *[NonceError]) when the server's nonce is missing, stale or wrong; a failure of Replay is
// returned as it is (the caller answers it as a server error).
func (c *Checker) Check(ctx context.Context, proof string, req Request) (*Proof, error) {
	if c.Replay == nil {
		return nil, errors.New("dpop: Checker.Replay is not set")
	}
	switch {
	case proof == "":
		return nil, invalid("no proof")
	case len(proof) > MaxProofSize:
		return nil, invalid("the proof is longer than %d bytes", MaxProofSize)
	case strings.Count(proof, ".") != 2:
		return nil, invalid("the proof is not a compact JWS")
	}
	hb, pb, err := strict.Compact(proof)
	if err != nil {
		return nil, invalid("the proof is not canonical base64url")
	}
	var h header
	if err := headerSchema.Unmarshal(hb, &h); err != nil {
		return nil, invalid("the proof's header is not a JSON object with unique members")
	}
	switch {
	case !strings.EqualFold(h.Typ, Type):
		return nil, invalid("typ is not %s", Type)
	case h.JWK == nil:
		return nil, invalid("the proof has no jwk header")
	case h.Jku != nil || h.X5u != nil || h.X5c != nil || h.Cri != nil || h.Kid != nil:
		return nil, invalid("the key must be given as jwk, and only so")
	}
	algs := c.Algorithms
	if algs == nil {
		algs = strict.Algorithms()
	}
	if !slices.Contains(algs, jose.SignatureAlgorithm(h.Alg)) {
		return nil, invalid("the algorithm %q is not accepted", strict.Echo(h.Alg))
	}
	var key jose.JSONWebKey
	if err := strict.Check(h.JWK, nil); err != nil {
		return nil, invalid("the jwk is not a JSON object with unique members")
	}
	if err := key.UnmarshalJSON(h.JWK); err != nil {
		return nil, invalid("the jwk is not a valid key")
	}
	if !key.IsPublic() || !key.Valid() {
		return nil, invalid("the jwk must be a public key")
	}
	if !fits(&key, jose.SignatureAlgorithm(h.Alg)) {
		return nil, invalid("the jwk does not fit the algorithm %s", h.Alg)
	}
	// The header is read and the key is known: verify the one signature directly rather than
	// have go-jose parse the header and its jwk a second time.
	if !signedBy(&key, jose.SignatureAlgorithm(h.Alg), proof) {
		return nil, invalid("the signature does not verify with the proof's jwk")
	}
	var cl claims
	if err := claimsSchema.Unmarshal(pb, &cl); err != nil {
		return nil, invalid("the proof's claims are not a JSON object of the right types with unique members")
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now()
	maxAge, leeway := c.MaxAge, c.Leeway
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	switch {
	case cl.JTI == "" || len(cl.JTI) > maxJTI:
		return nil, invalid("jti is missing or longer than %d bytes", maxJTI)
	case cl.HTM != req.Method:
		return nil, invalid("htm is not the request's method")
	case cl.IAT == nil:
		return nil, invalid("iat is missing")
	}
	if !SameURI(cl.HTU, req.URL) {
		return nil, invalid("htu is not this request's URI")
	}
	iat := time.Unix(int64(*cl.IAT), 0)
	switch {
	case iat.After(t.Add(leeway)):
		return nil, invalid("iat is in the future")
	case iat.Before(t.Add(-maxAge - leeway)):
		return nil, invalid("the proof is older than %s", maxAge)
	}
	switch {
	case req.AccessToken == "" && cl.ATH != nil:
		return nil, invalid("ath is only for a proof that comes with an access token")
	case req.AccessToken != "" && (cl.ATH == nil || *cl.ATH != TokenHash(req.AccessToken)):
		return nil, invalid("ath is not the hash of the access token presented with it")
	}
	nonce := ""
	if cl.Nonce != nil {
		nonce = *cl.Nonce
	}
	if c.Nonces != nil && !c.Nonces.Valid(nonce) {
		reason := "the proof carries no nonce"
		if nonce != "" {
			reason = "the proof's nonce is stale or not this server's"
		}
		return nil, &NonceError{Nonce: c.Nonces.Current(), Reason: reason}
	}
	jkt, err := Thumbprint(&key)
	if err != nil {
		return nil, invalid("no thumbprint for the jwk")
	}
	// One use per key and jti, kept for as long as the proof could be accepted.
	sum := sha256.Sum256([]byte(jkt + "\x00" + cl.JTI))
	fresh, err := c.Replay.Use(ctx, "dpop:"+base64.RawURLEncoding.EncodeToString(sum[:]), iat.Add(maxAge+2*leeway))
	if err != nil {
		return nil, fmt.Errorf("dpop: replay check: %w", err)
	}
	if !fresh {
		return nil, invalid("the proof has been used before")
	}
	return &Proof{Thumbprint: jkt, Key: key, Algorithm: jose.SignatureAlgorithm(h.Alg), ID: cl.JTI, IssuedAt: iat, Nonce: nonce}, nil
}

// The strict layouts of a proof's header and claims, worked out once; never modified.
var (
	headerSchema = strict.SchemaOf((*header)(nil))
	claimsSchema = strict.SchemaOf((*claims)(nil))
)

// FromHeader returns the one DPoP proof of h: none is "", two or more, or an empty one, are
// [ErrInvalidProof] (RFC 9449 §4.3: exactly one).
func FromHeader(h http.Header) (string, error) {
	v := h.Values(HeaderName)
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		if v[0] == "" {
			return "", invalid("the DPoP header is empty")
		}
		return v[0], nil
	}
	return "", invalid("more than one DPoP header")
}

// TokenHash is ath: the base64url SHA-256 of an access token (RFC 9449 §4.2).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of key, base64url-encoded: a bound token's
// cnf.jkt (RFC 9449 §6.1).
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	b, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// fits reports whether k's type and curve fit alg.
func fits(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return (alg == jose.RS256 || alg == jose.PS256) && key.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && key.Curve == elliptic.P256() || alg == jose.ES384 && key.Curve == elliptic.P384()
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// signedBy reports whether the compact JWS proof carries a valid alg signature by key (which
// [fits] alg) over its first two segments (RFC 7515 §5.2, RFC 7518 §3).
func signedBy(key *jose.JSONWebKey, alg jose.SignatureAlgorithm, proof string) bool {
	dot := strings.LastIndexByte(proof, '.')
	input := proof[:dot]
	sig, err := base64.RawURLEncoding.DecodeString(proof[dot+1:])
	if err != nil {
		return false
	}
	switch pub := key.Key.(type) {
	case ed25519.PublicKey:
		return alg == jose.EdDSA && ed25519.Verify(pub, []byte(input), sig)
	case *rsa.PublicKey:
		h := sha256.Sum256([]byte(input))
		switch alg {
		case jose.RS256:
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil
		case jose.PS256:
			return rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
	case *ecdsa.PublicKey:
		var digest []byte
		switch alg {
		case jose.ES256:
			h := sha256.Sum256([]byte(input))
			digest = h[:]
		case jose.ES384:
			h := sha512.Sum384([]byte(input))
			digest = h[:]
		default:
			return false
		}
		// RFC 7518 §3.4: R and S, each as long as the curve's order, concatenated.
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

// SameURI compares two HTTP URIs as RFC 9449 §4.3 asks: without query and fragment, after the
// syntax- and scheme-based normalization of RFC 3986 §6.2.2 and §6.2.3 (case of scheme, host
// and percent-encodings, percent-encoded unreserved characters, dot segments, default ports,
// an empty path as "/").
func SameURI(a, b string) bool {
	na, okA := normalize(a)
	nb, okB := normalize(b)
	return okA && okB && na == nb
}

func normalize(s string) (string, bool) {
	if s == "" || len(s) > 4096 {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	p := removeDotSegments(normalizeEscapes(u.EscapedPath()))
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, true
}

// normalizeEscapes decodes percent-encoded unreserved characters and upper-cases the hex digits
// of the others (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizeEscapes(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			c, err := hexByte(p[i+1], p[i+2])
			if err == nil {
				if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
					b.WriteByte(c)
				} else {
					fmt.Fprintf(&b, "%%%02X", c)
				}
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func hexByte(a, b byte) (byte, error) {
	v := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	h, ok1 := v(a)
	l, ok2 := v(b)
	if !ok1 || !ok2 {
		return 0, errors.New("not hex")
	}
	return h<<4 | l, nil
}

// removeDotSegments is RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	var out []string
	for _, seg := range strings.Split(in, "/") {
		switch seg {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	r := strings.Join(out, "/")
	if (strings.HasSuffix(in, "/.") || strings.HasSuffix(in, "/..")) && !strings.HasSuffix(r, "/") {
		r += "/"
	}
	return r
}
