package verify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWellKnownPath(t *testing.T) {
	tests := []struct {
		resource, path, url string
		ok                  bool
	}{
		{"https://orders.example.com", "/.well-known/oauth-protected-resource", "https://orders.example.com/.well-known/oauth-protected-resource", true},
		{"https://orders.example.com/", "/.well-known/oauth-protected-resource", "https://orders.example.com/.well-known/oauth-protected-resource", true},
		{"https://api.example.com/orders", "/.well-known/oauth-protected-resource/orders", "https://api.example.com/.well-known/oauth-protected-resource/orders", true},
		{"https://api.example.com/a/b/", "/.well-known/oauth-protected-resource/a/b", "https://api.example.com/.well-known/oauth-protected-resource/a/b", true},
		{"http://localhost:8080/x", "/.well-known/oauth-protected-resource/x", "http://localhost:8080/.well-known/oauth-protected-resource/x", true},
		{"http://orders.example.com", "", "", false},
		{"/orders", "", "", false},
		{"https://orders.example.com/#frag", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		p, err := WellKnownPath(tt.resource)
		u, err2 := MetadataURL(tt.resource)
		if tt.ok != (err == nil) || tt.ok != (err2 == nil) || p != tt.path || u != tt.url {
			t.Errorf("%q: WellKnownPath = %q, %v; MetadataURL = %q, %v", tt.resource, p, err, u, err2)
		}
	}
}

func TestMetadataHandler(t *testing.T) {
	clk := newClock()
	v := newStaticVerifier(t, clk, newEdKey(t, "k1"), nil)
	m := v.Metadata()
	m.ScopesSupported = []string{"orders:read"}
	m.ResourceName = "Orders"
	h, err := m.Handler()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"authorization_servers":["https://as.example.com"],"bearer_methods_supported":["header"],"dpop_signing_alg_values_supported":["RS256","PS256","ES256","ES384","EdDSA"],"resource":"https://orders.example.com/","resource_name":"Orders","scopes_supported":["orders:read"]}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Fatalf("metadata:\n got %s\nwant %s", b, want)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("HEAD", "/.well-known/oauth-protected-resource", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: %d, %d body bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}

	for name, bad := range map[string]ProtectedResourceMetadata{
		"no resource":       {},
		"relative":          {Resource: "/orders"},
		"bad as":            {Resource: "https://o/", AuthorizationServers: []string{"http://as.example.com"}},
		"bad bearer method": {Resource: "https://o/", BearerMethodsSupported: []string{"cookie"}},
	} {
		if _, err := bad.Handler(); err == nil {
			t.Errorf("%s: Handler accepted %+v", name, bad)
		}
	}
}
