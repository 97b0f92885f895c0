package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
)

// TestIntrospectionAnswersFromTheToken: a signed access token is its own record — its stored
// session keeps no copy of its claims, and introspection answers with the claims the token
// carries, numbers exactly (an application's 64-bit id is not rounded to a float); an
// encrypted one, which the server cannot read back, is answered from its session, numbers
// exactly too; both go inactive when revoked.
func TestIntrospectionAnswersFromTheToken(t *testing.T) {
	const big = int64(9007199254740993) // 2^53 + 1: not a float64
	as := newAS(t, func(c *provider.Config) {
		c.ClaimMappers = []strategy.ClaimMapper{strategy.ClaimMapperFunc(func(context.Context, strategy.TokenRequest) (map[string]any, error) {
			return map[string]any{"account": big}, nil
		})}
	})
	ctx := context.Background()

	t.Run("signed", func(t *testing.T) {
		tok := as.clientCredentials("orders:read", orders)
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("not a signed token: %q", tok)
		}
		got, err := as.store.GetAccessTokenSession(ctx, strategy.AccessTokenSignature(tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		if sess := got.GetSession().(*storage.Session); sess.AccessToken != nil {
			t.Errorf("stored session keeps the claims of a signed token: %v", sess.AccessToken)
		}
		m := introspectExact(t, as, tok)
		if m["active"] != true || m["aud"] != orders || m["client_id"] != "svc" || m["account"] != json.Number("9007199254740993") {
			t.Fatalf("introspection %v", m)
		}
		revoke(t, as, tok)
		if m := introspectExact(t, as, tok); m["active"] != false || len(m) != 1 {
			t.Fatalf("introspection after revocation %v", m)
		}
	})

	t.Run("encrypted", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := as.store.ResourceServer(ctx, orders)
		if err != nil {
			t.Fatal(err)
		}
		rs.Encryption = &jose.JSONWebKey{Key: &key.PublicKey, KeyID: "orders-enc", Use: "enc"}
		if err := as.store.SaveResourceServer(ctx, rs); err != nil {
			t.Fatal(err)
		}
		tok := as.clientCredentials("orders:read", orders)
		if strings.Count(tok, ".") != 4 {
			t.Fatalf("not an encrypted token: %q", tok)
		}
		m := introspectExact(t, as, tok)
		// Its claims went through the session's JSON: the mapped 64-bit id still reads back
		// exactly.
		if m["active"] != true || m["aud"] != orders || m["sub"] != "svc" || m["jti"] == nil || m["account"] != json.Number("9007199254740993") {
			t.Fatalf("introspection %v", m)
		}
		revoke(t, as, tok)
		if m := introspectExact(t, as, tok); m["active"] != false {
			t.Fatalf("introspection after revocation %v", m)
		}
	})
}

// introspectExact introspects token as the confidential client rs, keeping numbers exact.
func introspectExact(t *testing.T, as *testAS, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, as.endpoint("introspect"), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("rs", "rs-secret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("introspect: %d %s", resp.StatusCode, buf.Bytes())
	}
	d := json.NewDecoder(&buf)
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// revoke revokes token as its client svc.
func revoke(t *testing.T, as *testAS, token string) {
	t.Helper()
	if resp, m := as.post("revoke", url.Values{"token": {token}}, "svc", "svc-secret-0123456789"); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %v", resp.StatusCode, m)
	}
}
