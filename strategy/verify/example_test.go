package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/strategy/verify"
)

// Example shows a resource server protecting a handler. The keys are static here; in
// production, leave Keys unset and the verifier discovers them from the issuer.
func Example() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}

	v, err := verify.New(context.Background(), verify.Config{
		Issuer:   "https://auth.example.com",
		Audience: "https://orders.example.com",
		Keys:     &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}},
	})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verify.FromContext(r.Context())
		var app struct {
			Roles []string `json:"roles"`
		}
		_ = claims.Decode(&app)
		fmt.Fprintf(w, "orders of %s for %s, roles %v", claims.Subject, claims.ClientID, app.Roles)
	})
	mux.Handle("GET /orders", v.Middleware(v.RequireScope("orders:read")(orders)))

	// What the authorization server would issue.
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	now := time.Now()
	token, _ := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: "https://auth.example.com", Subject: "alice", ID: "t-1",
		Audience: jwt.Audience{"https://orders.example.com"},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Claims(map[string]any{"client_id": "shop", "scope": "orders:read", "roles": []string{"clerk"}}).Serialize()

	for _, auth := range []string{"Bearer " + token, "", "Bearer not-a-token"} {
		req := httptest.NewRequest("GET", "/orders", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			fmt.Println(rec.Code, rec.Body.String())
		} else {
			fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}

	_, err = v.Verify(context.Background(), "not.a.token")
	fmt.Println(errors.Is(err, verify.ErrMalformed))
	// Output:
	// 200 orders of alice for shop, roles [clerk]
	// 401 Bearer realm="https://orders.example.com"
	// 401 Bearer realm="https://orders.example.com", error="invalid_token", error_description="malformed access token"
	// true
}
