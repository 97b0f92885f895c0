package routertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/strategy/verify"
)

const (
	issuer   = "https://auth.example.com"
	audience = "https://orders.example.com/"
)

// TestChi: r.Use(v.Middleware) and r.With(v.RequireScope(...)) as in the README's chi recipe.
func TestChi(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(context.Background(), verify.Config{Issuer: issuer, Audience: audience,
		Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	token := func(scope string) string {
		now := time.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuer, Subject: "alice", ID: "t-1",
			Audience: jwt.Audience{audience}, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
		}).Claims(map[string]any{"client_id": "shop", "scope": scope}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	r := chi.NewRouter()
	r.Use(v.Middleware)
	r.With(v.RequireScope("orders:read")).Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := verify.FromContext(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(c.Subject + " " + chi.URLParam(r, "id")))
	})

	for _, tt := range []struct {
		name, auth string
		status     int
		body       string
	}{
		{"ok", "Bearer " + token("orders:read"), 200, "alice 42"},
		{"no token", "", 401, ""},
		{"bad token", "Bearer x.y.z", 401, ""},
		{"missing scope", "Bearer " + token("orders:write"), 403, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/orders/42", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tt.status || (tt.body != "" && rec.Body.String() != tt.body) {
				t.Fatalf("got %d %q; want %d %q", rec.Code, rec.Body.String(), tt.status, tt.body)
			}
			if tt.status != 200 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate challenge")
			}
		})
	}
}
