package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// readmeDomains returns the two configurations the README runs (example/config/domain-x.json
// and domain-y.json) with their loopback addresses replaced by the given ones.
func readmeDomains(t *testing.T, addrs map[string]string) (x, y map[string]any) {
	t.Helper()
	load := func(name string) map[string]any {
		b, err := os.ReadFile("config/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for from, to := range addrs {
			doc = strings.ReplaceAll(doc, from, to)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	return load("domain-x"), load("domain-y")
}

// testTwoDomains runs the README's two configurations as two example processes, each with its
// own database, and drives identity chaining across them from outside: A's token at X → B
// (X's demo resource server) exchanges it at X for a grant for Y, presents it at Y and calls C
// (Y's demo resource server), which sees A as the caller and B of X acting. Then the same
// halves by hand, and the refusals that need no forging.
func testTwoDomains(t *testing.T, bin string) {
	xA, xR, yA, yR := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	xc, yc := readmeDomains(t, map[string]string{"127.0.0.1:9400": xA, "127.0.0.1:9401": xR, "127.0.0.1:9500": yA, "127.0.0.1:9501": yR})
	y := startExample(t, bin, startOptions{data: t.TempDir(), addr: yA, rsAddr: yR, config: func(string) map[string]any { return yc }})
	x := startExample(t, bin, startOptions{data: t.TempDir(), addr: xA, rsAddr: xR, config: func(string) map[string]any { return xc },
		args: []string{"-partner", "http://" + yR + "/"}})
	if !strings.Contains(x.stdout.String(), "/orders/partner") {
		t.Fatalf("X does not print the partner call:\n%s", x.stdout)
	}
	xToken, yToken := x.tokenURL(t), y.tokenURL(t)
	cc := clientcredentials.Config{ClientID: "svc-a", ClientSecret: "svc-a-secret-change-me", TokenURL: xToken,
		Scopes: []string{"orders:read", "stock:read"}, EndpointParams: url.Values{"resource": {"http://" + xR + "/"}}}
	tokA, err := cc.Token(testContext(t))
	if err != nil {
		t.Fatal(err)
	}

	// The whole chain, through B's /orders/partner.
	var seen struct {
		Caller   string `json:"caller"`
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
		Act      struct {
			Sub string `json:"sub"`
			Iss string `json:"iss"`
		} `json:"act"`
	}
	resp := get(t, "http://"+xR+"/orders/partner", tokA.AccessToken)
	if err := json.NewDecoder(resp.Body).Decode(&seen); resp.StatusCode != http.StatusOK || err != nil ||
		seen.Caller != "svc-a" || seen.ClientID != x.issuer || seen.Scope != "stock:read" || seen.Act.Sub != "orders-api" || seen.Act.Iss != x.issuer {
		t.Fatalf("B → C: %d %+v %v", resp.StatusCode, seen, err)
	}
	resp.Body.Close()

	// The halves by hand: B's exchange at X …
	exchange := func(kv ...string) (*oauth2.Token, error) {
		params := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tokA.AccessToken},
			"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:jwt"}, "resource": {y.issuer}}
		for i := 0; i+1 < len(kv); i += 2 {
			params.Set(kv[i], kv[i+1])
		}
		conf := clientcredentials.Config{ClientID: "orders-api", ClientSecret: "orders-api-secret-change-me", TokenURL: xToken,
			EndpointParams: params, AuthStyle: oauth2.AuthStyleInHeader}
		return conf.Token(testContext(t))
	}
	g, err := exchange()
	if err != nil {
		t.Fatal(err)
	}
	if g.TokenType != "N_A" || g.Extra("token_endpoint") != yToken || header(t, g.AccessToken)["typ"] != "JWT" {
		t.Fatalf("grant: type %q, token_endpoint %v, header %v", g.TokenType, g.Extra("token_endpoint"), header(t, g.AccessToken))
	}
	// … which is no access token at X's resource server …
	if resp, _ := getOrders(t, xR, g.AccessToken); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the grant at X's resource server: %d", resp.StatusCode)
	}
	// … presented at Y for C, once.
	form := url.Values{"grant_type": {grantJWTBearer}, "assertion": {g.AccessToken}, "resource": {"http://" + yR + "/"}}
	tokC, terr := postToken(t, yToken, form, "", "")
	if terr != nil {
		t.Fatalf("the grant at Y: %+v", terr)
	}
	if resp, body := getOrders(t, yR, tokC); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"caller":"svc-a"`) {
		t.Fatalf("Y's token at C: %d %s", resp.StatusCode, body)
	}
	if _, terr := postToken(t, yToken, form, "", ""); terr == nil || terr.code != "invalid_grant" {
		t.Fatalf("the grant replayed at Y: %+v", terr)
	}
	// Each domain's tokens are useless in the other.
	if resp, _ := getOrders(t, xR, tokC); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Y's token at X's resource server: %d", resp.StatusCode)
	}
	if resp, _ := getOrders(t, yR, tokA.AccessToken); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("X's token at C: %d", resp.StatusCode)
	}
	// Refusals: an unregistered peer, a scope beyond the peer entry.
	for _, tc := range []struct {
		kv   []string
		code string
	}{
		{[]string{"resource", "https://as.nowhere.example"}, "invalid_target"},
		{[]string{"scope", "orders:read"}, "invalid_scope"},
	} {
		if _, err := exchange(tc.kv...); err == nil || asTokenError(t, err).code != tc.code {
			t.Fatalf("exchange with %v: %v, want %s", tc.kv, err, tc.code)
		}
	}
}

// get GETs u with token as a Bearer token.
func get(t *testing.T, u, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
