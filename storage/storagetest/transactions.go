package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// txEffect is one write a store must run in the transaction carried by its context: apply makes
// the change, applied reports whether the change is visible through ctx.
type txEffect struct {
	name    string
	apply   func(ctx context.Context) error
	applied func(ctx context.Context) (bool, error)
}

// testTxEveryMethod runs every write method of the store inside one transaction begun with
// BeginTX. Inside it each write must be visible through the transaction's context (reads use
// the transaction too); after Rollback none of them may remain, after Commit all of them must.
// A method that wrote outside the transaction would survive the rollback.
func testTxEveryMethod(t *testing.T, s storage.Store) {
	for _, commit := range []bool{false, true} {
		name := "Rollback"
		if commit {
			name = "Commit"
		}
		t.Run(name, func(t *testing.T) { runTxEffects(t, s, commit) })
	}
}

func runTxEffects(t *testing.T, s storage.Store, commit bool) {
	ctx := context.Background()
	client := mustSaveClient(t, s, randID("tx-client-"))
	oldClient := mustSaveClient(t, s, randID("tx-old-"))
	newClientID := randID("tx-new-")

	oldRS := &storage.ResourceServer{Identifier: randID("https://old.example/"), Scopes: []string{"a"}}
	must(t, "SaveResourceServer", s.SaveResourceServer(ctx, oldRS))
	newRS := randID("https://new.example/")

	issuer := randID("https://idp.example/")
	oldTrust := &storage.Trust{ID: randID("old-"), Issuer: issuer, Subject: "a"}
	must(t, "SaveTrust", s.SaveTrust(ctx, oldTrust))
	newTrust := randID("new-")
	oldPeer := &storage.Peer{Issuer: randID("https://old-peer.example/")}
	must(t, "SavePeer", s.SavePeer(ctx, oldPeer))
	newPeer := randID("https://new-peer.example/")

	var keysBefore int
	must(t, "UpdateKeys", s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) {
		keysBefore = len(cur) + 1
		return append(cur, storage.Key{ID: randID("k-"), Algorithm: "ES256", State: storage.KeyCurrent}), nil
	}))
	newKey := randID("k-")
	jti := randID("iss|")

	// One grant per operation, so that no operation's effect hides another's.
	codeReq, rotReq, revReq, delReq, newReq := newRequest(t, client), newRequest(t, client), newRequest(t, client), newRequest(t, client), newRequest(t, client)
	oldCode, newCode := bigSig(), bigSig()
	must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, oldCode, codeReq))
	rotRT, rotAT := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, rotAT, rotReq))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, rotRT, rotAT, rotReq))
	revRT, revAT := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, revAT, revReq))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, revRT, revAT, revReq))
	delAT, delRT := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, delAT, delReq))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, delRT, delAT, delReq))
	newAT, newRT := bigSig(), bigSig()
	oldPKCE, newPKCE := bigSig(), bigSig()
	must(t, "CreatePKCERequestSession", s.CreatePKCERequestSession(ctx, oldPKCE, codeReq))
	expiredReq := newRequest(t, client)
	expiredReq.Session.(*storage.Session).SetExpiresAt(fosite.AccessToken, now().Add(-time.Hour))
	expiredAT := bigSig()
	must(t, "CreateAccessTokenSession(expired)", s.CreateAccessTokenSession(ctx, expiredAT, expiredReq))

	exists := func(err error) (bool, error) {
		if err == nil {
			return true, nil
		}
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	gone := func(err error) (bool, error) { ok, err := exists(err); return !ok, err }
	inactive := func(err error) (bool, error) {
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, fosite.ErrInactiveToken), errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
			return true, nil
		}
		return false, err
	}
	effects := []txEffect{
		{"SaveClient",
			func(ctx context.Context) error { return s.SaveClient(ctx, &storage.Client{ID: newClientID}) },
			func(ctx context.Context) (bool, error) { _, err := s.Client(ctx, newClientID); return exists(err) }},
		{"DeleteClient",
			func(ctx context.Context) error { return s.DeleteClient(ctx, oldClient.ID) },
			func(ctx context.Context) (bool, error) { _, err := s.Client(ctx, oldClient.ID); return gone(err) }},
		{"SaveResourceServer",
			func(ctx context.Context) error {
				return s.SaveResourceServer(ctx, &storage.ResourceServer{Identifier: newRS})
			},
			func(ctx context.Context) (bool, error) { _, err := s.ResourceServer(ctx, newRS); return exists(err) }},
		{"DeleteResourceServer",
			func(ctx context.Context) error { return s.DeleteResourceServer(ctx, oldRS.Identifier) },
			func(ctx context.Context) (bool, error) {
				_, err := s.ResourceServer(ctx, oldRS.Identifier)
				return gone(err)
			}},
		{"SaveTrust",
			func(ctx context.Context) error {
				return s.SaveTrust(ctx, &storage.Trust{ID: newTrust, Issuer: issuer, Subject: "b"})
			},
			func(ctx context.Context) (bool, error) { return hasTrust(ctx, s, issuer, newTrust) }},
		{"DeleteTrust",
			func(ctx context.Context) error { return s.DeleteTrust(ctx, oldTrust.ID) },
			func(ctx context.Context) (bool, error) {
				ok, err := hasTrust(ctx, s, issuer, oldTrust.ID)
				return !ok, err
			}},
		{"SavePeer",
			func(ctx context.Context) error { return s.SavePeer(ctx, &storage.Peer{Issuer: newPeer}) },
			func(ctx context.Context) (bool, error) { _, err := s.Peer(ctx, newPeer); return exists(err) }},
		{"DeletePeer",
			func(ctx context.Context) error { return s.DeletePeer(ctx, oldPeer.Issuer) },
			func(ctx context.Context) (bool, error) { _, err := s.Peer(ctx, oldPeer.Issuer); return gone(err) }},
		{"UpdateKeys",
			func(ctx context.Context) error {
				return s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) {
					return append(cur, storage.Key{ID: newKey, Algorithm: "ES256", State: storage.KeyNext}), nil
				})
			},
			func(ctx context.Context) (bool, error) {
				keys, err := s.Keys(ctx)
				return len(keys) == keysBefore+1 && slices.ContainsFunc(keys, func(k storage.Key) bool { return k.ID == newKey }), err
			}},
		{"UseJTI",
			func(ctx context.Context) error { return s.UseJTI(ctx, jti, time.Now().Add(time.Hour)) },
			func(ctx context.Context) (bool, error) { return s.JTIUsed(ctx, jti) }},
		{"CreateAuthorizeCodeSession",
			func(ctx context.Context) error { return s.CreateAuthorizeCodeSession(ctx, newCode, codeReq) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAuthorizeCodeSession(ctx, newCode, nil)
				return exists(err)
			}},
		{"InvalidateAuthorizeCodeSession",
			func(ctx context.Context) error { return s.InvalidateAuthorizeCodeSession(ctx, oldCode) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAuthorizeCodeSession(ctx, oldCode, nil)
				return inactive(err)
			}},
		{"CreateAccessTokenSession",
			func(ctx context.Context) error { return s.CreateAccessTokenSession(ctx, newAT, newReq) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAccessTokenSession(ctx, newAT, nil)
				return exists(err)
			}},
		{"CreateRefreshTokenSession",
			func(ctx context.Context) error { return s.CreateRefreshTokenSession(ctx, newRT, newAT, newReq) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetRefreshTokenSession(ctx, newRT, nil)
				return exists(err)
			}},
		{"DeleteAccessTokenSession",
			func(ctx context.Context) error { return s.DeleteAccessTokenSession(ctx, delAT) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAccessTokenSession(ctx, delAT, nil)
				return gone(err)
			}},
		{"DeleteRefreshTokenSession",
			func(ctx context.Context) error { return s.DeleteRefreshTokenSession(ctx, delRT) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetRefreshTokenSession(ctx, delRT, nil)
				return gone(err)
			}},
		{"RotateRefreshToken",
			func(ctx context.Context) error { return s.RotateRefreshToken(ctx, rotReq.ID, rotRT) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetRefreshTokenSession(ctx, rotRT, nil)
				ok, err := inactive(err)
				if !ok || err != nil {
					return ok, err
				}
				_, err = s.GetAccessTokenSession(ctx, rotAT, nil)
				return gone(err)
			}},
		{"RevokeRefreshToken",
			func(ctx context.Context) error { return s.RevokeRefreshToken(ctx, revReq.ID) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetRefreshTokenSession(ctx, revRT, nil)
				return inactive(err)
			}},
		{"RevokeAccessToken",
			func(ctx context.Context) error { return s.RevokeAccessToken(ctx, revReq.ID) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAccessTokenSession(ctx, revAT, nil)
				return gone(err)
			}},
		{"CreatePKCERequestSession",
			func(ctx context.Context) error { return s.CreatePKCERequestSession(ctx, newPKCE, codeReq) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetPKCERequestSession(ctx, newPKCE, nil)
				return exists(err)
			}},
		{"DeletePKCERequestSession",
			func(ctx context.Context) error { return s.DeletePKCERequestSession(ctx, oldPKCE) },
			func(ctx context.Context) (bool, error) {
				_, err := s.GetPKCERequestSession(ctx, oldPKCE, nil)
				return gone(err)
			}},
		{"DeleteExpired",
			func(ctx context.Context) error {
				n, err := s.DeleteExpired(ctx, now(), 0)
				if err == nil && n < 1 {
					t.Errorf("DeleteExpired in the transaction removed %d rows, want at least 1", n)
				}
				return err
			},
			func(ctx context.Context) (bool, error) {
				_, err := s.GetAccessTokenSession(ctx, expiredAT, nil)
				return gone(err)
			}},
	}

	for _, e := range effects {
		ok, err := e.applied(ctx)
		if err != nil || ok {
			t.Fatalf("%s: already applied before the transaction (%v)", e.name, err)
		}
	}
	tx, err := s.BeginTX(ctx)
	must(t, "BeginTX", err)
	ended := false
	defer func() {
		if !ended {
			_ = s.Rollback(tx)
		}
	}()
	for _, e := range effects {
		if err := e.apply(tx); err != nil {
			t.Fatalf("%s in the transaction: %v", e.name, err)
		}
		if ok, err := e.applied(tx); err != nil || !ok {
			t.Fatalf("%s: the transaction does not see its own write (%v)", e.name, err)
		}
	}
	ended = true
	if commit {
		must(t, "Commit", s.Commit(tx))
	} else {
		must(t, "Rollback", s.Rollback(tx))
	}
	for _, e := range effects {
		ok, err := e.applied(ctx)
		switch {
		case err != nil:
			t.Errorf("%s after the transaction: %v", e.name, err)
		case commit && !ok:
			t.Errorf("%s: lost although the transaction committed", e.name)
		case !commit && ok:
			t.Errorf("%s: survived the rollback (it did not run in the caller's transaction)", e.name)
		}
	}
}

func hasTrust(ctx context.Context, s storage.Store, issuer, id string) (bool, error) {
	list, err := s.Trusts(ctx, issuer)
	return slices.ContainsFunc(list, func(t storage.Trust) bool { return t.ID == id }), err
}

// testTxJTIReuse: a JWT ID reused inside a caller's transaction is refused with ErrJTIUsed and
// leaves the transaction usable (on PostgreSQL a failed statement would abort it): later writes
// in it succeed and commit.
func testTxJTIReuse(t *testing.T, s storage.Store) {
	ctx := context.Background()
	req := newRequest(t, mustSaveClient(t, s, "c1"))
	must(t, "UseJTI(before)", s.UseJTI(ctx, "iss|seen", time.Now().Add(time.Hour)))
	tx, err := s.BeginTX(ctx)
	must(t, "BeginTX", err)
	if err := s.UseJTI(tx, "iss|seen", time.Now().Add(time.Hour)); !errors.Is(err, storage.ErrJTIUsed) {
		_ = s.Rollback(tx)
		t.Fatalf("reuse of a committed jti in a transaction = %v, want ErrJTIUsed", err)
	}
	if err := s.UseJTI(tx, "iss|fresh", time.Now().Add(time.Hour)); err != nil {
		_ = s.Rollback(tx)
		t.Fatalf("UseJTI after a refused reuse in the same transaction: %v", err)
	}
	if err := s.UseJTI(tx, "iss|fresh", time.Now().Add(time.Hour)); !errors.Is(err, storage.ErrJTIUsed) {
		_ = s.Rollback(tx)
		t.Fatalf("reuse of a jti used earlier in the same transaction = %v, want ErrJTIUsed", err)
	}
	sig := bigSig()
	if err := s.CreateAccessTokenSession(tx, sig, req); err != nil {
		_ = s.Rollback(tx)
		t.Fatalf("write after a refused jti reuse in the same transaction: %v", err)
	}
	must(t, "Commit", s.Commit(tx))
	if _, err := s.GetAccessTokenSession(ctx, sig, nil); err != nil {
		t.Errorf("token written after the refused reuse: %v", err)
	}
	if used, err := s.JTIUsed(ctx, "iss|fresh"); err != nil || !used {
		t.Errorf("jti used in the committed transaction: %v, %v; want used", used, err)
	}
}
