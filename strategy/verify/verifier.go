package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Limits and defaults.
const (
	// MaxTokenSize is the longest token Verify accepts, in bytes. Real access tokens are well
	// under 4 KiB; HTTP servers commonly cap a header line near 8–16 KiB.
	MaxTokenSize = 16 << 10

	// DefaultLeeway is the clock-skew allowance used when [Config.Leeway] is zero.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest [Config.Leeway] accepted.
	MaxLeeway = 5 * time.Minute
	// DefaultMinRefreshInterval is used when [Config.MinRefreshInterval] is zero.
	DefaultMinRefreshInterval = time.Minute
	// DefaultRefreshInterval is used when [Config.RefreshInterval] is zero.
	DefaultRefreshInterval = time.Hour
	// DefaultFetchTimeout is used when [Config.FetchTimeout] is zero.
	DefaultFetchTimeout = 10 * time.Second

	// maxHeaderSize bounds the decoded JOSE header.
	maxHeaderSize = 2 << 10
)

// DefaultAlgorithms returns the signature algorithms a zero [Config.Algorithms] allows: the
// asymmetric ones in common use. RS256 is the one RFC 9068 §2.1 makes mandatory. They are also
// every algorithm mandate's authorization server signs with and accepts in assertions: this is
// the one list.
func DefaultAlgorithms() []jose.SignatureAlgorithm { return strict.Algorithms() }

// AlgorithmNames is [DefaultAlgorithms] as a comma-separated list, for messages.
func AlgorithmNames() string {
	var b strings.Builder
	for i, a := range DefaultAlgorithms() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(a))
	}
	return b.String()
}

// Config configures a [Verifier]. Issuer and Audience are required; every other field has a
// documented zero value.
type Config struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414 §2). Tokens must carry it
	// in iss exactly, and the server's metadata must repeat it exactly. It must be an https URL
	// (http only for a loopback host) without query or fragment.
	Issuer string

	// Audience is this resource server's identifier — the RFC 8707 resource the client asked a
	// token for. Tokens must list it in aud. Required: an empty Audience is an error, never
	// "any audience".
	Audience string

	// Algorithms are the JWS algorithms accepted in the header alg. Nil means
	// [DefaultAlgorithms]. Only asymmetric algorithms may be listed: none and HS256/384/512
	// are configuration errors (a verifier that accepts HMAC can be fooled with the public key
	// as the secret).
	Algorithms []jose.SignatureAlgorithm

	// Leeway absorbs clock skew in exp, nbf and iat. Zero means [DefaultLeeway] (30s); it may
	// not be negative or exceed [MaxLeeway].
	Leeway time.Duration

	// Keys, if set, is a fixed key set: no discovery, no network, no refresh. Only public
	// asymmetric keys are allowed.
	Keys *jose.JSONWebKeySet

	// JWKSURL, if set, is where the key set is fetched, skipping RFC 8414 discovery. If neither
	// Keys nor JWKSURL is set, the jwks_uri of the issuer's metadata at
	// /.well-known/oauth-authorization-server (RFC 8414 §3) is used.
	JWKSURL string

	// HTTPClient fetches metadata and keys. Nil means a client with a [DefaultFetchTimeout]
	// timeout (never [http.DefaultClient], which has none).
	HTTPClient *http.Client

	// MinRefreshInterval is the shortest time between two refetches triggered by an unknown
	// kid, and the lower bound for a Cache-Control max-age. Zero means
	// [DefaultMinRefreshInterval] (1 minute): a new key signed into tokens before the issuer
	// published it is picked up at once when no other unknown-kid refetch ran in the last
	// minute, while a flood of tokens with made-up kids costs the issuer at most one request a
	// minute per verifier.
	MinRefreshInterval time.Duration

	// RefreshInterval is how long a fetched key set is used before it is refreshed in the
	// background (Verify never waits for this refresh). A Cache-Control max-age on the JWKS
	// response shortens it, but never below MinRefreshInterval. Zero means
	// [DefaultRefreshInterval] (1 hour). The issuer must pre-publish a new key at least this
	// long before signing with it for rotations to cause no refetch at all.
	RefreshInterval time.Duration

	// FetchTimeout bounds each discovery and JWKS fetch. Zero means [DefaultFetchTimeout].
	FetchTimeout time.Duration

	// Lazy makes [New] do no network I/O: discovery and the first key fetch happen at the first
	// Verify, and while they fail Verify returns [ErrKeysUnavailable] (retrying at most once a
	// second, one request for all waiting callers). By default New fetches the keys and returns
	// the error if it cannot, so that a wrong Issuer or an unreachable authorization server
	// shows at start-up. Use Lazy when the resource server must start (and answer health
	// checks) while the authorization server is down.
	Lazy bool

	// DecryptionKey, if set, lets Verify accept encrypted access tokens (RFC 9068 §4 step 1):
	// a compact JWE whose payload is the signed at+jwt. It is this resource server's private
	// key: *rsa.PrivateKey, *ecdsa.PrivateKey, or a *jose.JSONWebKey holding one. Signed,
	// unencrypted tokens are still accepted.
	DecryptionKey any

	// KeyEncryptionAlgorithms are the JWE alg values accepted with DecryptionKey. Nil means
	// RSA-OAEP-256, RSA-OAEP, ECDH-ES, ECDH-ES+A128KW and ECDH-ES+A256KW.
	KeyEncryptionAlgorithms []jose.KeyAlgorithm

	// ContentEncryptionAlgorithms are the JWE enc values accepted. Nil means A128GCM, A256GCM,
	// A128CBC-HS256 and A256CBC-HS512.
	ContentEncryptionAlgorithms []jose.ContentEncryption

	// Realm is the realm of WWW-Authenticate challenges sent by [Verifier.Middleware] and
	// [Verifier.RequireScope]. Empty means Audience.
	Realm string

	// ResourceMetadata, if set, is the URL of this resource server's RFC 9728 metadata and is
	// sent as resource_metadata in every challenge (RFC 9728 §5.1). See [MetadataURL].
	ResourceMetadata string

	// AllowQueryToken lets the middleware also take the token from the access_token query
	// parameter (RFC 6750 §2.3). Off by default: URLs end up in logs and caches.
	AllowQueryToken bool

	// AllowFormToken lets the middleware also take the token from an access_token member of a
	// application/x-www-form-urlencoded body (RFC 6750 §2.2). Off by default.
	AllowFormToken bool

	// DPoPRequired makes the middleware accept only DPoP-bound access tokens presented with
	// their proofs (RFC 9449 §7): a token sent with the Bearer scheme is refused, and
	// [Verifier.Metadata] says dpop_bound_access_tokens_required. Without it, both are
	// accepted — but a DPoP-bound token only ever with its proof (§7.2).
	DPoPRequired bool

	// DPoPReplay makes every proof's jti single use. Nil means an in-memory cache of this
	// process ([dpop.NewMemoryReplay]); replicas of a resource server behind one load balancer
	// that must refuse a proof replayed at another replica share a Replay instead.
	DPoPReplay dpop.Replay

	// DPoPNonces, when set, makes proofs carry this resource server's nonce (RFC 9449 §9): a
	// proof without it, or with a stale one, is answered 401 use_dpop_nonce with a DPoP-Nonce.
	DPoPNonces *dpop.Nonces

	// DPoPAlgorithms are the algorithms a proof may be signed with. Nil means
	// [DefaultAlgorithms]; only asymmetric ones are accepted.
	DPoPAlgorithms []jose.SignatureAlgorithm

	// ExternalURL is the URL clients reach this server's root at (scheme, host, port and a
	// path prefix a reverse proxy strips), used as the base of the URI a DPoP proof's htu must
	// match: ExternalURL + the request's path. Empty means the request's own scheme (TLS or
	// not) and Host, or the forwarded ones with TrustForwardedHeaders.
	ExternalURL string

	// TrustForwardedHeaders takes the scheme and host of the htu comparison from the
	// request's Forwarded header (RFC 7239; the first element) or else X-Forwarded-Proto and
	// X-Forwarded-Host. Set it only behind a proxy that overwrites these headers: a client
	// could otherwise name any URI it likes. ExternalURL, when set, wins.
	TrustForwardedHeaders bool

	// Revoked, if set, is asked about every token that passed every other check (signature,
	// claims, binding, proof) whether it was revoked since it was issued: a resource server that
	// must not accept a revoked token until it expires asks the authorization server here
	// (RFC 7662 introspection, a deny list; the admin API asks its provider in-process). true
	// refuses the token with [ErrRevoked]; an error means the question could not be answered
	// and is returned wrapped in [ErrRevocationUnavailable] ([Verifier.Middleware]: 503). It
	// gets the token as presented (never log it) and its claims.
	Revoked func(ctx context.Context, token string, c *Claims) (bool, error)

	// Logger receives key-refresh failures and skipped JWKS keys. Nil means no logging.
	Logger *slog.Logger

	// Now returns the current time, for the claim checks and for scheduling key refreshes.
	// Nil means [time.Now].
	Now func() time.Time
}

// Verifier validates RFC 9068 access tokens for one resource server. It is safe for concurrent
// use; Verify does no network I/O and takes no lock while the cached keys know the token's kid.
type Verifier struct {
	issuer, audience string
	algs             []jose.SignatureAlgorithm
	leeway           time.Duration
	now              func() time.Time
	keys             keySource

	decKey   any
	keyAlgs  []jose.KeyAlgorithm
	encAlgs  []jose.ContentEncryption
	realm    string
	metadata string
	query    bool
	form     bool

	dpop         *dpop.Checker
	dpopRequired bool
	dpopAlgs     string // the algs parameter of DPoP challenges
	external     string // ExternalURL without a trailing slash
	forwarded    bool

	revoked func(ctx context.Context, token string, c *Claims) (bool, error)
}

// New checks cfg and returns a Verifier. Unless cfg.Lazy is set or static Keys are given, it
// also discovers the key set location and fetches the keys, within ctx; the error says why it
// could not. All configuration errors wrap [ErrConfig].
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("%w: Issuer: %w", ErrConfig, err)
	}
	if cfg.Audience == "" {
		return nil, fmt.Errorf("%w: Audience is required", ErrConfig)
	}
	v := &Verifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		algs:     cfg.Algorithms,
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		realm:    cfg.Realm,
		metadata: cfg.ResourceMetadata,
		query:    cfg.AllowQueryToken,
		form:     cfg.AllowFormToken,
		revoked:  cfg.Revoked,
	}
	if v.algs == nil {
		v.algs = DefaultAlgorithms()
	} else {
		v.algs = slices.Clone(v.algs)
	}
	if len(v.algs) == 0 {
		return nil, fmt.Errorf("%w: Algorithms is empty", ErrConfig)
	}
	for _, a := range v.algs {
		switch a {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
			jose.ES256, jose.ES384, jose.ES512, jose.EdDSA:
		default:
			return nil, fmt.Errorf("%w: algorithm %q is not an asymmetric signature algorithm", ErrConfig, strict.Echo(string(a)))
		}
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0 || v.leeway > MaxLeeway:
		return nil, fmt.Errorf("%w: Leeway must be between 0 and %v", ErrConfig, MaxLeeway)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.realm == "" {
		v.realm = cfg.Audience
	}
	if v.metadata != "" {
		if err := checkURL(v.metadata); err != nil {
			return nil, fmt.Errorf("%w: ResourceMetadata: %w", ErrConfig, err)
		}
	}
	if err := v.setDecryption(cfg); err != nil {
		return nil, err
	}
	if err := v.setDPoP(cfg); err != nil {
		return nil, err
	}

	if cfg.Keys != nil {
		if cfg.JWKSURL != "" {
			return nil, fmt.Errorf("%w: set Keys or JWKSURL, not both", ErrConfig)
		}
		var keys []*jose.JSONWebKey
		for i := range cfg.Keys.Keys {
			k := cfg.Keys.Keys[i]
			if why := usable(&k); why != "" {
				return nil, fmt.Errorf("%w: Keys[%d]: %s", ErrConfig, i, why)
			}
			keys = append(keys, &k)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("%w: Keys is empty", ErrConfig)
		}
		v.keys = staticKeys{newKeySet(keys)}
		return v, nil
	}

	r := &remoteKeys{
		client:      cfg.HTTPClient,
		issuer:      cfg.Issuer,
		jwksURL:     cfg.JWKSURL,
		minInterval: cfg.MinRefreshInterval,
		maxInterval: cfg.RefreshInterval,
		timeout:     cfg.FetchTimeout,
		now:         v.now,
		log:         cfg.Logger,
		base:        context.WithoutCancel(ctx),
	}
	if r.jwksURL != "" {
		if err := checkURL(r.jwksURL); err != nil {
			return nil, fmt.Errorf("%w: JWKSURL: %w", ErrConfig, err)
		}
	}
	if err := r.setDefaults(); err != nil {
		return nil, err
	}
	v.keys = r
	if !cfg.Lazy {
		if _, err := r.current(ctx); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func checkIssuer(iss string) error {
	if iss == "" {
		return errors.New("required")
	}
	if strings.ContainsAny(iss, "?#") {
		return errors.New("must not have a query or fragment")
	}
	return checkURL(iss)
}

func (v *Verifier) setDecryption(cfg Config) error {
	if cfg.DecryptionKey == nil {
		if cfg.KeyEncryptionAlgorithms != nil || cfg.ContentEncryptionAlgorithms != nil {
			return fmt.Errorf("%w: encryption algorithms set without DecryptionKey", ErrConfig)
		}
		return nil
	}
	switch k := cfg.DecryptionKey.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	case *jose.JSONWebKey:
		switch k.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
		default:
			return fmt.Errorf("%w: DecryptionKey JWK must hold an RSA or EC private key", ErrConfig)
		}
	default:
		return fmt.Errorf("%w: DecryptionKey must be *rsa.PrivateKey, *ecdsa.PrivateKey or *jose.JSONWebKey", ErrConfig)
	}
	v.decKey = cfg.DecryptionKey
	v.keyAlgs = cfg.KeyEncryptionAlgorithms
	if v.keyAlgs == nil {
		v.keyAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP, jose.ECDH_ES, jose.ECDH_ES_A128KW, jose.ECDH_ES_A256KW}
	}
	for _, a := range v.keyAlgs {
		switch a {
		case jose.RSA_OAEP_256, jose.RSA_OAEP, jose.ECDH_ES, jose.ECDH_ES_A128KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A256KW:
		default:
			return fmt.Errorf("%w: key encryption algorithm %q not allowed", ErrConfig, strict.Echo(string(a)))
		}
	}
	v.encAlgs = cfg.ContentEncryptionAlgorithms
	if v.encAlgs == nil {
		v.encAlgs = []jose.ContentEncryption{jose.A128GCM, jose.A256GCM, jose.A128CBC_HS256, jose.A256CBC_HS512}
	}
	if len(v.keyAlgs) == 0 || len(v.encAlgs) == 0 {
		return fmt.Errorf("%w: empty encryption algorithm list", ErrConfig)
	}
	return nil
}

// Verify validates raw as an RFC 9068 access token for this resource server
// (https://www.rfc-editor.org/rfc/rfc9068#section-4) and returns its claims.
//
// It is strict RFC 9068: a compact JWS (or, with [Config.DecryptionKey], a compact JWE holding
// one) no longer than [MaxTokenSize]; header typ at+jwt or application/at+jwt (case-insensitive
// media type); alg in [Config.Algorithms]; no jku, x5u, jwk, x5c, b64 or crit header (keys come
// only from the configured key set; nothing in a token is ever fetched); kid naming a cached
// key whose type, curve and alg fit (a token without kid is accepted only when exactly one key
// fits); a valid signature; no duplicate payload members; iss equal to [Config.Issuer]; aud (a
// string or an array of strings) containing [Config.Audience]; exp after now; nbf and iat not
// in the future; and the claims RFC 9068 §2.2 requires of every token (iss, exp, aud, sub,
// client_id, iat, jti) present. Time checks allow [Config.Leeway].
//
// An unknown kid triggers one refetch of the key set (shared by concurrent callers and
// rate-limited by [Config.MinRefreshInterval]); ctx bounds only that wait.
//
// A sender-constrained token (one with a cnf claim, RFC 7800) is refused with [ErrBinding]:
// it is worth nothing without proof that its presenter holds the key, so a DPoP-bound token
// goes through [Verifier.VerifyDPoP] with its proof (RFC 9449 §7.2).
//
// Errors wrap the sentinels of this package ([ErrExpired], [ErrAudience], …) and never contain
// the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	c, err := v.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if c.Confirmation != nil {
		return nil, errBound
	}
	if err := v.checkRevoked(ctx, raw, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkRevoked asks Config.Revoked, if set, about a token that passed every other check.
func (v *Verifier) checkRevoked(ctx context.Context, raw string, c *Claims) error {
	if v.revoked == nil {
		return nil
	}
	revoked, err := v.revoked(ctx, raw, c)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrRevocationUnavailable, err)
	case revoked:
		return ErrRevoked
	}
	return nil
}

// verify is Verify without the refusal of sender-constrained tokens.
func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrMalformed, MaxTokenSize)
	}
	switch strings.Count(raw, ".") {
	case 2:
		return v.verifySigned(ctx, raw)
	case 4:
		inner, err := v.decrypt(raw)
		if err != nil {
			return nil, err
		}
		return v.verifySigned(ctx, inner)
	}
	return nil, fmt.Errorf("%w: not a compact JWS or JWE", ErrMalformed)
}

func (v *Verifier) verifySigned(ctx context.Context, raw string) (*Claims, error) {
	// One signed content, one encoding: go-jose's decoder would accept others.
	head, rest, _ := strings.Cut(raw, ".")
	p, sig, _ := strings.Cut(rest, ".")
	hb, err := strict.Segment(head)
	if err != nil || !strict.Canonical(p) || !strict.Canonical(sig) {
		return nil, fmt.Errorf("%w: not canonical base64url", ErrMalformed)
	}
	if err := checkHeader(hb); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, fmt.Errorf("%w: %q", ErrAlgorithm, strict.Echo(string(unexpected.Got)))
		}
		// go-jose's parse errors may quote header values; say less.
		return nil, fmt.Errorf("%w: not a valid compact JWS", ErrMalformed)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want exactly one signature", ErrMalformed)
	}
	h := &jws.Signatures[0].Header
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !isATJWT(typ) {
		return nil, fmt.Errorf("%w: typ %q", ErrType, strict.Echo(typ))
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)

	set, err := v.keys.current(ctx)
	if err != nil {
		return nil, err
	}
	key := set.find(h.KeyID, alg)
	if key == nil {
		newer, err := v.keys.refresh(ctx, set)
		if newer != set {
			key = newer.find(h.KeyID, alg)
		}
		if key == nil {
			if err != nil {
				return nil, fmt.Errorf("%w: kid %q (refetch: %w)", ErrUnknownKey, strict.Echo(h.KeyID), err)
			}
			return nil, fmt.Errorf("%w: kid %q with alg %q", ErrUnknownKey, strict.Echo(h.KeyID), alg)
		}
	}
	data, err := jws.Verify(key)
	if err != nil {
		return nil, ErrSignature
	}
	return v.checkClaims(data)
}

// checkHeader looks at the member names of the decoded JOSE header: no duplicates (at any
// depth), and none of the members that would point at other keys or change how the signature
// is computed.
func checkHeader(hb []byte) error {
	if len(hb) > maxHeaderSize {
		return fmt.Errorf("%w: header too long", ErrMalformed)
	}
	var nb [12][]byte
	names, err := untyped.Names(hb, nb[:0])
	if errors.Is(err, strict.ErrDuplicate) {
		return fmt.Errorf("%w: duplicate header member", ErrMalformed)
	} else if err != nil {
		return fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	for _, n := range names {
		switch string(n) {
		case "jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc":
			return fmt.Errorf("%w: header %q not accepted", ErrMalformed, string(n))
		}
	}
	return nil
}

// untyped checks JSON for duplicate members only; the header is read by go-jose, which matches
// member names exactly.
var untyped = strict.SchemaOf(nil)

// isATJWT reports whether typ names the at+jwt media type (RFC 9068 §2.1, §4). Media types are
// case-insensitive (RFC 2045 §5.1).
func isATJWT(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// decrypt opens a compact JWE and returns the nested compact JWS.
func (v *Verifier) decrypt(raw string) (string, error) {
	if v.decKey == nil {
		return "", fmt.Errorf("%w: encrypted token, but no DecryptionKey is configured", ErrDecrypt)
	}
	jwe, err := jose.ParseEncryptedCompact(raw, v.keyAlgs, v.encAlgs)
	if err != nil {
		return "", fmt.Errorf("%w: not a valid compact JWE with an accepted alg and enc", ErrDecrypt)
	}
	if _, ok := jwe.Header.ExtraHeaders["zip"]; ok {
		return "", fmt.Errorf("%w: compressed JWE not accepted", ErrDecrypt)
	}
	// RFC 7519 §5.2: a nested JWT says so with cty "JWT"; RFC 9068 tokens may say at+jwt.
	cty, _ := jwe.Header.ExtraHeaders[jose.HeaderContentType].(string)
	if !strings.EqualFold(cty, "JWT") && !isATJWT(cty) {
		return "", fmt.Errorf("%w: JWE cty %q is not JWT", ErrDecrypt, strict.Echo(cty))
	}
	pt, err := jwe.Decrypt(v.decKey)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	inner := string(pt)
	if strings.Count(inner, ".") != 2 {
		return "", fmt.Errorf("%w: JWE payload is not a compact JWS", ErrDecrypt)
	}
	return inner, nil
}

// checkClaims decodes the verified payload and applies the claim rules of RFC 9068 §4.
func (v *Verifier) checkClaims(data []byte) (*Claims, error) {
	if err := checkNames(data); err != nil {
		return nil, err
	}
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: claim %q has the wrong JSON type", ErrMalformed, strict.Echo(te.Field))
		}
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrMalformed)
	}
	switch {
	case p.Iss == "":
		return nil, fmt.Errorf("%w: iss", ErrMissingClaim)
	case p.Exp == nil:
		return nil, fmt.Errorf("%w: exp", ErrMissingClaim)
	case p.Iat == nil:
		return nil, fmt.Errorf("%w: iat", ErrMissingClaim)
	case p.Sub == "":
		return nil, fmt.Errorf("%w: sub", ErrMissingClaim)
	case p.ClientID == "":
		return nil, fmt.Errorf("%w: client_id", ErrMissingClaim)
	case p.Jti == "":
		return nil, fmt.Errorf("%w: jti", ErrMissingClaim)
	}
	if p.Iss != v.issuer {
		return nil, fmt.Errorf("%w: the token's iss is %q, this verifier expects %q", ErrIssuer, strict.Echo(p.Iss), strict.Echo(v.issuer))
	}
	aud, err := decodeAudience(p.Aud)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(aud, v.audience) {
		got := ""
		if len(aud) > 0 {
			got = aud[0]
		}
		return nil, fmt.Errorf("%w: the token's aud is %q (%d values), this resource server is %q; audiences match exactly",
			ErrAudience, strict.Echo(got), len(aud), strict.Echo(v.audience))
	}
	c := &Claims{
		Issuer:   p.Iss,
		Subject:  p.Sub,
		Audience: aud,
		ID:       p.Jti,
		ClientID: p.ClientID,
		Scope:    p.Scope,
		ACR:      p.ACR,
		AMR:      p.AMR,
		raw:      data,
	}
	if c.Act, err = decodeActor("act", p.Act, true); err != nil {
		return nil, err
	}
	if c.MayAct, err = decodeActor("may_act", p.MayAct, false); err != nil {
		return nil, err
	}
	if c.Confirmation, err = decodeConfirmation(p.Cnf); err != nil {
		return nil, err
	}
	if c.ExpiresAt, err = numericDate("exp", p.Exp); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = numericDate("iat", p.Iat); err != nil {
		return nil, err
	}
	if c.NotBefore, err = numericDate("nbf", p.Nbf); err != nil {
		return nil, err
	}
	if c.AuthTime, err = numericDate("auth_time", p.AuthTime); err != nil {
		return nil, err
	}
	now := v.now()
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	late := now.Add(v.leeway)
	if !c.NotBefore.IsZero() && late.Before(c.NotBefore) {
		return nil, fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if late.Before(c.IssuedAt) {
		return nil, fmt.Errorf("%w: iat %s is in the future", ErrNotYetValid, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	return c, nil
}
