package verify

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// benchToken returns a verifier (static keys, warm cache) and a typical access token for k.
func benchSetup(b testing.TB, k testKey) (*Verifier, string) {
	b.Helper()
	clk := newClock()
	v, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Now: clk.Now,
		Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}})
	if err != nil {
		b.Fatal(err)
	}
	return v, k.token(b, k.header(), claimsAt(testIssuer, clk.Now()))
}

func benchKeys(b testing.TB) []testKey {
	return []testKey{newRSAKey(b, "rsa-1"), newECKey(b, "ec-1"), newEdKey(b, "ed-1")}
}

// baselineClaims is what a plain validator written on go-jose decodes.
type baselineClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// baseline is go-jose's own parse and verify of the same token, plus decoding the payload.
func baseline(raw string, algs []jose.SignatureAlgorithm, key *jose.JSONWebKey) error {
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil {
		return err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return err
	}
	var c baselineClaims
	return json.Unmarshal(payload, &c)
}

func BenchmarkVerify(b *testing.B) {
	for _, k := range benchKeys(b) {
		v, tok := benchSetup(b, k)
		b.Run(string(k.alg), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGoJoseParseVerify(b *testing.B) {
	for _, k := range benchKeys(b) {
		_, tok := benchSetup(b, k)
		pub := k.public()
		algs := DefaultAlgorithms()
		b.Run(string(k.alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := baseline(tok, algs, &pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	for _, k := range benchKeys(b) {
		v, tok := benchSetup(b, k)
		b.Run(string(k.alg), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkGoJoseParseVerifyParallel(b *testing.B) {
	for _, k := range benchKeys(b) {
		_, tok := benchSetup(b, k)
		pub := k.public()
		algs := DefaultAlgorithms()
		b.Run(string(k.alg), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := baseline(tok, algs, &pub); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestBenchRatio measures Verify against the go-jose baseline with the two interleaved in short
// rounds, which keeps the ratio meaningful on a busy machine. It only reports; run it with
//
//	VERIFY_RATIO=1 go test -run TestBenchRatio -v ./strategy/verify
func TestBenchRatio(t *testing.T) {
	if os.Getenv("VERIFY_RATIO") == "" {
		t.Skip("set VERIFY_RATIO=1 to measure")
	}
	for _, k := range benchKeys(t) {
		v, tok := benchSetup(t, k)
		pub := k.public()
		algs := DefaultAlgorithms()
		ours := func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		}
		theirs := func(b *testing.B) {
			for b.Loop() {
				if err := baseline(tok, algs, &pub); err != nil {
					b.Fatal(err)
				}
			}
		}
		oursParallel := func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(context.Background(), tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		theirsParallel := func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := baseline(tok, algs, &pub); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		for _, mode := range []struct {
			name         string
			ours, theirs func(b *testing.B)
		}{{"serial", ours, theirs}, {"parallel", oursParallel, theirsParallel}} {
			var ratios, a, b []float64
			for range 15 {
				x := float64(testing.Benchmark(mode.ours).NsPerOp())
				y := float64(testing.Benchmark(mode.theirs).NsPerOp())
				a, b, ratios = append(a, x), append(b, y), append(ratios, x/y)
			}
			t.Logf("%-6s %-8s Verify %6.1fµs  go-jose %6.1fµs  ratio: median %.3f (min %.3f, max %.3f) over %d interleaved rounds",
				k.alg, mode.name, median(a)/1e3, median(b)/1e3, median(ratios), slices.Min(ratios), slices.Max(ratios), len(ratios))
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
