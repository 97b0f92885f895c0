package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
)

// benchTarget is the second resource server of alg: the one tokens are exchanged for.
func benchTarget(alg string) string { return "https://" + strings.ToLower(alg) + "-c.example.com/" }

// BenchmarkExchange is an RFC 8693 token exchange in-process (provider.ServeHTTP), interleaved
// with what it is made of: go-jose's verification of the subject token (parse, find the key,
// check the signature) plus one client_credentials issuance of the same algorithm from the same
// provider. Goal: x-verify+issue ≤ 1.3.
//
//	go test -run '^$' -bench 'BenchmarkExchange' -count 3 ./provider/
func BenchmarkExchange(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, variant := range []string{"persisted-sqlite", "stateless"} {
			b.Run(alg+"/"+variant, func(b *testing.B) {
				as := newBenchAS(b, benchStore(b, variant), 0, variant)
				ctx := context.Background()
				if err := as.p.Store().SaveResourceServer(ctx, &storage.ResourceServer{Identifier: benchTarget(alg), Scopes: []string{benchScope}, SigningAlg: alg}); err != nil {
					b.Fatal(err)
				}
				hash, err := as.p.Hasher().Hash(ctx, []byte(as.secret))
				if err != nil {
					b.Fatal(err)
				}
				if err := as.p.Store().SaveClient(ctx, &storage.Client{ID: "bench-b", SecretHash: hash, GrantTypes: []string{tokenExchange},
					Serves: []string{benchResource(alg)}, Resources: []string{benchTarget(alg)}, Scopes: []string{benchScope}}); err != nil {
					b.Fatal(err)
				}
				e := as.endpoint()
				subject, err := e.issue(alg)
				if err != nil {
					b.Fatal(err)
				}
				key := publishedKey(b, as, subject)
				var (
					req *http.Request
					rec *httptest.ResponseRecorder
				)
				exchange := contender{
					name: "exchange",
					prepare: func() {
						body := url.Values{"grant_type": {tokenExchange}, "subject_token": {subject}, "subject_token_type": {ttAccessToken},
							"resource": {benchTarget(alg)}}.Encode()
						req = httptest.NewRequest(http.MethodPost, e.url, strings.NewReader(body))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						req.SetBasicAuth("bench-b", url.QueryEscape(as.secret))
						rec = httptest.NewRecorder()
					},
					run: func() error {
						as.p.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							return fmt.Errorf("exchange: %d %s", rec.Code, rec.Body)
						}
						return nil
					},
				}
				issue := endpointContender("issue", e, alg)
				both := contender{
					name:    "verify+issue",
					prepare: issue.prepare,
					run: func() error {
						jws, err := jose.ParseSignedCompact(subject, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
						if err != nil {
							return err
						}
						if _, err := jws.Verify(key); err != nil {
							return err
						}
						return issue.run()
					},
				}
				race(b, exchange, both)
			})
		}
	}
}

// publishedKey returns the provider's published key that verifies token.
func publishedKey(b *testing.B, as *benchAS, token string) *jose.JSONWebKey {
	b.Helper()
	rec := httptest.NewRecorder()
	as.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, benchIssuer+"/jwks.json", nil))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		b.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		b.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		b.Fatalf("%d keys for the token's kid", len(keys))
	}
	return &keys[0]
}
