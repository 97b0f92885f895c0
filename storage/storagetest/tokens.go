package storagetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

func testAuthorizeCode(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	req := newRequest(t, client)
	code := bigSig()

	_, err := s.GetAuthorizeCodeSession(ctx, code, &storage.Session{})
	wantNotFound(t, "GetAuthorizeCodeSession(missing)", err)
	wantNotFound(t, "InvalidateAuthorizeCodeSession(missing)", s.InvalidateAuthorizeCodeSession(ctx, code))

	must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, code, req))
	if err := s.CreateAuthorizeCodeSession(ctx, code, req); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate CreateAuthorizeCodeSession = %v, want ErrConflict", err)
	}
	got, err := s.GetAuthorizeCodeSession(ctx, code, &storage.Session{})
	must(t, "GetAuthorizeCodeSession", err)
	checkRequest(t, "code", got, req)

	// nil prototype: decoded into a *storage.Session.
	got, err = s.GetAuthorizeCodeSession(ctx, code, nil)
	must(t, "GetAuthorizeCodeSession(nil session)", err)
	checkRequest(t, "code(nil session)", got, req)

	must(t, "InvalidateAuthorizeCodeSession", s.InvalidateAuthorizeCodeSession(ctx, code))
	got, err = s.GetAuthorizeCodeSession(ctx, code, &storage.Session{})
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("Get after invalidate: err = %v, want ErrInvalidatedAuthorizeCode", err)
	}
	checkRequest(t, "invalidated code", got, req)
	if err := s.InvalidateAuthorizeCodeSession(ctx, code); err == nil {
		t.Error("second InvalidateAuthorizeCodeSession succeeded")
	}
}

func testAccessToken(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	req := newRequest(t, client)
	sig1, sig2, other := bigSig(), bigSig(), bigSig()

	_, err := s.GetAccessTokenSession(ctx, sig1, &storage.Session{})
	wantNotFound(t, "GetAccessTokenSession(missing)", err)

	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, sig1, req))
	must(t, "CreateAccessTokenSession(2)", s.CreateAccessTokenSession(ctx, sig2, req))
	if err := s.CreateAccessTokenSession(ctx, sig1, req); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate CreateAccessTokenSession = %v, want ErrConflict", err)
	}
	otherReq := newRequest(t, client)
	must(t, "CreateAccessTokenSession(other grant)", s.CreateAccessTokenSession(ctx, other, otherReq))

	got, err := s.GetAccessTokenSession(ctx, sig1, nil)
	must(t, "GetAccessTokenSession", err)
	checkRequest(t, "access token", got, req)
	// The optional existence check agrees with GetAccessTokenSession throughout.
	exists := func(what, sig string, want bool) {
		t.Helper()
		c, ok := s.(storage.AccessTokenChecker)
		if !ok {
			return
		}
		if got, err := c.AccessTokenExists(ctx, sig); err != nil || got != want {
			t.Errorf("AccessTokenExists(%s) = %v, %v; want %v", what, got, err, want)
		}
	}
	exists("created", sig1, true)
	exists("altered", sig1[:len(sig1)-1]+"!", false)

	// A signature differing in one character is another token.
	_, err = s.GetAccessTokenSession(ctx, sig1[:len(sig1)-1]+"!", nil)
	wantNotFound(t, "GetAccessTokenSession(altered)", err)

	must(t, "DeleteAccessTokenSession", s.DeleteAccessTokenSession(ctx, sig1))
	_, err = s.GetAccessTokenSession(ctx, sig1, nil)
	wantNotFound(t, "GetAccessTokenSession after delete", err)
	exists("deleted", sig1, false)
	if err := s.DeleteAccessTokenSession(ctx, sig1); err != nil && !isNotFound(err) {
		t.Errorf("DeleteAccessTokenSession(missing) = %v, want nil or ErrNotFound", err)
	}

	// RevokeAccessToken removes every access token of the grant, and only those.
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx, req.ID))
	_, err = s.GetAccessTokenSession(ctx, sig2, nil)
	wantNotFound(t, "GetAccessTokenSession after revoke", err)
	_, err = s.GetAccessTokenSession(ctx, other, nil)
	must(t, "other grant's access token after revoke", err)
	exists("revoked", sig2, false)
	exists("another grant's", other, true)
	if err := s.RevokeAccessToken(ctx, "no-such-request"); err != nil && !isNotFound(err) {
		t.Errorf("RevokeAccessToken(missing) = %v, want nil or ErrNotFound", err)
	}
}

func testRefreshToken(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	req := newRequest(t, client)
	rt1, at1 := bigSig(), bigSig()

	_, err := s.GetRefreshTokenSession(ctx, rt1, &storage.Session{})
	wantNotFound(t, "GetRefreshTokenSession(missing)", err)
	wantNotFound(t, "RotateRefreshToken(missing)", s.RotateRefreshToken(ctx, req.ID, rt1))

	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, at1, req))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, rt1, at1, req))
	// A second access token of the same grant, and a grant of its own that no operation on
	// req may touch.
	at1b := bigSig()
	must(t, "CreateAccessTokenSession(same grant)", s.CreateAccessTokenSession(ctx, at1b, req))
	otherReq := newRequest(t, client)
	otherRT, otherAT := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession(other grant)", s.CreateAccessTokenSession(ctx, otherAT, otherReq))
	must(t, "CreateRefreshTokenSession(other grant)", s.CreateRefreshTokenSession(ctx, otherRT, otherAT, otherReq))
	otherGrantIntact := func(after string) {
		t.Helper()
		if _, err := s.GetAccessTokenSession(ctx, otherAT, nil); err != nil {
			t.Errorf("other grant's access token after %s: %v", after, err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, otherRT, nil); err != nil {
			t.Errorf("other grant's refresh token after %s: %v, want still active", after, err)
		}
	}
	if err := s.CreateRefreshTokenSession(ctx, rt1, at1, req); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("duplicate CreateRefreshTokenSession = %v, want ErrConflict", err)
	}
	got, err := s.GetRefreshTokenSession(ctx, rt1, &storage.Session{})
	must(t, "GetRefreshTokenSession", err)
	checkRequest(t, "refresh token", got, req)

	// Rotation deactivates the old token and revokes the grant's access tokens.
	must(t, "RotateRefreshToken", s.RotateRefreshToken(ctx, req.ID, rt1))
	got, err = s.GetRefreshTokenSession(ctx, rt1, nil)
	if !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("Get after rotate: err = %v, want ErrInactiveToken", err)
	}
	checkRequest(t, "rotated refresh token", got, req)
	_, err = s.GetAccessTokenSession(ctx, at1, nil)
	wantNotFound(t, "access token after rotation", err)
	_, err = s.GetAccessTokenSession(ctx, at1b, nil)
	wantNotFound(t, "second access token of the grant after rotation", err)
	otherGrantIntact("RotateRefreshToken")
	if err := s.RotateRefreshToken(ctx, req.ID, rt1); err == nil {
		t.Error("second RotateRefreshToken of the same token succeeded")
	} else if !errors.Is(err, fosite.ErrSerializationFailure) && !errors.Is(err, fosite.ErrInactiveToken) && !isNotFound(err) {
		t.Errorf("second RotateRefreshToken = %v, want ErrSerializationFailure, ErrInactiveToken or ErrNotFound", err)
	}

	// The new pair of the same grant; RevokeRefreshToken keeps it, inactive.
	rt2, at2 := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession(2)", s.CreateAccessTokenSession(ctx, at2, req))
	must(t, "CreateRefreshTokenSession(2)", s.CreateRefreshTokenSession(ctx, rt2, at2, req))
	must(t, "RevokeRefreshToken", s.RevokeRefreshToken(ctx, req.ID))
	got, err = s.GetRefreshTokenSession(ctx, rt2, &storage.Session{})
	if !errors.Is(err, fosite.ErrInactiveToken) || got == nil {
		t.Errorf("Get after revoke = (%v, %v), want the request and ErrInactiveToken", got, err)
	}
	checkRequest(t, "revoked refresh token", got, req)
	otherGrantIntact("RevokeRefreshToken")
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx, req.ID))
	_, err = s.GetAccessTokenSession(ctx, at2, nil)
	wantNotFound(t, "access token after RevokeAccessToken", err)
	otherGrantIntact("RevokeAccessToken")
	if err := s.RevokeRefreshToken(ctx, "no-such-request"); err != nil && !isNotFound(err) {
		t.Errorf("RevokeRefreshToken(missing) = %v, want nil or ErrNotFound", err)
	}

	must(t, "DeleteRefreshTokenSession", s.DeleteRefreshTokenSession(ctx, rt2))
	_, err = s.GetRefreshTokenSession(ctx, rt2, nil)
	wantNotFound(t, "GetRefreshTokenSession after delete", err)
}

func testPKCE(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	req := newRequest(t, client)
	sig := bigSig()
	_, err := s.GetPKCERequestSession(ctx, sig, &storage.Session{})
	wantNotFound(t, "GetPKCERequestSession(missing)", err)
	must(t, "CreatePKCERequestSession", s.CreatePKCERequestSession(ctx, sig, req))
	got, err := s.GetPKCERequestSession(ctx, sig, nil)
	must(t, "GetPKCERequestSession", err)
	checkRequest(t, "pkce", got, req)
	if got.GetRequestForm().Get("code_challenge") != "abc" {
		t.Errorf("PKCE form lost code_challenge: %v", got.GetRequestForm())
	}
	must(t, "DeletePKCERequestSession", s.DeletePKCERequestSession(ctx, sig))
	_, err = s.GetPKCERequestSession(ctx, sig, nil)
	wantNotFound(t, "GetPKCERequestSession after delete", err)
}

func testRequestFidelity(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")

	t.Run("NonUTCInput", func(t *testing.T) {
		req := newRequest(t, client)
		zone := time.FixedZone("UTC-7", -7*3600)
		req.RequestedAt = req.RequestedAt.In(zone)
		sess := req.Session.(*storage.Session)
		sess.ExpiresAt[fosite.AccessToken] = sess.ExpiresAt[fosite.AccessToken].In(zone)
		sess.AuthTime = sess.AuthTime.In(zone)
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		got, err := s.GetAccessTokenSession(ctx, sig, &storage.Session{})
		must(t, "get", err)
		checkRequest(t, "non-UTC", got, req)
	})
	t.Run("EmptyRequest", func(t *testing.T) {
		req := &fosite.Request{ID: randID("req-"), RequestedAt: now(), Client: client, Session: &storage.Session{}}
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		got, err := s.GetAccessTokenSession(ctx, sig, nil)
		must(t, "get", err)
		if got.GetID() != req.ID || len(got.GetGrantedScopes()) != 0 || len(got.GetRequestForm()) != 0 {
			t.Errorf("empty request came back as %+v", got)
		}
		if _, ok := got.GetSession().(*storage.Session); !ok {
			t.Errorf("session is %T", got.GetSession())
		}
	})
	t.Run("SessionPrototypeFilled", func(t *testing.T) {
		req := newRequest(t, client)
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		proto := &storage.Session{}
		got, err := s.GetAccessTokenSession(ctx, sig, proto)
		must(t, "get", err)
		checkSession(t, "returned session", got.GetSession(), req.Session)
	})
	t.Run("ClientReloaded", func(t *testing.T) {
		req := newRequest(t, client)
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		c2 := client.Clone()
		c2.Scopes = []string{"changed"}
		must(t, "SaveClient", s.SaveClient(ctx, c2))
		got, err := s.GetAccessTokenSession(ctx, sig, nil)
		must(t, "get", err)
		if sc := got.GetClient().GetScopes(); len(sc) != 1 || sc[0] != "changed" {
			t.Errorf("client of token = %v, want the current client", sc)
		}
	})
	t.Run("UnregisteredClient", func(t *testing.T) {
		// A jwt-bearer token issued without client authentication names the assertion's
		// issuer, which is no registered client: its session still reads back, with a client
		// that has only that id and can authorize nothing.
		req := newRequest(t, &storage.Client{ID: "https://idp.example", GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}})
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		got, err := s.GetAccessTokenSession(ctx, sig, nil)
		must(t, "get", err)
		c := got.GetClient()
		if c == nil || c.GetID() != "https://idp.example" {
			t.Fatalf("client of token = %v, want one with the stored id", c)
		}
		if len(c.GetGrantTypes()) != 0 || len(c.GetScopes()) != 0 || len(c.GetHashedSecret()) != 0 || len(c.GetAudience()) != 0 {
			t.Errorf("unregistered client of token has grant types %v, scopes %v, audience %v or a secret: want none", c.GetGrantTypes(), c.GetScopes(), c.GetAudience())
		}
		if _, err := s.Client(ctx, "https://idp.example"); !isNotFound(err) {
			t.Errorf("Client(unregistered) = %v, want ErrNotFound", err)
		}
	})
}

func testAliasing(t *testing.T, s storage.Store) {
	ctx := context.Background()
	t.Run("Client", func(t *testing.T) {
		c := mustSaveClient(t, s, "alias")
		want := c.Clone()
		c.Scopes[0] = "mutated"
		c.SecretHash[0] = 'X'
		c.RedirectURIs = append(c.RedirectURIs, "https://evil.example/")
		got, err := s.Client(ctx, "alias")
		must(t, "Client", err)
		if !sameClient(got, want) {
			t.Fatalf("mutating the saved value changed the store: %+v", got)
		}
		got.Scopes[0] = "mutated"
		got.GrantTypes[0] = "mutated"
		got.SecretHash[0] = 'Y'
		again, _ := s.Client(ctx, "alias")
		if !sameClient(again, want) {
			t.Errorf("mutating a read value changed the store: %+v", again)
		}
	})
	t.Run("Token", func(t *testing.T) {
		client := mustSaveClient(t, s, "c1")
		req := newRequest(t, client)
		want := newRequest(t, client)
		want.ID, want.RequestedAt, want.Session = req.ID, req.RequestedAt, req.Session.Clone()
		sig := bigSig()
		must(t, "create", s.CreateAccessTokenSession(ctx, sig, req))
		req.GrantedScope[0] = "mutated"
		req.Form.Set("code_challenge", "mutated")
		req.Session.(*storage.Session).Extra["roles"] = "mutated"
		req.Session.(*storage.Session).Subject = "mutated"
		got, err := s.GetAccessTokenSession(ctx, sig, nil)
		must(t, "get", err)
		checkRequest(t, "after mutating the saved request", got, want)
		got.GetGrantedScopes()[0] = "mutated"
		got.GetRequestForm().Set("code_challenge", "mutated")
		got.GetSession().(*storage.Session).Extra["n"] = "mutated"
		again, err := s.GetAccessTokenSession(ctx, sig, nil)
		must(t, "get", err)
		checkRequest(t, "after mutating a read request", again, want)
	})
	t.Run("Keys", func(t *testing.T) {
		k := storage.Key{ID: "k1", Algorithm: "ES256", State: storage.KeyCurrent, Public: []byte("pub"), Sealed: []byte("sealed")}
		var given []storage.Key
		must(t, "UpdateKeys", s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) {
			given = []storage.Key{k.Clone()}
			return given, nil
		}))
		given[0].Public[0] = 'X'
		given[0].ID = "mutated"
		keys, _ := s.Keys(ctx)
		if len(keys) != 1 || !sameKey(keys[0], k) {
			t.Fatalf("mutating the written set changed the store: %+v", keys)
		}
		keys[0].Sealed[0] = 'X'
		keys[0].State = storage.KeyRetired
		again, _ := s.Keys(ctx)
		if !sameKey(again[0], k) {
			t.Errorf("mutating a read set changed the store: %+v", again)
		}
	})
	t.Run("ResourceServerAndTrust", func(t *testing.T) {
		rs := &storage.ResourceServer{Identifier: "https://rs.example/", Scopes: []string{"a"}}
		must(t, "SaveResourceServer", s.SaveResourceServer(ctx, rs))
		rs.Scopes[0] = "mutated"
		got, _ := s.ResourceServer(ctx, "https://rs.example/")
		if got == nil || got.Scopes[0] != "a" {
			t.Fatalf("mutating the saved resource server changed the store: %+v", got)
		}
		got.Scopes[0] = "mutated"
		again, _ := s.ResourceServer(ctx, "https://rs.example/")
		if again.Scopes[0] != "a" {
			t.Errorf("mutating a read resource server changed the store")
		}
		tr := &storage.Trust{ID: "t", Issuer: "https://idp.example", Scopes: []string{"a"}}
		must(t, "SaveTrust", s.SaveTrust(ctx, tr))
		tr.Scopes[0] = "mutated"
		list, _ := s.Trusts(ctx, "https://idp.example")
		if len(list) != 1 || list[0].Scopes[0] != "a" {
			t.Fatalf("mutating the saved trust changed the store: %+v", list)
		}
		list[0].Scopes[0] = "mutated"
		list, _ = s.Trusts(ctx, "https://idp.example")
		if list[0].Scopes[0] != "a" {
			t.Errorf("mutating a read trust changed the store")
		}
	})
	t.Run("ResourceServerList", func(t *testing.T) {
		rs := &storage.ResourceServer{Identifier: "https://list.example/", Scopes: []string{"a"}}
		must(t, "SaveResourceServer", s.SaveResourceServer(ctx, rs))
		find := func(list []storage.ResourceServer) *storage.ResourceServer {
			for i := range list {
				if list[i].Identifier == rs.Identifier {
					return &list[i]
				}
			}
			t.Fatalf("ResourceServers does not list %s", rs.Identifier)
			return nil
		}
		list, err := s.ResourceServers(ctx)
		must(t, "ResourceServers", err)
		got := find(list)
		got.Scopes[0] = "mutated"
		got.Name = "mutated"
		list, err = s.ResourceServers(ctx)
		must(t, "ResourceServers", err)
		if again := find(list); again.Scopes[0] != "a" || again.Name != "" {
			t.Errorf("mutating a read list changed the store: %+v", again)
		}
		if one, err := s.ResourceServer(ctx, rs.Identifier); err != nil || one.Scopes[0] != "a" {
			t.Errorf("mutating a read list changed ResourceServer: %+v, %v", one, err)
		}
	})
	t.Run("KeySets", func(t *testing.T) {
		c := &storage.Client{ID: "alias-jwks", JWKS: testJWKS(t)}
		must(t, "SaveClient", s.SaveClient(ctx, c))
		c.JWKS.Keys[0].KeyID = "mutated"
		got, err := s.Client(ctx, c.ID)
		must(t, "Client", err)
		if got.JWKS == nil || len(got.JWKS.Keys) != 1 || got.JWKS.Keys[0].KeyID != "k1" {
			t.Fatalf("mutating the saved JWKS changed the store: %+v", got.JWKS)
		}
		got.JWKS.Keys[0].KeyID = "mutated"
		got.JWKS.Keys = append(got.JWKS.Keys, got.JWKS.Keys[0])
		if again, _ := s.Client(ctx, c.ID); again == nil || len(again.JWKS.Keys) != 1 || again.JWKS.Keys[0].KeyID != "k1" {
			t.Errorf("mutating a read JWKS changed the store")
		}

		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, "key", err)
		rs := &storage.ResourceServer{Identifier: "https://enc.example/",
			Encryption: &jose.JSONWebKey{Key: &k.PublicKey, KeyID: "enc", Algorithm: "ECDH-ES", Use: "enc"}}
		must(t, "SaveResourceServer", s.SaveResourceServer(ctx, rs))
		rs.Encryption.KeyID = "mutated"
		gotRS, err := s.ResourceServer(ctx, rs.Identifier)
		must(t, "ResourceServer", err)
		if gotRS.Encryption == nil || gotRS.Encryption.KeyID != "enc" {
			t.Fatalf("mutating the saved encryption key changed the store: %+v", gotRS.Encryption)
		}
		gotRS.Encryption.KeyID = "mutated"
		if again, _ := s.ResourceServer(ctx, rs.Identifier); again == nil || again.Encryption.KeyID != "enc" {
			t.Errorf("mutating a read encryption key changed the store")
		}

		tr := &storage.Trust{ID: "alias-jwks", Issuer: "https://jwks-idp.example", JWKS: testJWKS(t)}
		must(t, "SaveTrust", s.SaveTrust(ctx, tr))
		tr.JWKS.Keys[0].KeyID = "mutated"
		list, err := s.Trusts(ctx, tr.Issuer)
		must(t, "Trusts", err)
		if len(list) != 1 || list[0].JWKS == nil || list[0].JWKS.Keys[0].KeyID != "k1" {
			t.Fatalf("mutating the saved trust JWKS changed the store: %+v", list)
		}
		list[0].JWKS.Keys[0].KeyID = "mutated"
		if again, _ := s.Trusts(ctx, tr.Issuer); len(again) != 1 || again[0].JWKS.Keys[0].KeyID != "k1" {
			t.Errorf("mutating a read trust JWKS changed the store")
		}
	})
}

func testTransactions(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")

	if err := s.Commit(ctx); err == nil {
		t.Error("Commit without a transaction succeeded")
	}
	if err := s.Rollback(ctx); err == nil {
		t.Error("Rollback without a transaction succeeded")
	}

	t.Run("Rollback", func(t *testing.T) {
		req := newRequest(t, client)
		code, at, rt := bigSig(), bigSig(), bigSig()
		must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, code, req))
		tx, err := s.BeginTX(ctx)
		must(t, "BeginTX", err)
		must(t, "Invalidate in tx", s.InvalidateAuthorizeCodeSession(tx, code))
		must(t, "CreateAccessTokenSession in tx", s.CreateAccessTokenSession(tx, at, req))
		must(t, "CreateRefreshTokenSession in tx", s.CreateRefreshTokenSession(tx, rt, at, req))
		if _, err := s.GetAccessTokenSession(tx, at, nil); err != nil {
			t.Errorf("the transaction does not see its own write: %v", err)
		}
		must(t, "Rollback", s.Rollback(tx))
		_, err = s.GetAccessTokenSession(ctx, at, nil)
		wantNotFound(t, "access token after rollback", err)
		_, err = s.GetRefreshTokenSession(ctx, rt, nil)
		wantNotFound(t, "refresh token after rollback", err)
		if _, err := s.GetAuthorizeCodeSession(ctx, code, nil); err != nil {
			t.Errorf("code after rollback: %v, want still valid", err)
		}
	})
	t.Run("Commit", func(t *testing.T) {
		req := newRequest(t, client)
		code, at := bigSig(), bigSig()
		must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, code, req))
		tx, err := s.BeginTX(ctx)
		must(t, "BeginTX", err)
		must(t, "Invalidate in tx", s.InvalidateAuthorizeCodeSession(tx, code))
		must(t, "CreateAccessTokenSession in tx", s.CreateAccessTokenSession(tx, at, req))
		must(t, "Commit", s.Commit(tx))
		if _, err := s.GetAccessTokenSession(ctx, at, nil); err != nil {
			t.Errorf("access token after commit: %v", err)
		}
		if _, err := s.GetAuthorizeCodeSession(ctx, code, nil); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			t.Errorf("code after commit: %v, want ErrInvalidatedAuthorizeCode", err)
		}
	})
	t.Run("FailedStepRolledBack", func(t *testing.T) {
		// A duplicate insert fails the transaction; the caller rolls back and nothing of it
		// remains.
		req := newRequest(t, client)
		dup, fresh := bigSig(), bigSig()
		must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, dup, req))
		tx, err := s.BeginTX(ctx)
		must(t, "BeginTX", err)
		must(t, "create in tx", s.CreateAccessTokenSession(tx, fresh, req))
		if err := s.CreateAccessTokenSession(tx, dup, req); err == nil {
			t.Error("duplicate create in tx succeeded")
		}
		must(t, "Rollback", s.Rollback(tx))
		_, err = s.GetAccessTokenSession(ctx, fresh, nil)
		wantNotFound(t, "write of a failed transaction", err)
	})
}

func testGC(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	past := now().Add(-time.Hour)

	expired := newRequest(t, client)
	for _, k := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken} {
		expired.Session.(*storage.Session).SetExpiresAt(k, past)
	}
	live := newRequest(t, client)

	gone := map[string]string{"code": bigSig(), "access": bigSig(), "access2": bigSig(), "refresh": bigSig(), "pkce": bigSig()}
	kept := map[string]string{"code": bigSig(), "access": bigSig(), "refresh": bigSig()}
	must(t, "code", s.CreateAuthorizeCodeSession(ctx, gone["code"], expired))
	must(t, "access", s.CreateAccessTokenSession(ctx, gone["access"], expired))
	must(t, "access2", s.CreateAccessTokenSession(ctx, gone["access2"], expired))
	must(t, "refresh", s.CreateRefreshTokenSession(ctx, gone["refresh"], gone["access"], expired))
	must(t, "pkce", s.CreatePKCERequestSession(ctx, gone["pkce"], expired))
	must(t, "live code", s.CreateAuthorizeCodeSession(ctx, kept["code"], live))
	must(t, "live access", s.CreateAccessTokenSession(ctx, kept["access"], live))
	must(t, "live refresh", s.CreateRefreshTokenSession(ctx, kept["refresh"], kept["access"], live))
	// A session without an expiry for the token's kind never expires (fosite leaves the
	// refresh-token expiry unset when RefreshTokenLifespan is -1): collection must keep it.
	forever := newRequest(t, client)
	forever.Session.(*storage.Session).ExpiresAt = nil
	eternal := map[string]string{"code": bigSig(), "access": bigSig(), "refresh": bigSig()}
	must(t, "code without expiry", s.CreateAuthorizeCodeSession(ctx, eternal["code"], forever))
	must(t, "access without expiry", s.CreateAccessTokenSession(ctx, eternal["access"], forever))
	must(t, "refresh without expiry", s.CreateRefreshTokenSession(ctx, eternal["refresh"], eternal["access"], forever))
	must(t, "jti expired", s.UseJTI(ctx, "jti-old", past))
	must(t, "jti live", s.UseJTI(ctx, "jti-live", now().Add(time.Hour)))

	n, err := s.DeleteExpired(ctx, now(), 2) // batches smaller than the work
	must(t, "DeleteExpired", err)
	if n != 6 {
		t.Errorf("DeleteExpired removed %d rows, want 6 (5 token rows, 1 jti)", n)
	}
	_, err = s.GetAuthorizeCodeSession(ctx, gone["code"], nil)
	wantNotFound(t, "expired code", err)
	_, err = s.GetAccessTokenSession(ctx, gone["access2"], nil)
	wantNotFound(t, "expired access token", err)
	_, err = s.GetRefreshTokenSession(ctx, gone["refresh"], nil)
	wantNotFound(t, "expired refresh token", err)
	_, err = s.GetPKCERequestSession(ctx, gone["pkce"], nil)
	wantNotFound(t, "expired pkce", err)
	_, err = s.GetAuthorizeCodeSession(ctx, kept["code"], nil)
	must(t, "live code after GC", err)
	_, err = s.GetAccessTokenSession(ctx, kept["access"], nil)
	must(t, "live access token after GC", err)
	_, err = s.GetRefreshTokenSession(ctx, kept["refresh"], nil)
	must(t, "live refresh token after GC", err)
	_, err = s.GetAuthorizeCodeSession(ctx, eternal["code"], nil)
	must(t, "code without expiry after GC", err)
	_, err = s.GetAccessTokenSession(ctx, eternal["access"], nil)
	must(t, "access token without expiry after GC", err)
	_, err = s.GetRefreshTokenSession(ctx, eternal["refresh"], nil)
	must(t, "refresh token without expiry after GC", err)
	if err := s.UseJTI(ctx, "jti-live", now().Add(time.Hour)); !errors.Is(err, storage.ErrJTIUsed) {
		t.Errorf("live jti after GC: %v, want ErrJTIUsed", err)
	}
	n, err = s.DeleteExpired(ctx, now(), 0)
	must(t, "DeleteExpired(again, default batch)", err)
	if n != 0 {
		t.Errorf("second DeleteExpired removed %d rows, want 0", n)
	}
}

// testOneTokenGrant: a grant of one token — a request whose ID is its token's own signature,
// as the provider gives every client_credentials token — reads back with that ID and is found
// by it: revoking the grant, rotating a refresh token of it and collecting expired rows all
// reach it, and leave other grants alone.
func testOneTokenGrant(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	one := func() (string, *fosite.Request) {
		sig := bigSig()
		req := newRequest(t, client)
		req.ID = sig
		must(t, "CreateAccessTokenSession(one-token grant)", s.CreateAccessTokenSession(ctx, sig, req))
		return sig, req
	}
	sig, req := one()
	keep, _ := one()
	got, err := s.GetAccessTokenSession(ctx, sig, nil)
	must(t, "GetAccessTokenSession(one-token grant)", err)
	checkRequest(t, "one-token grant", got, req)

	must(t, "RevokeAccessToken(one-token grant)", s.RevokeAccessToken(ctx, sig))
	_, err = s.GetAccessTokenSession(ctx, sig, nil)
	wantNotFound(t, "GetAccessTokenSession after revoking its grant", err)
	if _, err := s.GetAccessTokenSession(ctx, keep, nil); err != nil {
		t.Fatalf("revoking one grant removed another: %v", err)
	}

	// A refresh token whose grant ID is its own signature, and the grant's access token.
	rt := bigSig()
	rreq := newRequest(t, client)
	rreq.ID = rt
	at := bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, at, rreq))
	must(t, "CreateRefreshTokenSession(one-token grant)", s.CreateRefreshTokenSession(ctx, rt, at, rreq))
	must(t, "RevokeRefreshToken(one-token grant)", s.RevokeRefreshToken(ctx, rt))
	if _, err := s.GetRefreshTokenSession(ctx, rt, nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Fatalf("refresh token after revoking its grant: %v, want ErrInactiveToken", err)
	}
	_, err = s.GetAccessTokenSession(ctx, at, nil)
	must(t, "access token of a revoked refresh token (deleted only with RevokeAccessToken)", err)
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx, rt))
	_, err = s.GetAccessTokenSession(ctx, at, nil)
	wantNotFound(t, "access token after RevokeAccessToken of its grant", err)

	// Garbage collection reaches one-token grants too.
	old := newRequest(t, client)
	oldSig := bigSig()
	old.ID = oldSig
	old.Session.SetExpiresAt(fosite.AccessToken, now().Add(-time.Minute))
	must(t, "CreateAccessTokenSession(expired)", s.CreateAccessTokenSession(ctx, oldSig, old))
	if _, err := s.DeleteExpired(ctx, now(), 0); err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	_, err = s.GetAccessTokenSession(ctx, oldSig, nil)
	wantNotFound(t, "expired one-token grant after DeleteExpired", err)
	if _, err := s.GetAccessTokenSession(ctx, keep, nil); err != nil {
		t.Fatalf("DeleteExpired removed a live token: %v", err)
	}
}
