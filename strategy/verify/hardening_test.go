package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Regression tests of the outside attack run (issue 13, finding 5): the loopback rule is an IP
// or "localhost", and a redirect cannot take a metadata or JWKS fetch where the configured URL
// could not go.

func TestLoopbackRuleParsesTheHost(t *testing.T) {
	for _, u := range []string{"http://127.evil.example/jwks", "http://127.0.0.1.nip.io/jwks", "http://foo.localhost/jwks"} {
		_, err := New(context.Background(), Config{Issuer: "https://as.example", Audience: testAudience, JWKSURL: u, Lazy: true})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("JWKSURL %s: %v, want ErrConfig (http for a host that is not loopback)", u, err)
		}
		if _, err := NewRemoteKeySet(context.Background(), u, KeySetConfig{}); !errors.Is(err, ErrConfig) {
			t.Errorf("NewRemoteKeySet %s: %v, want ErrConfig", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/jwks", "http://[::1]:1/jwks", "http://localhost:1/jwks"} {
		if _, err := NewRemoteKeySet(context.Background(), u, KeySetConfig{}); err != nil {
			t.Errorf("NewRemoteKeySet %s: %v", u, err)
		}
	}
}

func TestFetchRedirects(t *testing.T) {
	k := newEdKey(t, "k1")
	keys, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}})
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "/jwks", http.StatusFound)
			return
		}
		_, _ = w.Write(keys)
	}))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.URL+"/jwks", http.StatusFound)
		case "/to-elsewhere":
			http.Redirect(w, r, "http://127.evil.example/jwks", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/to-https":
			http.Redirect(w, r, "/jwks", http.StatusMovedPermanently)
		default:
			_, _ = w.Write(keys)
		}
	}))
	defer tls.Close()
	// The TLS test server's client trusts its certificate; every fetch goes through it.
	client := tls.Client()
	for _, tc := range []struct {
		url, want string
	}{
		{tls.URL + "/to-http", "https to http"},
		{tls.URL + "/to-elsewhere", "loopback"},
		{tls.URL + "/loop", "redirects"},
		{tls.URL + "/to-https", ""},
		{plain.URL + "/hop", ""},
	} {
		ks, err := NewRemoteKeySet(context.Background(), tc.url, KeySetConfig{HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ks.Key(context.Background(), "k1", jose.EdDSA)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error mentioning %q", tc.url, err, tc.want)
		}
	}
}

// Finding 3 on the resource-server side's documents: a JWKS or a metadata document with a
// member given twice (or in another case) leaves the choice to the decoder, and is refused.
func TestStrictDocuments(t *testing.T) {
	k := newEdKey(t, "k1")
	other := newEdKey(t, "k1")
	one, _ := json.Marshal(k.public())
	two, _ := json.Marshal(other.public())
	for name, tc := range map[string]struct {
		jwks, meta func(f *fakeIssuer) []byte
	}{
		"keys twice": {jwks: func(*fakeIssuer) []byte {
			return []byte(`{"keys":[` + string(one) + `],"keys":[` + string(two) + `]}`)
		}},
		"Keys": {jwks: func(*fakeIssuer) []byte { return []byte(`{"Keys":[` + string(one) + `]}`) }},
		"a member twice in a key": {jwks: func(*fakeIssuer) []byte {
			return []byte(`{"keys":[` + strings.Replace(string(one), `"kid":"k1"`, `"kid":"k1","kid":"k2"`, 1) + `]}`)
		}},
		"jwks_uri twice": {meta: func(f *fakeIssuer) []byte {
			return []byte(`{"issuer":"` + f.issuer + `","jwks_uri":"https://evil.example/jwks","jwks_uri":"` + f.issuer + `/jwks"}`)
		}},
		"Issuer": {meta: func(f *fakeIssuer) []byte {
			return []byte(`{"issuer":"https://other.example","Issuer":"` + f.issuer + `","jwks_uri":"` + f.issuer + `/jwks"}`)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			iss := newFakeIssuer(t, k)
			if tc.jwks != nil {
				iss.setRaw(tc.jwks(iss))
			}
			if tc.meta != nil {
				iss.metaRaw = tc.meta(iss)
			}
			_, err := New(context.Background(), iss.config(newClock()))
			if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "strict") {
				t.Fatalf("New: %v; want ErrKeysUnavailable from the strict decoder", err)
			}
		})
	}
}

// A token whose segments are not canonical base64url is malformed: one signed content has one
// encoding.
func TestVerifyRefusesNonCanonicalSegments(t *testing.T) {
	clk := newClock()
	k := newECKey(t, "ec-1")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}
	v, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Keys: &set, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	good := k.token(t, k.header(), claimsAt(testIssuer, clk.Now()))
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	p := strings.Split(good, ".")
	// An ES256 signature is 64 bytes: 86 characters, the last with 2 unused bits.
	variant := p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] + string(flipSpareBits(p[2][len(p[2])-1]))
	for _, bad := range []string{variant, p[0] + "." + p[1] + "\n." + p[2]} {
		if _, err := v.Verify(context.Background(), bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(non-canonical) = %v, want ErrMalformed", err)
		}
	}
}

// flipSpareBits returns the base64url character with the same high 4 bits and the low 2 set
// differently.
func flipSpareBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}
