package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// The race tests start Races goroutines at once on the same record and check the outcome, never
// the timing: exactly one winner, the losers get the documented error, and the stored state
// agrees with who won.

func testRaceInvalidate(t *testing.T, s storage.Store) {
	ctx := context.Background()
	req := newRequest(t, mustSaveClient(t, s, "c1"))
	code := bigSig()
	must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, code, req))
	errs := start(Races, func(int) error { return s.InvalidateAuthorizeCodeSession(ctx, code) })
	if n, _ := winners(errs); n != 1 {
		t.Fatalf("%d of %d concurrent InvalidateAuthorizeCodeSession calls won, want exactly 1: %v", n, Races, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) && !errors.Is(err, fosite.ErrSerializationFailure) {
			t.Errorf("loser got %v, want ErrInvalidatedAuthorizeCode or ErrSerializationFailure", err)
		}
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, code, nil); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Errorf("code after the race: %v, want ErrInvalidatedAuthorizeCode", err)
	}
}

// testRaceInvalidateTx replays fosite's code exchange: in one transaction, invalidate the code
// and store the new access token. Only the winner's token may exist afterwards.
func testRaceInvalidateTx(t *testing.T, s storage.Store) {
	ctx := context.Background()
	req := newRequest(t, mustSaveClient(t, s, "c1"))
	code := bigSig()
	must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, code, req))
	sigs := make([]string, Races)
	for i := range sigs {
		sigs[i] = bigSig()
	}
	errs := start(Races, func(i int) (err error) {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			return fmt.Errorf("BeginTX: %w", err)
		}
		defer func() {
			if err != nil {
				if rerr := s.Rollback(tx); rerr != nil {
					err = fmt.Errorf("%w (rollback: %v)", err, rerr)
				}
			}
		}()
		if err := s.InvalidateAuthorizeCodeSession(tx, code); err != nil {
			return err
		}
		if err := s.CreateAccessTokenSession(tx, sigs[i], req); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		return s.Commit(tx)
	})
	n, w := winners(errs)
	if n != 1 {
		t.Fatalf("%d of %d concurrent code exchanges won, want exactly 1: %v", n, Races, errs)
	}
	for i, err := range errs {
		_, gerr := s.GetAccessTokenSession(ctx, sigs[i], nil)
		switch {
		case i == w && gerr != nil:
			t.Errorf("winner's access token: %v", gerr)
		case i != w && !isNotFound(gerr):
			t.Errorf("loser %d (%v) left an access token behind: %v", i, err, gerr)
		}
		if err != nil && !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) && !errors.Is(err, fosite.ErrSerializationFailure) {
			t.Errorf("loser got %v, want ErrInvalidatedAuthorizeCode or ErrSerializationFailure", err)
		}
	}
}

func testRaceRotate(t *testing.T, s storage.Store) {
	ctx := context.Background()
	req := newRequest(t, mustSaveClient(t, s, "c1"))
	rt, at := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, at, req))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, rt, at, req))
	errs := start(Races, func(int) error { return s.RotateRefreshToken(ctx, req.ID, rt) })
	if n, _ := winners(errs); n != 1 {
		t.Fatalf("%d of %d concurrent RotateRefreshToken calls won, want exactly 1: %v", n, Races, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, fosite.ErrSerializationFailure) && !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("loser got %v, want ErrSerializationFailure or ErrInactiveToken", err)
		}
	}
	if _, err := s.GetRefreshTokenSession(ctx, rt, nil); !errors.Is(err, fosite.ErrInactiveToken) {
		t.Errorf("refresh token after the race: %v, want ErrInactiveToken", err)
	}
	_, err := s.GetAccessTokenSession(ctx, at, nil)
	wantNotFound(t, "access token after rotation", err)
}

// testRaceRotateTx replays fosite's refresh grant: in one transaction, rotate the refresh token
// and store the new access and refresh tokens. Only the winner's new pair may exist afterwards.
func testRaceRotateTx(t *testing.T, s storage.Store) {
	ctx := context.Background()
	req := newRequest(t, mustSaveClient(t, s, "c1"))
	rt, at := bigSig(), bigSig()
	must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, at, req))
	must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, rt, at, req))
	newRT, newAT := make([]string, Races), make([]string, Races)
	for i := range Races {
		newRT[i], newAT[i] = bigSig(), bigSig()
	}
	errs := start(Races, func(i int) (err error) {
		tx, err := s.BeginTX(ctx)
		if err != nil {
			return fmt.Errorf("BeginTX: %w", err)
		}
		defer func() {
			if err != nil {
				if rerr := s.Rollback(tx); rerr != nil {
					err = fmt.Errorf("%w (rollback: %v)", err, rerr)
				}
			}
		}()
		if err := s.RotateRefreshToken(tx, req.ID, rt); err != nil {
			return err
		}
		if err := s.CreateAccessTokenSession(tx, newAT[i], req); err != nil {
			return fmt.Errorf("create access: %w", err)
		}
		if err := s.CreateRefreshTokenSession(tx, newRT[i], newAT[i], req); err != nil {
			return fmt.Errorf("create refresh: %w", err)
		}
		return s.Commit(tx)
	})
	n, w := winners(errs)
	if n != 1 {
		t.Fatalf("%d of %d concurrent refreshes won, want exactly 1: %v", n, Races, errs)
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, fosite.ErrSerializationFailure) && !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("loser got %v, want ErrSerializationFailure or ErrInactiveToken", err)
		}
		_, gerr := s.GetRefreshTokenSession(ctx, newRT[i], nil)
		switch {
		case i == w && gerr != nil:
			t.Errorf("winner's new refresh token: %v", gerr)
		case i != w && !isNotFound(gerr):
			t.Errorf("loser %d left a refresh token behind: %v", i, gerr)
		}
	}
}

// testRaceCreate creates token sessions from many goroutines at once, as a loaded token
// endpoint does: every distinct signature is stored and readable, and of the callers creating
// the same signature exactly one succeeds and the others get ErrConflict.
func testRaceCreate(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := mustSaveClient(t, s, "c1")
	const each = 8
	sigs := make([][]string, Races)
	for i := range sigs {
		for range each {
			sigs[i] = append(sigs[i], bigSig())
		}
	}
	shared := bigSig()
	reqs := make([]*fosite.Request, Races)
	for i := range reqs {
		reqs[i] = newRequest(t, client)
	}
	errs := start(Races, func(i int) error {
		for j, sig := range sigs[i] {
			if j == each/2 {
				if err := s.CreateAccessTokenSession(ctx, shared, reqs[i]); err != nil && !errors.Is(err, storage.ErrConflict) {
					return fmt.Errorf("shared signature: %w", err)
				} else if err == nil {
					sigs[i] = append(sigs[i], shared)
				}
			}
			if err := s.CreateAccessTokenSession(ctx, sig, reqs[i]); err != nil {
				return fmt.Errorf("create %d: %w", j, err)
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	owners := 0
	for i := range sigs {
		if len(sigs[i]) > each {
			owners++
		}
		for _, sig := range sigs[i] {
			got, err := s.GetAccessTokenSession(ctx, sig, nil)
			if err != nil {
				t.Fatalf("token of goroutine %d after the race: %v", i, err)
			}
			if got.GetID() != reqs[i].ID {
				t.Errorf("token of goroutine %d holds request %q, want %q", i, got.GetID(), reqs[i].ID)
			}
		}
	}
	if owners != 1 {
		t.Errorf("%d of %d concurrent creates of one signature succeeded, want exactly 1", owners, Races)
	}
}

func testRaceJTI(t *testing.T, s storage.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	errs := start(Races, func(int) error { return s.UseJTI(ctx, "https://issuer.example|race", exp) })
	if n, _ := winners(errs); n != 1 {
		t.Fatalf("%d of %d concurrent UseJTI calls won, want exactly 1: %v", n, Races, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrJTIUsed) {
			t.Errorf("loser got %v, want ErrJTIUsed", err)
		}
	}
}

func testRaceJTIExpired(t *testing.T, s storage.Store) {
	ctx := context.Background()
	must(t, "UseJTI(expired)", s.UseJTI(ctx, "k", time.Now().Add(-time.Minute)))
	exp := time.Now().Add(time.Hour)
	errs := start(Races, func(int) error { return s.UseJTI(ctx, "k", exp) })
	if n, _ := winners(errs); n != 1 {
		t.Fatalf("%d of %d concurrent reuses of an expired jti won, want exactly 1: %v", n, Races, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrJTIUsed) {
			t.Errorf("loser got %v, want ErrJTIUsed", err)
		}
	}
}

// testRaceKeys appends one key per goroutine. No update may be lost: the final set holds exactly
// the keys of the callers that got nil, and the others got ErrConflict.
func testRaceKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	errs := start(Races, func(i int) error {
		return s.UpdateKeys(ctx, func(cur []storage.Key) ([]storage.Key, error) {
			return append(cur, storage.Key{ID: fmt.Sprintf("k%02d", i), Algorithm: "ES256", State: storage.KeyNext}), nil
		})
	})
	keys, err := s.Keys(ctx)
	must(t, "Keys", err)
	have := map[string]int{}
	for _, k := range keys {
		have[k.ID]++
	}
	won := 0
	for i, err := range errs {
		id := fmt.Sprintf("k%02d", i)
		switch {
		case err == nil:
			won++
			if have[id] != 1 {
				t.Errorf("update %d succeeded but its key appears %d times", i, have[id])
			}
		case errors.Is(err, storage.ErrConflict):
			if have[id] != 0 {
				t.Errorf("update %d reported ErrConflict but its key was written", i)
			}
		default:
			t.Errorf("update %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if won == 0 || len(keys) != won {
		t.Errorf("%d updates won but the set has %d keys: lost or phantom updates", won, len(keys))
	}
}
