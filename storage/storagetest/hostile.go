package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// hostile are strings every store must round-trip exactly or refuse with an error.
var hostile = []struct{ name, s string }{
	{"SingleQuote", "o'brien"},
	{"DoubleQuote", `say "hi"`},
	{"SQLInjection", "x'); DROP TABLE mandate_clients; --"},
	{"LikeWildcards", `100%_\`},
	{"Backtick", "`id`"},
	{"NUL", "a\x00b"},
	{"OnlyNUL", "\x00"},
	{"TrailingSpace", "id "},
	{"NonASCII", "héllo wörld ✓ 日本語"},
	{"Emoji", "key-🔑-🦄"},
	{"Newlines", "a\r\nb\tc"},
	{"Long64KiB", strings.Repeat("x", 64<<10)},
	{"InvalidUTF8", "bad\xff\xfe"},
}

func testBadInput(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			t.Run("Client", func(t *testing.T) {
				c := &storage.Client{ID: h.s, Name: h.s, Scopes: []string{h.s, "plain"}, RedirectURIs: []string{h.s}}
				err := s.SaveClient(ctx, c)
				got, gerr := s.Client(ctx, h.s)
				if err != nil {
					if !isNotFound(gerr) {
						t.Errorf("SaveClient refused (%v) but Client = (%v, %v)", err, got, gerr)
					}
					return
				}
				if gerr != nil {
					t.Fatalf("Client: %v", gerr)
				}
				if !sameClient(got, c) {
					t.Errorf("client did not round-trip exactly")
				}
				must(t, "DeleteClient", s.DeleteClient(ctx, h.s))
			})
			t.Run("ResourceServer", func(t *testing.T) {
				rs := &storage.ResourceServer{Identifier: h.s, Name: h.s, Scopes: []string{h.s}}
				err := s.SaveResourceServer(ctx, rs)
				got, gerr := s.ResourceServer(ctx, h.s)
				if err != nil {
					if !isNotFound(gerr) {
						t.Errorf("SaveResourceServer refused (%v) but ResourceServer = (%v, %v)", err, got, gerr)
					}
					return
				}
				if gerr != nil {
					t.Fatalf("ResourceServer: %v", gerr)
				}
				if got.Identifier != h.s || got.Name != h.s || !slices.Equal(got.Scopes, rs.Scopes) {
					t.Errorf("resource server did not round-trip exactly")
				}
				must(t, "DeleteResourceServer", s.DeleteResourceServer(ctx, h.s))
			})
			t.Run("Trust", func(t *testing.T) {
				tr := &storage.Trust{ID: h.s, Issuer: h.s, Subject: h.s, Scopes: []string{h.s}}
				err := s.SaveTrust(ctx, tr)
				list, lerr := s.Trusts(ctx, h.s)
				if lerr != nil {
					t.Fatalf("Trusts: %v", lerr)
				}
				if err != nil {
					if len(list) != 0 {
						t.Errorf("SaveTrust refused (%v) but Trusts returns %d", err, len(list))
					}
					return
				}
				if len(list) != 1 || list[0].ID != h.s || list[0].Issuer != h.s || list[0].Subject != h.s || !slices.Equal(list[0].Scopes, tr.Scopes) {
					t.Errorf("trust did not round-trip exactly")
				}
				must(t, "DeleteTrust", s.DeleteTrust(ctx, h.s))
			})
			t.Run("JTI", func(t *testing.T) {
				exp := time.Now().Add(time.Hour)
				if err := s.UseJTI(ctx, h.s, exp); err != nil {
					if errors.Is(err, storage.ErrJTIUsed) {
						t.Fatalf("first use reported as reuse: %v", err)
					}
					return
				}
				if err := s.UseJTI(ctx, h.s, exp); !errors.Is(err, storage.ErrJTIUsed) {
					t.Errorf("second use = %v, want ErrJTIUsed", err)
				}
			})
			t.Run("Token", func(t *testing.T) {
				client := mustSaveClient(t, s, "c-"+fmt.Sprint(len(h.s)))
				req := newRequest(t, client)
				req.ID = "req-" + h.s
				req.GrantedScope = fosite.Arguments{h.s}
				req.RequestedAudience = fosite.Arguments{h.s}
				req.Form.Set(h.s, h.s)
				req.Session.(*storage.Session).Subject = h.s
				req.Session.(*storage.Session).Extra["v"] = h.s
				sig := h.s
				err := s.CreateAccessTokenSession(ctx, sig, req)
				got, gerr := s.GetAccessTokenSession(ctx, sig, nil)
				if err != nil {
					if !isNotFound(gerr) {
						t.Errorf("create refused (%v) but Get = (%v, %v)", err, got, gerr)
					}
					return
				}
				if gerr != nil {
					t.Fatalf("Get: %v", gerr)
				}
				checkRequest(t, "hostile token", got, req)
				must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx, req.ID))
				_, gerr = s.GetAccessTokenSession(ctx, sig, nil)
				wantNotFound(t, "after revoke", gerr)
			})
		})
	}
	// Nothing above may have damaged the schema.
	c := mustSaveClient(t, s, "after-hostile")
	if got, err := s.Client(ctx, c.ID); err != nil || !sameClient(got, c) {
		t.Errorf("store unusable after hostile input: %v", err)
	}
}
