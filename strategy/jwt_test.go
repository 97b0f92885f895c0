package strategy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

func TestGenerateAccessTokenClaimsAndHeader(t *testing.T) {
	clock := newClock()
	key := newTestKey(t, "k1", jose.ES256)
	keys, err := StaticKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	j := newStrategy(t, keys, clock.Now)
	authTime := clock.Now().Add(-time.Hour)
	sess := &storage.Session{Subject: "alice", AuthTime: authTime, ACR: "urn:mace:incommon:iap:silver", AMR: []string{"pwd", "otp"}}
	req := newRequest(sess, "authorization_code")

	token, sig, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), req)
	if err != nil {
		t.Fatal(err)
	}
	header, claims := decodeJWS(t, token)
	wantHeader := map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
	if !reflect.DeepEqual(header, wantHeader) {
		t.Errorf("header = %v, want %v", header, wantHeader)
	}
	now := clock.Now().Unix()
	jti, _ := claims["jti"].(string)
	want := map[string]any{
		"iss":       "https://as.example/oauth2",
		"sub":       "alice",
		"aud":       "https://orders.example.com/",
		"exp":       json.Number(fmt.Sprint(now + 600)),
		"iat":       json.Number(fmt.Sprint(now)),
		"jti":       jti,
		"client_id": "billing",
		"scope":     "orders:read orders:write",
		"auth_time": json.Number(fmt.Sprint(authTime.Unix())),
		"acr":       "urn:mace:incommon:iap:silver",
		"amr":       []any{"pwd", "otp"},
	}
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("claims =\n%v\nwant\n%v", claims, want)
	}
	if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) != 16 {
		t.Errorf("jti %q is not 128 bits of base64url: %v", jti, err)
	}
	if sig != token[strings.LastIndexByte(token, '.')+1:] || sig != j.AccessTokenSignature(context.Background(), token) {
		t.Errorf("signature %q is not the token's last segment", sig)
	}
	if got := sess.GetExpiresAt(fosite.AccessToken); !got.Equal(time.Unix(now+600, 0)) {
		t.Errorf("session access-token expiry = %v, want %v", got, time.Unix(now+600, 0))
	}
	// A signed token is its own record: the session keeps no copy of its claims, and
	// VerifyAccessToken recovers exactly them (numbers as json.Number).
	if sess.AccessToken != nil {
		t.Errorf("session of a signed token holds claims: %v", sess.AccessToken)
	}
	verified, err := j.VerifyAccessToken(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(verified, claims) {
		t.Errorf("VerifyAccessToken =\n%v\ntoken claims\n%v", verified, claims)
	}
	// An independent go-jose check of the signature with the published key.
	pub, _ := keys.PublicKeys(context.Background())
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(&pub[0]); err != nil {
		t.Errorf("published key does not verify the token: %v", err)
	}
}

func TestGenerateAccessTokenFreshIatAndJTI(t *testing.T) {
	clock := newClock()
	keys, _ := StaticKeys(newTestKey(t, "", jose.EdDSA))
	j := newStrategy(t, keys, clock.Now)
	sess := &storage.Session{Subject: "alice"}
	req := newRequest(sess, "refresh_token")
	ctx := withPolicy(context.Background(), testPolicy)

	seen := map[string]bool{}
	var lastIat int64
	for i := range 3 {
		token, _, err := j.GenerateAccessToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, c := decodeJWS(t, token)
		iat, _ := c["iat"].(json.Number).Int64()
		exp, _ := c["exp"].(json.Number).Int64()
		if iat != clock.Now().Unix() || exp != iat+600 {
			t.Errorf("call %d: iat %d exp %d, want iat %d exp iat+600", i, iat, exp, clock.Now().Unix())
		}
		if i > 0 && iat <= lastIat {
			t.Errorf("call %d: iat %d not fresh (previous %d)", i, iat, lastIat)
		}
		jti := c["jti"].(string)
		if seen[jti] {
			t.Errorf("call %d: jti %q repeated", i, jti)
		}
		seen[jti] = true
		if v, err := j.VerifyAccessToken(ctx, token); err != nil || v["jti"] != jti {
			t.Errorf("call %d: VerifyAccessToken = %v, %v; want jti %q", i, v, err, jti)
		}
		lastIat = iat
		clock.Advance(5 * time.Second)
	}
}

func TestGenerateAccessTokenSubjectAndScope(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	j := newStrategy(t, keys, nil)
	tests := []struct {
		name      string
		subject   string
		scopes    []string
		wantSub   string
		wantScope any
	}{
		{"client credentials: sub is the client", "", []string{"orders:read"}, "billing", "orders:read"},
		{"user subject", "alice", []string{"a", "b"}, "alice", "a b"},
		{"no scopes: claim omitted", "alice", nil, "alice", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy
			p.Scopes = tt.scopes
			sess := &storage.Session{Subject: tt.subject}
			token, _, err := j.GenerateAccessToken(withPolicy(context.Background(), p), newRequest(sess, "client_credentials"))
			if err != nil {
				t.Fatal(err)
			}
			_, c := decodeJWS(t, token)
			if c["sub"] != tt.wantSub {
				t.Errorf("sub = %v, want %v", c["sub"], tt.wantSub)
			}
			if c["scope"] != tt.wantScope {
				t.Errorf("scope = %v, want %v", c["scope"], tt.wantScope)
			}
			if _, ok := c["auth_time"]; ok {
				t.Error("auth_time present without a user authentication")
			}
			for _, name := range []string{"acr", "amr"} {
				if _, ok := c[name]; ok {
					t.Errorf("%s present without a user authentication", name)
				}
			}
		})
	}
}

func TestGenerateAccessTokenErrors(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	j := newStrategy(t, keys, nil)
	noClient := newRequest(&storage.Session{}, "client_credentials")
	noClient.Client = &storage.Client{}
	tests := []struct {
		name    string
		ctx     context.Context
		req     fosite.Requester
		wantErr error
		wantMsg string
	}{
		{"no policy", context.Background(), newRequest(&storage.Session{}, "client_credentials"), ErrNoPolicy, ""},
		{"empty audience", withPolicy(context.Background(), Policy{TTL: time.Minute}), newRequest(&storage.Session{}, "client_credentials"), ErrNoPolicy, "Audience"},
		{"zero ttl", withPolicy(context.Background(), Policy{Audience: "https://a/"}), newRequest(&storage.Session{}, "client_credentials"), ErrNoPolicy, "TTL"},
		{"negative ttl", withPolicy(context.Background(), Policy{Audience: "https://a/", TTL: -time.Second}), newRequest(&storage.Session{}, "client_credentials"), ErrNoPolicy, "TTL"},
		{"foreign session", withPolicy(context.Background(), testPolicy), fosite.NewAccessRequest(&fosite.DefaultSession{}), nil, "*storage.Session"},
		{"no client", withPolicy(context.Background(), testPolicy), noClient, nil, "no client"},
		{"no key for alg", withPolicy(context.Background(), Policy{Audience: "https://a/", TTL: time.Minute, SigningAlg: "ES384"}), newRequest(&storage.Session{}, "client_credentials"), ErrNoSigningKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, sig, err := j.GenerateAccessToken(tt.ctx, tt.req)
			if err == nil {
				t.Fatalf("minted %q without error", token)
			}
			if token != "" || sig != "" {
				t.Errorf("returned token %q / signature %q with error", token, sig)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "strategy: ") {
				t.Errorf("error %q, want it to mention %q with the package prefix", err, tt.wantMsg)
			}
		})
	}
}

func TestClaimMappers(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	authTime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	newSess := func() *storage.Session {
		return &storage.Session{Subject: "alice", AuthTime: authTime, ACR: "1", AMR: []string{"pwd"},
			Extra: map[string]any{"tenant": "t1", "nested": map[string]any{"k": []any{"v"}}}}
	}

	t.Run("adds claims and sees a read-only copy", func(t *testing.T) {
		var got TokenRequest
		m1 := ClaimMapperFunc(func(_ context.Context, r TokenRequest) (map[string]any, error) {
			got = r
			r.Extra["tenant"] = "changed"
			r.Extra["nested"].(map[string]any)["k"].([]any)[0] = "changed"
			r.Scopes[0] = "changed"
			r.AMR[0] = "changed"
			return map[string]any{"roles": []string{"admin"}, "tenant": "t1"}, nil
		})
		m2 := ClaimMapperFunc(func(_ context.Context, r TokenRequest) (map[string]any, error) {
			if r.Scopes[0] != "orders:read" || r.Extra["tenant"] != "t1" {
				t.Errorf("second mapper sees the first one's changes: %v %v", r.Scopes, r.Extra)
			}
			return map[string]any{"entitlements": []any{"e1"}}, nil
		})
		j := newStrategy(t, keys, nil, m1, m2)
		sess := newSess()
		token, _, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), newRequest(sess, "authorization_code"))
		if err != nil {
			t.Fatal(err)
		}
		_, c := decodeJWS(t, token)
		if !reflect.DeepEqual(c["roles"], []any{"admin"}) || c["tenant"] != "t1" || !reflect.DeepEqual(c["entitlements"], []any{"e1"}) {
			t.Errorf("mapped claims missing: %v", c)
		}
		if c["sub"] != "alice" || c["iss"] != "https://as.example/oauth2" {
			t.Errorf("registered claims disturbed: %v", c)
		}
		if v, err := j.VerifyAccessToken(context.Background(), token); err != nil || !reflect.DeepEqual(v["roles"], []any{"admin"}) || v["tenant"] != "t1" {
			t.Errorf("VerifyAccessToken lacks the mapped claims: %v, %v", v, err)
		}
		want := TokenRequest{ClientID: "billing", Subject: "alice", GrantType: "authorization_code",
			Audience: testPolicy.Audience, Scopes: []string{"changed", "orders:write"}, AuthTime: authTime,
			ACR: "1", AMR: []string{"changed"}, Extra: map[string]any{"tenant": "changed", "nested": map[string]any{"k": []any{"changed"}}}}
		got.user = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("TokenRequest =\n%+v\nwant\n%+v", got, want)
		}
		if fresh := newSess(); !reflect.DeepEqual(sess.Extra, fresh.Extra) || !reflect.DeepEqual(sess.AMR, fresh.AMR) {
			t.Errorf("mapper changed the session: %v %v", sess.Extra, sess.AMR)
		}
		if testPolicy.Scopes[0] != "orders:read" {
			t.Error("mapper changed the policy's scopes")
		}
	})

	for _, name := range ReservedClaims() {
		t.Run("reserved "+name, func(t *testing.T) {
			j := newStrategy(t, keys, nil, ClaimMapperFunc(func(context.Context, TokenRequest) (map[string]any, error) {
				return map[string]any{"ok": 1, name: "forged"}, nil
			}))
			sess := newSess()
			_, _, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), newRequest(sess, "authorization_code"))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Fatalf("error %v, want one naming %q", err, name)
			}
			if sess.AccessToken != nil {
				t.Error("session changed by a failed mint")
			}
		})
	}

	errBoom := errors.New("boom")
	failing := []struct {
		name    string
		mappers []ClaimMapper
		want    string
	}{
		{"mapper error", []ClaimMapper{ClaimMapperFunc(func(context.Context, TokenRequest) (map[string]any, error) {
			return nil, errBoom
		})}, "boom"},
		{"set twice", []ClaimMapper{
			ClaimMapperFunc(func(context.Context, TokenRequest) (map[string]any, error) { return map[string]any{"roles": 1}, nil }),
			ClaimMapperFunc(func(context.Context, TokenRequest) (map[string]any, error) { return map[string]any{"roles": 2}, nil }),
		}, `"roles", already set`},
		{"not JSON", []ClaimMapper{ClaimMapperFunc(func(context.Context, TokenRequest) (map[string]any, error) {
			return map[string]any{"ch": make(chan int)}, nil
		})}, "encode mapped claims"},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			j := newStrategy(t, keys, nil, tt.mappers...)
			_, _, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), newRequest(newSess(), "authorization_code"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if tt.name == "mapper error" && !errors.Is(err, errBoom) {
				t.Errorf("mapper error not wrapped: %v", err)
			}
		})
	}
}

func TestTokenRequestUser(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	type user struct{ Roles []string }
	var loads atomic.Int64
	users := UsersFunc(func(_ context.Context, sub string) (any, error) {
		loads.Add(1)
		if sub == "ghost" {
			return nil, errors.New("no such user")
		}
		return &user{Roles: []string{"role-of-" + sub}}, nil
	})
	rolesMapper := ClaimMapperFunc(func(ctx context.Context, r TokenRequest) (map[string]any, error) {
		u, err := r.User(ctx)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, nil
		}
		return map[string]any{"roles": u.(*user).Roles}, nil
	})
	groupsMapper := ClaimMapperFunc(func(ctx context.Context, r TokenRequest) (map[string]any, error) {
		u, err := r.User(ctx)
		if err != nil || u == nil {
			return nil, err
		}
		return map[string]any{"groups": u.(*user).Roles}, nil
	})
	tests := []struct {
		name      string
		users     Users
		subject   string
		wantRoles any
		wantLoads int64
		wantErr   string
	}{
		{"loads once for two mappers", users, "alice", []any{"role-of-alice"}, 1, ""},
		{"no subject: no user, no load", users, "", nil, 0, ""},
		{"loader error", users, "ghost", nil, 1, "load user: no such user"},
		{"no Users configured", nil, "alice", nil, 0, ErrNoUsers.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loads.Store(0)
			j, err := NewJWT(JWTConfig{Issuer: "https://as.example", Keys: keys, HMAC: newHMAC(), Users: tt.users, Policies: ctxPolicies,
				ClaimMappers: []ClaimMapper{rolesMapper, groupsMapper}})
			if err != nil {
				t.Fatal(err)
			}
			token, _, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), newRequest(&storage.Session{Subject: tt.subject}, "authorization_code"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				_, c := decodeJWS(t, token)
				if !reflect.DeepEqual(c["roles"], tt.wantRoles) {
					t.Errorf("roles = %v, want %v", c["roles"], tt.wantRoles)
				}
			}
			if got := loads.Load(); got != tt.wantLoads {
				t.Errorf("%d user loads, want %d", got, tt.wantLoads)
			}
		})
	}
}

func TestEveryAlgorithmSignsAndVerifies(t *testing.T) {
	for _, alg := range Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			clock := newClock()
			key := newTestKey(t, "", alg)
			otherAlg := jose.EdDSA // a key of another algorithm published beside it
			if alg == jose.EdDSA {
				otherAlg = jose.ES256
			}
			other := newTestKey(t, "", otherAlg)
			keys, err := StaticKeys(other, key)
			if err != nil {
				t.Fatal(err)
			}
			j := newStrategy(t, keys, clock.Now)
			p := testPolicy
			p.SigningAlg = string(alg)
			sess := &storage.Session{}
			token, _, err := j.GenerateAccessToken(withPolicy(context.Background(), p), newRequest(sess, "client_credentials"))
			if err != nil {
				t.Fatal(err)
			}
			h, _ := decodeJWS(t, token)
			if h["alg"] != string(alg) || h["kid"] != key.ID {
				t.Errorf("header %v, want alg %s kid %s", h, alg, key.ID)
			}
			if err := j.ValidateAccessToken(context.Background(), newRequest(sess, "client_credentials"), token); err != nil {
				t.Errorf("own token does not validate: %v", err)
			}
			jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{alg})
			if err != nil {
				t.Fatal(err)
			}
			pub := key.Public()
			if _, err := jws.Verify(&pub); err != nil {
				t.Errorf("go-jose does not verify: %v", err)
			}
			if pub.Use != "sig" || pub.Algorithm != string(alg) || !pub.IsPublic() || pub.KeyID != key.ID {
				t.Errorf("public JWK %+v lacks use/alg/kid or is private", pub)
			}
		})
	}
}

func TestValidateAccessToken(t *testing.T) {
	clock := newClock()
	key := newTestKey(t, "k1", jose.ES256)
	keys, _ := StaticKeys(key)
	j := newStrategy(t, keys, clock.Now)
	ctx := withPolicy(context.Background(), testPolicy)
	sess := &storage.Session{Subject: "alice"}
	req := newRequest(sess, "client_credentials")
	token, _, err := j.GenerateAccessToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	_, claims := decodeJWS(t, token)
	payload, _ := json.Marshal(claims)

	signWith := func(alg jose.SignatureAlgorithm, k any, typ string, payload []byte) string {
		opts := &jose.SignerOptions{}
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, opts)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}
	kidKey := jose.JSONWebKey{Key: key.Signer, KeyID: "k1"}
	segs := strings.SplitN(token, ".", 3)
	b64 := base64.RawURLEncoding.EncodeToString
	otherIss := maps.Clone(claims)
	otherIss["iss"] = "https://evil.example"
	otherIssPayload, _ := json.Marshal(otherIss)

	tests := []struct {
		name  string
		token string
		want  *fosite.RFC6749Error
	}{
		{"valid", token, nil},
		{"application/at+jwt typ", signWith(jose.ES256, kidKey, "application/at+jwt", payload), nil},
		{"JWT typ (an ID token)", signWith(jose.ES256, kidKey, "JWT", payload), fosite.ErrInvalidTokenFormat},
		{"no typ", signWith(jose.ES256, kidKey, "", payload), fosite.ErrInvalidTokenFormat},
		{"HS256", signWith(jose.HS256, jose.JSONWebKey{Key: make([]byte, 32), KeyID: "k1"}, "at+jwt", payload), fosite.ErrInvalidTokenFormat},
		{"alg none", b64([]byte(`{"alg":"none","kid":"k1","typ":"at+jwt"}`)) + "." + segs[1] + ".", fosite.ErrInvalidTokenFormat},
		{"unknown kid", signWith(jose.ES256, jose.JSONWebKey{Key: key.Signer, KeyID: "k2"}, "at+jwt", payload), fosite.ErrTokenSignatureMismatch},
		{"other key, same kid", signWith(jose.ES256, jose.JSONWebKey{Key: newPrivateKey(t, jose.ES256), KeyID: "k1"}, "at+jwt", payload), fosite.ErrTokenSignatureMismatch},
		{"tampered payload", segs[0] + "." + b64([]byte(strings.Replace(string(payload), "alice", "admin", 1))) + "." + segs[2], fosite.ErrTokenSignatureMismatch},
		{"other issuer", signWith(jose.ES256, kidKey, "at+jwt", otherIssPayload), fosite.ErrTokenSignatureMismatch},
		{"no exp", signWith(jose.ES256, kidKey, "at+jwt", []byte(`{"iss":"https://as.example/oauth2"}`)), fosite.ErrInvalidTokenFormat},
		{"garbage", "not a token", fosite.ErrInvalidTokenFormat},
		{"two dots, bad base64", "!!.??.##", fosite.ErrInvalidTokenFormat},
		{"empty", "", fosite.ErrInvalidTokenFormat},
		{"too large", strings.Repeat("a", MaxTokenSize) + ".b.c", fosite.ErrInvalidTokenFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := j.ValidateAccessToken(context.Background(), req, tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		c := &fakeClock{t: clock.Now()}
		c.Advance(testPolicy.TTL)
		j2 := newStrategy(t, keys, c.Now)
		if err := j2.ValidateAccessToken(context.Background(), req, token); !errors.Is(err, fosite.ErrTokenExpired) {
			t.Fatalf("error %v, want ErrTokenExpired", err)
		}
		c.Advance(-time.Second)
		if err := j2.ValidateAccessToken(context.Background(), req, token); err != nil {
			t.Fatalf("one second before exp: %v", err)
		}
	})
}

func TestEncryptedAccessToken(t *testing.T) {
	clock := newClock()
	keys, _ := StaticKeys(newTestKey(t, "sig1", jose.ES256))
	j := newStrategy(t, keys, clock.Now)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv := rsaKey()
	tests := []struct {
		name    string
		priv    any
		enc     *jose.JSONWebKey
		wantAlg jose.KeyAlgorithm
		wantErr string
	}{
		{"RSA", rsaPriv, &jose.JSONWebKey{Key: &rsaPriv.PublicKey, KeyID: "rs-enc"}, jose.RSA_OAEP_256, ""},
		{"EC", ecKey, &jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "rs-enc"}, jose.ECDH_ES_A256KW, ""},
		{"EC direct, named by the key", ecKey, &jose.JSONWebKey{Key: &ecKey.PublicKey, Algorithm: "ECDH-ES"}, jose.ECDH_ES, ""},
		{"RSA1_5 refused", nil, &jose.JSONWebKey{Key: &rsaPriv.PublicKey, Algorithm: "RSA1_5"}, "", "unsupported encryption algorithm"},
		{"private key refused", nil, &jose.JSONWebKey{Key: ecKey}, "", "public key"},
		{"symmetric key refused", nil, &jose.JSONWebKey{Key: make([]byte, 32)}, "", "public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy
			p.Encryption = tt.enc
			sess := &storage.Session{}
			req := newRequest(sess, "client_credentials")
			token, sig, err := j.GenerateAccessToken(withPolicy(context.Background(), p), req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(token, ".") != 4 || sig != token[strings.LastIndexByte(token, '.')+1:] {
				t.Fatalf("not a compact JWE or wrong signature: %q", sig)
			}
			jwe, err := jose.ParseEncryptedCompact(token, []jose.KeyAlgorithm{tt.wantAlg}, []jose.ContentEncryption{jose.A256GCM})
			if err != nil {
				t.Fatal(err)
			}
			if jwe.Header.ExtraHeaders[jose.HeaderContentType] != "at+jwt" || jwe.Header.KeyID != tt.enc.KeyID {
				t.Errorf("JWE header %+v: want cty at+jwt and kid %q", jwe.Header, tt.enc.KeyID)
			}
			inner, err := jwe.Decrypt(tt.priv)
			if err != nil {
				t.Fatal(err)
			}
			h, c := decodeJWS(t, string(inner))
			if h["typ"] != "at+jwt" || c["aud"] != testPolicy.Audience {
				t.Errorf("inner token header %v claims %v", h, c)
			}
			// The server cannot read the token back: its session keeps the claims.
			if sess.AccessToken["jti"] != c["jti"] || sess.AccessToken["aud"] != testPolicy.Audience {
				t.Errorf("session claims %v, want the encrypted token's %v", sess.AccessToken, c)
			}
			if err := j.ValidateAccessToken(context.Background(), req, string(inner)); err != nil {
				t.Errorf("inner token does not validate: %v", err)
			}
			// The encrypted token itself validates against the stored session's expiry.
			if err := j.ValidateAccessToken(context.Background(), req, token); err != nil {
				t.Errorf("encrypted token with a live session: %v", err)
			}
			clock.Advance(p.TTL)
			defer clock.Advance(-p.TTL)
			if err := j.ValidateAccessToken(context.Background(), req, token); !errors.Is(err, fosite.ErrTokenExpired) {
				t.Errorf("encrypted token after expiry: %v, want ErrTokenExpired", err)
			}
		})
	}
}

func TestAccessTokenSignature(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a.b.c", "c"},
		{"a.b.c.d.e", "e"},
		{"abc", ""},
		{"", ""},
		{"a.b.", ""},
		{strings.Repeat("x", MaxTokenSize+1) + ".sig", ""},
	}
	for _, tt := range tests {
		if got := AccessTokenSignature(tt.in); got != tt.want {
			t.Errorf("AccessTokenSignature(%.20q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHMACDelegation(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	j := newStrategy(t, keys, nil)
	ctx := context.Background()
	req := newRequest(&storage.Session{}, "authorization_code")
	rt, rtSig, err := j.GenerateRefreshToken(ctx, req)
	if err != nil || rtSig == "" || j.RefreshTokenSignature(ctx, rt) != rtSig {
		t.Fatalf("refresh token %q sig %q err %v", rt, rtSig, err)
	}
	if err := j.ValidateRefreshToken(ctx, req, rt); err != nil {
		t.Errorf("refresh token: %v", err)
	}
	if err := j.ValidateRefreshToken(ctx, req, rt+"x"); err == nil {
		t.Error("tampered refresh token validates")
	}
	code, codeSig, err := j.GenerateAuthorizeCode(ctx, req)
	if err != nil || j.AuthorizeCodeSignature(ctx, code) != codeSig {
		t.Fatalf("code %q sig %q err %v", code, codeSig, err)
	}
	if err := j.ValidateAuthorizeCode(ctx, req, code); err != nil {
		t.Errorf("code: %v", err)
	}
}

func TestNewJWTConfig(t *testing.T) {
	keys, _ := StaticKeys(newTestKey(t, "", jose.ES256))
	tests := []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"no issuer", JWTConfig{Keys: keys, HMAC: newHMAC()}, "Issuer"},
		{"no keys", JWTConfig{Issuer: "https://as", HMAC: newHMAC()}, "Keys"},
		{"no hmac", JWTConfig{Issuer: "https://as", Keys: keys}, "HMAC"},
		{"nil mapper", JWTConfig{Issuer: "https://as", Keys: keys, HMAC: newHMAC(), ClaimMappers: []ClaimMapper{nil}}, "ClaimMappers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewJWT(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReservedClaims(t *testing.T) {
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "auth_time", "acr", "amr", "cnf", "act", "may_act"} {
		if !IsReservedClaim(name) {
			t.Errorf("%q not reserved", name)
		}
	}
	for _, name := range []string{"roles", "groups", "entitlements", "tenant", ""} {
		if IsReservedClaim(name) {
			t.Errorf("%q reserved", name)
		}
	}
	r := ReservedClaims()
	r[0] = "mutated"
	if !IsReservedClaim("iss") || slices.Contains(ReservedClaims(), "mutated") {
		t.Error("ReservedClaims returns shared state")
	}
}
