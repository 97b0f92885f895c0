package storagetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

func testJWKS(t *testing.T) *jose.JSONWebKeySet {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
}

// sameClient compares clients ignoring the store-maintained timestamps.
func sameClient(a, b *storage.Client) bool {
	a, b = a.Clone(), b.Clone()
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	ja, jb := a.JWKS, b.JWKS
	a.JWKS, b.JWKS = nil, nil
	if !reflect.DeepEqual(normClient(a), normClient(b)) {
		return false
	}
	return sameKeySet(ja, jb)
}

// normClient maps empty slices to nil: a store need not tell them apart.
func normClient(c *storage.Client) *storage.Client {
	for _, p := range []*[]string{&c.RedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Resources, &c.Serves} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	if len(c.RotatedSecretHashes) == 0 {
		c.RotatedSecretHashes = nil
	}
	return c
}

func sameKeySet(a, b *jose.JSONWebKeySet) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	if len(a.Keys) != len(b.Keys) {
		return false
	}
	for i := range a.Keys {
		ka, kb := a.Keys[i], b.Keys[i]
		if ka.KeyID != kb.KeyID || ka.Algorithm != kb.Algorithm || ka.Use != kb.Use {
			return false
		}
		pa, _ := ka.Thumbprint(cryptoSHA256)
		pb, _ := kb.Thumbprint(cryptoSHA256)
		if !slices.Equal(pa, pb) || len(pa) == 0 {
			return false
		}
	}
	return true
}

func checkStamps(t *testing.T, what string, created, updated time.Time) {
	t.Helper()
	if created.IsZero() || updated.IsZero() || created.Location() != time.UTC || updated.Location() != time.UTC {
		t.Errorf("%s: CreatedAt %v, UpdatedAt %v: want both set, in UTC", what, created, updated)
	}
	if updated.Before(created) {
		t.Errorf("%s: UpdatedAt %v before CreatedAt %v", what, updated, created)
	}
}

func testClients(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.Client(ctx, "missing")
	wantNotFound(t, "Client(missing)", err)
	wantNotFound(t, "DeleteClient(missing)", s.DeleteClient(ctx, "missing"))

	c := &storage.Client{
		ID:                          "client-1",
		Name:                        "Orders",
		SecretHash:                  []byte{0, 1, 2, 0xff},
		RotatedSecretHashes:         [][]byte{{9, 9}, {8}},
		RedirectURIs:                []string{"https://a.example/cb", "https://b.example/cb"},
		GrantTypes:                  []string{"client_credentials"},
		ResponseTypes:               []string{"code"},
		Scopes:                      []string{"orders:read"},
		Resources:                   []string{"https://api.example/"},
		Serves:                      []string{"https://self.example/", "https://self.example/v2"},
		IntrospectAll:               true,
		Impersonate:                 true,
		DPoPBoundAccessTokens:       true,
		TokenEndpointAuthMethod:     storage.AuthMethodPrivateKeyJWT,
		TokenEndpointAuthSigningAlg: "ES256",
		JWKS:                        testJWKS(t),
		JWKSURI:                     "https://a.example/jwks",
	}
	must(t, "SaveClient", s.SaveClient(ctx, c))
	got, err := s.Client(ctx, "client-1")
	must(t, "Client", err)
	if !sameClient(got, c) {
		t.Errorf("Client = %+v, want %+v", got, c)
	}
	checkStamps(t, "Client", got.CreatedAt, got.UpdatedAt)
	if got.GetJSONWebKeys() == nil || len(got.GetJSONWebKeys().Keys) != 1 {
		t.Errorf("GetJSONWebKeys = %v, want one key", got.GetJSONWebKeys())
	}

	// Replace keeps CreatedAt.
	c2 := c.Clone()
	c2.Name, c2.Public, c2.SecretHash, c2.JWKS = "Orders v2", true, nil, nil
	must(t, "SaveClient(replace)", s.SaveClient(ctx, c2))
	got2, err := s.Client(ctx, "client-1")
	must(t, "Client", err)
	if !sameClient(got2, c2) {
		t.Errorf("replaced Client = %+v, want %+v", got2, c2)
	}
	if !got2.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("replace changed CreatedAt: %v -> %v", got.CreatedAt, got2.CreatedAt)
	}

	// IDs are exact: case and trailing spaces matter.
	for _, id := range []string{"Client-1", "client-1 ", "client-1\t"} {
		_, err := s.Client(ctx, id)
		wantNotFound(t, "Client("+id+")", err)
	}

	must(t, "DeleteClient", s.DeleteClient(ctx, "client-1"))
	_, err = s.Client(ctx, "client-1")
	wantNotFound(t, "Client after delete", err)
}

func testResourceServers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	_, err := s.ResourceServer(ctx, "https://missing.example/")
	wantNotFound(t, "ResourceServer(missing)", err)
	wantNotFound(t, "DeleteResourceServer(missing)", s.DeleteResourceServer(ctx, "https://missing.example/"))
	list, err := s.ResourceServers(ctx)
	must(t, "ResourceServers", err)
	if len(list) != 0 {
		t.Errorf("ResourceServers on empty store = %v", list)
	}

	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, "key", err)
	b := &storage.ResourceServer{
		Identifier: "https://b.example/", Name: "B", Scopes: []string{"b:read"},
		AccessTokenTTL: 5 * time.Minute, SigningAlg: "ES256",
		Encryption:   &jose.JSONWebKey{Key: &k.PublicKey, KeyID: "enc", Algorithm: "ECDH-ES", Use: "enc"},
		Default:      true,
		DPoPRequired: true,
	}
	a := &storage.ResourceServer{Identifier: "https://a.example/", Name: "A", Scopes: []string{"a:read", "a:write"}}
	must(t, "SaveResourceServer(b)", s.SaveResourceServer(ctx, b))
	must(t, "SaveResourceServer(a)", s.SaveResourceServer(ctx, a))

	got, err := s.ResourceServer(ctx, b.Identifier)
	must(t, "ResourceServer(b)", err)
	if got.Identifier != b.Identifier || got.Name != "B" || !slices.Equal(got.Scopes, b.Scopes) ||
		got.AccessTokenTTL != b.AccessTokenTTL || got.SigningAlg != "ES256" || !got.Default || !got.DPoPRequired {
		t.Errorf("ResourceServer(b) = %+v, want %+v", got, b)
	}
	if got.Encryption == nil || got.Encryption.KeyID != "enc" || !sameKeySet(
		&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*got.Encryption}}, &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{*b.Encryption}}) {
		t.Errorf("ResourceServer(b).Encryption = %+v", got.Encryption)
	}
	checkStamps(t, "ResourceServer", got.CreatedAt, got.UpdatedAt)
	_, err = s.ResourceServer(ctx, "https://B.example/")
	wantNotFound(t, "ResourceServer(other case)", err)

	list, err = s.ResourceServers(ctx)
	must(t, "ResourceServers", err)
	if len(list) != 2 || list[0].Identifier != a.Identifier || list[1].Identifier != b.Identifier {
		t.Fatalf("ResourceServers = %+v, want a then b", list)
	}

	// A new default clears the old one.
	a.Default = true
	must(t, "SaveResourceServer(a default)", s.SaveResourceServer(ctx, a))
	list, err = s.ResourceServers(ctx)
	must(t, "ResourceServers", err)
	if !list[0].Default || list[1].Default {
		t.Errorf("after saving a as default: a.Default=%v b.Default=%v", list[0].Default, list[1].Default)
	}

	must(t, "DeleteResourceServer", s.DeleteResourceServer(ctx, a.Identifier))
	_, err = s.ResourceServer(ctx, a.Identifier)
	wantNotFound(t, "ResourceServer after delete", err)

	// Concurrent default saves: at most one default remains.
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = randID("https://rs.example/")
	}
	errs := start(len(ids), func(i int) error {
		return s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: ids[i], Default: true})
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrConflict) {
			t.Errorf("concurrent default save: %v (want nil or ErrConflict)", err)
		}
	}
	list, err = s.ResourceServers(ctx)
	must(t, "ResourceServers", err)
	defaults := 0
	for _, rs := range list {
		if rs.Default {
			defaults++
		}
	}
	if defaults != 1 {
		t.Errorf("%d default resource servers after concurrent saves, want exactly 1", defaults)
	}
}

func testTrusts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	list, err := s.Trusts(ctx, "https://idp.example")
	must(t, "Trusts(empty)", err)
	if len(list) != 0 {
		t.Errorf("Trusts on empty store = %v", list)
	}
	wantNotFound(t, "DeleteTrust(missing)", s.DeleteTrust(ctx, "missing"))

	exp := now().Add(24 * time.Hour).In(time.FixedZone("X", 5*3600))
	t1 := &storage.Trust{
		Issuer: "https://idp.example", Subject: "svc-a", JWKS: testJWKS(t),
		Scopes: []string{"orders:read"}, Resources: []string{"https://api.example/"},
		ExpiresAt: exp, MaxAssertionLifetime: time.Hour, JTIOptional: true,
	}
	must(t, "SaveTrust", s.SaveTrust(ctx, t1))
	if t1.ID == "" {
		t.Fatal("SaveTrust did not assign an ID")
	}
	t2 := &storage.Trust{ID: "t2", Issuer: "https://idp.example", AllowAnySubject: true, MetadataKeys: true,
		Transcribe: []string{"act", "scope", "tenant"}}
	must(t, "SaveTrust(t2)", s.SaveTrust(ctx, t2))
	t3 := &storage.Trust{ID: "t3", Issuer: "https://other.example", Subject: "x"}
	must(t, "SaveTrust(t3)", s.SaveTrust(ctx, t3))

	list, err = s.Trusts(ctx, "https://idp.example")
	must(t, "Trusts", err)
	if len(list) != 2 {
		t.Fatalf("Trusts = %+v, want 2", list)
	}
	var got *storage.Trust
	for i := range list {
		if list[i].ID == t1.ID {
			got = &list[i]
		}
	}
	if got == nil {
		t.Fatalf("Trusts does not contain %q", t1.ID)
	}
	if got.Issuer != t1.Issuer || got.Subject != "svc-a" || got.AllowAnySubject || !sameKeySet(got.JWKS, t1.JWKS) ||
		!slices.Equal(got.Scopes, t1.Scopes) || !slices.Equal(got.Resources, t1.Resources) ||
		got.MaxAssertionLifetime != time.Hour || !got.JTIOptional {
		t.Errorf("trust = %+v, want %+v", got, t1)
	}
	if !got.ExpiresAt.Equal(exp) || got.ExpiresAt.Location() != time.UTC {
		t.Errorf("trust ExpiresAt = %v, want %v in UTC", got.ExpiresAt, exp)
	}
	checkStamps(t, "Trust", got.CreatedAt, got.UpdatedAt)
	for i := range list {
		if list[i].ID == "t2" && (!list[i].MetadataKeys || !slices.Equal(list[i].Transcribe, t2.Transcribe) || list[i].JWKS != nil || list[i].JWKSURI != "") {
			t.Errorf("trust t2 = %+v, want keys from metadata and transcribe %v", list[i], t2.Transcribe)
		}
	}

	list, err = s.Trusts(ctx, "https://IDP.example")
	must(t, "Trusts(other case)", err)
	if len(list) != 0 {
		t.Errorf("Trusts matched another issuer's case: %v", list)
	}

	// Replace moves t3 to the first issuer.
	t3.Issuer = "https://idp.example"
	must(t, "SaveTrust(t3 moved)", s.SaveTrust(ctx, t3))
	list, _ = s.Trusts(ctx, "https://idp.example")
	if len(list) != 3 {
		t.Errorf("after moving t3: %d trusts, want 3", len(list))
	}
	list, _ = s.Trusts(ctx, "https://other.example")
	if len(list) != 0 {
		t.Errorf("after moving t3 the old issuer still has %d", len(list))
	}

	must(t, "DeleteTrust", s.DeleteTrust(ctx, "t2"))
	wantNotFound(t, "DeleteTrust twice", s.DeleteTrust(ctx, "t2"))
	list, _ = s.Trusts(ctx, "https://idp.example")
	if len(list) != 2 {
		t.Errorf("after delete: %d trusts, want 2", len(list))
	}
}

func testKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	keys, err := s.Keys(ctx)
	must(t, "Keys(empty)", err)
	if len(keys) != 0 {
		t.Errorf("Keys on empty store = %v", keys)
	}
	n := now()
	// Times given in another zone come back as the same instants, in UTC.
	zoned := n.In(time.FixedZone("UTC+9", 9*3600))
	k1 := storage.Key{ID: "k1", Algorithm: "ES256", State: storage.KeyCurrent, Public: []byte(`{"kty":"EC"}`),
		Sealed: []byte{0, 1, 2}, CreatedAt: zoned, ActivatesAt: zoned}
	must(t, "UpdateKeys", s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) {
		if len(cur) != 0 {
			t.Errorf("first update sees %v", cur)
		}
		return []storage.Key{k1}, nil
	}))
	keys, err = s.Keys(ctx)
	must(t, "Keys", err)
	if len(keys) != 1 || !sameKey(keys[0], k1) {
		t.Fatalf("Keys = %+v, want [%+v]", keys, k1)
	}
	if keys[0].CreatedAt.Location() != time.UTC || keys[0].ActivatesAt.Location() != time.UTC {
		t.Errorf("key times %v, %v: want UTC", keys[0].CreatedAt, keys[0].ActivatesAt)
	}

	boom := errors.New("boom")
	err = s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("UpdateKeys with failing update = %v, want the update's error", err)
	}
	keys, _ = s.Keys(ctx)
	if len(keys) != 1 {
		t.Errorf("failed update changed the set: %v", keys)
	}

	k2 := storage.Key{ID: "k2", Algorithm: "RS256", State: storage.KeyNext, CreatedAt: n, ActivatesAt: n.Add(time.Hour)}
	must(t, "UpdateKeys(append)", s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) {
		cur[0].State = storage.KeyRetired
		cur[0].RetiredAt = n
		cur[0].RemoveAt = n.Add(time.Hour)
		return append(cur, k2), nil
	}))
	keys, _ = s.Keys(ctx)
	if len(keys) != 2 || keys[0].State != storage.KeyRetired || !keys[0].RemoveAt.Equal(n.Add(time.Hour)) || !sameKey(keys[1], k2) {
		t.Errorf("Keys after append = %+v", keys)
	}
	for _, k := range keys {
		for _, tm := range []time.Time{k.CreatedAt, k.ActivatesAt, k.RetiredAt, k.RemoveAt} {
			if !tm.IsZero() && tm.Location() != time.UTC {
				t.Errorf("key %s time %v not in UTC", k.ID, tm)
			}
		}
	}
	must(t, "UpdateKeys(empty)", s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) { return nil, nil }))
	keys, _ = s.Keys(ctx)
	if len(keys) != 0 {
		t.Errorf("Keys after emptying = %v", keys)
	}
}

func sameKey(a, b storage.Key) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && a.State == b.State &&
		slices.Equal(a.Public, b.Public) && slices.Equal(a.Sealed, b.Sealed) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ActivatesAt.Equal(b.ActivatesAt) &&
		a.RetiredAt.Equal(b.RetiredAt) && a.RemoveAt.Equal(b.RemoveAt)
}

func testJTI(t *testing.T, s storage.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if used, err := s.JTIUsed(ctx, "iss|jti-1"); err != nil || used {
		t.Errorf("JTIUsed before use = %v, %v; want false", used, err)
	}
	must(t, "UseJTI", s.UseJTI(ctx, "iss|jti-1", exp))
	if used, err := s.JTIUsed(ctx, "iss|jti-1"); err != nil || !used {
		t.Errorf("JTIUsed after use = %v, %v; want true", used, err)
	}
	if used, err := s.JTIUsed(ctx, "iss|jti-1"); err != nil || !used {
		t.Errorf("JTIUsed is not idempotent: %v, %v", used, err)
	}
	if err := s.UseJTI(ctx, "iss|jti-1", exp); !errors.Is(err, storage.ErrJTIUsed) {
		t.Errorf("second UseJTI = %v, want ErrJTIUsed", err)
	}
	must(t, "UseJTI(other key)", s.UseJTI(ctx, "iss|jti-2", exp))
	must(t, "UseJTI(other case)", s.UseJTI(ctx, "iss|JTI-1", exp))

	// An expired use may be reused; the new use then holds.
	past := time.Now().Add(-time.Minute)
	must(t, "UseJTI(expired)", s.UseJTI(ctx, "iss|old", past))
	if used, err := s.JTIUsed(ctx, "iss|old"); err != nil || used {
		t.Errorf("JTIUsed of an expired use = %v, %v; want false", used, err)
	}
	must(t, "UseJTI(after expiry)", s.UseJTI(ctx, "iss|old", exp))
	if err := s.UseJTI(ctx, "iss|old", exp); !errors.Is(err, storage.ErrJTIUsed) {
		t.Errorf("UseJTI after renewed use = %v, want ErrJTIUsed", err)
	}
	// Keys longer than any index: a whole assertion as key.
	long := string(make([]byte, 4096)) + bigSig()
	must(t, "UseJTI(long)", s.UseJTI(ctx, long, exp))
	if err := s.UseJTI(ctx, long, exp); !errors.Is(err, storage.ErrJTIUsed) {
		t.Errorf("second UseJTI(long) = %v, want ErrJTIUsed", err)
	}
}

const cryptoSHA256 = crypto.SHA256
