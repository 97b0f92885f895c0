package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/provider/admin"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

const (
	adminAPI = "https://admin.example.com/"
	api      = "https://api.example.com/"
)

// server is an authorization server with the admin API mounted at /admin, a client "ops" that
// may get admin tokens and a client "weak" whose tokens for the admin API lack the admin scope.
type server struct {
	t   *testing.T
	p   *provider.Provider
	srv *httptest.Server
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	st, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	srv := httptest.NewUnstartedServer(nil)
	p, err := provider.New(ctx, provider.Config{Issuer: "http://" + srv.Listener.Addr().String(), Secret: secret, Storage: st, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	setup, err := provider.ParseSetup([]byte(`{
	  "resource_servers": [{"identifier": "` + adminAPI + `", "scopes": ["mandate:admin", "mandate:read"], "access_token_ttl": "5m"}],
	  "clients": [
	    {"client_id": "ops", "client_secret": "ops-secret-0123456789abcdef", "grant_types": ["client_credentials"],
	     "scopes": ["mandate:admin"], "resources": ["` + adminAPI + `"]},
	    {"client_id": "weak", "client_secret": "weak-secret-0123456789abcdef", "grant_types": ["client_credentials"],
	     "scopes": ["mandate:read"], "resources": ["` + adminAPI + `"]}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, setup); err != nil {
		t.Fatal(err)
	}
	h, err := admin.New(ctx, admin.Config{Provider: p, Resource: adminAPI})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, pat := range p.Patterns() {
		mux.Handle(pat, p)
	}
	mux.Handle(h.Pattern(), h)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &server{t: t, p: p, srv: srv}
}

// token gets a client_credentials token for resource.
func (s *server) token(client, secret, resource, scope string) string {
	s.t.Helper()
	cc := clientcredentials.Config{ClientID: client, ClientSecret: secret, TokenURL: s.srv.URL + "/token",
		EndpointParams: url.Values{"resource": {resource}}}
	if scope != "" {
		cc.Scopes = []string{scope}
	}
	tok, err := cc.Token(context.Background())
	if err != nil {
		s.t.Fatalf("token for %s: %v", client, err)
	}
	return tok.AccessToken
}

// call sends a request to the admin API with the bearer token (none when empty) and decodes
// the JSON answer.
func (s *server) call(method, path, token string, body any) (*http.Response, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			data, _ := json.Marshal(b)
			rd = bytes.NewReader(data)
		}
	}
	req, _ := http.NewRequest(method, s.srv.URL+"/admin"+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	if len(data) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &m); err != nil {
			s.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, data)
		}
	}
	m["_raw"] = string(data)
	return resp, m
}

func TestAdminAPIRefusesWithoutAnAdminToken(t *testing.T) {
	s := newServer(t)
	resp, _ := s.call("GET", "/clients", "", nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = s.call("GET", "/clients", "not-a-token", nil)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("bad token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	weak := s.token("weak", "weak-secret-0123456789abcdef", adminAPI, "mandate:read")
	resp, _ = s.call("GET", "/clients", weak, nil)
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("token without the admin scope: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// A token of the issuer for another resource server is not an admin token.
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	tok := ops
	resp, _ = s.call("GET", "/clients", tok[:len(tok)-4]+"AAAA", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("altered token: %d", resp.StatusCode)
	}
}

func TestAdminAPIClients(t *testing.T) {
	s := newServer(t)
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")

	resp, m := s.call("POST", "/resource-servers", ops, map[string]any{"identifier": api, "scopes": []string{"read", "write"}, "access_token_ttl": "2m"})
	if resp.StatusCode != 201 || m["identifier"] != api {
		t.Fatalf("create resource server: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("POST", "/clients", ops, map[string]any{
		"client_name": "billing", "grant_types": []string{"client_credentials"}, "scope": "read", "resources": []string{api}})
	if resp.StatusCode != 201 {
		t.Fatalf("create client: %d %v", resp.StatusCode, m)
	}
	id, _ := m["client_id"].(string)
	secret, _ := m["client_secret"].(string)
	if id == "" || len(secret) < 40 || m["client_secret_expires_at"] != float64(0) || m["token_endpoint_auth_method"] != "client_secret_basic" {
		t.Fatalf("created client: %v", m)
	}
	tok := s.token(id, secret, api, "read")

	// The secret is never shown again.
	resp, m = s.call("GET", "/clients/"+url.PathEscape(id), ops, nil)
	if resp.StatusCode != 200 || m["client_name"] != "billing" || m["scope"] != "read" || strings.Contains(m["_raw"].(string), secret) || m["client_secret"] != nil {
		t.Fatalf("get client: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("GET", "/clients?limit=1", ops, nil)
	if resp.StatusCode != 200 || len(m["items"].([]any)) != 1 || m["next"] == nil || strings.Contains(m["_raw"].(string), secret) {
		t.Fatalf("list clients: %d %v", resp.StatusCode, m)
	}
	seen := map[string]bool{}
	for after := ""; ; {
		_, m = s.call("GET", "/clients?limit=1&after="+url.QueryEscape(after), ops, nil)
		for _, it := range m["items"].([]any) {
			seen[it.(map[string]any)["client_id"].(string)] = true
		}
		next, _ := m["next"].(string)
		if next == "" {
			break
		}
		after = next
	}
	if len(seen) != 3 || !seen[id] || !seen["ops"] || !seen["weak"] {
		t.Fatalf("paging through the clients saw %v", seen)
	}

	// Update keeps the secret; a taken id is a conflict.
	resp, m = s.call("PUT", "/clients/"+url.PathEscape(id), ops, map[string]any{
		"client_name": "billing v2", "grant_types": []string{"client_credentials"}, "scope": "read write", "resources": []string{api}})
	if resp.StatusCode != 200 || m["scope"] != "read write" || m["client_secret"] != nil {
		t.Fatalf("update client: %d %v", resp.StatusCode, m)
	}
	s.token(id, secret, api, "write")
	resp, _ = s.call("POST", "/clients", ops, map[string]any{"client_id": id, "grant_types": []string{"client_credentials"}, "resources": []string{}})
	if resp.StatusCode != 409 {
		t.Fatalf("create with a taken id: %d", resp.StatusCode)
	}

	// Rotation: the new secret works, the old one no longer.
	resp, m = s.call("POST", "/clients/"+url.PathEscape(id)+"/secret", ops, nil)
	newSecret, _ := m["client_secret"].(string)
	if resp.StatusCode != 200 || newSecret == "" || newSecret == secret {
		t.Fatalf("rotate: %d %v", resp.StatusCode, m)
	}
	s.token(id, newSecret, api, "read")
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: s.srv.URL + "/token", EndpointParams: url.Values{"resource": {api}}}
	if _, err := cc.Token(context.Background()); err == nil {
		t.Fatal("the rotated-out secret still works")
	}

	// Delete: the client's tokens are inactive at introspection, and it gets no more.
	resp, m = s.call("DELETE", "/clients/"+url.PathEscape(id), ops, nil)
	if resp.StatusCode != 200 || m["revoked_grants"].(float64) < 1 {
		t.Fatalf("delete: %d %v", resp.StatusCode, m)
	}
	if active := introspect(t, s, tok); active {
		t.Fatal("a deleted client's token is still active at introspection")
	}
	resp, _ = s.call("GET", "/clients/"+url.PathEscape(id), ops, nil)
	if resp.StatusCode != 404 {
		t.Fatalf("get deleted: %d", resp.StatusCode)
	}
	cc.ClientSecret = newSecret
	if _, err := cc.Token(context.Background()); err == nil {
		t.Fatal("a deleted client still gets tokens")
	}
}

// introspect asks as ops, which may introspect the tokens for the resource server it serves;
// ops is given introspect_all for the test.
func introspect(t *testing.T, s *server, token string) bool {
	t.Helper()
	m, err := s.p.Manager()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Client(context.Background(), "auditor"); err != nil {
		if _, _, err := m.CreateClient(context.Background(), provider.SetupClient{ClientID: "auditor", GrantTypes: []string{"client_credentials"},
			Scopes: []string{}, Resources: []string{}, IntrospectAll: true}, ""); err != nil {
			t.Fatal(err)
		}
		secret, err := m.RotateClientSecret(context.Background(), "auditor", false, "")
		if err != nil {
			t.Fatal(err)
		}
		auditorSecret = secret
	}
	req, _ := http.NewRequest("POST", s.srv.URL+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("auditor", auditorSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("introspect: %d %v", resp.StatusCode, err)
	}
	return out["active"] == true
}

var auditorSecret string

func TestAdminAPIValidation(t *testing.T) {
	s := newServer(t)
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"redirect URI over http", map[string]any{"client_id": "w", "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"},
			"redirect_uris": []string{"http://evil.example/cb"}, "resources": []string{}}, "redirect_uris[0]"},
		{"bad scope token", map[string]any{"client_id": "x", "grant_types": []string{"client_credentials"}, "scope": `a "b"`, "resources": []string{}}, "scope"},
		{"unknown grant", map[string]any{"client_id": "y", "grant_types": []string{"password"}, "resources": []string{}}, "grant_types[0]"},
		{"unknown resource", map[string]any{"client_id": "z", "grant_types": []string{"client_credentials"}, "resources": []string{"https://nope.example/"}}, "resources[0]"},
		{"chosen secret", map[string]any{"client_id": "s", "client_secret": "mine-0123456789abcdef", "grant_types": []string{"client_credentials"}, "resources": []string{}}, "client_secret"},
		{"unknown member", `{"client_id": "u", "grant_types": ["client_credentials"], "resources": [], "colour": "blue"}`, "colour"},
		{"wrong type", `{"client_id": "u", "grant_types": "client_credentials", "resources": []}`, "grant_types"},
		{"repeated member", `{"client_id": "u", "client_id": "v", "grant_types": ["client_credentials"], "resources": []}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := s.call("POST", "/clients", ops, tc.body)
			if resp.StatusCode != 400 {
				t.Fatalf("%d %v", resp.StatusCode, m)
			}
			problems, _ := m["problems"].([]any)
			if len(problems) == 0 {
				t.Fatalf("no problems listed: %v", m)
			}
			if f := problems[0].(map[string]any)["field"]; tc.field != "" && f != tc.field {
				t.Fatalf("field %v, want %s (%v)", f, tc.field, m)
			}
		})
	}
	resp, m := s.call("POST", "/resource-servers", ops, map[string]any{"identifier": "https://x.example/#frag", "scopes": []string{"a"}})
	if resp.StatusCode != 400 || !strings.Contains(m["_raw"].(string), `"field":"identifier"`) {
		t.Fatalf("bad resource server: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("POST", "/trusted-issuers", ops, map[string]any{"issuer": "https://idp.example", "subject": "svc", "scopes": []string{}, "resources": []string{}})
	if resp.StatusCode != 400 || !strings.Contains(m["_raw"].(string), `"field":"jwks"`) {
		t.Fatalf("trust without keys: %d %v", resp.StatusCode, m)
	}
}

func TestAdminAPIResourceServersTrustsAndKeys(t *testing.T) {
	s := newServer(t)
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	resp, _ := s.call("POST", "/resource-servers", ops, map[string]any{"identifier": api, "scopes": []string{"read"}, "signing_alg": "EdDSA"})
	if resp.StatusCode != 201 {
		t.Fatal(resp.StatusCode)
	}
	path := "/resource-servers/" + url.PathEscape(api)
	resp, m := s.call("PUT", path, ops, map[string]any{"scopes": []string{"read", "write"}, "default": true})
	if resp.StatusCode != 200 || m["default"] != true || len(m["scopes"].([]any)) != 2 {
		t.Fatalf("update resource server: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("GET", "/resource-servers", ops, nil)
	if resp.StatusCode != 200 || len(m["items"].([]any)) != 2 {
		t.Fatalf("list resource servers: %d %v", resp.StatusCode, m)
	}
	resp, _ = s.call("POST", "/resource-servers", ops, map[string]any{"identifier": api, "scopes": []string{"read"}})
	if resp.StatusCode != 409 {
		t.Fatalf("create a taken resource server: %d", resp.StatusCode)
	}

	trust := map[string]any{"issuer": "https://idp.example", "subject": "svc-a", "jwks_uri": "https://idp.example/jwks",
		"scopes": []string{"read"}, "resources": []string{api}}
	resp, m = s.call("POST", "/trusted-issuers", ops, trust)
	if resp.StatusCode != 201 || m["id"] == "" {
		t.Fatalf("create trust: %d %v", resp.StatusCode, m)
	}
	tid := m["id"].(string)
	resp, m = s.call("GET", "/trusted-issuers/"+url.PathEscape(tid), ops, nil)
	if resp.StatusCode != 200 || m["subject"] != "svc-a" {
		t.Fatalf("get trust: %d %v", resp.StatusCode, m)
	}
	resp, _ = s.call("DELETE", "/trusted-issuers/"+url.PathEscape(tid), ops, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("delete trust: %d", resp.StatusCode)
	}
	resp, _ = s.call("DELETE", path, ops, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("delete resource server: %d", resp.StatusCode)
	}

	resp, m = s.call("GET", "/keys", ops, nil)
	if resp.StatusCode != 200 || len(m["items"].([]any)) < 2 || strings.Contains(m["_raw"].(string), `"d":`) {
		t.Fatalf("keys: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("POST", "/keys/rotate", ops, nil)
	if resp.StatusCode != 200 || len(m["signing"].([]any)) == 0 {
		t.Fatalf("rotate keys: %d %v", resp.StatusCode, m)
	}
}

// TestAdminAPIPeers: the peer authorization servers of identity chaining through the API:
// created (their signing algorithm gets keys), read by their issuer percent-encoded in the
// path, listed, updated, refused when they break the setup's rules or collide, and deleted.
func TestAdminAPIPeers(t *testing.T) {
	s := newServer(t)
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	const peer = "https://as.y.example"
	path := "/peers/" + url.PathEscape(peer)

	resp, m := s.call("POST", "/peers", ops, map[string]any{"issuer": peer, "scopes": []string{"stock:read"}, "claims": []string{"act"},
		"max_grant_lifetime": "2m", "signing_alg": "EdDSA"})
	if resp.StatusCode != 201 || m["issuer"] != peer || m["max_grant_lifetime"] != "2m0s" || m["created_at"] == nil {
		t.Fatalf("create peer: %d %v", resp.StatusCode, m)
	}
	if resp, _ := s.call("POST", "/peers", ops, map[string]any{"issuer": peer, "scopes": []string{}, "claims": []string{}}); resp.StatusCode != 409 {
		t.Fatalf("create a registered peer: %d", resp.StatusCode)
	}
	resp, m = s.call("GET", path, ops, nil)
	if resp.StatusCode != 200 || m["signing_alg"] != "EdDSA" || len(m["claims"].([]any)) != 1 {
		t.Fatalf("get peer: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("PUT", path, ops, map[string]any{"scopes": []string{"stock:read", "stock:write"}, "claims": []string{"act", "client_id"}})
	if resp.StatusCode != 200 || len(m["scopes"].([]any)) != 2 || m["max_grant_lifetime"] != nil {
		t.Fatalf("update peer: %d %v", resp.StatusCode, m)
	}
	resp, m = s.call("GET", "/peers", ops, nil)
	if resp.StatusCode != 200 || len(m["items"].([]any)) != 1 || m["next"] != nil {
		t.Fatalf("list peers: %d %v", resp.StatusCode, m)
	}
	keys, err := s.p.Manager()
	if err != nil {
		t.Fatal(err)
	}
	infos, err := keys.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eddsa := false
	for _, k := range infos {
		eddsa = eddsa || k.Algorithm == "EdDSA"
	}
	if !eddsa {
		t.Fatal("the peer's signing_alg got no keys")
	}

	// Hostile bodies: a repeated or case-variant member, a huge body, another media type.
	for name, body := range map[string]string{
		"repeated member":     `{"issuer":"https://as.z.example","issuer":"https://as.w.example","scopes":[],"claims":[]}`,
		"case-variant member": `{"issuer":"https://as.z.example","Issuer":"https://as.w.example","scopes":[],"claims":[]}`,
		"not JSON":            `{"issuer":`,
	} {
		if resp, m := s.call("POST", "/peers", ops, body); resp.StatusCode != 400 || m["error"] == "server_error" {
			t.Fatalf("%s: %d %v", name, resp.StatusCode, m)
		}
	}
	if resp, _ := s.call("POST", "/peers", ops, `{"issuer":"`+strings.Repeat("a", 300<<10)+`"}`); resp.StatusCode != 413 {
		t.Fatalf("a 300 KiB body: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", s.srv.URL+"/admin/peers", strings.NewReader(`{"issuer":"https://as.z.example","scopes":[],"claims":[]}`))
	req.Header.Set("Authorization", "Bearer "+ops)
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 415 {
		t.Fatalf("text/plain body: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	for name, tc := range map[string]struct {
		method, path string
		body         map[string]any
		code         int
		field        string
	}{
		"own issuer":             {"POST", "/peers", map[string]any{"issuer": s.p.Issuer(), "scopes": []string{}, "claims": []string{}}, 400, "issuer"},
		"not https":              {"POST", "/peers", map[string]any{"issuer": "http://as.z.example", "scopes": []string{}, "claims": []string{}}, 400, "issuer"},
		"a resource server":      {"POST", "/peers", map[string]any{"issuer": adminAPI, "scopes": []string{}, "claims": []string{}}, 400, "issuer"},
		"reserved claim":         {"PUT", path, map[string]any{"scopes": []string{}, "claims": []string{"sub"}}, 400, "claims[0]"},
		"too long a lifetime":    {"PUT", path, map[string]any{"scopes": []string{}, "claims": []string{}, "max_grant_lifetime": "2h"}, 400, "max_grant_lifetime"},
		"issuer differs in body": {"PUT", path, map[string]any{"issuer": "https://as.z.example", "scopes": []string{}, "claims": []string{}}, 400, "issuer"},
		"update a missing peer":  {"PUT", "/peers/" + url.PathEscape("https://as.z.example"), map[string]any{"scopes": []string{}, "claims": []string{}}, 404, ""},
		"unknown member":         {"POST", "/peers", map[string]any{"issuer": "https://as.z.example", "scopes": []string{}, "claims": []string{}, "audience": "x"}, 400, ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp, m := s.call(tc.method, tc.path, ops, tc.body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%d %v, want %d", resp.StatusCode, m, tc.code)
			}
			if tc.field != "" && !strings.Contains(m["_raw"].(string), `"field":"`+tc.field+`"`) {
				t.Fatalf("problems %v, want the field %s", m["problems"], tc.field)
			}
		})
	}

	if resp, _ := s.call("DELETE", path, ops, nil); resp.StatusCode != 200 {
		t.Fatalf("delete peer: %d", resp.StatusCode)
	}
	if resp, _ := s.call("GET", path, ops, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted peer: %d", resp.StatusCode)
	}
	if resp, _ := s.call("DELETE", path, ops, nil); resp.StatusCode != 404 {
		t.Fatalf("delete a deleted peer: %d", resp.StatusCode)
	}
}

// TestAdminAPIRevokedToken: an admin token revoked at the revocation endpoint (RFC 7009), or one
// of a deleted client, stops working at once, not when it expires.
func TestAdminAPIRevokedToken(t *testing.T) {
	s := newServer(t)
	ops := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	if resp, _ := s.call("GET", "/clients", ops, nil); resp.StatusCode != 200 {
		t.Fatalf("before revocation: %d", resp.StatusCode)
	}
	form := url.Values{"token": {ops}}
	req, _ := http.NewRequest("POST", s.srv.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ops", "ops-secret-0123456789abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = s.call("GET", "/clients", ops, nil)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
		t.Fatalf("revoked admin token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// A second admin client's token dies with its client.
	fresh := s.token("ops", "ops-secret-0123456789abcdef", adminAPI, "")
	resp, m := s.call("POST", "/clients", fresh, map[string]any{"client_id": "ops2", "grant_types": []string{"client_credentials"},
		"scope": "mandate:admin", "resources": []string{adminAPI}})
	if resp.StatusCode != 201 {
		t.Fatalf("create ops2: %d %v", resp.StatusCode, m)
	}
	ops2 := s.token("ops2", m["client_secret"].(string), adminAPI, "")
	if resp, _ := s.call("GET", "/keys", ops2, nil); resp.StatusCode != 200 {
		t.Fatalf("ops2's token: %d", resp.StatusCode)
	}
	if resp, _ := s.call("DELETE", "/clients/ops2", fresh, nil); resp.StatusCode != 200 {
		t.Fatalf("delete ops2: %d", resp.StatusCode)
	}
	if resp, _ := s.call("GET", "/keys", ops2, nil); resp.StatusCode != 401 {
		t.Fatalf("a deleted client's admin token: %d", resp.StatusCode)
	}
}
