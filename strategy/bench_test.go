package strategy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

// benchAlgs are the algorithms the performance issue compares.
var benchAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// baselineClaims mirrors the claims of a client_credentials token, for the go-jose baseline.
type baselineClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Jti      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
}

func benchClaims() baselineClaims {
	now := time.Now().Unix()
	return baselineClaims{
		Iss: "https://as.example/oauth2", Sub: "billing", Aud: testPolicy.Audience,
		Exp: now + 600, Iat: now, Jti: "n8Rj1bqdFeXlV2zrEYn0Mw", ClientID: "billing",
		Scope: "orders:read orders:write",
	}
}

// BenchmarkGenerateAccessToken is the strategy's full mint of a client_credentials token:
// policy lookup, claims, jti, JSON, go-jose signature, session update.
func BenchmarkGenerateAccessToken(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			keys, err := StaticKeys(newTestKey(b, "k1", alg))
			if err != nil {
				b.Fatal(err)
			}
			j := newStrategy(b, keys, nil)
			ctx := withPolicy(context.Background(), testPolicy)
			req := newRequest(&storage.Session{}, "client_credentials")
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := j.GenerateAccessToken(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGoJoseSign is the cheapest go-jose path on the same claims: one json.Marshal of a
// struct, a cached Signer's Sign, CompactSerialize.
func BenchmarkGoJoseSign(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			priv := newPrivateKey(b, alg)
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}},
				(&jose.SignerOptions{}).WithType("at+jwt"))
			if err != nil {
				b.Fatal(err)
			}
			c := benchClaims()
			b.ReportAllocs()
			for b.Loop() {
				payload, err := json.Marshal(&c)
				if err != nil {
					b.Fatal(err)
				}
				jws, err := signer.Sign(payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.CompactSerialize(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawSignature is the cryptography alone: hash and sign the JWS signing input.
func BenchmarkRawSignature(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			priv := newPrivateKey(b, alg)
			c := benchClaims()
			payload, _ := json.Marshal(&c)
			input := []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+string(alg)+`","kid":"k1","typ":"at+jwt"}`)) +
				"." + base64.RawURLEncoding.EncodeToString(payload))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				switch k := priv.(type) {
				case *ecdsa.PrivateKey:
					h := sha256.Sum256(input)
					_, err = ecdsa.SignASN1(rand.Reader, k, h[:])
				case ed25519.PrivateKey:
					_ = ed25519.Sign(k, input)
				case *rsa.PrivateKey:
					h := sha256.Sum256(input)
					_, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGenerateVsGoJose alternates one GenerateAccessToken and one GoJoseSign-style
// signature in the same loop, so that noise from other processes hits both alike, and reports
// each one's time and their ratio (the figure the performance issue tracks).
func BenchmarkGenerateVsGoJose(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(string(alg), func(b *testing.B) {
			key := newTestKey(b, "k1", alg)
			keys, err := StaticKeys(key)
			if err != nil {
				b.Fatal(err)
			}
			j := newStrategy(b, keys, nil)
			ctx := withPolicy(context.Background(), testPolicy)
			req := newRequest(&storage.Session{}, "client_credentials")
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key.Signer, KeyID: "k1"}},
				(&jose.SignerOptions{}).WithType("at+jwt"))
			if err != nil {
				b.Fatal(err)
			}
			c := benchClaims()
			var gen, base time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, _, err := j.GenerateAccessToken(ctx, req); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				payload, err := json.Marshal(&c)
				if err != nil {
					b.Fatal(err)
				}
				jws, err := signer.Sign(payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.CompactSerialize(); err != nil {
					b.Fatal(err)
				}
				gen += t1.Sub(t0)
				base += time.Since(t1)
			}
			b.ReportMetric(float64(gen.Nanoseconds())/float64(b.N), "generate-ns/op")
			b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "gojose-ns/op")
			b.ReportMetric(float64(gen)/float64(base), "ratio")
		})
	}
}
