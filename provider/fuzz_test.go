package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

func FuzzParseSetup(f *testing.F) {
	f.Add([]byte(testSetup))
	f.Add([]byte(`{"clients":[{"client_id":"a","public":true,"grant_types":["authorization_code"],"redirect_uris":["http://127.0.0.1/cb"]}]}`))
	f.Add([]byte(`{"trusted_issuers":[{"issuer":"x","allow_any_subject":true,"jwks":{"keys":[{"kty":"EC"}]}}]}`))
	f.Add([]byte(`{"resource_servers":[{"identifier":"https://a/","scopes":["a"],"access_token_ttl":"-1s"}]}`))
	f.Add([]byte(`{"peers":[{"issuer":"https://y.example","scopes":["a"],"claims":["act"],"max_grant_lifetime":"2m"}],"clients":[{"client_id":"b","client_secret":"0123456789abcdef","grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"],"resources":["https://y.example"]}]}`))
	f.Add([]byte(`{"trusted_issuers":[{"issuer":"https://x.example","allow_any_subject":true,"jwks_from_metadata":true,"transcribe":["act","scope"],"scopes":[],"resources":[]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := provider.ParseSetup(data)
		if err != nil {
			if s != nil {
				t.Fatal("setup returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "provider: setup") {
				t.Fatalf("error without the field path prefix: %v", err)
			}
			return
		}
		// Whatever parses re-encodes to a document that parses to the same setup.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := provider.ParseSetup(again)
		if err != nil {
			t.Fatalf("a parsed setup does not parse again: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the setup:\n%+v\n%+v", s, s2)
		}
	})
}

// FuzzTokenEndpoint sends arbitrary bodies and credentials to the token endpoint: nothing may
// produce a 5xx or a non-JSON answer.
func FuzzTokenEndpoint(f *testing.F) {
	for _, s := range []string{
		"grant_type=client_credentials",
		"grant_type=client_credentials&scope=orders:read&resource=https%3A%2F%2Forders.example.com%2F",
		"grant_type=authorization_code&code=abc.def&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&client_id=web&code_verifier=x",
		"grant_type=refresh_token&refresh_token=ory_rt_x.y&client_id=web",
		"grant_type=client_credentials&resource=%00&resource=",
		"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c",
		"%%%&&&==",
	} {
		f.Add(s, "svc", "svc-secret-0123456789", "")
		f.Add(s, "", "", "")
	}
	// A DPoP header: a real proof for the endpoint (good once, then a replay), and garbage.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(k)
	proof, _ := signer.Proof(http.MethodPost, "https://as.example/oauth2/token", "", "")
	f.Add("grant_type=client_credentials", "svc", "svc-secret-0123456789", proof)
	f.Add("grant_type=client_credentials", "svc", "svc-secret-0123456789", "a.b.c")
	st := newStore(f)
	p, err := provider.New(context.Background(), provider.Config{Issuer: "https://as.example/oauth2", Secret: testSecret(f), Storage: st, SigningAlgorithms: []string{"ES256", "RS256"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	setup, err := provider.ParseSetup([]byte(testSetup))
	if err != nil {
		f.Fatal(err)
	}
	if err := p.Apply(context.Background(), setup); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, user, pass, proof string) {
		req := httptest.NewRequest(http.MethodPost, "https://as.example/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proof != "" {
			req.Header.Set(dpop.HeaderName, proof)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
		}
	})
}
