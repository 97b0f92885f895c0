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

// roundTripClient saves c: it must read back exactly, or be refused and absent.
func roundTripClient(t *testing.T, s storage.Store, c *storage.Client) {
	t.Helper()
	ctx := context.Background()
	err := s.SaveClient(ctx, c)
	got, gerr := s.Client(ctx, c.ID)
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
	must(t, "DeleteClient", s.DeleteClient(ctx, c.ID))
}

func testBadInput(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			t.Run("Client", func(t *testing.T) {
				roundTripClient(t, s, &storage.Client{ID: h.s, Name: h.s, Scopes: []string{h.s, "plain"}, RedirectURIs: []string{h.s},
					GrantTypes: []string{h.s}, ResponseTypes: []string{h.s}, Resources: []string{h.s},
					TokenEndpointAuthMethod: h.s, TokenEndpointAuthSigningAlg: h.s, JWKSURI: h.s})
			})
			t.Run("ClientKey", func(t *testing.T) {
				// Text inside a registered key (kid, alg, use) of a client with a plain id.
				jwks := testJWKS(t)
				jwks.Keys[0].KeyID, jwks.Keys[0].Algorithm, jwks.Keys[0].Use = h.s, h.s, h.s
				roundTripClient(t, s, &storage.Client{ID: "hostile-key-client", JWKS: jwks})
			})
			t.Run("ResourceServer", func(t *testing.T) {
				rs := &storage.ResourceServer{Identifier: h.s, Name: h.s, Scopes: []string{h.s}, SigningAlg: h.s}
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
				if got.Identifier != h.s || got.Name != h.s || !slices.Equal(got.Scopes, rs.Scopes) || got.SigningAlg != h.s {
					t.Errorf("resource server did not round-trip exactly")
				}
				must(t, "DeleteResourceServer", s.DeleteResourceServer(ctx, h.s))
			})
			t.Run("Trust", func(t *testing.T) {
				tr := &storage.Trust{ID: h.s, Issuer: h.s, Subject: h.s, Scopes: []string{h.s}, Resources: []string{h.s}, JWKSURI: h.s}
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
				if len(list) != 1 || list[0].ID != h.s || list[0].Issuer != h.s || list[0].Subject != h.s ||
					!slices.Equal(list[0].Scopes, tr.Scopes) || !slices.Equal(list[0].Resources, tr.Resources) || list[0].JWKSURI != h.s {
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
			t.Run("Keys", func(t *testing.T) {
				k := storage.Key{ID: h.s, Algorithm: h.s, State: storage.KeyState(h.s), Public: []byte(h.s), Sealed: []byte(h.s)}
				err := s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) { return []storage.Key{k}, nil })
				keys, kerr := s.Keys(ctx)
				if kerr != nil {
					t.Fatalf("Keys: %v", kerr)
				}
				if err != nil {
					if len(keys) != 0 {
						t.Errorf("UpdateKeys refused (%v) but Keys = %d keys", err, len(keys))
					}
					return
				}
				if len(keys) != 1 || !sameKey(keys[0], k) {
					t.Errorf("key did not round-trip exactly")
				}
				must(t, "UpdateKeys(empty)", s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) { return nil, nil }))
			})
			t.Run("TokenKinds", func(t *testing.T) {
				// The hostile string as the signature (or request URI) of every kind of row.
				client := mustSaveClient(t, s, "kinds")
				kinds := []struct {
					name   string
					create func(fosite.Requester) error
					get    func() (fosite.Requester, error)
					remove func() error
				}{
					{"AuthorizeCode",
						func(r fosite.Requester) error { return s.CreateAuthorizeCodeSession(ctx, h.s, r) },
						func() (fosite.Requester, error) { return s.GetAuthorizeCodeSession(ctx, h.s, nil) },
						func() error { return s.InvalidateAuthorizeCodeSession(ctx, h.s) }},
					{"RefreshToken",
						func(r fosite.Requester) error { return s.CreateRefreshTokenSession(ctx, h.s, h.s, r) },
						func() (fosite.Requester, error) { return s.GetRefreshTokenSession(ctx, h.s, nil) },
						func() error { return s.DeleteRefreshTokenSession(ctx, h.s) }},
					{"PKCE",
						func(r fosite.Requester) error { return s.CreatePKCERequestSession(ctx, h.s, r) },
						func() (fosite.Requester, error) { return s.GetPKCERequestSession(ctx, h.s, nil) },
						func() error { return s.DeletePKCERequestSession(ctx, h.s) }},
				}
				for _, k := range kinds {
					t.Run(k.name, func(t *testing.T) {
						req := newRequest(t, client)
						err := k.create(req)
						got, gerr := k.get()
						if err != nil {
							if !isNotFound(gerr) {
								t.Errorf("create refused (%v) but Get = (%v, %v)", err, got, gerr)
							}
							return
						}
						if gerr != nil {
							t.Fatalf("Get: %v", gerr)
						}
						checkRequest(t, "hostile "+k.name, got, req)
						must(t, "remove", k.remove())
					})
				}
			})
			t.Run("SessionOnly", func(t *testing.T) {
				// Only the session (subject, claims, the application's Extra) is hostile.
				req := newRequest(t, mustSaveClient(t, s, "session-only"))
				sess := req.Session.(*storage.Session)
				sess.Subject, sess.Username, sess.ACR, sess.AMR = h.s, h.s, h.s, []string{h.s}
				sess.Extra["v"] = h.s
				sess.Extra[h.s] = []any{h.s, map[string]any{h.s: h.s}}
				sess.AccessToken["sub"] = h.s
				sig := bigSig()
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
				checkRequest(t, "hostile session", got, req)
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
