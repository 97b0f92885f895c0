package handlers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestWellKnownPath(t *testing.T) {
	cases := map[string]string{
		"https://as.example":              "/.well-known/oauth-authorization-server",
		"https://as.example/":             "/.well-known/oauth-authorization-server",
		"https://as.example/oauth2":       "/.well-known/oauth-authorization-server/oauth2",
		"https://as.example/oauth2/":      "/.well-known/oauth-authorization-server/oauth2",
		"https://as.example/tenant/a b":   "/.well-known/oauth-authorization-server/tenant/a%20b",
		"http://127.0.0.1:9400/t1/issuer": "/.well-known/oauth-authorization-server/t1/issuer",
	}
	for in, want := range cases {
		got, err := WellKnownPath(in)
		if err != nil || got != want {
			t.Errorf("WellKnownPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if u, err := WellKnownURL("https://as.example/t1"); err != nil || u != "https://as.example/.well-known/oauth-authorization-server/t1" {
		t.Errorf("WellKnownURL = %q %v", u, err)
	}
}

type keys []jose.JSONWebKey

func (k keys) PublicKeys(context.Context) ([]jose.JSONWebKey, error) { return k, nil }

type failingKeys struct{}

func (failingKeys) PublicKeys(context.Context) ([]jose.JSONWebKey, error) {
	return nil, errors.New("down")
}

func TestJWKSHandlerNeverPublishesPrivateKeys(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := JWKSHandler(keys{{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/jwks.json", nil))
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0]["d"] != nil || set.Keys[0]["kid"] != "k1" {
		t.Fatalf("published %s", rec.Body.Bytes())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	JWKSHandler(failingKeys{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/jwks.json", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("failing source: %d", rec.Code)
	}
	checkRetryable(t, rec)
}

// checkRetryable checks the headers of a 503 the client may retry.
func checkRetryable(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ra := rec.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

func TestMetadataHandlerUnavailable(t *testing.T) {
	rec := httptest.NewRecorder()
	MetadataHandler(func(context.Context) (*Metadata, error) { return nil, errors.New("down") }).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("failing metadata: %d", rec.Code)
	}
	checkRetryable(t, rec)
}
