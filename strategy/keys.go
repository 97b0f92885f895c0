package strategy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/mandate-dev/mandate/strategy/verify"
)

// ErrNoSigningKey reports that a [KeySource] has no key for the requested algorithm.
var ErrNoSigningKey = errors.New("strategy: no signing key for this algorithm")

// minRSABits is the smallest RSA modulus accepted for signing
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.3 requires 2048).
const minRSABits = 2048

// maxKeyFileSize bounds what LoadKeyFile reads; real key files are a few kilobytes.
const maxKeyFileSize = 64 << 10

// algorithms is every JWS algorithm mandate signs or accepts: verify.DefaultAlgorithms, the one
// list (asymmetric only, never "none" and never HMAC). It is never modified.
var algorithms = verify.DefaultAlgorithms()

// Algorithms returns every JWS algorithm the package signs and verifies with, in a fresh slice:
// RS256, PS256, ES256, ES384 and EdDSA ([verify.DefaultAlgorithms]).
func Algorithms() []jose.SignatureAlgorithm { return slices.Clone(algorithms) }

// Supported reports whether alg is one of [Algorithms].
func Supported(alg string) bool { return slices.Contains(algorithms, jose.SignatureAlgorithm(alg)) }

// KeySource supplies signing keys. Implementations must be safe for concurrent use and must not
// touch a database on the signing hot path: they hold keys and their signers in memory.
type KeySource interface {
	// SigningKey returns the key that signs now with alg; "" means the default algorithm.
	// A source without a key for alg returns an error wrapping ErrNoSigningKey.
	SigningKey(ctx context.Context, alg string) (*SigningKey, error)
	// PublicKeys returns the keys to publish at the JWKS endpoint (next, current and retired),
	// public members only, each with kid, use "sig" and alg.
	PublicKeys(ctx context.Context) ([]jose.JSONWebKey, error)
}

// SigningKey is a key that signs access tokens. Create it with [NewSigningKey], which prepares
// the key's JWS header (alg, kid and typ "at+jwt") once; a SigningKey built any other way
// cannot sign.
type SigningKey struct {
	// ID is the JWS kid.
	ID string
	// Algorithm is the JWS alg.
	Algorithm jose.SignatureAlgorithm
	// Signer is the private key: *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey, or
	// any other crypto.Signer (a KMS or HSM key).
	Signer crypto.Signer

	public jose.JSONWebKey
	// Keys of the standard library's types sign directly: header is the encoded protected
	// header and its trailing ".", hash the digest of RS*, PS* and ES*, and ecSize the length
	// of each of R and S in an ES* signature.
	header []byte
	hash   crypto.Hash
	ecSize int
	// signer signs with any other crypto.Signer, through go-jose.
	signer jose.Signer
}

// NewSigningKey checks that alg fits the key (RSA keys of at least 2048 bits for RS* and PS*,
// P-256 for ES256, P-384 for ES384, P-521 for ES512, Ed25519 for EdDSA) and prepares its
// signer. An empty id becomes the key's RFC 7638 thumbprint
// (https://www.rfc-editor.org/rfc/rfc7638), base64url-encoded SHA-256. Keys of the standard
// library's types sign directly; any other crypto.Signer is adapted with go-jose's
// cryptosigner.Opaque, so it is only asked to sign.
func NewSigningKey(id string, alg jose.SignatureAlgorithm, s crypto.Signer) (*SigningKey, error) {
	k, err := newSigningKey(id, alg, s)
	if err != nil {
		return nil, fmt.Errorf("strategy: %w", err)
	}
	return k, nil
}

// newSigningKey is NewSigningKey with errors left unprefixed for the caller to wrap.
func newSigningKey(id string, alg jose.SignatureAlgorithm, s crypto.Signer) (*SigningKey, error) {
	if s == nil {
		return nil, errors.New("signing key is nil")
	}
	switch k := s.(type) {
	case *rsa.PrivateKey:
		if k == nil || k.N == nil {
			return nil, errors.New("RSA private key is empty")
		}
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return nil, errors.New("EC private key is empty")
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("Ed25519 private key has the wrong length")
		}
	}
	pub := s.Public()
	if err := checkAlg(alg, pub); err != nil {
		return nil, err
	}
	if id == "" {
		var err error
		if id, err = thumbprint(pub); err != nil {
			return nil, err
		}
	}
	k := &SigningKey{
		ID:        id,
		Algorithm: alg,
		Signer:    s,
		public:    jose.JSONWebKey{Key: pub, KeyID: id, Algorithm: string(alg), Use: "sig"},
	}
	switch key := s.(type) {
	case *rsa.PrivateKey, ed25519.PrivateKey:
	case *ecdsa.PrivateKey:
		k.ecSize = (key.Curve.Params().BitSize + 7) / 8
	default:
		js, err := jose.NewSigner(
			jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: cryptosigner.Opaque(s), KeyID: id}},
			(&jose.SignerOptions{}).WithType(TokenType),
		)
		if err != nil {
			return nil, fmt.Errorf("signer for key %q: %w", id, err)
		}
		k.signer = js
		return k, nil
	}
	k.hash = algHash(alg)
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(alg), id, TokenType})
	if err != nil {
		return nil, fmt.Errorf("header for key %q: %w", id, err)
	}
	k.header = append(base64.RawURLEncoding.AppendEncode(nil, header), '.')
	return k, nil
}

// algHash is the digest alg signs (https://www.rfc-editor.org/rfc/rfc7518#section-3.1), or 0
// for EdDSA, which signs the message itself.
func algHash(alg jose.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case jose.RS256, jose.PS256, jose.ES256:
		return crypto.SHA256
	case jose.RS384, jose.PS384, jose.ES384:
		return crypto.SHA384
	case jose.RS512, jose.PS512, jose.ES512:
		return crypto.SHA512
	}
	return 0
}

// Public returns the key's public JWK with kid, alg and use "sig".
func (k *SigningKey) Public() jose.JSONWebKey { return k.public }

// canSign reports whether k was created by NewSigningKey.
func (k *SigningKey) canSign() bool { return k != nil && (k.header != nil || k.signer != nil) }

// sign returns the compact JWS (https://www.rfc-editor.org/rfc/rfc7515#section-7.1) of payload
// with header alg, kid and typ "at+jwt".
func (k *SigningKey) sign(payload []byte) (string, error) {
	if !k.canSign() {
		return "", errors.New("strategy: signing key was not created by NewSigningKey")
	}
	if k.header == nil {
		jws, err := k.signer.Sign(payload)
		if err != nil {
			return "", fmt.Errorf("strategy: sign with key %q: %w", k.ID, err)
		}
		tok, err := jws.CompactSerialize()
		if err != nil {
			return "", fmt.Errorf("strategy: serialize token: %w", err)
		}
		return tok, nil
	}
	enc := base64.RawURLEncoding
	n := len(k.header) + enc.EncodedLen(len(payload))
	// Room for the signature: 2·ecSize for ES*, 64 bytes for EdDSA, the modulus for RSA.
	sigLen := max(2*k.ecSize, ed25519.SignatureSize)
	if r, ok := k.Signer.(*rsa.PrivateKey); ok {
		sigLen = r.Size()
	}
	buf := make([]byte, n, n+1+enc.EncodedLen(sigLen))
	copy(buf, k.header)
	enc.Encode(buf[len(k.header):], payload)
	sig, err := k.signature(buf)
	if err != nil {
		return "", fmt.Errorf("strategy: sign with key %q: %w", k.ID, err)
	}
	buf = enc.AppendEncode(append(buf, '.'), sig)
	return string(buf), nil
}

// signature signs the JWS signing input with a key of the standard library's types: ES* as the
// fixed-size R||S of https://www.rfc-editor.org/rfc/rfc7518#section-3.4 (not ASN.1), RS* as
// RSASSA-PKCS1-v1_5, PS* as RSASSA-PSS with a salt as long as the hash
// (https://www.rfc-editor.org/rfc/rfc7518#section-3.5), EdDSA as Ed25519
// (https://www.rfc-editor.org/rfc/rfc8037#section-3.1).
func (k *SigningKey) signature(input []byte) ([]byte, error) {
	if key, ok := k.Signer.(ed25519.PrivateKey); ok {
		return ed25519.Sign(key, input), nil
	}
	var digest []byte
	switch k.hash {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(input)
		digest = d[:]
	default:
		return nil, fmt.Errorf("no digest for %s", k.Algorithm)
	}
	switch key := k.Signer.(type) {
	case *ecdsa.PrivateKey:
		der, err := ecdsa.SignASN1(rand.Reader, key, digest)
		if err != nil {
			return nil, err
		}
		return ecdsaRaw(der, k.ecSize)
	case *rsa.PrivateKey:
		switch k.Algorithm {
		case jose.PS256, jose.PS384, jose.PS512:
			return rsa.SignPSS(rand.Reader, key, k.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		default:
			return rsa.SignPKCS1v15(nil, key, k.hash, digest)
		}
	}
	return nil, fmt.Errorf("key type %T cannot sign directly", k.Signer)
}

// ecdsaRaw converts an ASN.1 ECDSA signature to R||S, each left-padded to size bytes.
func ecdsaRaw(der []byte, size int) ([]byte, error) {
	var (
		r, s  []byte
		inner cryptobyte.String
	)
	in := cryptobyte.String(der)
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) || !in.Empty() ||
		!inner.ReadASN1Integer(&r) || !inner.ReadASN1Integer(&s) || !inner.Empty() ||
		len(r) > size || len(s) > size {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	copy(out[size-len(r):size], r)
	copy(out[2*size-len(s):], s)
	return out, nil
}

// checkAlg reports whether alg is one mandate uses and fits the public key pub.
func checkAlg(alg jose.SignatureAlgorithm, pub crypto.PublicKey) error {
	if !slices.Contains(algorithms, alg) {
		return fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		default:
			return fmt.Errorf("algorithm %s does not fit an RSA key", alg)
		}
		if p.N == nil || p.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key is shorter than %d bits", minRSABits)
		}
	case *ecdsa.PublicKey:
		want := map[jose.SignatureAlgorithm]elliptic.Curve{
			jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521(),
		}[alg]
		if want == nil || p.Curve != want {
			return fmt.Errorf("algorithm %s does not fit an EC key on %s", alg, curveName(p.Curve))
		}
	case ed25519.PublicKey:
		if alg != jose.EdDSA {
			return fmt.Errorf("algorithm %s does not fit an Ed25519 key", alg)
		}
		if len(p) != ed25519.PublicKeySize {
			return errors.New("Ed25519 public key has the wrong length")
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

// defaultAlg infers the algorithm of a public key: RS256, ES256, ES384 or EdDSA (a P-521 key
// infers ES512, which checkAlg then refuses).
func defaultAlg(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return jose.RS256, nil
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", fmt.Errorf("unsupported EC curve %s", curveName(p.Curve))
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "an unknown curve"
	}
	return c.Params().Name
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of pub, base64url without padding.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// StaticKeys returns a KeySource over fixed keys. All of them are published; for each
// algorithm the first key given signs, and the very first key's algorithm is the default.
// Key IDs must be distinct.
func StaticKeys(keys ...*SigningKey) (KeySource, error) {
	if len(keys) == 0 {
		return nil, errors.New("strategy: StaticKeys needs at least one key")
	}
	s := &staticKeys{byAlg: make(map[string]*SigningKey)}
	seen := make(map[string]bool)
	for i, k := range keys {
		if !k.canSign() {
			return nil, fmt.Errorf("strategy: static key %d was not created by NewSigningKey", i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("strategy: duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
		if _, ok := s.byAlg[string(k.Algorithm)]; !ok {
			s.byAlg[string(k.Algorithm)] = k
		}
		s.public = append(s.public, k.Public())
	}
	s.byAlg[""] = keys[0]
	return s, nil
}

type staticKeys struct {
	byAlg  map[string]*SigningKey
	public []jose.JSONWebKey
}

func (s *staticKeys) SigningKey(_ context.Context, alg string) (*SigningKey, error) {
	if k, ok := s.byAlg[alg]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSigningKey, alg)
}

func (s *staticKeys) PublicKeys(context.Context) ([]jose.JSONWebKey, error) {
	return slices.Clone(s.public), nil
}

// LoadKeyFile reads a private signing key from a file: PEM (PKCS#8 "PRIVATE KEY", PKCS#1
// "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY"; encrypted PEM is refused) or a JWK JSON object
// with private members. See [ParseKey].
func LoadKeyFile(path string) (*SigningKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("strategy: load key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("strategy: read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("strategy: key file %s is larger than %d bytes", path, maxKeyFileSize)
	}
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("strategy: key file %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses a private signing key in PEM or JWK JSON form (see [LoadKeyFile]). The kid
// is the JWK's kid, or else the key's RFC 7638 thumbprint. The algorithm is the JWK's alg, or
// else inferred from the key: RSA → RS256, P-256 → ES256, P-384 → ES384, P-521 → ES512,
// Ed25519 → EdDSA.
func ParseKey(data []byte) (*SigningKey, error) {
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("strategy: %w", err)
	}
	return k, nil
}

func parseKey(data []byte) (*SigningKey, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key is larger than %d bytes", maxKeyFileSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseJWK(trimmed)
	}
	return parsePEM(trimmed)
}

func parseJWK(data []byte) (*SigningKey, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(data, &jwk); err != nil {
		return nil, fmt.Errorf("parse JWK: %w", err)
	}
	if jwk.IsPublic() {
		return nil, errors.New("JWK has no private key")
	}
	s, ok := jwk.Key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("JWK key type %T cannot sign", jwk.Key)
	}
	if !jwk.Valid() {
		return nil, errors.New("JWK is not a valid key")
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil, fmt.Errorf("JWK use is %q, want \"sig\"", jwk.Use)
	}
	alg := jose.SignatureAlgorithm(jwk.Algorithm)
	if alg == "" {
		var err error
		if alg, err = defaultAlg(s.Public()); err != nil {
			return nil, err
		}
	}
	return newSigningKey(jwk.KeyID, alg, s)
}

func parsePEM(data []byte) (*SigningKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no private key found: want PEM or a JWK JSON object")
		}
		if _, ok := block.Headers["Proc-Type"]; ok || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("encrypted PEM keys are not supported")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "EC PARAMETERS": // written by `openssl ecparam -genkey` before the key itself
			continue
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key type %T cannot sign", key)
		}
		alg, err := defaultAlg(s.Public())
		if err != nil {
			return nil, err
		}
		return newSigningKey("", alg, s)
	}
}
