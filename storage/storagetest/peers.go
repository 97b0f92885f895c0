package storagetest

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// samePeer compares the registered fields of two peers (not the store's timestamps).
func samePeer(a, b *storage.Peer) bool {
	x, y := *a, *b
	x.CreatedAt, x.UpdatedAt, y.CreatedAt, y.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// testPeers: peers are found by their exact issuer, listed in issuer order, replaced by a save
// with the same issuer (created stays), deleted once, and shared with no caller.
func testPeers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	list, err := s.Peers(ctx)
	must(t, "Peers(empty)", err)
	if len(list) != 0 {
		t.Errorf("Peers on empty store = %v", list)
	}
	_, err = s.Peer(ctx, "https://as.y.example")
	wantNotFound(t, "Peer(missing)", err)
	wantNotFound(t, "DeletePeer(missing)", s.DeletePeer(ctx, "https://as.y.example"))

	y := &storage.Peer{
		Issuer: "https://as.y.example", Name: "domain Y", TokenEndpoint: "https://as.y.example/token",
		Scopes: []string{"stock:read", "stock:write"}, Claims: []string{"act", "tenant"},
		MaxGrantLifetime: 2 * time.Minute, SigningAlg: "ES256",
	}
	must(t, "SavePeer", s.SavePeer(ctx, y))
	z := &storage.Peer{Issuer: "https://as.z.example/tenant/1"}
	must(t, "SavePeer(z)", s.SavePeer(ctx, z))

	got, err := s.Peer(ctx, y.Issuer)
	must(t, "Peer", err)
	if !samePeer(got, y) {
		t.Errorf("peer = %+v, want %+v", got, y)
	}
	checkStamps(t, "Peer", got.CreatedAt, got.UpdatedAt)
	// The caller's copy and the store's are independent both ways.
	got.Scopes[0], y.Claims[0] = "changed", "changed"
	again, err := s.Peer(ctx, y.Issuer)
	must(t, "Peer(again)", err)
	if again.Scopes[0] != "stock:read" || again.Claims[0] != "act" {
		t.Errorf("the store shares slices with its callers: %+v", again)
	}
	y.Claims[0] = "act"
	for _, near := range []string{"https://as.y.example/", "https://AS.y.example", "https://as.y.example/token"} {
		_, err := s.Peer(ctx, near)
		wantNotFound(t, "Peer("+near+")", err)
	}

	list, err = s.Peers(ctx)
	must(t, "Peers", err)
	if len(list) != 2 || list[0].Issuer != y.Issuer || list[1].Issuer != z.Issuer {
		t.Fatalf("Peers = %+v, want y and z in issuer order", list)
	}

	// Replace keeps the record's identity and its creation time.
	y.Scopes, y.MaxGrantLifetime, y.TokenEndpoint = []string{"stock:read"}, time.Minute, ""
	must(t, "SavePeer(replace)", s.SavePeer(ctx, y))
	replaced, err := s.Peer(ctx, y.Issuer)
	must(t, "Peer(replaced)", err)
	if !samePeer(replaced, y) || !replaced.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("replaced peer = %+v (created %v), want %+v (created %v)", replaced, replaced.CreatedAt, y, got.CreatedAt)
	}
	if list, _ := s.Peers(ctx); len(list) != 2 {
		t.Errorf("after replace: %d peers, want 2", len(list))
	}

	must(t, "DeletePeer", s.DeletePeer(ctx, y.Issuer))
	wantNotFound(t, "DeletePeer twice", s.DeletePeer(ctx, y.Issuer))
	_, err = s.Peer(ctx, y.Issuer)
	wantNotFound(t, "Peer(deleted)", err)
	if list, _ := s.Peers(ctx); len(list) != 1 || !slices.ContainsFunc(list, func(p storage.Peer) bool { return p.Issuer == z.Issuer }) {
		t.Errorf("after delete: %+v, want z only", list)
	}
	if err := s.SavePeer(ctx, &storage.Peer{}); err == nil {
		t.Error("SavePeer without an issuer succeeded")
	}
}
