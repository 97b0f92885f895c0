package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// manager returns s as a storage.Manager, or skips the test: the management roles are
// optional.
func manager(t *testing.T, s storage.Store) storage.Manager {
	t.Helper()
	m, ok := s.(storage.Manager)
	if !ok {
		t.Skipf("%T does not implement storage.Manager (optional)", s)
	}
	return m
}

// listAll walks a listing page by page with the given size and returns every key, failing on
// a page larger than asked or a key seen twice.
func listAll(t *testing.T, what string, size int, list func(p storage.Page) ([]string, string, error)) []string {
	t.Helper()
	var keys []string
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%s: the listing does not end", what)
		}
		got, next, err := list(storage.Page{After: after, Limit: size})
		must(t, what, err)
		if len(got) > size {
			t.Fatalf("%s: page of %d, asked for %d", what, len(got), size)
		}
		for _, k := range got {
			if seen[k] {
				t.Fatalf("%s: %q listed twice", what, k)
			}
			seen[k] = true
			keys = append(keys, k)
		}
		if next == "" {
			return keys
		}
		if len(got) == 0 {
			t.Fatalf("%s: an empty page with a next cursor", what)
		}
		if next != got[len(got)-1] {
			t.Fatalf("%s: next cursor %q is not the last key of the page %q", what, next, got[len(got)-1])
		}
		after = next
	}
}

func clientKeys(m storage.Manager) func(storage.Page) ([]string, string, error) {
	return func(p storage.Page) ([]string, string, error) {
		list, next, err := m.ListClients(context.Background(), p)
		keys := make([]string, len(list))
		for i, c := range list {
			keys[i] = c.ID
		}
		return keys, next, err
	}
}

func testManageClients(t *testing.T, s storage.Store) {
	ctx := context.Background()
	m := manager(t, s)
	list, next, err := m.ListClients(ctx, storage.Page{})
	must(t, "ListClients(empty)", err)
	if len(list) != 0 || next != "" {
		t.Fatalf("ListClients on an empty store = %v, %q", list, next)
	}
	wantNotFound(t, "UpdateClient(missing)", m.UpdateClient(ctx, &storage.Client{ID: "missing"}))

	var ids []string
	for i := range 7 {
		id := fmt.Sprintf("client-%d", i)
		c := &storage.Client{ID: id, Name: "n" + id, SecretHash: []byte("h"), GrantTypes: []string{"client_credentials"},
			Scopes: []string{"a"}, Resources: []string{"https://api.example/"}}
		must(t, "CreateClient", m.CreateClient(ctx, c))
		ids = append(ids, id)
	}
	err = m.CreateClient(ctx, &storage.Client{ID: "client-3", Name: "impostor"})
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateClient(taken) = %v, want ErrConflict", err)
	}
	got, err := s.Client(ctx, "client-3")
	must(t, "Client", err)
	if got.Name != "nclient-3" {
		t.Fatalf("a refused create changed the client: %+v", got)
	}

	for _, size := range []int{1, 2, 3, 7, 100} {
		keys := listAll(t, "ListClients", size, clientKeys(m))
		if !sameSet(keys, ids) {
			t.Fatalf("ListClients by %d = %v, want %v", size, keys, ids)
		}
	}
	// The order is stable, and a page's records are complete.
	first := listAll(t, "ListClients", 3, clientKeys(m))
	if again := listAll(t, "ListClients", 2, clientKeys(m)); !slices.Equal(first, again) {
		t.Fatalf("the order changed: %v then %v", first, again)
	}
	page, _, err := m.ListClients(ctx, storage.Page{Limit: 100})
	must(t, "ListClients", err)
	for _, c := range page {
		if c.Name != "n"+c.ID || string(c.SecretHash) != "h" || !slices.Equal(c.Scopes, []string{"a"}) {
			t.Fatalf("listed client %+v is not the one stored", c)
		}
		checkStamps(t, "ListClients", c.CreatedAt, c.UpdatedAt)
	}
	// A cursor whose record is gone still continues the listing.
	must(t, "DeleteClient", s.DeleteClient(ctx, first[2]))
	rest, _, err := m.ListClients(ctx, storage.Page{After: first[2], Limit: 100})
	must(t, "ListClients(after deleted)", err)
	var restIDs []string
	for _, c := range rest {
		restIDs = append(restIDs, c.ID)
	}
	if !slices.Equal(restIDs, first[3:]) {
		t.Fatalf("after the deleted cursor: %v, want %v", restIDs, first[3:])
	}

	// Update replaces, keeps CreatedAt, and is seen by the next read (no stale cache).
	before, err := s.Client(ctx, "client-1")
	must(t, "Client", err)
	upd := before.Clone()
	upd.Name, upd.Scopes, upd.SecretHash = "renamed", []string{"b", "c"}, []byte("h2")
	time.Sleep(2 * time.Millisecond)
	must(t, "UpdateClient", m.UpdateClient(ctx, upd))
	after, err := s.Client(ctx, "client-1")
	must(t, "Client", err)
	if after.Name != "renamed" || !slices.Equal(after.Scopes, []string{"b", "c"}) || string(after.SecretHash) != "h2" {
		t.Fatalf("after UpdateClient: %+v", after)
	}
	if !after.CreatedAt.Equal(before.CreatedAt) || !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("UpdateClient stamps: created %v→%v, updated %v→%v", before.CreatedAt, after.CreatedAt, before.UpdatedAt, after.UpdatedAt)
	}
	// A deleted client is gone from reads at once.
	must(t, "DeleteClient", s.DeleteClient(ctx, "client-1"))
	_, err = s.Client(ctx, "client-1")
	wantNotFound(t, "Client(deleted)", err)
	wantNotFound(t, "UpdateClient(deleted)", m.UpdateClient(ctx, upd))
}

func testRevokeClientGrants(t *testing.T, s storage.Store) {
	ctx := context.Background()
	m := manager(t, s)
	// Two clients whose IDs are prefixes of each other and LIKE wildcards: only one's grants go.
	gone := mustSaveClient(t, s, "svc_1%")
	kept := mustSaveClient(t, s, "svc_1%x")
	other := mustSaveClient(t, s, "svcA1%")

	type grant struct{ code, access, refresh, pkce string }
	issue := func(c *storage.Client) grant {
		g := grant{code: randID("code-"), access: bigSig(), refresh: randID("rt-"), pkce: randID("pkce-")}
		req := newRequest(t, c)
		must(t, "CreateAuthorizeCodeSession", s.CreateAuthorizeCodeSession(ctx, g.code, req))
		must(t, "CreatePKCERequestSession", s.CreatePKCERequestSession(ctx, g.pkce, req))
		must(t, "CreateAccessTokenSession", s.CreateAccessTokenSession(ctx, g.access, req))
		must(t, "CreateRefreshTokenSession", s.CreateRefreshTokenSession(ctx, g.refresh, g.access, req))
		// A grant of one token: the request ID is the token's signature.
		one := newRequest(t, c)
		one.ID = randID("single-")
		must(t, "CreateAccessTokenSession(one-token grant)", s.CreateAccessTokenSession(ctx, one.ID, one))
		return g
	}
	g1, g2 := issue(gone), issue(gone)
	k, o := issue(kept), issue(other)

	must(t, "DeleteClient", s.DeleteClient(ctx, gone.ID))
	n, err := m.RevokeClientGrants(ctx, gone.ID)
	must(t, "RevokeClientGrants", err)
	if n != 10 {
		t.Errorf("RevokeClientGrants deleted %d rows, want 10 (2 grants of a code, PKCE, access and refresh token, and 2 one-token grants)", n)
	}
	for _, g := range []grant{g1, g2} {
		_, err := s.GetAuthorizeCodeSession(ctx, g.code, &storage.Session{})
		wantNotFound(t, "GetAuthorizeCodeSession(revoked)", err)
		_, err = s.GetAccessTokenSession(ctx, g.access, &storage.Session{})
		wantNotFound(t, "GetAccessTokenSession(revoked)", err)
		_, err = s.GetRefreshTokenSession(ctx, g.refresh, &storage.Session{})
		wantNotFound(t, "GetRefreshTokenSession(revoked)", err)
		_, err = s.GetPKCERequestSession(ctx, g.pkce, &storage.Session{})
		wantNotFound(t, "GetPKCERequestSession(revoked)", err)
	}
	for _, g := range []grant{k, o} {
		if _, err := s.GetAuthorizeCodeSession(ctx, g.code, &storage.Session{}); err != nil {
			t.Errorf("another client's code: %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx, g.access, &storage.Session{}); err != nil {
			t.Errorf("another client's access token: %v", err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, g.refresh, &storage.Session{}); err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
			t.Errorf("another client's refresh token: %v", err)
		}
	}
	if n, err := m.RevokeClientGrants(ctx, gone.ID); err != nil || n != 0 {
		t.Errorf("RevokeClientGrants again = %d, %v; want 0, nil", n, err)
	}
}

func testManageResourceServers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	m := manager(t, s)
	wantNotFound(t, "UpdateResourceServer(missing)", m.UpdateResourceServer(ctx, &storage.ResourceServer{Identifier: "https://missing.example/"}))
	var ids []string
	for i := range 5 {
		rs := &storage.ResourceServer{Identifier: fmt.Sprintf("https://rs%d.example/", i), Scopes: []string{"s"}, AccessTokenTTL: time.Minute, Default: i == 0}
		must(t, "CreateResourceServer", m.CreateResourceServer(ctx, rs))
		ids = append(ids, rs.Identifier)
	}
	if err := m.CreateResourceServer(ctx, &storage.ResourceServer{Identifier: ids[2]}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateResourceServer(taken) = %v, want ErrConflict", err)
	}
	keys := listAll(t, "ListResourceServers", 2, func(p storage.Page) ([]string, string, error) {
		list, next, err := m.ListResourceServers(ctx, p)
		out := make([]string, len(list))
		for i, rs := range list {
			out[i] = rs.Identifier
			if rs.AccessTokenTTL != time.Minute || rs.Default != (rs.Identifier == ids[0]) {
				t.Errorf("listed %+v is not the one stored", rs)
			}
		}
		return out, next, err
	})
	if !sameSet(keys, ids) {
		t.Fatalf("ListResourceServers = %v, want %v", keys, ids)
	}
	// Updating one into the default clears the old default, and the cached reads see both.
	if _, err := s.ResourceServers(ctx); err != nil { // fills a read cache, if there is one
		t.Fatal(err)
	}
	upd := &storage.ResourceServer{Identifier: ids[3], Name: "new", Scopes: []string{"x"}, Default: true}
	must(t, "UpdateResourceServer", m.UpdateResourceServer(ctx, upd))
	all, err := s.ResourceServers(ctx)
	must(t, "ResourceServers", err)
	for _, rs := range all {
		if rs.Default != (rs.Identifier == ids[3]) {
			t.Errorf("after making %s the default: %s has Default %v", ids[3], rs.Identifier, rs.Default)
		}
	}
	got, err := s.ResourceServer(ctx, ids[3])
	must(t, "ResourceServer", err)
	if got.Name != "new" || !slices.Equal(got.Scopes, []string{"x"}) {
		t.Errorf("after UpdateResourceServer: %+v", got)
	}
}

func testManageTrusts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	m := manager(t, s)
	_, err := m.Trust(ctx, "missing")
	wantNotFound(t, "Trust(missing)", err)
	wantNotFound(t, "UpdateTrust(missing)", m.UpdateTrust(ctx, &storage.Trust{ID: "missing", Issuer: "https://x.example"}))
	var ids []string
	for i := range 4 {
		tr := &storage.Trust{Issuer: "https://idp.example", Subject: fmt.Sprintf("svc-%d", i), Scopes: []string{"a"}}
		if i == 0 {
			tr.ID = "fixed-id"
		}
		must(t, "CreateTrust", m.CreateTrust(ctx, tr))
		if tr.ID == "" {
			t.Fatal("CreateTrust did not assign an ID")
		}
		ids = append(ids, tr.ID)
	}
	if err := m.CreateTrust(ctx, &storage.Trust{ID: "fixed-id", Issuer: "https://other.example"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreateTrust(taken) = %v, want ErrConflict", err)
	}
	keys := listAll(t, "ListTrusts", 3, func(p storage.Page) ([]string, string, error) {
		list, next, err := m.ListTrusts(ctx, p)
		out := make([]string, len(list))
		for i, tr := range list {
			out[i] = tr.ID
		}
		return out, next, err
	})
	if !sameSet(keys, ids) {
		t.Fatalf("ListTrusts = %v, want %v", keys, ids)
	}
	// An update may move a trust to another issuer: Trusts(issuer) follows it.
	tr, err := m.Trust(ctx, "fixed-id")
	must(t, "Trust", err)
	tr.Issuer, tr.Scopes = "https://moved.example", []string{"b"}
	must(t, "UpdateTrust", m.UpdateTrust(ctx, tr))
	moved, err := s.Trusts(ctx, "https://moved.example")
	must(t, "Trusts", err)
	if len(moved) != 1 || moved[0].ID != "fixed-id" || !slices.Equal(moved[0].Scopes, []string{"b"}) {
		t.Fatalf("Trusts(moved) = %+v", moved)
	}
	old, err := s.Trusts(ctx, "https://idp.example")
	must(t, "Trusts", err)
	if len(old) != 3 {
		t.Fatalf("Trusts(old issuer) = %d trusts, want 3", len(old))
	}
	must(t, "DeleteTrust", s.DeleteTrust(ctx, "fixed-id"))
	_, err = m.Trust(ctx, "fixed-id")
	wantNotFound(t, "Trust(deleted)", err)
}

// testRaceCreateClient: of concurrent creates of one ID exactly one succeeds.
func testRaceCreateClient(t *testing.T, s storage.Store) {
	m := manager(t, s)
	raceCreate(t, "CreateClient", func(i int) error {
		return m.CreateClient(context.Background(), &storage.Client{ID: "contended", Name: fmt.Sprint(i)})
	})
}

// testRaceCreatePeer: of concurrent creates of one issuer exactly one succeeds.
func testRaceCreatePeer(t *testing.T, s storage.Store) {
	m := manager(t, s)
	raceCreate(t, "CreatePeer", func(i int) error {
		return m.CreatePeer(context.Background(), &storage.Peer{Issuer: "https://contended.example", Name: fmt.Sprint(i)})
	})
}

// raceCreate runs create 8 times at once and checks that exactly one succeeded and the others
// got ErrConflict.
func raceCreate(t *testing.T, what string, create func(i int) error) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = create(i) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("%s: %v, want nil or ErrConflict", what, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent %ss of one record succeeded, want 1", ok, what)
	}
}

// testManagePeers: CreatePeer refuses a registered issuer, UpdatePeer an unknown one and keeps
// the creation time.
func testManagePeers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	m := manager(t, s)
	y := &storage.Peer{Issuer: "https://as.y.example", Name: "Y", Scopes: []string{"a"}}
	wantNotFound(t, "UpdatePeer(missing)", m.UpdatePeer(ctx, y))
	if _, err := s.Peer(ctx, y.Issuer); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdatePeer(missing) created it: %v", err)
	}
	must(t, "CreatePeer", m.CreatePeer(ctx, y))
	created, err := s.Peer(ctx, y.Issuer)
	must(t, "Peer", err)
	if !samePeer(created, y) {
		t.Errorf("created peer = %+v, want %+v", created, y)
	}
	if err := m.CreatePeer(ctx, &storage.Peer{Issuer: y.Issuer, Name: "other"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("CreatePeer(taken) = %v, want ErrConflict", err)
	}
	y.Name, y.Scopes = "Y2", []string{"b"}
	must(t, "UpdatePeer", m.UpdatePeer(ctx, y))
	got, err := s.Peer(ctx, y.Issuer)
	must(t, "Peer", err)
	if !samePeer(got, y) || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("updated peer = %+v (created %v), want %+v (created %v)", got, got.CreatedAt, y, created.CreatedAt)
	}
	for _, bad := range []*storage.Peer{nil, {}} {
		if m.CreatePeer(ctx, bad) == nil || m.UpdatePeer(ctx, bad) == nil {
			t.Errorf("a peer without issuer (%v) was accepted", bad)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
