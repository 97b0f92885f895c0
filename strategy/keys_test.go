package strategy

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

func TestNewSigningKey(t *testing.T) {
	ec256 := newPrivateKey(t, jose.ES256)
	ec384 := newPrivateKey(t, jose.ES384)
	ed := newPrivateKey(t, jose.EdDSA)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  crypto.Signer
		want string // "" = success
	}{
		{"RS256", jose.RS256, rsaKey(), ""},
		{"PS256", jose.PS256, rsaKey(), ""},
		{"ES256", jose.ES256, ec256, ""},
		{"ES384", jose.ES384, ec384, ""},
		{"EdDSA", jose.EdDSA, ed, ""},
		{"opaque (KMS-like) signer", jose.ES256, &opaqueSigner{Signer: ec256}, ""},
		{"ES256 on P-384", jose.ES256, ec384, "does not fit"},
		{"ES384 on P-256", jose.ES384, ec256, "does not fit"},
		{"RS256 on EC", jose.RS256, ec256, "does not fit"},
		{"ES256 on RSA", jose.ES256, rsaKey(), "does not fit"},
		{"EdDSA on EC", jose.EdDSA, ec256, "does not fit"},
		{"HS256", jose.HS256, ec256, "unsupported signing algorithm"},
		{"none", "none", ec256, "unsupported signing algorithm"},
		{"empty alg", "", ec256, "unsupported signing algorithm"},
		{"RSA 1024", jose.RS256, small, "shorter than 2048"},
		{"nil", jose.ES256, nil, "nil"},
		{"typed nil RSA", jose.RS256, (*rsa.PrivateKey)(nil), "empty"},
		{"typed nil EC", jose.ES256, (*ecdsa.PrivateKey)(nil), "empty"},
		{"short Ed25519", jose.EdDSA, ed25519.PrivateKey(make([]byte, 10)), "wrong length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewSigningKey("", tt.alg, tt.key)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantKID, _ := thumbprint(tt.key.Public())
			if k.ID != wantKID || k.Algorithm != tt.alg {
				t.Errorf("kid %q alg %s, want thumbprint %q and %s", k.ID, k.Algorithm, wantKID, tt.alg)
			}
			tok, err := k.sign([]byte(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tt.alg})
			if err != nil {
				t.Fatal(err)
			}
			pub := k.Public()
			if _, err := jws.Verify(&pub); err != nil {
				t.Errorf("does not verify: %v", err)
			}
			if o, ok := tt.key.(*opaqueSigner); ok && o.calls.Load() != 1 {
				t.Errorf("opaque signer called %d times, want 1", o.calls.Load())
			}
		})
	}
	if _, err := (&SigningKey{ID: "x", Algorithm: jose.ES256, Signer: ec256}).sign(nil); err == nil {
		t.Error("a SigningKey not made by NewSigningKey signed")
	}
}

func TestStaticKeys(t *testing.T) {
	es := newTestKey(t, "es", jose.ES256)
	es2 := newTestKey(t, "es2", jose.ES256)
	ed := newTestKey(t, "ed", jose.EdDSA)
	ks, err := StaticKeys(ed, es, es2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for alg, want := range map[string]string{"": "ed", "EdDSA": "ed", "ES256": "es"} {
		k, err := ks.SigningKey(ctx, alg)
		if err != nil || k.ID != want {
			t.Errorf("SigningKey(%q) = %v, %v; want %s", alg, k, err, want)
		}
	}
	if _, err := ks.SigningKey(ctx, "RS256"); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("SigningKey(RS256) error %v, want ErrNoSigningKey", err)
	}
	pub, _ := ks.PublicKeys(ctx)
	if len(pub) != 3 {
		t.Fatalf("%d public keys, want 3", len(pub))
	}
	for i, id := range []string{"ed", "es", "es2"} {
		if pub[i].KeyID != id || !pub[i].IsPublic() || pub[i].Use != "sig" || pub[i].Algorithm == "" {
			t.Errorf("public key %d = %+v", i, pub[i])
		}
		raw, _ := json.Marshal(pub[i])
		if strings.Contains(string(raw), `"d"`) {
			t.Errorf("public key %d carries private members: %s", i, raw)
		}
	}
	pub[0].KeyID = "mutated"
	if again, _ := ks.PublicKeys(ctx); again[0].KeyID != "ed" {
		t.Error("PublicKeys returns shared state")
	}

	for name, keys := range map[string][]*SigningKey{
		"none":      nil,
		"duplicate": {es, es},
		"zero":      {{ID: "x", Algorithm: jose.ES256}},
		"nil":       {nil},
	} {
		if _, err := StaticKeys(keys...); err == nil {
			t.Errorf("StaticKeys(%s) accepted", name)
		}
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	rsaPriv := rsaKey()
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemBytes("PRIVATE KEY", der)
	}
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemBytes("EC PRIVATE KEY", der)
	}
	jwk := func(k any, kid, alg, use string) []byte {
		b, err := json.Marshal(jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg, Use: use})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ecParams, _ := x509.MarshalPKIXPublicKey(&ec256.PublicKey) // any bytes: the block is skipped
	pubDER, _ := x509.MarshalPKIXPublicKey(&ec256.PublicKey)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	x25519, _ := x509.MarshalPKCS8PrivateKey(mustX25519(t))

	tests := []struct {
		name    string
		data    []byte
		pub     crypto.PublicKey
		wantAlg jose.SignatureAlgorithm
		wantKID string // "" = thumbprint
		wantErr string
	}{
		{"PKCS#8 RSA", pkcs8(rsaPriv), &rsaPriv.PublicKey, jose.RS256, "", ""},
		{"PKCS#8 P-256", pkcs8(ec256), &ec256.PublicKey, jose.ES256, "", ""},
		{"PKCS#8 P-384", pkcs8(ec384), &ec384.PublicKey, jose.ES384, "", ""},
		{"PKCS#8 P-521: ES512 is not one of the algorithms", pkcs8(ec521), nil, "", "", "unsupported signing algorithm \"ES512\""},
		{"PKCS#8 Ed25519", pkcs8(ed), ed.Public(), jose.EdDSA, "", ""},
		{"PKCS#1 RSA", pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv)), &rsaPriv.PublicKey, jose.RS256, "", ""},
		{"SEC1 P-256", sec1(ec256), &ec256.PublicKey, jose.ES256, "", ""},
		{"SEC1 P-384 after EC PARAMETERS", append(pemBytes("EC PARAMETERS", ecParams), sec1(ec384)...), &ec384.PublicKey, jose.ES384, "", ""},
		{"JWK RSA", jwk(rsaPriv, "", "", ""), &rsaPriv.PublicKey, jose.RS256, "", ""},
		{"JWK RSA PS256 with kid", jwk(rsaPriv, "my-kid", "PS256", "sig"), &rsaPriv.PublicKey, jose.PS256, "my-kid", ""},
		{"JWK P-256", jwk(ec256, "", "", "sig"), &ec256.PublicKey, jose.ES256, "", ""},
		{"JWK P-384", jwk(ec384, "k384", "ES384", ""), &ec384.PublicKey, jose.ES384, "k384", ""},
		{"JWK Ed25519", append([]byte("\n  "), jwk(ed, "", "", "")...), ed.Public(), jose.EdDSA, "", ""},

		{"empty file", nil, nil, "", "", "no private key found"},
		{"random bytes", []byte("\x00\x01garbage\xff"), nil, "", "", "no private key found"},
		{"public key PEM", pemBytes("PUBLIC KEY", pubDER), nil, "", "", "not a private key"},
		{"corrupt PKCS#8", pemBytes("PRIVATE KEY", []byte("nope")), nil, "", "", "parse PRIVATE KEY"},
		{"encrypted PKCS#8", pemBytes("ENCRYPTED PRIVATE KEY", []byte("x")), nil, "", "", "encrypted"},
		{"legacy encrypted PEM", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte("x")}), nil, "", "", "encrypted"},
		{"RSA 1024", pkcs8(small), nil, "", "", "shorter than 2048"},
		{"X25519 cannot sign", pemBytes("PRIVATE KEY", x25519), nil, "", "", "cannot sign"},
		{"JWK public only", jwk(&ec256.PublicKey, "", "", ""), nil, "", "", "no private key"},
		{"JWK symmetric", jwk(make([]byte, 32), "", "", ""), nil, "", "", "cannot sign"},
		{"JWK use enc", jwk(ec256, "", "", "enc"), nil, "", "", `use is "enc"`},
		{"JWK alg mismatch", jwk(ec256, "", "RS256", ""), nil, "", "", "does not fit"},
		{"JWK alg HS256", jwk(ec256, "", "HS256", ""), nil, "", "", "unsupported signing algorithm"},
		{"broken JSON", []byte(`{"kty":"EC",`), nil, "", "", "parse JWK"},
		{"too large", append(pkcs8(ec256), make([]byte, maxKeyFileSize)...), nil, "", "", "larger than"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "key"+string(rune('a'+i)), tt.data)
			k, err := LoadKeyFile(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantKID := tt.wantKID
			if wantKID == "" {
				wantKID, _ = thumbprint(tt.pub)
			}
			if k.Algorithm != tt.wantAlg || k.ID != wantKID {
				t.Errorf("alg %s kid %q, want %s %q", k.Algorithm, k.ID, tt.wantAlg, wantKID)
			}
			if pub := k.Public(); !pub.Valid() {
				t.Error("public key invalid")
			}
			tok, err := k.sign([]byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{k.Algorithm})
			if _, err := jws.Verify(tt.pub); err != nil {
				t.Errorf("loaded key's signature does not verify with the original public key: %v", err)
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "strategy: ") {
		t.Errorf("missing file: %v", err)
	}
}

func mustX25519(t *testing.T) any {
	t.Helper()
	// An ecdh X25519 key: PKCS#8 holds it but it cannot sign.
	k, err := ecdhX25519()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// memKeyStore must satisfy storage.KeyStore.
var _ storage.KeyStore = (*memKeyStore)(nil)

func ecdhX25519() (any, error) { return ecdh.X25519().GenerateKey(rand.Reader) }
