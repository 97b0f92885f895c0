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
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

// BenchmarkJWTBearer is the RFC 7523 jwt-bearer grant in-process (provider.ServeHTTP), from a
// trusted issuer with an inline ES256 key, interleaved with what it is made of: go-jose's
// verification of the assertion (parse, check the signature, decode the claims), one
// client_credentials issuance of the same algorithm from the same provider, and one jti write in
// the store (x-verify+issue+jti). The assertions are signed outside the timed parts. The trust
// comes from the store's read cache, as in steady state.
//
//	go test -run '^$' -bench 'BenchmarkJWTBearer' -count 3 ./provider/
func BenchmarkJWTBearer(b *testing.B) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	const idp = "https://idp.bench.example"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "idp-1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		b.Fatal(err)
	}
	var seq int
	assertion := func() string {
		seq++
		now := time.Now()
		payload := fmt.Sprintf(`{"iss":%q,"sub":"svc-a","aud":%q,"iat":%d,"exp":%d,"jti":"a-%d"}`,
			idp, benchIssuer, now.Unix(), now.Add(2*time.Minute).Unix(), seq)
		obj, err := signer.Sign([]byte(payload))
		if err != nil {
			b.Fatal(err)
		}
		out, err := obj.CompactSerialize()
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	for _, alg := range benchAlgs {
		for _, variant := range []string{"persisted-sqlite", "stateless"} {
			b.Run(alg+"/"+variant, func(b *testing.B) {
				as := newBenchAS(b, benchStore(b, variant), 0, variant)
				st := as.p.Store()
				if err := st.SaveTrust(context.Background(), &storage.Trust{ID: "idp", Issuer: idp, Subject: "svc-a",
					JWKS:   &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "idp-1", Algorithm: "ES256"}}},
					Scopes: []string{benchScope}, Resources: []string{benchResource(alg)}}); err != nil {
					b.Fatal(err)
				}
				e := as.endpoint()
				var (
					req *http.Request
					rec *httptest.ResponseRecorder
					raw string
				)
				grant := contender{
					name: "jwt-bearer",
					prepare: func() {
						body := url.Values{"grant_type": {jwtBearer}, "assertion": {assertion()}, "resource": {benchResource(alg)}}.Encode()
						req = httptest.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						rec = httptest.NewRecorder()
					},
					run: func() error {
						e.h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							return fmt.Errorf("jwt-bearer: %d %s", rec.Code, rec.Body)
						}
						return nil
					},
				}
				issue := endpointContender("issue", e, alg)
				pub := &jose.JSONWebKey{Key: &k.PublicKey, KeyID: "idp-1"}
				var n int
				baseline := contender{
					name: "verify+issue+jti",
					prepare: func() {
						issue.prepare()
						raw = assertion()
					},
					run: func() error {
						jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
						if err != nil {
							return err
						}
						payload, err := jws.Verify(pub)
						if err != nil {
							return err
						}
						var c struct {
							Iss, Sub, Aud, Jti string
							Iat, Exp           int64
						}
						if err := json.Unmarshal(payload, &c); err != nil {
							return err
						}
						if err := issue.run(); err != nil {
							return err
						}
						n++
						return st.UseJTI(context.Background(), "bench-bearer-"+strconv.Itoa(n), time.Now().Add(5*time.Minute))
					},
				}
				race(b, grant, baseline)
			})
		}
	}
}
