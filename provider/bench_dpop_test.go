package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// BenchmarkIssueDPoP is the token endpoint with a DPoP proof (an ES256 client key, the usual
// choice) interleaved with what RFC 9449 says it should cost at most: the same request
// without a proof, plus go-jose's verification of the proof (parse, verify with its jwk,
// decode the claims), plus one jti write in the store (x-plain+verify+jti; goal ≤ 1.0). The
// proofs are signed outside the timed parts.
//
//	go test -run '^$' -bench IssueDPoP -count 3 ./provider/
func BenchmarkIssueDPoP(b *testing.B) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := dpop.NewSigner(k)
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range benchAlgs {
		for _, variant := range []string{"persisted-sqlite", "stateless"} {
			b.Run(alg+"/"+variant, func(b *testing.B) {
				as := newBenchAS(b, benchStore(b, variant), 0, variant)
				e := as.endpoint()
				st := as.p.Store()
				var (
					req   *http.Request
					rec   *httptest.ResponseRecorder
					proof string
				)
				newProof := func() string {
					p, err := signer.Proof(http.MethodPost, e.url, "", "")
					if err != nil {
						b.Fatal(err)
					}
					return p
				}
				withProof := contender{
					name: "dpop",
					prepare: func() {
						req = tokenRequest(e.url, e.client, e.pass, alg)
						req.Header.Set(dpop.HeaderName, newProof())
						rec = httptest.NewRecorder()
					},
					run: func() error {
						e.h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							return fmt.Errorf("dpop: %d %s", rec.Code, rec.Body)
						}
						return nil
					},
				}
				plain := endpointContender("plain", e, alg)
				var n int
				baseline := contender{
					name: "plain+verify+jti",
					prepare: func() {
						plain.prepare()
						proof = newProof()
					},
					run: func() error {
						if err := plain.run(); err != nil {
							return err
						}
						jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
						if err != nil {
							return err
						}
						payload, err := jws.Verify(jws.Signatures[0].Header.JSONWebKey)
						if err != nil {
							return err
						}
						var c struct {
							JTI string `json:"jti"`
							HTM string `json:"htm"`
							HTU string `json:"htu"`
							IAT int64  `json:"iat"`
						}
						if err := json.Unmarshal(payload, &c); err != nil {
							return err
						}
						n++
						return st.UseJTI(context.Background(), "bench-jti-"+strconv.Itoa(n), time.Now().Add(5*time.Minute))
					},
				}
				race(b, withProof, baseline)
			})
		}
	}
}
