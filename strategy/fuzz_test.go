package strategy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

// FuzzLoadKey feeds arbitrary bytes to the key-file parser: it must return a usable key or an
// error, never panic.
func FuzzLoadKey(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: ec, KeyID: "k"})
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	f.Add(jwk)
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}`))
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}`))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			if k != nil {
				t.Fatal("key and error")
			}
			if !strings.HasPrefix(err.Error(), "strategy: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if k.ID == "" || checkAlg(k.Algorithm, k.Signer.Public()) != nil {
			t.Fatalf("parsed an unusable key: %q %s", k.ID, k.Algorithm)
		}
		if _, err := k.sign([]byte(`{}`)); err != nil {
			t.Fatalf("parsed key cannot sign: %v", err)
		}
	})
}

// FuzzAccessTokenSignature checks that the storage key of any string is its last segment
// (bounded), and that validating arbitrary input never panics.
func FuzzAccessTokenSignature(f *testing.F) {
	key := newTestKey(f, "k1", jose.ES256)
	keys, _ := StaticKeys(key)
	j := newStrategy(f, keys, nil)
	tok, _, err := j.GenerateAccessToken(withPolicy(context.Background(), testPolicy), newRequest(&storage.Session{}, "client_credentials"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("a.b.c.d.e")
	f.Add("...")
	f.Add("")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		sig := AccessTokenSignature(token)
		if len(token) > MaxTokenSize {
			if sig != "" {
				t.Fatal("signature of an oversized token")
			}
		} else if i := strings.LastIndexByte(token, '.'); i < 0 && sig != "" || i >= 0 && sig != token[i+1:] {
			t.Fatalf("AccessTokenSignature(%q) = %q", token, sig)
		}
		if strings.Contains(sig, ".") {
			t.Fatalf("signature %q contains a dot", sig)
		}
		req := newRequest(&storage.Session{}, "client_credentials")
		if err := j.ValidateAccessToken(context.Background(), req, token); err == nil && token != tok {
			t.Fatalf("accepted a token it did not mint: %q", token)
		}
	})
}
