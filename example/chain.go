package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// The built-in demo's second service. Service B (the demo resource server, whose identity is
// the client orders-api) calls service C (inventory) on behalf of its caller: it exchanges the
// token it received (RFC 8693) for one whose audience is C, and C sees the original subject in
// sub and B in act.sub.
const (
	inventoryPath   = "/inventory/"
	ordersAPIClient = "orders-api"
)

// exchanger is what service B needs to call C on behalf of its caller.
type exchanger struct {
	tokenURL, clientID, secret string
	inventory                  string // C's resource identifier
	client                     *http.Client
}

// exchange trades the caller's access token for one for C, with golang.org/x/oauth2's
// clientcredentials (grant type overridden, RFC 8693 parameters as endpoint parameters).
func (e *exchanger) exchange(ctx context.Context, received string) (string, error) {
	conf := clientcredentials.Config{
		ClientID: e.clientID, ClientSecret: e.secret, TokenURL: e.tokenURL,
		EndpointParams: url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {received},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"resource":           {e.inventory},
		},
		// Not auto-detected: x/oauth2 would retry a refusal with the secret in the body, and
		// report that retry's invalid_client instead of the refusal.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := conf.Token(ctx)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// inventoryHandler is service C: it accepts only tokens for itself, and shows who the call is
// for and who is acting.
func inventoryHandler(v *verify.Verifier) http.Handler {
	return v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.FromContext(r.Context())
		out := map[string]any{"stock": []any{}, "sub": c.Subject, "client_id": c.ClientID, "scope": c.Scope}
		if c.Act != nil {
			out["act"] = c.Act
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
}

// stockHandler is service B's /orders/stock: it calls C with an exchanged token and returns
// what C answered.
func stockHandler(e *exchanger, inventoryURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := receivedToken(r)
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		tok, err := e.exchange(ctx, received)
		if err != nil {
			http.Error(w, "token exchange failed: "+err.Error(), http.StatusBadGateway)
			return
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, inventoryURL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := e.client.Do(req)
		if err != nil {
			http.Error(w, "inventory: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<10))
	})
}

// receivedToken is the Bearer or DPoP access token of a request the middleware accepted. A
// DPoP-bound one is exchanged as it is: B received it with a proof by its holder, and the
// token B gets for C is B's own.
func receivedToken(r *http.Request) string {
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.TrimSpace(tok)
}

// inventoryResource is C's identifier beside B's.
func inventoryResource(orders string) string {
	return strings.TrimSuffix(orders, "/") + inventoryPath
}

func chainWelcome(w io.Writer, rsURL, tokenURL string, rs provider.SetupResource) {
	call := `curl -s -H "Authorization: Bearer $TOKEN" `
	if rs.DPoPRequired {
		call = callCommand(tokenURL, rs)
	}
	fmt.Fprintf(w, "\nB calls C on behalf of the caller (RFC 8693 token exchange; C sees sub and act.sub):\n\n  %s%s/orders/stock\n", call, rsURL)
}

// webWelcome prints how a user logs in through the demo web client (authorization code flow
// with PKCE, the demo's login form and consent page).
func webWelcome(w io.Writer, issuer, verifier string) {
	q := url.Values{"response_type": {"code"}, "client_id": {webClient}, "state": {"demo-state-0123"},
		"redirect_uri": {strings.TrimSuffix(issuer, "/") + callbackPath}, "scope": {"orders:read orders:write"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	fmt.Fprintf(w, "\nA user logs in (%s / %s), consents, and the demo web client gets a code; open in a browser:\n\n  %s/authorize?%s\n",
		demoUser, demoPassword, strings.TrimSuffix(issuer, "/"), q.Encode())
}
