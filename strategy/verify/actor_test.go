package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestActClaims(t *testing.T) {
	clk := newClock()
	k := newEdKey(t, "ed-1")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}
	v, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Keys: &set, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	deep := map[string]any{"sub": "a0"}
	for i := 1; i <= MaxActorDepth; i++ {
		deep = map[string]any{"sub": "a", "act": deep}
	}
	for name, tc := range map[string]struct {
		act, mayAct any
		ok          bool
	}{
		"chain":                 {act: map[string]any{"sub": "c", "act": map[string]any{"sub": "b"}}, ok: true},
		"foreign actor":         {act: map[string]any{"sub": "c", "iss": "https://other.example"}, ok: true},
		"may_act":               {mayAct: map[string]any{"sub": "gw"}, ok: true},
		"act not an object":     {act: "c"},
		"act without sub":       {act: map[string]any{"iss": "x"}},
		"nested without sub":    {act: map[string]any{"sub": "c", "act": map[string]any{}}},
		"act null":              {act: nil},
		"act SUB":               {act: map[string]any{"SUB": "c"}},
		"chain too deep":        {act: deep},
		"may_act with a chain":  {mayAct: map[string]any{"sub": "gw", "act": map[string]any{"sub": "x"}}},
		"may_act not an object": {mayAct: []string{"gw"}},
	} {
		t.Run(name, func(t *testing.T) {
			c := claimsAt(testIssuer, clk.Now())
			if tc.act != nil || strings.HasPrefix(name, "act") {
				c["act"] = tc.act
			}
			if tc.mayAct != nil {
				c["may_act"] = tc.mayAct
			}
			got, err := v.Verify(context.Background(), k.token(t, k.header(), c))
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			if name == "chain" && (got.Act.Subject != "c" || got.Act.Act.Subject != "b" || len(got.Act.Chain()) != 2) {
				t.Fatalf("act %+v", got.Act)
			}
		})
	}
	// RequireActor counts only the current actor, and only one of the token's own issuer.
	for name, tc := range map[string]struct {
		act  any
		want int
	}{
		"current actor":         {map[string]any{"sub": "gw"}, 200},
		"earlier actor only":    {map[string]any{"sub": "x", "act": map[string]any{"sub": "gw"}}, 403},
		"foreign actor of name": {map[string]any{"sub": "gw", "iss": "https://other.example"}, 403},
		"no actor":              {nil, 403},
	} {
		c := claimsAt(testIssuer, clk.Now())
		if tc.act != nil {
			c["act"] = tc.act
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+k.token(t, k.header(), c))
		v.Middleware(v.RequireActor("gw")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))).ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", name, rec.Code, tc.want)
		}
	}
}
