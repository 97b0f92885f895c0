package routertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/strategy/verify"
)

const (
	issuer   = "https://auth.example.com"
	audience = "https://orders.example.com/"
)

// fixture is a verifier and a signer of tokens it accepts.
type fixture struct {
	v     *verify.Verifier
	token func(scope string) string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
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
	return fixture{v: v, token: func(scope string) string {
		now := time.Now()
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: issuer, Subject: "alice", ID: "t-1",
			Audience: jwt.Audience{audience}, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
		}).Claims(map[string]any{"client_id": "shop", "scope": scope}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}
}

// check sends GET /orders/42 through h: a token with orders:read reaches the handler, which
// answers "SUBJECT ID" from the claims and the router's path parameter; the others are refused
// with an RFC 6750 challenge, and the handler never runs.
func (f fixture) check(t *testing.T, h http.Handler) {
	t.Helper()
	for _, tt := range []struct {
		name, auth string
		status     int
		body       string
	}{
		{"ok", "Bearer " + f.token("orders:read"), 200, "alice 42"},
		{"no token", "", 401, ""},
		{"bad token", "Bearer x.y.z", 401, ""},
		{"missing scope", "Bearer " + f.token("orders:write"), 403, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/orders/42", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || (tt.body != "" && rec.Body.String() != tt.body) {
				t.Fatalf("got %d %q; want %d %q", rec.Code, rec.Body.String(), tt.status, tt.body)
			}
			if tt.status != 200 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate challenge")
			}
			if tt.status != 200 && strings.Contains(rec.Body.String(), "alice") {
				t.Fatal("the handler ran for a refused request")
			}
		})
	}
}

// subject is the handler's answer: the claims' subject and the path's id.
func subject(r *http.Request, id string) (string, bool) {
	c, ok := verify.FromContext(r.Context())
	if !ok {
		return "", false
	}
	return c.Subject + " " + id, true
}
