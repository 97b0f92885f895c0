package provider_test

// Benchmarks of the token endpoint, side by side with the baselines the performance goals are
// stated against: plain fosite v0.49 (compose, its own JWT strategy, memory store, a cheap
// secret hash), go-jose v4's cheapest signing path of the same claims, and the bare signature.
// Each iteration runs every contender once, in turn, so that noise from other processes hits
// all of them alike; the ratios reported with b.ReportMetric ("x-gojose", "x-fosite", …) are
// the figures to compare, not the absolute times.
//
//	go test -run '^$' -bench 'BenchmarkIssue$|FositeBaseline' -benchmem -count 3 ./provider/
//	go test -run '^$' -bench 'IssueParallel' -count 3 ./provider/
//
// The variants (see benchVariants) are the shipped default, which persists every access token
// in the embedded SQLite file, and Config.StatelessAccessTokens.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	fstorage "github.com/ory/fosite/storage"
	fjwt "github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

const (
	benchIssuer = "http://127.0.0.1:9400/oauth2"
	benchClient = "bench-client"
	benchScope  = "orders:read"
)

var benchAlgs = []string{"ES256", "EdDSA", "RS256"}

// benchResource is the resource server whose tokens are signed with alg.
func benchResource(alg string) string { return "https://" + strings.ToLower(alg) + ".example.com/" }

// benchVariants are the set-ups of the mandate token endpoint.
var benchVariants = []string{
	"persisted-sqlite",     // the default: one row per token in the embedded SQLite file (WAL, synchronous=NORMAL)
	"persisted-sqlite-mem", // the same through gorm on an in-memory SQLite: gorm + SQL without the disk
	"stateless",            // Config.StatelessAccessTokens: no row per access token
}

// benchStore returns the store of a variant.
func benchStore(b testing.TB, variant string) storage.Store {
	b.Helper()
	if variant == "persisted-sqlite-mem" {
		st, err := gormstore.Open(context.Background(), "sqlite::memory:")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}
	return newStore(b)
}

// benchAS is a mandate provider with one client that may get tokens for one resource server
// per algorithm.
type benchAS struct {
	p      *provider.Provider
	secret string
}

// newBenchAS starts a provider on st. The client's secret is generated; bcryptCost 0 stores it
// under mandate's keyed hash, any other cost as a bcrypt hash of that cost.
func newBenchAS(b testing.TB, st storage.Store, bcryptCost int, variant ...string) *benchAS {
	b.Helper()
	return startBenchAS(b, provider.Config{
		Issuer: benchIssuer, Secret: testSecret(b), Storage: st, SigningAlgorithms: benchAlgs, GCInterval: -1,
		StatelessAccessTokens: len(variant) > 0 && variant[0] == "stateless",
	}, bcryptCost)
}

// startBenchAS starts a provider with cfg and registers a resource server per algorithm and the
// bench client (see newBenchAS for bcryptCost). Without a Logger it logs Warn and above to
// nowhere: a benchmark times issuance, not a terminal printing a line per token
// (BenchmarkObservability measures the Info line by itself).
func startBenchAS(b testing.TB, cfg provider.Config, bcryptCost int) *benchAS {
	b.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := provider.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	secret, err := provider.GenerateSecret()
	if err != nil {
		b.Fatal(err)
	}
	setup := provider.Setup{}
	var resources []string
	for _, alg := range benchAlgs {
		setup.ResourceServers = append(setup.ResourceServers, provider.SetupResource{
			Identifier: benchResource(alg), Scopes: []string{benchScope}, AccessTokenTTL: "10m", SigningAlg: alg,
		})
		resources = append(resources, benchResource(alg))
	}
	c := provider.SetupClient{
		ClientID: benchClient, GrantTypes: []string{"client_credentials"},
		Scopes: []string{benchScope}, Resources: resources,
	}
	if bcryptCost == 0 {
		c.ClientSecret = secret
	} else {
		h, err := bcrypt.GenerateFromPassword([]byte(secret), bcryptCost)
		if err != nil {
			b.Fatal(err)
		}
		c.ClientSecretHash = string(h)
	}
	setup.Clients = []provider.SetupClient{c}
	if err := p.Apply(context.Background(), &setup); err != nil {
		b.Fatal(err)
	}
	return &benchAS{p: p, secret: secret}
}

// tokenRequest builds a client_credentials request for the resource server of alg.
func tokenRequest(target, client, secret, alg string) *http.Request {
	body := "grant_type=client_credentials&scope=" + url.QueryEscape(benchScope) + "&resource=" + url.QueryEscape(benchResource(alg))
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	return r
}

// endpoint is one token endpoint under test: an http.Handler and how to ask it for a token.
type endpoint struct {
	h            http.Handler
	url          string
	client, pass string
}

func (as *benchAS) endpoint() endpoint {
	return endpoint{h: as.p, url: benchIssuer + "/token", client: benchClient, pass: as.secret}
}

// issue runs one token request; it returns the access token.
func (e endpoint) issue(alg string) (string, error) {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, tokenRequest(e.url, e.client, e.pass, alg))
	if rec.Code != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %d %s", rec.Code, rec.Body)
	}
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: no access token in %s", rec.Body)
	}
	return resp.AccessToken, nil
}

// contender is one thing a benchmark times. prepare (optional) runs before the clock starts.
type contender struct {
	name    string
	prepare func()
	run     func() error
}

// endpointContender times ServeHTTP of a prepared token request (building the request is not
// timed; reading the answer's status is).
func endpointContender(name string, e endpoint, alg string) contender {
	var (
		req *http.Request
		rec *httptest.ResponseRecorder
	)
	return contender{
		name: name,
		prepare: func() {
			req = tokenRequest(e.url, e.client, e.pass, alg)
			rec = httptest.NewRecorder()
		},
		run: func() error {
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", name, rec.Code, rec.Body)
			}
			return nil
		},
	}
}

// race runs every contender once per iteration, in turn, and reports each one's mean time
// ("NAME-ns"), allocations per call measured before the loop ("NAME-allocs", "NAME-B"), and
// the first contender's time over each other's ("x-NAME"). Each iteration starts one
// contender further on: whichever runs first after the previous iteration's work pays more
// (about 4% on a loaded machine, caches and the GC's pacing), and the rotation spreads that
// over all of them.
func race(b *testing.B, cs ...contender) {
	b.Helper()
	allocs := make([][2]float64, len(cs))
	for i, c := range cs {
		n, size, err := allocsPerCall(c, 50)
		if err != nil {
			b.Fatal(err)
		}
		allocs[i] = [2]float64{n, size}
	}
	spent := make([]time.Duration, len(cs))
	b.ReportAllocs()
	first := 0
	for b.Loop() {
		for j := range cs {
			i := (first + j) % len(cs)
			c := cs[i]
			if c.prepare != nil {
				c.prepare()
			}
			t0 := time.Now()
			err := c.run()
			spent[i] += time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
		}
		first = (first + 1) % len(cs)
	}
	for i, c := range cs {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), c.name+"-ns")
		b.ReportMetric(allocs[i][0], c.name+"-allocs")
		b.ReportMetric(allocs[i][1], c.name+"-B")
		if i > 0 {
			b.ReportMetric(float64(spent[0])/float64(spent[i]), "x-"+c.name)
		}
	}
}

// allocsPerCall runs c n times and returns the mean number and size of heap allocations.
func allocsPerCall(c contender, n int) (allocs, bytes float64, err error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if c.prepare != nil {
			c.prepare()
		}
		if err := c.run(); err != nil {
			return 0, 0, err
		}
	}
	runtime.ReadMemStats(&after)
	// prepare's allocations are counted too; they are small next to a token request and the
	// same for every endpoint.
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n), nil
}

// tokenClaims is the payload of a client_credentials access token, for the go-jose baseline.
type tokenClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audClaim `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
}

// audClaim is an aud claim of one value, decoded from a string or a one-element array (fosite
// writes an array) and encoded as a string.
type audClaim string

func (a *audClaim) UnmarshalJSON(data []byte) error {
	var list []string
	if json.Unmarshal(data, &list) == nil && len(list) == 1 {
		*a = audClaim(list[0])
		return nil
	}
	return json.Unmarshal(data, (*string)(a))
}

// claimsFrom decodes a token's payload (unverified) into tokenClaims, so the baselines sign
// exactly the claims mandate signed.
func claimsFrom(b testing.TB, token string) tokenClaims {
	b.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		b.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		b.Fatal(err)
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		b.Fatal(err)
	}
	return c
}

func newBenchKey(b testing.TB, alg string) crypto.Signer {
	b.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		err = errors.New("unknown algorithm " + alg)
	}
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// goJoseContender is go-jose v4's cheapest path: json.Marshal of a struct, a cached Signer's
// Sign, CompactSerialize.
func goJoseContender(b testing.TB, alg string, c tokenClaims) contender {
	b.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: newBenchKey(b, alg), KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		b.Fatal(err)
	}
	return contender{name: "gojose", run: func() error {
		payload, err := json.Marshal(&c)
		if err != nil {
			return err
		}
		jws, err := signer.Sign(payload)
		if err != nil {
			return err
		}
		_, err = jws.CompactSerialize()
		return err
	}}
}

// rawContender is the cryptography alone: hash and sign the JWS signing input.
func rawContender(b testing.TB, alg string, c tokenClaims) contender {
	b.Helper()
	key := newBenchKey(b, alg)
	payload, _ := json.Marshal(&c)
	input := []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"`+alg+`","kid":"k1","typ":"at+jwt"}`)) +
		"." + base64.RawURLEncoding.EncodeToString(payload))
	return contender{name: "raw", run: func() error { return rawSign(key, input) }}
}

func rawSign(key crypto.Signer, input []byte) error {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(input)
		_, err := ecdsa.SignASN1(rand.Reader, k, h[:])
		return err
	case ed25519.PrivateKey:
		_ = ed25519.Sign(k, input)
		return nil
	case *rsa.PrivateKey:
		h := sha256.Sum256(input)
		_, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
		return err
	}
	return fmt.Errorf("unsupported key %T", key)
}

// BenchmarkIssue is the whole token endpoint in-process (provider.ServeHTTP of a
// client_credentials request, generated secret), interleaved with what it is compared with:
// "vs-gojose" with go-jose's cheapest path on the same claims and the raw signature (x-gojose,
// x-raw; goal 1: x-gojose ≤ 1.3 without a token row, ≤ 2.0 persisted to SQLite), "vs-fosite"
// with plain fosite (x-fosite). Each comparison runs on its own: plain fosite allocates 29 KB
// per token, and interleaved with the go-jose race its garbage and cache traffic land on
// whichever contender runs next, the one with the larger working set most (mandate's SQLite
// commit slows by about 7 µs).
func BenchmarkIssue(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, variant := range benchVariants {
			for _, vs := range []string{"vs-gojose", "vs-fosite"} {
				b.Run(alg+"/"+variant+"/"+vs, func(b *testing.B) {
					e := newBenchAS(b, benchStore(b, variant), 0, variant).endpoint()
					tok, err := e.issue(alg)
					if err != nil {
						b.Fatal(err)
					}
					c := claimsFrom(b, tok)
					if vs == "vs-fosite" {
						race(b, endpointContender("mandate", e, alg), endpointContender("fosite", newFositeBaseline(b, alg), alg))
						return
					}
					race(b, endpointContender("mandate", e, alg), goJoseContender(b, alg, c), rawContender(b, alg, c))
				})
			}
		}
	}
}

// BenchmarkIssueSolo is the mandate token endpoint alone, for clean -benchmem figures and
// profiles. Building the request (httptest.NewRequest, about 20 allocations) is included:
//
//	go test -run '^$' -bench 'IssueSolo/ES256/persisted-sqlite$' -benchmem -cpuprofile cpu.out -memprofile mem.out ./provider/
func BenchmarkIssueSolo(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, variant := range benchVariants {
			b.Run(alg+"/"+variant, func(b *testing.B) {
				e := newBenchAS(b, benchStore(b, variant), 0, variant).endpoint()
				c := endpointContender("mandate", e, alg)
				b.ReportAllocs()
				for b.Loop() {
					c.prepare()
					if err := c.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFositeBaseline is plain fosite's client_credentials endpoint interleaved with
// go-jose's cheapest path and the raw signature: what fosite adds around the signature.
func BenchmarkFositeBaseline(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newFositeBaseline(b, alg)
			tok, err := e.issue(alg)
			if err != nil {
				b.Fatal(err)
			}
			c := claimsFrom(b, tok)
			race(b, endpointContender("fosite", e, alg), goJoseContender(b, alg, c), rawContender(b, alg, c))
		})
	}
}

// BenchmarkIssueParallel is tokens per second on every core (RunParallel), with GOMAXPROCS
// goroutines ("g2" on two cores) and with 16 ("g16", like the HTTP load test's 16 clients,
// which lets concurrent SQLite writes share a commit). "gojose" is go-jose's cheapest path on
// the same claims, "raw" the bare signature (the machine's signing rate), "fosite" plain fosite. The targets of one algorithm alternate
// under -count: compare their tokens/s.
func BenchmarkIssueParallel(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, g := range []int{0, 16} {
			for _, target := range []string{"persisted-sqlite", "stateless", "fosite", "gojose", "raw"} {
				name := fmt.Sprintf("%s/g%d/%s", alg, max(g, runtime.GOMAXPROCS(0)), target)
				b.Run(name, func(b *testing.B) {
					var issue func() error
					switch target {
					case "gojose", "raw":
						tok, err := newFositeBaseline(b, alg).issue(alg)
						if err != nil {
							b.Fatal(err)
						}
						if target == "raw" {
							issue = rawContender(b, alg, claimsFrom(b, tok)).run
						} else {
							issue = goJoseContender(b, alg, claimsFrom(b, tok)).run
						}
					case "fosite":
						e := newFositeBaseline(b, alg)
						issue = func() error { _, err := e.issue(alg); return err }
					default:
						e := newBenchAS(b, benchStore(b, target), 0, target).endpoint()
						issue = func() error { _, err := e.issue(alg); return err }
					}
					if err := issue(); err != nil {
						b.Fatal(err)
					}
					if g > 0 {
						b.SetParallelism((g + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					}
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := issue(); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				})
			}
		}
	}
}

// BenchmarkIssueSecretHash is the ES256 token endpoint (persisted) with the client secret
// under mandate's keyed hash (generated secret) and under bcrypt.
func BenchmarkIssueSecretHash(b *testing.B) {
	for _, h := range []struct {
		name string
		cost int
	}{{"generated", 0}, {"bcrypt10", 10}, {"bcrypt12", 12}} {
		b.Run(h.name, func(b *testing.B) {
			e := newBenchAS(b, newStore(b), h.cost).endpoint()
			c := endpointContender("mandate", e, "ES256")
			b.ReportAllocs()
			for b.Loop() {
				c.prepare()
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sha256Hasher is a cheap fosite.Hasher for the baseline, so that it measures fosite rather
// than bcrypt (fosite's default, 227 ms per request at cost 12).
type sha256Hasher struct{}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	s := sha256.Sum256(data)
	return []byte(hex.EncodeToString(s[:])), nil
}

func (h sha256Hasher) Compare(ctx context.Context, hash, data []byte) error {
	want, _ := h.Hash(ctx, data)
	if subtle.ConstantTimeCompare(want, hash) != 1 {
		return errors.New("secret mismatch")
	}
	return nil
}

// newFositeBaseline is plain fosite v0.49 as its documentation composes it: compose.Compose
// with fosite's own JWT access-token strategy, the memory store, a client_credentials client
// allowed the resource servers as audiences. The handler grants the requested scopes and the
// requested resource as audience, as an application on fosite does.
func newFositeBaseline(b testing.TB, alg string) endpoint {
	b.Helper()
	secret, err := provider.GenerateSecret()
	if err != nil {
		b.Fatal(err)
	}
	hash, _ := sha256Hasher{}.Hash(context.Background(), []byte(secret))
	cfg := &fosite.Config{
		AccessTokenLifespan:      10 * time.Minute,
		AccessTokenIssuer:        benchIssuer,
		TokenURL:                 benchIssuer + "/token",
		GlobalSecret:             testSecret(b),
		ClientSecretsHasher:      sha256Hasher{},
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy, // set: fosite's getter sets it lazily, a data race
		JWTScopeClaimKey:         fjwt.JWTScopeFieldString,               // RFC 9068's "scope", as mandate writes it
	}
	store := fstorage.NewMemoryStore()
	var audience []string
	for _, a := range benchAlgs {
		audience = append(audience, benchResource(a))
	}
	store.Clients[benchClient] = &fosite.DefaultClient{
		ID: benchClient, Secret: hash, GrantTypes: []string{"client_credentials"},
		Scopes: []string{benchScope}, Audience: audience,
	}
	key := &josev3.JSONWebKey{Key: newBenchKey(b, alg), KeyID: "k1", Algorithm: alg}
	strategy := compose.NewOAuth2JWTStrategy(func(context.Context) (any, error) { return key, nil }, compose.NewOAuth2HMACStrategy(cfg), cfg)
	oauth := compose.Compose(cfg, store, strategy, compose.OAuth2ClientCredentialsGrantFactory)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sess := &oauth2.JWTSession{JWTClaims: &fjwt.JWTClaims{}, JWTHeader: &fjwt.Headers{}}
		ar, err := oauth.NewAccessRequest(ctx, r, sess)
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		if res := ar.GetRequestForm().Get("resource"); res != "" && slices.Contains(ar.GetClient().GetAudience(), res) {
			ar.GrantAudience(res)
		}
		sess.JWTClaims.Subject = ar.GetClient().GetID()
		sess.JWTClaims.Add("client_id", ar.GetClient().GetID())
		resp, err := oauth.NewAccessResponse(ctx, ar)
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		oauth.WriteAccessResponse(ctx, w, ar, resp)
	})
	return endpoint{h: h, url: benchIssuer + "/token", client: benchClient, pass: secret}
}

// TestBenchEndpoints keeps the benchmarks honest: every endpoint they time answers with a
// token signed with the requested algorithm, for the requested resource, carrying the claims
// the go-jose baseline signs.
func TestBenchEndpoints(t *testing.T) {
	for _, alg := range benchAlgs {
		targets := map[string]endpoint{"fosite": newFositeBaseline(t, alg)}
		for _, v := range benchVariants {
			targets[v] = newBenchAS(t, benchStore(t, v), 0).endpoint()
		}
		for name, e := range targets {
			t.Run(alg+"/"+name, func(t *testing.T) {
				tok, err := e.issue(alg)
				if err != nil {
					t.Fatal(err)
				}
				jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				if got := jws.Signatures[0].Header.Algorithm; got != alg {
					t.Fatalf("alg %q, want %q", got, alg)
				}
				c := claimsFrom(t, tok)
				if string(c.Aud) != benchResource(alg) || c.Sub != benchClient || c.ClientID != benchClient || c.Scope != benchScope || c.Jti == "" || c.Iss != benchIssuer {
					t.Fatalf("claims %+v", c)
				}
			})
		}
	}
}
