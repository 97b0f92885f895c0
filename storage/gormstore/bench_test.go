package gormstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// benchBackends are the databases the hot paths are measured on. The ...Direct ones have group
// commit off (every call writes its own row), for comparison.
func benchBackends() []backend {
	return []backend{
		{"SQLite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "bench.db") }},
		{"SQLiteDirect", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "bench.db") }},
		{"SQLiteMemory", func(testing.TB) string { return "sqlite::memory:" }}, // the CPU without the file
		{"Postgres", freshPostgres},
		{"PostgresDirect", freshPostgres},
		{"MySQL", freshMySQL},
		{"MySQLDirect", freshMySQL},
	}
}

func benchStore(b *testing.B, be backend, opts ...Option) *Store {
	b.Helper()
	if strings.HasSuffix(be.name, "Direct") {
		opts = append(opts, WithWriteBatch(1))
	}
	return openT(b, be.fresh(b), opts...)
}

// benchClient is a client_credentials client as the token endpoint reads it.
func benchClient() *storage.Client {
	return &storage.Client{ID: "client-1", SecretHash: []byte("0123456789abcdef0123456789abcdef"),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read", "orders:write"},
		Resources: []string{"https://api.example/"}}
}

// BenchmarkLookup measures the reads of the grant paths: Client, as the token endpoint calls it
// for every request, Trusts, as the jwt-bearer grant calls it for every assertion, and Peer, as
// a token exchange for a peer's grant calls it. Cached serves them from memory (the default),
// Uncached is one indexed read and a JSON decode.
func BenchmarkLookup(b *testing.B) {
	lookups := []struct {
		name string
		save func(ctx context.Context, s *Store) error
		read func(ctx context.Context, s *Store) error
	}{{
		"Client",
		func(ctx context.Context, s *Store) error { return s.SaveClient(ctx, benchClient()) },
		func(ctx context.Context, s *Store) error { _, err := s.Client(ctx, "client-1"); return err },
	}, {
		"Trusts",
		func(ctx context.Context, s *Store) error {
			return s.SaveTrust(ctx, &storage.Trust{Issuer: "https://idp.example", JWKSURI: "https://idp.example/jwks",
				Subject: "svc", Scopes: []string{"orders:read"}, Resources: []string{"https://api.example/"}})
		},
		func(ctx context.Context, s *Store) error {
			list, err := s.Trusts(ctx, "https://idp.example")
			if err == nil && len(list) != 1 {
				err = fmt.Errorf("%d trusts", len(list))
			}
			return err
		},
	}, {
		"Peer",
		func(ctx context.Context, s *Store) error {
			return s.SavePeer(ctx, &storage.Peer{Issuer: "https://as.y.example", TokenEndpoint: "https://as.y.example/token",
				Scopes: []string{"stock:read"}, Claims: []string{"act"}})
		},
		func(ctx context.Context, s *Store) error { _, err := s.Peer(ctx, "https://as.y.example"); return err },
	}}
	for _, be := range benchBackends() {
		if strings.HasSuffix(be.name, "Direct") {
			continue // reads do not go through the writer
		}
		for _, mode := range []struct {
			name string
			ttl  time.Duration
		}{{"Cached", DefaultCacheTTL}, {"Uncached", 0}} {
			for _, l := range lookups {
				b.Run(be.name+"/"+l.name+"/"+mode.name, func(b *testing.B) {
					s := benchStore(b, be, WithCache(mode.ttl))
					ctx := context.Background()
					must(b, l.save(ctx, s))
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						if err := l.read(ctx, s); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// benchTokenRequest is the request fosite stores for a client_credentials access token.
func benchTokenRequest(c *storage.Client) *fosite.Request {
	req := fosite.NewRequest()
	req.ID = "req-1"
	req.Client = c
	req.GrantedScope = fosite.Arguments{"orders:read"}
	req.GrantedAudience = fosite.Arguments{"https://api.example/"}
	sess := &storage.Session{Subject: "client-1", AccessToken: map[string]any{
		"iss": "https://as.example", "aud": "https://api.example/", "scope": "orders:read",
		"client_id": "client-1", "jti": "0123456789abcdef",
	}}
	sess.SetExpiresAt(fosite.AccessToken, time.Now().Add(time.Hour))
	req.Session = sess
	return req
}

// BenchmarkCreateAccessTokenSession measures the insert of every issued token, from one
// goroutine. "Grant" is a grant's token with an RS256-sized signature and a session carrying
// the token's claims (an encrypted token's); "OneToken" is what client_credentials writes: an
// ES256-sized signature that is also the request's ID, and a signed token's session.
func BenchmarkCreateAccessTokenSession(b *testing.B) {
	for _, be := range benchBackends() {
		for _, shape := range []string{"Grant", "OneToken"} {
			b.Run(be.name+"/"+shape, func(b *testing.B) {
				s := benchStore(b, be)
				ctx := context.Background()
				c := benchClient()
				must(b, s.SaveClient(ctx, c))
				req := benchTokenRequest(c)
				sig := strings.Repeat("s", 330)
				if shape == "OneToken" {
					sig = sig[:74]
					req.Session.(*storage.Session).AccessToken = nil
				}
				b.ReportAllocs()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					i++
					key := fmt.Sprintf("%s%012d", sig, i)
					if shape == "OneToken" {
						req.ID = key
					}
					if err := s.CreateAccessTokenSession(ctx, key, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// parallelism is the number of goroutines per GOMAXPROCS of the parallel benchmarks: a token
// endpoint under load has many requests in flight per core.
const parallelism = 8

// runParallel runs op from parallelism×GOMAXPROCS goroutines and reports the throughput
// (ops/s) and the mean latency one caller sees (µs/call); ns/op is wall time per operation.
func runParallel(b *testing.B, op func(i int64) error) {
	b.Helper()
	var n, lat atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			if err := op(n.Add(1)); err != nil {
				b.Error(err)
				return
			}
			lat.Add(int64(time.Since(t0)))
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(lat.Load())/float64(b.N)/1e3, "µs/call")
}

// BenchmarkCreateAccessTokenSessionParallel is the same insert from many goroutines at once, as
// under a loaded token endpoint: on SQLite this is where group commit matters.
func BenchmarkCreateAccessTokenSessionParallel(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be)
			ctx := context.Background()
			c := benchClient()
			must(b, s.SaveClient(ctx, c))
			req := benchTokenRequest(c)
			sig := strings.Repeat("s", 330)
			runParallel(b, func(i int64) error {
				return s.CreateAccessTokenSession(ctx, fmt.Sprintf("%s%012d", sig, i), req)
			})
		})
	}
}

// BenchmarkCreateAccessTokenSessionFull is the parallel insert into a table that already holds
// rows of live tokens, as at steady state (at 4,000 tokens/s, 10-minute tokens are 2.4 million
// rows): each row of a group commit then lands on an index page of its own, which is not in
// the connection's page cache.
func BenchmarkCreateAccessTokenSessionFull(b *testing.B) {
	for _, rows := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("SQLite/rows=%d", rows), func(b *testing.B) {
			s := benchStore(b, benchBackends()[0])
			ctx := context.Background()
			c := benchClient()
			must(b, s.SaveClient(ctx, c))
			prefillTokens(b, s, rows)
			req := benchTokenRequest(c)
			sig := strings.Repeat("s", 74)
			runParallel(b, func(i int64) error {
				return s.CreateAccessTokenSession(ctx, fmt.Sprintf("%s%012d", sig, i), req)
			})
		})
	}
}

// prefillTokens inserts n access-token rows with random signatures that expire in an hour.
func prefillTokens(b *testing.B, s *Store, n int) {
	b.Helper()
	if n == 0 {
		return
	}
	exp := time.Now().Add(time.Hour)
	err := s.db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?),
		r AS MATERIALIZED (SELECT x, randomblob(32) AS b FROM c)
		INSERT INTO mandate_tokens (id, kind, signature, request_hash, active, expires_at, access_signature, request, session)
		SELECT (? << 31) | (x + 1073741824), 2, b, b, 1, ?, NULL, '{"client_id":"client-1"}', '{}' FROM r`,
		n, exp.Unix(), exp.UnixNano()).Error
	if err != nil {
		b.Fatal(err)
	}
	must(b, s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error)
}

// BenchmarkUseJTI measures a first use of a fresh jti (the common case).
func BenchmarkUseJTI(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be)
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				i++
				if err := s.UseJTI(ctx, fmt.Sprintf("https://issuer.example|jti-%d", i), exp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUseJTIParallel records fresh jtis from many goroutines at once.
func BenchmarkUseJTIParallel(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be)
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			runParallel(b, func(i int64) error {
				return s.UseJTI(ctx, fmt.Sprintf("https://issuer.example|jti-%d", i), exp)
			})
		})
	}
}

// FuzzParseDSN: any DSN gives a kind and driver DSN or an error, never a panic, and errors never
// echo the DSN (it may carry a password).
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{
		"sqlite:/tmp/x.db", "sqlite::memory:", "postgres://u:secretpw@h:5432/db?sslmode=disable",
		"mysql://u:secretpw@tcp(h:3306)/db?parseTime=true", "mysql://u:secretpw@bad(((", "postgresql://%zz", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		d, target, err := parseDSN(dsn)
		if err != nil {
			// Only fixed messages: nothing of the DSN is echoed.
			switch err.Error() {
			case "gormstore: sqlite DSN needs a path (or :memory:) without NUL bytes",
				"gormstore: malformed postgres DSN", "gormstore: malformed mysql DSN",
				"gormstore: unsupported DSN: want sqlite:, postgres:// or mysql://":
			default:
				t.Errorf("unexpected error text: %v", err)
			}
			return
		}
		switch d {
		case dialectSQLite:
			if target == "" || strings.ContainsRune(target, 0) {
				t.Errorf("sqlite path %q accepted", target)
			}
		case dialectMySQL:
			if _, _, err := parseDSN("mysql://" + target); err != nil {
				t.Errorf("translated mysql DSN does not parse again: %v", err)
			}
		case dialectPostgres:
		default:
			t.Errorf("unknown dialect %d", d)
		}
	})
}

func TestParseDSNMySQL(t *testing.T) {
	d, target, err := parseDSN("mysql://app:pw@tcp(db:3306)/mandate?timeout=5s")
	if err != nil || d != dialectMySQL {
		t.Fatalf("parseDSN = %v, %v", d, err)
	}
	if !strings.HasPrefix(target, "app:pw@tcp(db:3306)/mandate?") || !strings.Contains(target, "charset=utf8mb4") || !strings.Contains(target, "timeout=5s") {
		t.Errorf("translated DSN = %q", target)
	}
	if _, _, err := parseDSN("mysql://app:pw@tcp(db:3306)/mandate?charset=latin1"); err != nil {
		t.Error(err)
	}
	if _, err := Open(context.Background(), "sqlite:"); err == nil {
		t.Error("empty sqlite path accepted")
	}
}
