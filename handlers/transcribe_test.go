package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// TestJWTBearerTranscription: a trust keyed to its issuer's RFC 8414 metadata accepts the
// issuer's grants; what of act, scope, auth_time/acr/amr and application claims reaches the
// token follows the trust's Transcribe, and an act claim the trust does not transcribe is
// refused (never silently dropped).
func TestJWTBearerTranscription(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	peer := newKey(t, jose.ES256, "x-1")
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server/x":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/jwks"})
		case "/x/jwks":
			_ = json.NewEncoder(w).Encode(peer.set())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL + "/x"
	const rs = "https://stock.example/"
	base := storage.Trust{Issuer: issuer, AllowAnySubject: true, MetadataKeys: true, Scopes: []string{"stock:read", "stock:write"}, Resources: []string{rs}}
	all := base
	all.ID, all.Transcribe = "all", []string{"act", "scope", "auth_time", "acr", "amr", "tenant", "sub"}
	h := func(tr storage.Trust) *JWTBearer {
		return &JWTBearer{
			Trusts: memTrusts{tr}, JTIs: &memJTIs{}, Keys: &KeySets{Config: verify.KeySetConfig{HTTPClient: srv.Client()}}, Audiences: []string{tokenURL, asIssuer},
			Resolver:     Resolver{Resources: fakeResources{{Identifier: rs, Scopes: []string{"stock:read", "stock:write"}, Default: true}}},
			AccessTokens: &fakeTokens{}, AccessTokenStorage: &fakeTokens{}, Now: func() time.Time { return now },
			MaxDelegationDepth: 2,
		}
	}
	grant := func(kv ...any) string {
		c := with(claims(issuer, "svc", now), append([]any{"aud", asIssuer}, kv...)...)
		return peer.sign(t, c, map[jose.HeaderKey]any{"typ": "JWT"})
	}
	act := map[string]any{"sub": "orders-api", "act": map[string]any{"sub": "gw", "iss": "https://idp.example"}}

	// Everything transcribed.
	ar := bearerRequest(grant("act", act, "scope", "stock:read", "auth_time", now.Add(-time.Hour).Unix(), "acr", "pwd", "amr", []string{"pwd"},
		"tenant", map[string]any{"id": 9007199254740993}, "roles", []string{"admin"}), nil)
	if err := h(all).HandleTokenEndpointRequest(context.Background(), ar); err != nil {
		t.Fatalf("refused: %v", fosite.ErrorToRFC6749Error(err).GetDescription())
	}
	sess := ar.GetSession().(*storage.Session)
	wantAct := map[string]any{"sub": "orders-api", "iss": issuer, "act": map[string]any{"sub": "gw", "iss": "https://idp.example"}}
	if !reflect.DeepEqual(sess.Transcribed["act"], wantAct) {
		t.Errorf("act %v, want %v (actors qualified with the grant's issuer)", sess.Transcribed["act"], wantAct)
	}
	if raw, _ := sess.Transcribed["tenant"].(json.RawMessage); string(raw) != `{"id":9007199254740993}` {
		t.Errorf("tenant %s: not transcribed exactly", raw)
	}
	if _, ok := sess.Transcribed["roles"]; ok || sess.Transcribed["sub"] != nil || len(sess.Transcribed) != 2 {
		t.Errorf("transcribed %v: only act and tenant were allowed (sub never is)", sess.Transcribed)
	}
	if !sess.AuthTime.Equal(now.Add(-time.Hour)) || sess.ACR != "pwd" || !slices.Equal(sess.AMR, []string{"pwd"}) || sess.Subject != "svc" {
		t.Errorf("session %+v", sess)
	}
	if !slices.Equal(ar.GetGrantedScopes(), fosite.Arguments{"stock:read"}) {
		t.Errorf("scopes %v: the grant's scope claim bounds them", ar.GetGrantedScopes())
	}

	for _, tc := range []struct {
		name, assertion string
		trust           storage.Trust
		scope           string
		err             *fosite.RFC6749Error
		hint            string
	}{
		{"act, not transcribed", grant("act", act), base, "", fosite.ErrInvalidGrant, "does not transcribe"},
		{"act too deep", grant("act", map[string]any{"sub": "a", "act": map[string]any{"sub": "b", "act": map[string]any{"sub": "c"}}}), all, "", fosite.ErrInvalidGrant, "at most 2"},
		{"act without sub", grant("act", map[string]any{"iss": issuer}), all, "", fosite.ErrInvalidGrant, "without sub"},
		{"act not an object", grant("act", "orders-api"), all, "", fosite.ErrInvalidGrant, "not an actor chain"},
		{"scope beyond the grant's", grant("scope", "stock:read"), all, "stock:write", fosite.ErrInvalidScope, "scope claim"},
		{"scope not a string", grant("scope", []string{"stock:read"}), all, "", fosite.ErrInvalidGrant, "scope claim"},
		{"auth_time not a number", grant("auth_time", "yesterday"), all, "", fosite.ErrInvalidGrant, "auth_time"},
		{"amr not strings", grant("amr", []int{1}), all, "", fosite.ErrInvalidGrant, "amr"},
		{"grant for another server", grant("aud", "https://z.example"), all, "", fosite.ErrInvalidGrant, "other than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ar := bearerRequest(tc.assertion, nil)
			if tc.scope != "" {
				ar.SetRequestedScopes(fosite.Arguments{tc.scope})
			}
			err := h(tc.trust).HandleTokenEndpointRequest(context.Background(), ar)
			rfc := fosite.ErrorToRFC6749Error(err)
			if err == nil || rfc.ErrorField != tc.err.ErrorField || !strings.Contains(rfc.GetDescription(), tc.hint) {
				t.Fatalf("got %v (%s), want %s mentioning %q", err, rfc.GetDescription(), tc.err.ErrorField, tc.hint)
			}
			if len(ar.GetGrantedAudience()) != 0 {
				t.Fatal("a refused grant was granted an audience")
			}
		})
	}
	// Without transcription, claims are dropped and the trust's scopes apply.
	ar = bearerRequest(grant("scope", "stock:read", "tenant", "t"), nil)
	if err := h(base).HandleTokenEndpointRequest(context.Background(), ar); err != nil {
		t.Fatal(err)
	}
	if s := ar.GetSession().(*storage.Session); s.Transcribed != nil || !slices.Equal(ar.GetGrantedScopes(), fosite.Arguments{"stock:read", "stock:write"}) {
		t.Fatalf("transcribed %v, scopes %v", s.Transcribed, ar.GetGrantedScopes())
	}
}

// TestTranscribable: registered claims other than act, scope, auth_time, acr and amr are never
// transcribed; application claims are.
func TestTranscribable(t *testing.T) {
	for name, want := range map[string]bool{
		"act": true, "scope": true, "auth_time": true, "acr": true, "amr": true, "tenant": true, "roles": true,
		"sub": false, "iss": false, "aud": false, "exp": false, "client_id": false, "may_act": false, "cnf": false, "": false,
	} {
		if got := Transcribable(name); got != want {
			t.Errorf("Transcribable(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzTranscribe feeds arbitrary claims to the transcription of a trust that transcribes
// everything: it never panics, and what it transcribes holds: an act chain of at most the
// delegation depth whose actors all have sub and iss, and only the names the trust lists.
func FuzzTranscribe(f *testing.F) {
	f.Add([]byte(`{"iss":"https://x","sub":"s","act":{"sub":"b","act":{"sub":"a","iss":"https://i"}},"scope":"a b","tenant":{"id":1}}`))
	f.Add([]byte(`{"act":null,"auth_time":1e3,"amr":["pwd"],"acr":"x"}`))
	f.Add([]byte(`{"act":{"sub":""},"scope":7}`))
	trust := &storage.Trust{Issuer: "https://x", Transcribe: []string{"act", "scope", "auth_time", "acr", "amr", "tenant"}}
	f.Fuzz(func(t *testing.T, payload []byte) {
		a := &Assertion{Issuer: "https://x", payload: payload, proven: true}
		tr, err := transcribe(a, trust, 3)
		if err != nil {
			var ae *AssertionError
			if !errors.As(err, &ae) {
				t.Fatalf("not an assertion error: %v", err)
			}
			return
		}
		for name := range tr.claims {
			if !slices.Contains(trust.Transcribe, name) {
				t.Fatalf("transcribed %q, which the trust does not list", name)
			}
		}
		if act, ok := tr.claims["act"].(map[string]any); ok {
			depth := 0
			for m := act; m != nil; depth++ {
				if m["sub"] == "" || m["iss"] == "" || m["sub"] == nil || m["iss"] == nil {
					t.Fatalf("an actor without sub or iss: %v", act)
				}
				m, _ = m["act"].(map[string]any)
			}
			if depth > 3 {
				t.Fatalf("act chain of %d actors, more than 3", depth)
			}
		}
	})
}
