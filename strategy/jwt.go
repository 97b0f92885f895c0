package strategy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// ErrNoPolicy is returned when no usable [Policy] is at hand: no [PolicySource] configured for
// [JWT.GenerateAccessToken], an empty Audience or a TTL that is not positive.
var ErrNoPolicy = errors.New("strategy: no usable access-token policy")

// MaxTokenSize bounds the access tokens the strategy mints and parses, in bytes: the size the
// resource-server verifier accepts ([verify.MaxTokenSize]), so that nothing is minted that no
// resource server would take.
const MaxTokenSize = verify.MaxTokenSize

// TokenType is the JWS typ header of every access token
// (https://www.rfc-editor.org/rfc/rfc9068#section-2.1), and the JWE cty of encrypted ones.
const TokenType = "at+jwt"

// JWTConfig configures [NewJWT].
type JWTConfig struct {
	// Issuer is the iss claim, exactly as configured. Required.
	Issuer string
	// Keys signs access tokens and verifies them at introspection. Required.
	Keys KeySource
	// HMAC mints and checks authorization codes and refresh tokens, for example fosite's
	// oauth2.NewHMACSHAStrategy. Its access-token methods are never used. Required.
	HMAC oauth2.CoreStrategy
	// ClaimMappers add application claims, in order. Optional.
	ClaimMappers []ClaimMapper
	// Users loads the application's user for [TokenRequest.User]. Optional.
	Users Users
	// Policies decides each token's [Policy] when fosite asks [JWT.GenerateAccessToken] for
	// one (handlers.ResourcePolicy, for a plain fosite server). Optional: without it only
	// [JWT.Mint], which takes the policy as an argument, mints.
	Policies PolicySource
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// JWT is mandate's token strategy. It implements fosite's oauth2.CoreStrategy: access tokens
// are RFC 9068 JWTs; authorization codes and refresh tokens are delegated to the HMAC
// strategy. It is safe for concurrent use.
type JWT struct {
	issuer   string
	iss      any // issuer, boxed once for the session's claims map
	keys     KeySource
	hmac     oauth2.CoreStrategy
	mappers  []ClaimMapper
	users    Users
	policies PolicySource
	now      func() time.Time
}

var _ oauth2.CoreStrategy = (*JWT)(nil)

// NewJWT checks cfg and returns the strategy.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("strategy: JWTConfig.Issuer is required")
	case cfg.Keys == nil:
		return nil, errors.New("strategy: JWTConfig.Keys is required")
	case cfg.HMAC == nil:
		return nil, errors.New("strategy: JWTConfig.HMAC is required")
	}
	for i, m := range cfg.ClaimMappers {
		if m == nil {
			return nil, fmt.Errorf("strategy: JWTConfig.ClaimMappers[%d] is nil", i)
		}
	}
	j := &JWT{
		issuer:   cfg.Issuer,
		keys:     cfg.Keys,
		hmac:     cfg.HMAC,
		mappers:  slices.Clone(cfg.ClaimMappers),
		users:    cfg.Users,
		policies: cfg.Policies,
		now:      cfg.Now,
	}
	if j.now == nil {
		j.now = time.Now
	}
	j.iss = j.issuer
	return j, nil
}

// claims is the fixed part of an access token's payload, in the order it is serialized.
type claims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Act      *Actor   `json:"act,omitempty"`
	MayAct   *Actor   `json:"may_act,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// cnf is the confirmation claim (RFC 7800 §3.1) of a DPoP-bound token (RFC 9449 §6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

// Minted is an access token [JWT.Mint] made.
type Minted struct {
	// Token is the compact JWS (or JWE); Signature its storage key ([AccessTokenSignature]).
	Token, Signature string
	// IssuedAt and ExpiresAt are its iat and exp.
	IssuedAt, ExpiresAt time.Time
	// KeyID is the kid of the key that signed it and JTI its jti, for logs and audit events.
	KeyID, JTI string
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy. It mints an RFC 9068 access token
// from the [Policy] its [PolicySource] decides and the session (a *storage.Session):
//
//   - header: alg, kid, typ "at+jwt";
//   - claims: iss, sub (the session's subject, or the client id when there is none), aud (the
//     Policy's Audience, a string), exp (now + TTL), iat (now; fresh on every call, refresh
//     included), jti (128 random bits, base64url), client_id, scope (space-separated, omitted
//     when empty), auth_time, acr and amr when the session has them, act, may_act and cnf
//     (cnf.jkt, a DPoP binding) as the Policy says, and the claim mappers' output.
//
// It sets the session's access-token expiry to exp. When the Policy names an encryption key,
// the signed token is wrapped in a JWE, and the token's claims are kept in the session's
// AccessToken (introspection answers with them, as the server cannot read the token back); a
// signed token's session carries no claims, since [JWT.VerifyAccessToken] recovers them. The returned signature
// is [JWT.AccessTokenSignature] of the token.
func (j *JWT) GenerateAccessToken(ctx context.Context, requester fosite.Requester) (string, string, error) {
	if j.policies == nil {
		return "", "", fmt.Errorf("%w: JWTConfig.Policies is not set", ErrNoPolicy)
	}
	p, err := j.policies.Policy(ctx, requester)
	if err != nil {
		return "", "", err
	}
	m, err := j.Mint(ctx, requester, p)
	if err != nil {
		return "", "", err
	}
	return m.Token, m.Signature, nil
}

// Mint is [JWT.GenerateAccessToken] with the [Policy] given explicitly: it mints the access
// token p describes for requester and returns it with its iat and exp. With p.NotAfter set, exp
// is at most p.NotAfter; act and may_act are p.Act and p.MayAct. Claims the session transcribes
// from an RFC 7523 grant (storage.Session.Transcribed) are added: act (when p.Act is nil; both
// is an error) and application claims (a claim mapper setting one too is an error).
func (j *JWT) Mint(ctx context.Context, requester fosite.Requester, p Policy) (Minted, error) {
	switch {
	case p.Audience == "":
		return Minted{}, fmt.Errorf("%w: empty Audience", ErrNoPolicy)
	case p.TTL <= 0:
		return Minted{}, fmt.Errorf("%w: TTL must be positive", ErrNoPolicy)
	}
	if requester == nil {
		return Minted{}, errors.New("strategy: nil request")
	}
	sess, ok := requester.GetSession().(*storage.Session)
	if !ok || sess == nil {
		return Minted{}, fmt.Errorf("strategy: session is %T, want *storage.Session", requester.GetSession())
	}
	client := requester.GetClient()
	if client == nil || client.GetID() == "" {
		return Minted{}, errors.New("strategy: request has no client")
	}
	if p.Act != nil && p.Act.Subject == "" || p.MayAct != nil && p.MayAct.Subject == "" {
		return Minted{}, errors.New("strategy: an actor without sub")
	}
	act, fromGrant, err := transcribed(sess)
	if err != nil {
		return Minted{}, err
	}
	if act != nil {
		if p.Act != nil {
			return Minted{}, errors.New("strategy: the session transcribes an act claim and the policy sets one")
		}
		p.Act = act
	}
	key, err := j.keys.SigningKey(ctx, p.SigningAlg)
	if err != nil {
		return Minted{}, fmt.Errorf("strategy: signing key: %w", err)
	}

	now := j.now().Unix()
	c := claims{
		Iss:      j.issuer,
		Sub:      sess.Subject,
		Aud:      p.Audience,
		Exp:      now + ExpiresIn(p.TTL),
		Iat:      now,
		Jti:      newJTI(),
		ClientID: client.GetID(),
		Scope:    strings.Join(p.Scopes, " "),
		ACR:      sess.ACR,
		AMR:      sess.AMR,
		Act:      p.Act,
		MayAct:   p.MayAct,
	}
	if p.JKT != "" {
		c.Cnf = &cnf{JKT: p.JKT}
	}
	if c.Sub == "" {
		c.Sub = c.ClientID
	}
	if !sess.AuthTime.IsZero() {
		c.AuthTime = sess.AuthTime.Unix()
	}
	if !p.NotAfter.IsZero() && c.Exp > p.NotAfter.Unix() {
		c.Exp = p.NotAfter.Unix()
		if c.Exp <= now {
			return Minted{}, errors.New("strategy: NotAfter is not in the future")
		}
	}

	extra, err := j.mapClaims(ctx, requester, sess, &p, c.ClientID)
	if err != nil {
		return Minted{}, err
	}
	for name, v := range fromGrant {
		if _, dup := extra[name]; dup {
			return Minted{}, fmt.Errorf("strategy: claim %q is set by a claim mapper and transcribed from the grant", name)
		}
		if extra == nil {
			extra = make(map[string]any, len(fromGrant))
		}
		extra[name] = v
	}
	if v, ok := extra["may_act"]; ok {
		delete(extra, "may_act")
		if c.MayAct != nil {
			return Minted{}, errors.New("strategy: a claim mapper sets may_act, which the token already has")
		}
		if c.MayAct, err = actorOf(v); err != nil {
			return Minted{}, fmt.Errorf("strategy: a claim mapper sets %q that is not an actor: %w", "may_act", err)
		}
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return Minted{}, fmt.Errorf("strategy: encode claims: %w", err)
	}
	if len(extra) > 0 {
		more, err := json.Marshal(extra)
		if err != nil {
			return Minted{}, fmt.Errorf("strategy: encode mapped claims: %w", err)
		}
		// Both are JSON objects: splice the second's members into the first.
		payload = append(append(payload[:len(payload)-1], ','), more[1:]...)
	}

	token, err := key.sign(payload)
	if err != nil {
		return Minted{}, err
	}
	if p.Encryption != nil {
		if token, err = encrypt(token, p.Encryption); err != nil {
			return Minted{}, err
		}
	}
	if len(token) > MaxTokenSize {
		return Minted{}, fmt.Errorf("strategy: access token is %d bytes, more than %d", len(token), MaxTokenSize)
	}

	exp := time.Unix(c.Exp, 0)
	sess.SetExpiresAt(fosite.AccessToken, exp)
	sess.AccessToken = nil
	if p.Encryption != nil {
		// Only the resource server can read an encrypted token: the session keeps its claims,
		// for introspection. A signed token is its own record (VerifyAccessToken).
		sess.AccessToken = c.asMap(j.iss, extra)
	}
	return Minted{Token: token, Signature: AccessTokenSignature(token), IssuedAt: time.Unix(now, 0), ExpiresAt: exp,
		KeyID: key.ID, JTI: c.Jti}, nil
}

// ExpiresIn is the lifetime in whole seconds (rounded up) of a token minted with ttl: exp - iat,
// the token response's expires_in (https://www.rfc-editor.org/rfc/rfc6749#section-5.1).
func ExpiresIn(ttl time.Duration) int64 {
	return int64((ttl + time.Second - 1) / time.Second)
}

// asMap returns the claims as the map stored in the session: numbers are int64, amr a
// []string, and the mapped claims as the mappers returned them.
func (c *claims) asMap(iss any, extra map[string]any) map[string]any {
	m := make(map[string]any, 11+len(extra))
	for k, v := range extra {
		m[k] = v
	}
	var sub any = c.Sub
	clientID := sub // client_credentials: one boxed string for both
	if c.ClientID != c.Sub {
		clientID = c.ClientID
	}
	m["iss"], m["sub"], m["aud"] = iss, sub, c.Aud
	m["exp"], m["iat"], m["jti"] = c.Exp, c.Iat, c.Jti
	m["client_id"] = clientID
	if c.Scope != "" {
		m["scope"] = c.Scope
	}
	if c.AuthTime != 0 {
		m["auth_time"] = c.AuthTime
	}
	if c.ACR != "" {
		m["acr"] = c.ACR
	}
	if len(c.AMR) > 0 {
		m["amr"] = slices.Clone(c.AMR)
	}
	if c.Act != nil {
		m["act"] = c.Act.asMap()
	}
	if c.MayAct != nil {
		m["may_act"] = c.MayAct.asMap()
	}
	if c.Cnf != nil {
		m["cnf"] = map[string]any{"jkt": c.Cnf.JKT}
	}
	return m
}

// asMap is the actor as a session stores a claim object.
func (a *Actor) asMap() map[string]any {
	m := map[string]any{"sub": a.Subject}
	if a.Issuer != "" {
		m["iss"] = a.Issuer
	}
	if a.Act != nil {
		m["act"] = a.Act.asMap()
	}
	return m
}

// mapClaims runs the claim mappers and merges their output, refusing reserved claims and
// claims set twice.
func (j *JWT) mapClaims(ctx context.Context, requester fosite.Requester, sess *storage.Session, p *Policy, clientID string) (map[string]any, error) {
	if len(j.mappers) == 0 {
		return nil, nil
	}
	r := TokenRequest{
		ClientID: clientID,
		Subject:  sess.Subject,
		Audience: p.Audience,
		AuthTime: sess.AuthTime,
		ACR:      sess.ACR,
		user:     &userLoader{users: j.users},
	}
	if ar, ok := requester.(fosite.AccessRequester); ok && len(ar.GetGrantTypes()) > 0 {
		r.GrantType = ar.GetGrantTypes()[0]
	}
	var out map[string]any
	for i, m := range j.mappers {
		r.Scopes = slices.Clone(p.Scopes)
		r.Act = p.Act.Clone()
		r.AMR = slices.Clone(sess.AMR)
		r.Extra = copyExtra(sess.Extra)
		add, err := m.MapClaims(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("strategy: claim mapper %d: %w", i, err)
		}
		for name, v := range add {
			if IsReservedClaim(name) && name != "may_act" {
				return nil, fmt.Errorf("strategy: claim mapper %d sets the registered claim %q", i, name)
			}
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("strategy: claim mapper %d sets claim %q, already set by an earlier mapper", i, name)
			}
			if out == nil {
				out = make(map[string]any, len(add))
			}
			out[name] = v
		}
	}
	return out, nil
}

// actorOf reads a claim mapper's may_act: an Actor, or a JSON object with a string sub and
// optionally a string iss.
func actorOf(v any) (*Actor, error) {
	var a *Actor
	switch t := v.(type) {
	case Actor:
		a = &t
	case *Actor:
		a = t.Clone()
	case map[string]any:
		a = &Actor{}
		for k, e := range t {
			s, ok := e.(string)
			switch {
			case k == "sub" && ok:
				a.Subject = s
			case k == "iss" && ok:
				a.Issuer = s
			default:
				return nil, fmt.Errorf("member %q is not a string sub or iss", k)
			}
		}
	default:
		return nil, fmt.Errorf("%T is not an actor object", v)
	}
	if a == nil || a.Subject == "" || a.Act != nil {
		return nil, errors.New("want an object with a sub (and no nested act)")
	}
	return a, nil
}

// newJTI returns 128 random bits, base64url-encoded.
func newJTI() string {
	var b [16]byte
	var s [22]byte         // base64.RawURLEncoding.EncodedLen(16)
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+)
	base64.RawURLEncoding.Encode(s[:], b[:])
	return string(s[:])
}

// encryptionAlgs are the key-management algorithms allowed for encrypting access tokens to a
// resource server: RSA-OAEP and ECDH-ES variants; never RSA1_5 or shared secrets.
var encryptionAlgs = []jose.KeyAlgorithm{
	jose.RSA_OAEP_256, jose.RSA_OAEP,
	jose.ECDH_ES_A256KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A128KW, jose.ECDH_ES,
}

// encrypt wraps the signed token in a compact JWE (a nested JWT,
// https://www.rfc-editor.org/rfc/rfc7519#section-11.2) to the resource server's public key.
func encrypt(token string, key *jose.JSONWebKey) (string, error) {
	if !key.IsPublic() {
		return "", errors.New("strategy: encryption key must be a public key")
	}
	alg := jose.KeyAlgorithm(key.Algorithm)
	if alg == "" {
		switch key.Key.(type) {
		case *rsa.PublicKey:
			alg = jose.RSA_OAEP_256
		case *ecdsa.PublicKey:
			alg = jose.ECDH_ES_A256KW
		default:
			return "", fmt.Errorf("strategy: cannot encrypt to a %T key", key.Key)
		}
	}
	if !slices.Contains(encryptionAlgs, alg) {
		return "", fmt.Errorf("strategy: unsupported encryption algorithm %q", alg)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: alg, Key: key.Key, KeyID: key.KeyID},
		(&jose.EncrypterOptions{}).WithContentType(TokenType))
	if err != nil {
		return "", fmt.Errorf("strategy: encrypter: %w", err)
	}
	jwe, err := enc.Encrypt([]byte(token))
	if err != nil {
		return "", fmt.Errorf("strategy: encrypt token: %w", err)
	}
	out, err := jwe.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("strategy: serialize encrypted token: %w", err)
	}
	return out, nil
}

// AccessTokenSignature returns the storage key of a token: its last dot-separated segment (the
// JWS signature, or the JWE authentication tag), or "" for a string that is not a token.
func AccessTokenSignature(token string) string {
	if len(token) > MaxTokenSize {
		return ""
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return ""
	}
	return token[i+1:]
}

// AccessTokenSignature implements oauth2.AccessTokenStrategy; see the function
// [AccessTokenSignature].
func (j *JWT) AccessTokenSignature(_ context.Context, token string) string {
	return AccessTokenSignature(token)
}

// ValidateAccessToken implements oauth2.AccessTokenStrategy for tokens this strategy minted
// (fosite calls it at introspection, after finding the token's session by signature). A
// signed token is parsed with the asymmetric-algorithm allow-list, its key found by kid among
// [KeySource.PublicKeys], its signature, typ "at+jwt", iss and exp checked. An encrypted token
// (five segments) cannot be decrypted here; its stored session's expiry is checked instead.
// Errors wrap fosite.ErrInvalidTokenFormat, fosite.ErrTokenSignatureMismatch or
// fosite.ErrTokenExpired.
func (j *JWT) ValidateAccessToken(ctx context.Context, requester fosite.Requester, token string) error {
	if strings.Count(token, ".") == 4 {
		if requester == nil || requester.GetSession() == nil {
			return fosite.ErrInvalidTokenFormat.WithDebug("encrypted token without a session")
		}
		exp := requester.GetSession().GetExpiresAt(fosite.AccessToken)
		if exp.IsZero() || !j.now().Before(exp) {
			return fosite.ErrTokenExpired.WithHintf("Access token expired at '%s'.", exp)
		}
		return nil
	}
	_, err := j.VerifyAccessToken(ctx, token)
	return err
}

// VerifyAccessToken checks a signed (three-part) access token of this issuer — algorithm
// allow-list, typ at+jwt, a published key matching kid and alg, signature, iss and exp — and
// returns its claims. Encrypted tokens cannot be checked here: the resource server holds the
// decryption key. Errors are fosite's (invalid token format, signature mismatch, expired).
func (j *JWT) VerifyAccessToken(ctx context.Context, token string) (map[string]any, error) {
	if len(token) > MaxTokenSize {
		return nil, fosite.ErrInvalidTokenFormat.WithDebug("token too large")
	}
	now := j.now()
	if strings.Count(token, ".") != 2 {
		return nil, fosite.ErrInvalidTokenFormat.WithDebug("not a compact JWS")
	}
	// Presented from outside: one encoding per signed content, no member given twice.
	hb, pb, err := strict.Compact(token)
	if err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err).WithDebug(err.Error())
	}
	if err := strict.Check(hb, nil); err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err).WithDebug(err.Error())
	}
	if err := strict.Check(pb, nil); err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err).WithDebug(err.Error())
	}

	jws, err := jose.ParseSignedCompact(token, algorithms)
	if err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err).WithDebug(err.Error())
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isATJWT(typ) {
		return nil, fosite.ErrInvalidTokenFormat.WithDebugf("typ is %q, want %q", typ, TokenType)
	}
	keys, err := j.keys.PublicKeys(ctx)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	var pub *jose.JSONWebKey
	for i := range keys {
		if keys[i].KeyID == h.KeyID && keys[i].Algorithm == h.Algorithm {
			pub = &keys[i]
			break
		}
	}
	if pub == nil {
		return nil, fosite.ErrTokenSignatureMismatch.WithDebugf("no published key %q for %s", h.KeyID, h.Algorithm)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, fosite.ErrTokenSignatureMismatch.WithWrap(err).WithDebug(err.Error())
	}
	// Numbers stay json.Number, so that an application claim (a large id) reads back exactly.
	var c map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithWrap(err).WithDebug(err.Error())
	}
	if iss, _ := c["iss"].(string); iss != j.issuer {
		return nil, fosite.ErrTokenSignatureMismatch.WithDebug("token from another issuer")
	}
	expn, _ := c["exp"].(json.Number)
	expi, err := expn.Int64()
	if err != nil {
		return nil, fosite.ErrInvalidTokenFormat.WithDebug("token has no integer exp")
	}
	if exp := time.Unix(expi, 0); !now.Before(exp) {
		return nil, fosite.ErrTokenExpired.WithHintf("Access token expired at '%s'.", exp.UTC())
	}
	return c, nil
}

// isATJWT reports whether typ names the at+jwt media type
// (https://www.rfc-editor.org/rfc/rfc9068#section-4: "at+jwt" or "application/at+jwt",
// case-insensitively).
func isATJWT(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == TokenType || typ == "application/"+TokenType
}

// RefreshTokenSignature implements oauth2.RefreshTokenStrategy through the HMAC strategy.
func (j *JWT) RefreshTokenSignature(ctx context.Context, token string) string {
	return j.hmac.RefreshTokenSignature(ctx, token)
}

// GenerateRefreshToken implements oauth2.RefreshTokenStrategy through the HMAC strategy.
func (j *JWT) GenerateRefreshToken(ctx context.Context, requester fosite.Requester) (string, string, error) {
	return j.hmac.GenerateRefreshToken(ctx, requester)
}

// ValidateRefreshToken implements oauth2.RefreshTokenStrategy through the HMAC strategy.
func (j *JWT) ValidateRefreshToken(ctx context.Context, requester fosite.Requester, token string) error {
	return j.hmac.ValidateRefreshToken(ctx, requester, token)
}

// AuthorizeCodeSignature implements oauth2.AuthorizeCodeStrategy through the HMAC strategy.
func (j *JWT) AuthorizeCodeSignature(ctx context.Context, token string) string {
	return j.hmac.AuthorizeCodeSignature(ctx, token)
}

// GenerateAuthorizeCode implements oauth2.AuthorizeCodeStrategy through the HMAC strategy.
func (j *JWT) GenerateAuthorizeCode(ctx context.Context, requester fosite.Requester) (string, string, error) {
	return j.hmac.GenerateAuthorizeCode(ctx, requester)
}

// ValidateAuthorizeCode implements oauth2.AuthorizeCodeStrategy through the HMAC strategy.
func (j *JWT) ValidateAuthorizeCode(ctx context.Context, requester fosite.Requester, token string) error {
	return j.hmac.ValidateAuthorizeCode(ctx, requester, token)
}
