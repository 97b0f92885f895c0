package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestParseFlags(t *testing.T) {
	base := []string{"-secret", "s3cret-0123456789"}
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" for none
	}{
		{"defaults", nil, ""},
		{"ipv6 loopback", []string{"-url", "http://[::1]:9400/token"}, ""},
		{"localhost", []string{"-url", "https://localhost/token"}, ""},
		{"remote host", []string{"-url", "https://auth.example.com/token"}, "not a loopback"},
		{"private address", []string{"-url", "http://10.0.0.1/token"}, "not a loopback"},
		{"not http", []string{"-url", "ftp://127.0.0.1/token"}, "not an http"},
		{"remote jwks", []string{"-jwks", "https://keys.example.com/jwks"}, "-jwks"},
		{"no concurrency", []string{"-c", "0"}, "-c"},
		{"too many clients", []string{"-c", "5000"}, "-c"},
		{"unbounded count", []string{"-n", "0"}, "-n"},
		{"too long", []string{"-d", "11m"}, "-d"},
		{"verify too many", []string{"-verify", "100000"}, "-verify"},
		{"stray argument", []string{"extra"}, "unexpected"},
		{"all cores", []string{"-procs", "0", "-nethttp"}, ""},
		{"negative procs", []string{"-procs", "-1"}, "-procs"},
		{"normal policy", []string{"-sched", "normal"}, ""},
		{"idle policy", []string{"-sched", "idle"}, "-sched"},
		{"vs sign", []string{"-vs-sign", "RS256", "-slices", "4"}, ""},
		{"vs sign HMAC", []string{"-vs-sign", "HS256"}, "-vs-sign"},
		{"no slices", []string{"-slices", "0"}, "-slices"},
		{"vs url", []string{"-vs-url", "http://127.0.0.1:9500/oauth2/token", "-vs-client", "b", "-vs-secret", "s"}, ""},
		{"remote vs url", []string{"-vs-url", "https://auth.example.com/token"}, "-vs-url"},
		{"several urls", []string{"-url", "http://127.0.0.1:9400/token,http://127.0.0.1:9401/token"}, ""},
		{"a remote url in the list", []string{"-url", "http://127.0.0.1:9400/token,https://auth.example.com/token"}, "not a loopback"},
		{"an empty url in the list", []string{"-url", "http://127.0.0.1:9400/token,"}, "-url"},
		{"several vs urls", []string{"-vs-url", "http://127.0.0.1:9500/token,http://[::1]:9501/token"}, ""},
		{"a remote vs url in the list", []string{"-vs-url", "http://127.0.0.1:9500/token,http://10.0.0.1/token"}, "-vs-url"},
		{"vs url and vs sign", []string{"-vs-url", "http://127.0.0.1:9500/token", "-vs-sign", "ES256"}, "exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(append(append([]string{}, base...), tc.args...), io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("secret required", func(t *testing.T) {
		t.Setenv("LOAD_CLIENT_SECRET", "")
		if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "-secret") {
			t.Fatalf("error %v, want a missing secret", err)
		}
	})
}

// startBaseline serves the fosite baseline on a loopback httptest server.
func startBaseline(t *testing.T, alg, secret string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String() + "/oauth2"
	h, err := newBaseline(baselineConfig{Issuer: issuer, Alg: alg, Client: "c1", Secret: secret,
		Resources: []string{"https://rs.example/"}, Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

func runJSON(t *testing.T, args ...string) Report {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), append(args, "-json"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report: %v: %s", err, out.Bytes())
	}
	return r
}

func TestRunAgainstBaseline(t *testing.T) {
	for _, tc := range []struct{ alg, client string }{{"ES256", ""}, {"EdDSA", ""}, {"RS256", ""}, {"ES256", "-nethttp"}} {
		t.Run(tc.alg+tc.client, func(t *testing.T) {
			issuer := startBaseline(t, tc.alg, "right-secret-0123456789")
			args := []string{"-url", issuer + "/token", "-client", "c1", "-secret", "right-secret-0123456789",
				"-resource", "https://rs.example/", "-scope", "read", "-c", "4", "-n", "60", "-d", "30s",
				"-verify", "10", "-pid", itoa(os.Getpid())}
			if tc.client != "" {
				args = append(args, tc.client)
			}
			r := runJSON(t, args...)
			if r.OK != 60 || r.Requests != 60 || len(r.Errors) != 0 {
				t.Fatalf("ok %d of %d, errors %v (%s)", r.OK, r.Requests, r.Errors, r.FirstError)
			}
			if r.TokensPerS <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
				t.Fatalf("implausible figures %+v", r)
			}
			if v := r.Verify; v == nil || v.Checked != 10 || v.Valid != 10 || !strings.HasSuffix(v.KeysFrom, "/oauth2/jwks.json") {
				t.Fatalf("verify %+v", r.Verify)
			}
			if r.RSS == nil || len(r.RSS.SamplesMB) < 2 || r.RSS.MinMB <= 0 || r.RSS.CPUSeconds < 0 {
				t.Fatalf("rss %+v", r.RSS)
			}
		})
	}
	t.Run("vs sign", func(t *testing.T) {
		issuer := startBaseline(t, "EdDSA", "right-secret-0123456789")
		r := runJSON(t, "-url", issuer+"/token", "-client", "c1", "-secret", "right-secret-0123456789",
			"-resource", "https://rs.example/", "-c", "2", "-d", "600ms", "-vs-sign", "EdDSA", "-slices", "3")
		v := r.VsSign
		if v == nil || v.Alg != "EdDSA" || len(v.Ratios) != 3 || v.SignaturesPerS <= 0 || r.OK == 0 {
			t.Fatalf("report %+v, vs_sign %+v", r, v)
		}
		if v.Median < slices.Min(v.Ratios) || v.Median > slices.Max(v.Ratios) {
			t.Fatalf("median %v outside %v", v.Median, v.Ratios)
		}
		// The elapsed time is the load turns' only: about 3 × 200 ms, not 600 ms of load plus
		// the four signing turns.
		if r.Elapsed < 0.5 || r.Elapsed > 1.0 {
			t.Fatalf("elapsed %.2fs, want the load turns' 0.6s", r.Elapsed)
		}
	})
	t.Run("vs url", func(t *testing.T) {
		a := startBaseline(t, "EdDSA", "a-secret-0123456789")
		b := startBaseline(t, "ES256", "b-secret-0123456789")
		r := runJSON(t, "-url", a+"/token", "-client", "c1", "-secret", "a-secret-0123456789",
			"-vs-url", b+"/token", "-vs-secret", "b-secret-0123456789",
			"-resource", "https://rs.example/", "-c", "2", "-d", "800ms", "-slices", "4", "-verify", "3")
		v := r.VsURL
		if v == nil || v.URL != b+"/token" || len(v.Ratios) != 4 || v.OK == 0 || v.Failed != 0 || v.TokensPerS <= 0 || r.OK == 0 || len(r.Errors) != 0 {
			t.Fatalf("report %+v, vs_url %+v", r, v)
		}
		if v.Median < slices.Min(v.Ratios) || v.Median > slices.Max(v.Ratios) {
			t.Fatalf("median %v outside %v", v.Median, v.Ratios)
		}
		// Each side's elapsed time is its own turns': 4 × 200 ms.
		if r.Elapsed < 0.7 || r.Elapsed > 1.4 || v.Elapsed < 0.7 || v.Elapsed > 1.4 {
			t.Fatalf("elapsed %.2fs and %.2fs, want about 0.8s each", r.Elapsed, v.Elapsed)
		}
		// The sample verified is the main target's: EdDSA tokens from a's keys.
		if r.Verify == nil || r.Verify.Valid != 3 || !strings.HasPrefix(r.Verify.KeysFrom, a) {
			t.Fatalf("verify %+v", r.Verify)
		}
	})
	t.Run("several urls", func(t *testing.T) {
		// Two instances on one side, one on the other: the clients are spread round-robin and
		// each endpoint's tokens are reported.
		a := startBaseline(t, "EdDSA", "same-secret-0123456789")
		b := startBaseline(t, "EdDSA", "same-secret-0123456789")
		r := runJSON(t, "-url", a+"/token,"+b+"/token", "-client", "c1", "-secret", "same-secret-0123456789",
			"-vs-url", a+"/token", "-resource", "https://rs.example/", "-c", "4", "-d", "800ms", "-slices", "2")
		if r.URL != a+"/token,"+b+"/token" || len(r.Errors) != 0 || len(r.PerURL) != 2 || r.VsURL == nil || r.VsURL.PerURL != nil {
			t.Fatalf("report %+v", r)
		}
		sum := 0
		for i, c := range r.PerURL {
			if c.URL != []string{a + "/token", b + "/token"}[i] || c.OK == 0 {
				t.Fatalf("per url %+v: every endpoint must get its share", r.PerURL)
			}
			sum += c.OK
		}
		if sum != r.OK {
			t.Fatalf("per url %+v sums to %d, ok %d", r.PerURL, sum, r.OK)
		}
	})
	t.Run("vs url refused", func(t *testing.T) {
		a := startBaseline(t, "EdDSA", "a-secret-0123456789")
		b := startBaseline(t, "ES256", "b-secret-0123456789")
		r := runJSON(t, "-url", a+"/token", "-client", "c1", "-secret", "a-secret-0123456789",
			"-vs-url", b+"/token", "-c", "2", "-d", "400ms", "-slices", "2")
		if v := r.VsURL; v == nil || v.OK != 0 || v.Failed == 0 || len(v.Ratios) != 0 || r.OK == 0 {
			t.Fatalf("report %+v, vs_url %+v: the other side's secret is wrong", r, r.VsURL)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		issuer := startBaseline(t, "ES256", "right-secret-0123456789")
		r := runJSON(t, "-url", issuer+"/token", "-client", "c1", "-secret", "wrong-secret-0123456789", "-c", "2", "-n", "10", "-verify", "5")
		if r.OK != 0 || r.Errors["401"] != 10 || r.Verify != nil {
			t.Fatalf("ok %d, errors %v, verify %+v", r.OK, r.Errors, r.Verify)
		}
	})
}

func TestVerifyToken(t *testing.T) {
	issuer := startBaseline(t, "EdDSA", "right-secret-0123456789")
	c := newHTTPClient(1)
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader("grant_type=client_credentials&resource=https%3A%2F%2Frs.example%2F"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("c1", "right-secret-0123456789")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := accessToken(body)
	if tok == "" {
		t.Fatalf("no token: %s", body)
	}
	var set jose.JSONWebKeySet
	if err := getJSON(context.Background(), c, issuer+"/jwks.json", &set); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name, iss, aud string
		at             time.Time
		ok             bool
	}{
		{"valid", issuer, "https://rs.example/", now, true},
		{"any iss, any aud", "", "", now, true},
		{"other audience", issuer, "https://other.example/", now, false},
		{"other issuer", "http://127.0.0.1:1/oauth2", "", now, false},
		{"expired", issuer, "", now.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, err := verifyToken(tok, &set, tc.iss, tc.aud, tc.at)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if typ != "JWT" {
				t.Fatalf("typ %q", typ)
			}
		})
	}
	if _, err := verifyToken(tok, &jose.JSONWebKeySet{}, "", "", now); err == nil {
		t.Fatal("verified without the key")
	}
}

func TestVerifyTokenRefuses(t *testing.T) {
	set := &jose.JSONWebKeySet{}
	for _, tok := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("x", 100)} {
		if _, err := verifyToken(tok, set, "", "", time.Now()); err == nil {
			t.Fatalf("token %q verified", tok)
		}
	}
}

func FuzzVerifyToken(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	f.Add("a.b.c")
	set := &jose.JSONWebKeySet{}
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := verifyToken(tok, set, "iss", "aud", time.Now()); err == nil {
			t.Fatal("verified without keys")
		}
		_, _ = unverifiedIssuer(tok)
		_ = accessToken([]byte(tok))
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
