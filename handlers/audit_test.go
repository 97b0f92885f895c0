package handlers

// Audit of the protocol pieces (issues 3, 4, 5) for what the other tests leave open.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// TestAuditParseIndicatorTricks: more spellings of a resource, each either refused with the
// rule named or accepted as the exact string it is (so that it can only match a registration
// spelled the same way).
func TestAuditParseIndicatorTricks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		hint string
	}{
		{"https://orders.example.com/%2E%2E/x", false, "dot segments"},
		{"https://orders.example.com/%2e", false, "dot segments"},
		{"https://orders.example.com/%2E", false, "dot segments"},
		{"https://orders.example.com/%41pi", false, "percent-encode"},
		{"https://orders.example.com/%5f", false, "percent-encode"},
		{"https://orders.example.com/%2d", false, "percent-encode"},
		{"https://orders.example.com/%30", false, "percent-encode"},
		{"https://orders.example.com/?q=%61", false, "percent-encode"},
		{"https://orders.example.com/%", false, "valid URI"},
		{"https://orders.example.com/%2", false, "valid URI"},
		{"https://orders.example.com/\t", false, "white space"},
		{"https://orders.example.com/\r\n", false, "white space"},
		{"//orders.example.com/", false, "absolute"},
		{"https:orders.example.com", false, "host"},
		{"mailto:a@orders.example.com", false, "http or https"},
		{"data:text/plain,x", false, "http or https"},
		{"https://:443/", false, "host"},
		{"https://orders.example.com/" + strings.Repeat("a", MaxIndicatorLength-len("https://orders.example.com/")), true, ""},
		{"https://orders.example.com/" + strings.Repeat("a", MaxIndicatorLength-len("https://orders.example.com/")+1), false, "longer"},
		// Reserved characters may be percent-encoded: a different resource, not a trick.
		{"https://orders.example.com/a%2Fb", true, ""},
		{"https://orders.example.com/%20", true, ""},
		{"https://[::1]:8443/api", true, ""},
		{"HTTPS://orders.example.com/", true, ""},
	} {
		name := tc.in
		if len(name) > 48 {
			name = name[:48]
		}
		t.Run(name, func(t *testing.T) {
			err := ParseIndicator(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseIndicator(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidTarget) || fosite.ErrorToRFC6749Error(err).CodeField != http.StatusBadRequest {
					t.Fatalf("error %v is not invalid_target 400", err)
				}
				if d := fosite.ErrorToRFC6749Error(err).GetDescription(); !strings.Contains(d, tc.hint) {
					t.Fatalf("description %q, want %q", d, tc.hint)
				}
			}
		})
	}
	// Accepted spellings resolve only to the resource registered with that exact string.
	res := fakeResources{{Identifier: "https://orders.example.com/", Default: true}}
	client := &storage.Client{ID: "x", Resources: []string{"https://orders.example.com/"}}
	for _, v := range []string{"HTTPS://orders.example.com/", "https://orders.example.com/%20", "https://orders.example.com"} {
		if _, err := (Resolver{Resources: res}).ForToken(context.Background(), client, []string{v}, nil); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("%q resolved: %v", v, err)
		}
	}
}

// failingResources is a ResourceLookup whose store is down.
type failingResources struct{}

func (failingResources) ResourceServer(context.Context, string) (*storage.ResourceServer, error) {
	return nil, errors.New("store down")
}
func (failingResources) ResourceServers(context.Context) ([]storage.ResourceServer, error) {
	return nil, errors.New("store down")
}

// TestAuditResolverStoreFailure: a store that fails is a server error, never reported to the
// client as an invalid resource.
func TestAuditResolverStoreFailure(t *testing.T) {
	r := Resolver{Resources: failingResources{}}
	client := &storage.Client{ID: "x", Resources: []string{"https://a.example/"}}
	for name, call := range map[string]func() error{
		"ForToken named": func() error {
			_, err := r.ForToken(context.Background(), client, []string{"https://a.example/"}, nil)
			return err
		},
		"ForToken default": func() error { _, err := r.ForToken(context.Background(), client, nil, nil); return err },
		"ForAuthorization named": func() error {
			_, err := r.ForAuthorization(context.Background(), client, []string{"https://a.example/"})
			return err
		},
		"ForAuthorization default": func() error { _, err := r.ForAuthorization(context.Background(), client, nil); return err },
		"ForToken granted, default": func() error {
			_, err := r.ForToken(context.Background(), client, nil, []string{"https://a.example/"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, fosite.ErrServerError) || errors.Is(err, ErrInvalidTarget) {
				t.Fatalf("err = %v, want server_error", err)
			}
			if d := fosite.ErrorToRFC6749Error(err).GetDescription(); strings.Contains(d, "store down") {
				t.Fatalf("the store's error reached the client: %q", d)
			}
		})
	}
}

// TestAuditExactAudience: the fosite audience strategy matches exactly, never by prefix, and
// answers invalid_target.
func TestAuditExactAudience(t *testing.T) {
	allowed := []string{"https://a.example/api"}
	for _, req := range [][]string{{"https://a.example/api/v2"}, {"https://a.example/"}, {"https://a.example/api", "https://b.example/"}, {"https://A.example/api"}} {
		if err := ExactAudience(allowed, req); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("%v: %v", req, err)
		}
	}
	if err := ExactAudience(allowed, []string{"https://a.example/api"}); err != nil {
		t.Error(err)
	}
	if err := ExactAudience(allowed, nil); err != nil {
		t.Error(err)
	}
}

// TestAuditGrantScopesNeverWidens: the granted scopes are always within requested ∩ client ∩
// resource server, for every combination of small sets.
func TestAuditGrantScopesNeverWidens(t *testing.T) {
	subsets := [][]string{{}, {"a"}, {"b"}, {"a", "b"}, {"a", "c"}, {"a", "b", "c"}}
	for _, req := range subsets {
		for _, cl := range subsets {
			for _, rsScopes := range subsets {
				rs := &storage.ResourceServer{Identifier: "https://r.example/", Scopes: rsScopes}
				got, err := GrantScopes(req, cl, rs)
				if err != nil {
					if !errors.Is(err, fosite.ErrInvalidScope) {
						t.Fatalf("%v %v %v: %v", req, cl, rsScopes, err)
					}
					// Refused only when a requested scope is outside client or resource server.
					if len(intersect(intersect(req, cl), rsScopes)) == len(req) {
						t.Fatalf("%v %v %v refused: %v", req, cl, rsScopes, err)
					}
					continue
				}
				for _, s := range got {
					inReq := len(req) == 0 || auditContains(req, s)
					if !inReq || !auditContains(cl, s) || !auditContains(rsScopes, s) {
						t.Fatalf("GrantScopes(%v, %v, %v) = %v widens", req, cl, rsScopes, got)
					}
				}
			}
		}
	}
}

func auditContains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// TestAuditJWKSAndMetadataHandlers: the JWKS handler publishes only valid public keys (never a
// symmetric one), with the documented Cache-Control; HEAD works; the metadata handler is
// cacheable briefly and answers 503 when it cannot build the document.
func TestAuditJWKSAndMetadataHandlers(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := JWKSHandler(keys{
		{Key: ec.Public(), KeyID: "pub", Algorithm: "ES256", Use: "sig"},
		{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct", Algorithm: "HS256", Use: "sig"},
	})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/jwks.json", nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", method, rec.Code)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=300, stale-if-error=86400" || JWKSMaxAge != 300*time.Second {
			t.Fatalf("Cache-Control %q", cc)
		}
		if method == http.MethodHead {
			continue
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 || set.Keys[0].KeyID != "pub" || !set.Keys[0].IsPublic() {
			t.Fatalf("published %s", rec.Body.Bytes())
		}
		if strings.Contains(rec.Body.String(), `"oct"`) || strings.Contains(rec.Body.String(), `"k"`) {
			t.Fatalf("a symmetric key was published: %s", rec.Body.Bytes())
		}
	}

	md := MetadataHandler(func(context.Context) (*Metadata, error) {
		return &Metadata{Issuer: "https://as.example", TokenEndpoint: "https://as.example/token"}, nil
	})
	rec := httptest.NewRecorder()
	md.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-authorization-server", nil))
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body.Bytes())
	}
	if doc["issuer"] != "https://as.example" || rec.Header().Get("Cache-Control") == "" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%v %v", doc, rec.Header())
	}
	// Members mandate does not use are left out, not sent empty.
	for _, m := range []string{"service_documentation", "scopes_supported", "revocation_endpoint"} {
		if _, ok := doc[m]; ok {
			t.Errorf("empty member %s sent", m)
		}
	}
	rec = httptest.NewRecorder()
	MetadataHandler(func(context.Context) (*Metadata, error) { return nil, errors.New("down") }).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "down") {
		t.Fatalf("failing metadata: %d %q", rec.Code, rec.Body.String())
	}
}

// TestAuditBearerErrorsDoNotNameKeys: invalid_grant says what failed, not which key or trust
// exists (issue 5, "Errors").
func TestAuditBearerErrorsDoNotNameKeys(t *testing.T) {
	now := time.Now()
	idp := newKey(t, jose.ES256, "registered-kid-7f3a")
	h := &JWTBearer{
		Trusts: memTrusts{{Issuer: "https://idp.example", Subject: "svc-a", JWKS: idp.set(), Scopes: []string{"s"}, Resources: []string{"https://r.example/"}}},
		JTIs:   &memJTIs{}, Keys: &KeySets{}, Audiences: []string{tokenURL},
		AccessTokens: &fakeTokens{}, AccessTokenStorage: &fakeTokens{}, Now: func() time.Time { return now },
	}
	for name, raw := range map[string]string{
		"unknown kid":       newKey(t, jose.ES256, "probe-kid-1").sign(t, claims("https://idp.example", "svc-a", now), nil),
		"other subject":     idp.sign(t, claims("https://idp.example", "svc-zz", now), nil),
		"right kid, forged": newKey(t, jose.ES256, "registered-kid-7f3a").sign(t, claims("https://idp.example", "svc-a", now), nil),
	} {
		t.Run(name, func(t *testing.T) {
			err := h.HandleTokenEndpointRequest(context.Background(), bearerRequest(raw, nil))
			if !errors.Is(err, fosite.ErrInvalidGrant) {
				t.Fatalf("err = %v", err)
			}
			d := fosite.ErrorToRFC6749Error(err).GetDescription()
			for _, secret := range []string{"registered-kid-7f3a", "svc-a", "https://r.example/"} {
				if strings.Contains(d, secret) {
					t.Fatalf("description %q names %q", d, secret)
				}
			}
		})
	}
}
