package provider_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

const (
	tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	ttAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	ttJWT         = "urn:ietf:params:oauth:token-type:jwt"
	inventory     = "https://inventory.example.com/"
	warehouse     = "https://warehouse.example.com/"
)

// exchangeAS is an authorization server with a chain of services that call each other:
// A (the client svc) calls B (orders, whose client is orders-api), which calls C (inventory,
// client inventory-api), which calls D (warehouse). orders:read is accepted by all three.
func exchangeAS(t *testing.T, st storage.Store, opts ...asOption) *testAS {
	t.Helper()
	if st == nil {
		st = newStore(t)
	}
	as := newASWith(t, st, testSecret(t), "", opts...)
	ctx := context.Background()
	for _, rs := range []storage.ResourceServer{
		{Identifier: inventory, Scopes: []string{"orders:read", "inventory:read"}, AccessTokenTTL: 5 * time.Minute, SigningAlg: "EdDSA"},
		{Identifier: warehouse, Scopes: []string{"orders:read"}, SigningAlg: "RS256"},
	} {
		if err := as.store.SaveResourceServer(ctx, &rs); err != nil {
			t.Fatal(err)
		}
	}
	hash := func(s string) []byte {
		h, err := as.p.Hasher().Hash(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, c := range []storage.Client{
		{ID: "orders-api", SecretHash: hash("orders-api-secret-0123456789"), GrantTypes: []string{tokenExchange, "client_credentials"},
			Serves: []string{orders}, Resources: []string{inventory, orders}, Scopes: []string{"orders:read", "inventory:read"}},
		{ID: "inventory-api", SecretHash: hash("inventory-api-secret-0123456789"), GrantTypes: []string{tokenExchange},
			Serves: []string{inventory}, Resources: []string{warehouse}, Scopes: []string{"orders:read"}},
		{ID: "gateway", SecretHash: hash("gateway-secret-0123456789"), GrantTypes: []string{tokenExchange}, Impersonate: true,
			Serves: []string{orders}, Resources: []string{inventory}, Scopes: []string{"orders:read"}},
		{ID: "no-grant", SecretHash: hash("no-grant-secret-0123456789"), GrantTypes: []string{"client_credentials"},
			Serves: []string{orders}, Resources: []string{inventory}, Scopes: []string{"orders:read"}},
	} {
		as.saveClient(c)
	}
	return as
}

var secretOf = map[string]string{
	"orders-api": "orders-api-secret-0123456789", "inventory-api": "inventory-api-secret-0123456789",
	"gateway": "gateway-secret-0123456789", "no-grant": "no-grant-secret-0123456789", "svc": "svc-secret-0123456789",
}

// exchange sends a token exchange for client with kv as extra parameters.
func (as *testAS) exchange(client, subject, resource string, kv ...string) (*http.Response, map[string]any) {
	as.t.Helper()
	f := url.Values{"grant_type": {tokenExchange}, "subject_token": {subject}, "subject_token_type": {ttAccessToken}}
	if resource != "" {
		f.Set("resource", resource)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		switch k, v := kv[i], kv[i+1]; {
		case v == "\x00":
			f.Del(k)
		case strings.HasPrefix(k, "+"): // one more value
			f.Add(k[1:], v)
		default:
			f.Set(k, v)
		}
	}
	return as.post("token", f, client, secretOf[client])
}

// verifierFor is a resource server's verify.Verifier for audience, fed by the server's metadata.
func (as *testAS) verifierFor(audience string) *verify.Verifier {
	as.t.Helper()
	v, err := verify.New(context.Background(), verify.Config{Issuer: as.issuer, Audience: audience, HTTPClient: as.srv.Client()})
	if err != nil {
		as.t.Fatal(err)
	}
	return v
}

// backends are the stores every token-exchange test runs on.
var backends = []struct {
	name  string
	store func(t *testing.T) storage.Store
}{
	{"sqlite", func(t *testing.T) storage.Store { return newStore(t) }},
	{"postgres", func(t *testing.T) storage.Store { return openStore(t, postgresDSN(t)) }},
	{"mariadb", func(t *testing.T) storage.Store { return openStore(t, mysqlDSN(t)) }},
}

func TestTokenExchangeChain(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { exchangeChain(t, exchangeAS(t, b.store(t))) })
	}
}

// exchangeChain runs A→B→C→D and checks every hop's token at its resource server.
func exchangeChain(t *testing.T, as *testAS) {
	// A gets a token for B.
	tokA := as.clientCredentials("orders:read", orders)
	// B exchanges it for C; the new token says who acts.
	resp, m := as.exchange("orders-api", tokA, inventory)
	if resp.StatusCode != 200 {
		t.Fatalf("B→C: %d %v", resp.StatusCode, m)
	}
	if m["issued_token_type"] != ttAccessToken || !strings.EqualFold(m["token_type"].(string), "bearer") || m["refresh_token"] != nil ||
		m["scope"] != "orders:read" || m["resource"] != inventory {
		t.Fatalf("response %v", m)
	}
	tokB := m["access_token"].(string)
	cB, err := as.verifierFor(inventory).Verify(context.Background(), tokB)
	if err != nil {
		t.Fatal(err)
	}
	if cB.Subject != "svc" || cB.ClientID != "orders-api" || cB.Act == nil || cB.Act.Subject != "orders-api" || cB.Act.Act != nil || cB.Scope != "orders:read" {
		t.Fatalf("C sees %+v act %+v", cB, cB.Act)
	}
	if exp := m["expires_in"].(float64); int64(exp) != cB.ExpiresAt.Unix()-cB.IssuedAt.Unix() || exp > 300 {
		t.Fatalf("expires_in %v, token lives %v (inventory's TTL is 5m)", exp, cB.ExpiresAt.Sub(cB.IssuedAt))
	}
	// The token for C is useless at B, and the token for B useless at C.
	if _, err := as.verifierFor(orders).Verify(context.Background(), tokB); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("C's token at B: %v", err)
	}
	if _, err := as.verifierFor(inventory).Verify(context.Background(), tokA); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("B's token at C: %v", err)
	}
	// C exchanges again for D: the chain nests, newest outermost.
	resp, m = as.exchange("inventory-api", tokB, warehouse)
	if resp.StatusCode != 200 {
		t.Fatalf("C→D: %d %v", resp.StatusCode, m)
	}
	cD, err := as.verifierFor(warehouse).Verify(context.Background(), m["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	chain := cD.Act.Chain()
	if cD.Subject != "svc" || cD.ClientID != "inventory-api" || len(chain) != 2 || chain[0].Subject != "inventory-api" || chain[1].Subject != "orders-api" {
		t.Fatalf("D sees sub %s client %s chain %+v", cD.Subject, cD.ClientID, chain)
	}
	if !cD.ExpiresAt.After(time.Now()) || cD.ExpiresAt.After(cB.ExpiresAt) {
		t.Fatalf("D's token expires %v, after the subject token's %v", cD.ExpiresAt, cB.ExpiresAt)
	}
	// A resource server can require that calls arrive through a given actor.
	var reached bool
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true })
	v := as.verifierFor(warehouse)
	for _, tc := range []struct {
		actor string
		want  int
	}{{"inventory-api", 200}, {"orders-api", 403}} {
		reached = false
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/stock", nil)
		req.Header.Set("Authorization", "Bearer "+m["access_token"].(string))
		v.Middleware(v.RequireActor(tc.actor)(ok)).ServeHTTP(rec, req)
		if rec.Code != tc.want || reached != (tc.want == 200) {
			t.Fatalf("RequireActor(%s): %d", tc.actor, rec.Code)
		}
	}
	// Introspection by the resource server the token is for shows the chain too.
	_, im := as.post("introspect", url.Values{"token": {m["access_token"].(string)}}, "rs", "rs-secret-0123456789")
	if act, _ := im["act"].(map[string]any); im["active"] != true || act["sub"] != "inventory-api" {
		t.Fatalf("introspection %v", im)
	}
}

func TestTokenExchangeRefusals(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { exchangeRefusals(t, exchangeAS(t, b.store(t))) })
	}
}

// exchangeRefusals sends the splicing attempts and malformed exchanges: each refused with the
// RFC error naming the rule, and nothing issued.
func exchangeRefusals(t *testing.T, as *testAS) {
	tokA := as.clientCredentials("orders:read", orders)
	ordersOwn := func() string { // orders-api's own token: a valid actor token
		resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}, "resource": {orders}}, "orders-api", secretOf["orders-api"])
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		return m["access_token"].(string)
	}()
	_, exchangedB := as.exchange("orders-api", tokA, inventory)
	tokB := exchangedB["access_token"].(string)
	revoked := as.clientCredentials("orders:read", orders)
	if resp, _ := as.post("revoke", url.Values{"token": {revoked}}, "svc", secretOf["svc"]); resp.StatusCode != 200 {
		t.Fatal("revoke")
	}
	_, refresh := authCode(t, as, "conf", "conf-secret-0123456789", []string{"orders:read"}, orders)
	parts := strings.Split(tokA, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"sub":"svc"`, `"sub":"admin"`, 1))) + "." + parts[2]
	forged := forgeAccessToken(t, as, parts[0], payload)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	hs := hmacWithPublicKey(t, as, payload)

	for _, tc := range []struct {
		name, client, subject, resource string
		kv                              []string
		status                          int
		code, hint                      string
	}{
		{"presenter not an audience of the subject token", "inventory-api", tokA, warehouse, nil, 400, "invalid_request", "not an audience"},
		{"actor token of another client", "orders-api", tokA, inventory, []string{"actor_token", tokA, "actor_token_type", ttAccessToken}, 400, "invalid_request", "actor_token"},
		{"actor token issued to the client but acting for someone else", "inventory-api", tokB, warehouse, []string{"actor_token", tokB, "actor_token_type", ttAccessToken}, 400, "invalid_request", "actor_token"},
		{"scope widening", "orders-api", tokA, inventory, []string{"scope", "inventory:read"}, 400, "invalid_scope", "subject_token"},
		{"unregistered resource", "orders-api", tokA, "https://nowhere.example/", nil, 400, "invalid_target", ""},
		{"resource the client may not use", "orders-api", tokA, warehouse, nil, 400, "invalid_target", ""},
		{"two resources", "orders-api", tokA, inventory, []string{"+resource", orders}, 400, "invalid_target", ""},
		{"revoked subject token", "orders-api", revoked, inventory, nil, 400, "invalid_request", "revoked"},
		{"tampered subject token", "orders-api", tampered, inventory, nil, 400, "invalid_request", "not a valid access token"},
		{"subject token signed by another key", "orders-api", forged, inventory, nil, 400, "invalid_request", "not a valid access token"},
		{"alg none", "orders-api", none, inventory, nil, 400, "invalid_request", "not a valid access token"},
		{"HMAC keyed with the public key", "orders-api", hs, inventory, nil, 400, "invalid_request", "not a valid access token"},
		{"encrypted for someone else", "orders-api", "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a.b.c.d", inventory, nil, 400, "invalid_request", "encrypted"},
		{"refresh token as subject", "orders-api", refresh.RefreshToken, inventory, nil, 400, "invalid_request", "not an access token"},
		{"refresh token type", "orders-api", refresh.RefreshToken, inventory, []string{"subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"}, 400, "invalid_request", "subject_token_type"},
		{"unknown token type", "orders-api", tokA, inventory, []string{"subject_token_type", "urn:example:magic"}, 400, "invalid_request", "subject_token_type"},
		{"no subject token type", "orders-api", tokA, inventory, []string{"subject_token_type", "\x00"}, 400, "invalid_request", "subject_token_type"},
		{"no subject token", "orders-api", "", inventory, nil, 400, "invalid_request", "subject_token"},
		{"actor type without actor", "orders-api", tokA, inventory, []string{"actor_token_type", ttAccessToken}, 400, "invalid_request", "actor_token"},
		{"actor without type", "orders-api", tokA, inventory, []string{"actor_token", ordersOwn}, 400, "invalid_request", "actor_token_type"},
		{"requested jwt for a resource server", "orders-api", tokA, inventory, []string{"requested_token_type", ttJWT}, 400, "invalid_target", "not a registered peer"},
		{"unknown requested type", "orders-api", tokA, inventory, []string{"requested_token_type", "urn:ietf:params:oauth:token-type:id_token"}, 400, "invalid_request", "requested_token_type"},
		{"audience parameter", "orders-api", tokA, inventory, []string{"audience", "inventory"}, 400, "invalid_request", "resource"},
		{"oversize subject token", "orders-api", strings.Repeat("a", 20000) + ".b.c", inventory, nil, 400, "invalid_request", "longer than"},
		{"garbage subject token", "orders-api", "a.b.c", inventory, nil, 400, "invalid_request", "not a valid access token"},
		{"client without the grant", "no-grant", tokA, inventory, nil, 400, "unauthorized_client", ""},
		{"wrong client secret", "orders-api", tokA, inventory, []string{"client_secret", "x"}, 400, "invalid_request", "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := as.exchange(tc.client, tc.subject, tc.resource, tc.kv...)
			d, _ := m["error_description"].(string)
			if resp.StatusCode != tc.status || m["error"] != tc.code || m["access_token"] != nil || !strings.Contains(d, tc.hint) {
				t.Fatalf("%d %v, want %d %s mentioning %q", resp.StatusCode, m, tc.status, tc.code, tc.hint)
			}
		})
	}
	// A repeated parameter, sent by hand.
	body := url.Values{"grant_type": {tokenExchange}, "subject_token": {tokA, tokA}, "subject_token_type": {ttAccessToken}}.Encode()
	if resp, m := as.send(http.MethodPost, "token", body, "", "orders-api", secretOf["orders-api"]); resp.StatusCode != 400 || m["error"] != "invalid_request" {
		t.Fatalf("repeated subject_token: %d %v", resp.StatusCode, m)
	}
	// And the client's own token is a valid actor token: the exchange then succeeds.
	if resp, m := as.exchange("orders-api", tokA, inventory, "actor_token", ordersOwn, "actor_token_type", ttAccessToken); resp.StatusCode != 200 {
		t.Fatalf("with the client's own actor token: %d %v", resp.StatusCode, m)
	}
}

// forgeAccessToken signs payload under header (same kid and alg) with a key the server never
// published.
func forgeAccessToken(t *testing.T, as *testAS, header string, payload []byte) string {
	hb, _ := base64.RawURLEncoding.DecodeString(header)
	var h map[string]any
	_ = json.Unmarshal(hb, &h)
	k := genKey(t, jose.SignatureAlgorithm(h["alg"].(string)), h["kid"].(string))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// hmacWithPublicKey signs payload with HS256 keyed by one of the server's published public keys.
func hmacWithPublicKey(t *testing.T, as *testAS, payload []byte) string {
	resp, err := http.Get("http://" + as.srv.Listener.Addr().String() + "/oauth2/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", set.Keys[0].KeyID))
	obj, _ := s.Sign(payload)
	out, _ := obj.CompactSerialize()
	return out
}

func TestTokenExchangeRules(t *testing.T) {
	t.Run("impersonation leaves no act", func(t *testing.T) {
		as := exchangeAS(t, nil)
		resp, m := as.exchange("gateway", as.clientCredentials("orders:read", orders), inventory)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		c, err := as.verifierFor(inventory).Verify(context.Background(), m["access_token"].(string))
		if err != nil || c.Act != nil || c.Subject != "svc" || c.ClientID != "gateway" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("the chain depth is bounded", func(t *testing.T) {
		as := exchangeAS(t, nil, func(c *provider.Config) { c.MaxDelegationDepth = 1 })
		_, m := as.exchange("orders-api", as.clientCredentials("orders:read", orders), inventory)
		resp, m := as.exchange("inventory-api", m["access_token"].(string), warehouse)
		if d, _ := m["error_description"].(string); resp.StatusCode != 400 || m["error"] != "invalid_request" || !strings.Contains(d, "at most 1") {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("may_act must name the acting party", func(t *testing.T) {
		as := exchangeAS(t, nil, func(c *provider.Config) {
			c.ClaimMappers = []strategy.ClaimMapper{strategy.ClaimMapperFunc(func(_ context.Context, r strategy.TokenRequest) (map[string]any, error) {
				if r.ClientID == "svc" { // A's tokens may be exchanged by the gateway only
					return map[string]any{"may_act": map[string]any{"sub": "gateway"}}, nil
				}
				return nil, nil
			})}
		})
		tokA := as.clientCredentials("orders:read", orders)
		if c, err := as.verifierFor(orders).Verify(context.Background(), tokA); err != nil || c.MayAct == nil || c.MayAct.Subject != "gateway" {
			t.Fatalf("may_act not minted: %+v %v", c, err)
		}
		resp, m := as.exchange("orders-api", tokA, inventory)
		if d, _ := m["error_description"].(string); resp.StatusCode != 400 || m["error"] != "invalid_grant" || !strings.Contains(d, "may_act") {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if resp, m := as.exchange("gateway", tokA, inventory); resp.StatusCode != 200 {
			t.Fatalf("the named party: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("the new token never outlives the subject token", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		as := exchangeAS(t, nil, func(c *provider.Config) { c.Now = clock })
		tokA := as.clientCredentials("orders:read", orders) // 10 minutes
		mu.Lock()
		now = now.Add(8 * time.Minute)
		mu.Unlock()
		resp, m := as.exchange("orders-api", tokA, inventory) // inventory: 5 minutes, capped at 2
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if exp := m["expires_in"].(float64); exp > 121 || exp < 119 {
			t.Fatalf("expires_in %v, want the subject token's remaining 120 s", exp)
		}
		mu.Lock()
		now = now.Add(3 * time.Minute)
		mu.Unlock()
		if resp, m := as.exchange("orders-api", tokA, inventory); resp.StatusCode != 400 || !strings.Contains(m["error_description"].(string), "expired") {
			t.Fatalf("expired subject token: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("the policy hook decides last", func(t *testing.T) {
		var seen provider.ExchangeRequest
		as := exchangeAS(t, nil, func(c *provider.Config) {
			c.ExchangePolicy = provider.ExchangePolicyFunc(func(_ context.Context, r provider.ExchangeRequest) ([]string, error) {
				seen = r
				if r.Resource == warehouse {
					return nil, errors.New("no warehouse calls today")
				}
				return []string{"orders:read"}, nil
			})
		})
		_, m := as.exchange("orders-api", as.clientCredentials("orders:read", orders), inventory)
		if seen.ClientID != "orders-api" || seen.Subject != "svc" || seen.Act.Subject != "orders-api" || seen.Resource != inventory {
			t.Fatalf("policy saw %+v", seen)
		}
		resp, m := as.exchange("inventory-api", m["access_token"].(string), warehouse)
		if resp.StatusCode != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
	})
	t.Run("a JWT from a trusted issuer, used once", func(t *testing.T) {
		as := exchangeAS(t, nil)
		idp := genKey(t, jose.ES256, "idp-x")
		as.saveTrust(storage.Trust{ID: "idp-x", Issuer: idpIssuer, AllowAnySubject: true, JWKS: idp.jwks(),
			Scopes: []string{"orders:read"}, Resources: []string{inventory}})
		jwt := idp.sign(t, as.assertionClaims(idpIssuer, "user-7"))
		resp, m := as.exchange("orders-api", jwt, inventory, "subject_token_type", ttJWT)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		c, err := as.verifierFor(inventory).Verify(context.Background(), m["access_token"].(string))
		if err != nil || c.Subject != "user-7" || c.Act.Subject != "orders-api" || c.Scope != "orders:read" {
			t.Fatalf("%+v %v", c, err)
		}
		if resp, m := as.exchange("orders-api", jwt, inventory, "subject_token_type", ttJWT); resp.StatusCode != 400 || !strings.Contains(m["error_description"].(string), "already") {
			t.Fatalf("replayed JWT: %d %v", resp.StatusCode, m)
		}
		untrusted := genKey(t, jose.ES256, "idp-x").sign(t, as.assertionClaims(idpIssuer, "user-7"))
		if resp, m := as.exchange("orders-api", untrusted, inventory, "subject_token_type", ttJWT); resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Fatalf("foreign-signed JWT: %d %v", resp.StatusCode, m)
		}
		// The issuer's keys cannot be fetched: a 503 to retry, not a verdict on the JWT.
		as.saveTrust(storage.Trust{ID: "idp-down", Issuer: "https://down.example", AllowAnySubject: true, JWKSURI: "http://127.0.0.1:1/jwks",
			Scopes: []string{"orders:read"}, Resources: []string{inventory}})
		down := idp.sign(t, as.assertionClaims("https://down.example", "user-7"))
		if resp, m := as.exchange("orders-api", down, inventory, "subject_token_type", ttJWT); resp.StatusCode != 503 || m["error"] != "temporarily_unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("issuer's keys unreachable: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("the subject mapper links outside subjects, through both doors", func(t *testing.T) {
		mapper := handlers.SubjectMapperFunc(func(_ context.Context, r handlers.SubjectRequest) (string, error) {
			switch r.Subject {
			case "user-7":
				return "local-7", nil
			case "down":
				return "", storage.ErrUnavailable
			}
			return "", handlers.ErrUnknownSubject
		})
		as := exchangeAS(t, nil, func(c *provider.Config) { c.SubjectMapper = mapper })
		idp := genKey(t, jose.ES256, "idp-x")
		as.saveTrust(storage.Trust{ID: "idp-x", Issuer: idpIssuer, AllowAnySubject: true, JWKS: idp.jwks(),
			Scopes: []string{"orders:read"}, Resources: []string{inventory}})
		resp, m := as.exchange("orders-api", idp.sign(t, as.assertionClaims(idpIssuer, "user-7")), inventory, "subject_token_type", ttJWT)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		c, err := as.verifierFor(inventory).Verify(context.Background(), m["access_token"].(string))
		if err != nil || c.Subject != "local-7" || c.Act.Subject != "orders-api" {
			t.Fatalf("exchanged token: %+v %v", c, err)
		}
		resp, m = as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {idp.sign(t, as.assertionClaims(idpIssuer, "user-7"))}}, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("jwt-bearer: %d %v", resp.StatusCode, m)
		}
		if c, err := as.verifierFor(inventory).Verify(context.Background(), m["access_token"].(string)); err != nil || c.Subject != "local-7" || c.ClientID != idpIssuer {
			t.Fatalf("jwt-bearer token: %+v %v", c, err)
		}
		stranger := idp.sign(t, as.assertionClaims(idpIssuer, "stranger"))
		if resp, m := as.exchange("orders-api", stranger, inventory, "subject_token_type", ttJWT); resp.StatusCode != 400 || m["error"] != "invalid_request" || !strings.Contains(m["error_description"].(string), "not known here") {
			t.Fatalf("exchange of an unknown subject: %d %v", resp.StatusCode, m)
		}
		if resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {stranger}}, "", ""); resp.StatusCode != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_description"].(string), "not known here") {
			t.Fatalf("jwt-bearer for an unknown subject: %d %v", resp.StatusCode, m)
		}
		down := idp.sign(t, as.assertionClaims(idpIssuer, "down"))
		if resp, m := as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {down}}, "", ""); resp.StatusCode != 503 || m["error"] != "temporarily_unavailable" {
			t.Fatalf("the mapper's directory down: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("stateless access tokens", func(t *testing.T) {
		as := exchangeAS(t, nil, func(c *provider.Config) { c.StatelessAccessTokens = true })
		tokA := as.clientCredentials("orders:read", orders)
		if resp, m := as.exchange("orders-api", tokA, inventory); resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		if resp, _ := as.post("revoke", url.Values{"token": {tokA}}, "svc", secretOf["svc"]); resp.StatusCode != 200 {
			t.Fatal("revoke")
		}
		if resp, m := as.exchange("orders-api", tokA, inventory); resp.StatusCode != 400 || !strings.Contains(m["error_description"].(string), "revoked") {
			t.Fatalf("revoked stateless token: %d %v", resp.StatusCode, m)
		}
	})
	t.Run("a user's authentication carries over", func(t *testing.T) {
		as := exchangeAS(t, nil)
		as.saveClient(storage.Client{ID: "web2", Public: true, RedirectURIs: []string{"http://127.0.0.1:3000/cb"},
			GrantTypes: []string{"authorization_code"}, Scopes: []string{"orders:read"}, Resources: []string{orders}})
		_, tok := authCode(t, as, "web2", "", []string{"orders:read"}, orders)
		resp, m := as.exchange("orders-api", tok.AccessToken, inventory)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, m)
		}
		c, err := as.verifierFor(inventory).Verify(context.Background(), m["access_token"].(string))
		if err != nil || c.Subject != "alice" || c.AuthTime.IsZero() || c.ACR != "urn:test:pwd" || len(c.AMR) != 1 || c.Act.Subject != "orders-api" {
			t.Fatalf("%+v %v", c, err)
		}
	})
}

// TestTokenExchangeWithXOAuth2 is the Go code a resource server writes to exchange the token it
// received: golang.org/x/oauth2's clientcredentials with the grant type overridden.
func TestTokenExchangeWithXOAuth2(t *testing.T) {
	as := exchangeAS(t, nil)
	received := as.clientCredentials("orders:read", orders)
	tok, err := exchangeWithXOAuth2(context.Background(), as.endpoint("token"), "orders-api", secretOf["orders-api"], received, inventory)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := as.verifierFor(inventory).Verify(context.Background(), tok.AccessToken); err != nil || c.Act.Subject != "orders-api" {
		t.Fatalf("%+v %v", c, err)
	}
	if tok.Extra("issued_token_type") != ttAccessToken {
		t.Fatalf("issued_token_type %v", tok.Extra("issued_token_type"))
	}
}

// TestTokenExchangeStoreDown: a subject token whose revocation cannot be checked, or a token
// that cannot be stored, is 503, never a 500 and never a token.
func TestTokenExchangeStoreDown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		only      func(string) bool
		stateless bool
	}{
		{"subject token lookup", func(m string) bool { return m == "AccessTokenExists" }, false},
		{"deny list", func(m string) bool { return m == "JTIUsed" }, true},
		{"token write", func(m string) bool { return m == "CreateAccessTokenSession" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &downStore{Store: newStore(t), only: tc.only}
			as := exchangeAS(t, ds, func(c *provider.Config) { c.StatelessAccessTokens = tc.stateless })
			tokA := as.clientCredentials("orders:read", orders)
			ds.down.Store(true)
			resp, m := as.exchange("orders-api", tokA, inventory)
			checkUnavailable(t, "token exchange", resp, m)
			ds.down.Store(false)
			if resp, m := as.exchange("orders-api", tokA, inventory); resp.StatusCode != 200 {
				t.Fatalf("after the outage: %d %v", resp.StatusCode, m)
			}
		})
	}
}

// A deleted client's tokens are dead for exchange too, stored or stateless (the same liveness
// rule as introspection's).
func TestTokenExchangeOfADeletedClientsToken(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		as := exchangeAS(t, nil, func(c *provider.Config) { c.StatelessAccessTokens = stateless })
		tokA := as.clientCredentials("orders:read", orders)
		if err := as.store.DeleteClient(context.Background(), "svc"); err != nil {
			t.Fatal(err)
		}
		if resp, m := as.exchange("orders-api", tokA, inventory); resp.StatusCode != 400 || m["access_token"] != nil {
			t.Fatalf("stateless %v: exchanged a deleted client's token: %d %v", stateless, resp.StatusCode, m)
		}
	}
}
