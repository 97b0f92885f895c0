package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// Chaining across trust domains (draft-ietf-oauth-identity-chaining), as the demo resource
// server B of domain X plays it with -partner: at /orders/partner it calls a service C of
// domain Y on behalf of its caller. B exchanges the token it received at X for a JWT
// authorization grant for Y's authorization server (RFC 8693), presents the grant at Y's token
// endpoint (RFC 7523 jwt-bearer, resource = C), and calls C with the token Y issues. C is the
// demo resource server of an example started with Y's configuration; it answers with the
// caller it sees (sub, and act: B of domain X).

// partnerPath is B's endpoint that calls the partner.
const partnerPath = "/orders/partner"

// partner is what B needs to call C of another trust domain.
type partner struct {
	tokenURL, clientID, secret string // B's own client at X
	peer                       string // Y's issuer identifier
	resource                   string // C's resource identifier; C serves /orders below it
	client                     *http.Client
}

// newPartner finds in X's setup what B needs to call resource (C, in the domain of the one
// peer the setup declares): the peer, and B's client (one that serves B, has the
// token-exchange grant and a client secret, and lists the peer among its resources).
func newPartner(s *provider.Setup, rs provider.SetupResource, tokenURL, resource string) (*partner, error) {
	if len(s.Peers) != 1 {
		return nil, fmt.Errorf("-partner: the configuration must declare exactly one peer authorization server (it declares %d)", len(s.Peers))
	}
	if err := handlers.ParseIndicator(resource); err != nil {
		return nil, fmt.Errorf("-partner: %q is not a resource identifier", resource)
	}
	peer := s.Peers[0].Issuer
	for _, c := range s.Clients {
		if c.ClientSecret != "" && slices.Contains(c.Serves, rs.Identifier) && slices.Contains(c.Resources, peer) &&
			slices.Contains(c.GrantTypes, handlers.GrantTypeTokenExchange) {
			return &partner{tokenURL: tokenURL, clientID: c.ClientID, secret: c.ClientSecret, peer: peer, resource: resource,
				client: &http.Client{Timeout: 10 * time.Second}}, nil
		}
	}
	return nil, fmt.Errorf("-partner: no client with a client_secret serves %s, has the token-exchange grant and lists %s among its resources", rs.Identifier, peer)
}

// grant exchanges the caller's token at X for a JWT authorization grant for Y; it returns the
// grant and Y's token endpoint (named in the response, else found in Y's metadata).
func (p *partner) grant(ctx context.Context, received string) (grant, tokenEndpoint string, err error) {
	conf := clientcredentials.Config{
		ClientID: p.clientID, ClientSecret: p.secret, TokenURL: p.tokenURL,
		AuthStyle: oauth2.AuthStyleInHeader, // a refusal is reported as it is, not retried otherwise
		EndpointParams: url.Values{
			"grant_type":           {handlers.GrantTypeTokenExchange},
			"subject_token":        {received},
			"subject_token_type":   {handlers.TokenTypeAccessToken},
			"requested_token_type": {handlers.TokenTypeJWT},
			"resource":             {p.peer},
		},
	}
	tok, err := conf.Token(ctx)
	if err != nil {
		return "", "", fmt.Errorf("token exchange: %w", err)
	}
	if tok.Extra("issued_token_type") != handlers.TokenTypeJWT {
		return "", "", errors.New("token exchange: the response is not a JWT authorization grant")
	}
	tokenEndpoint, _ = tok.Extra("token_endpoint").(string)
	if tokenEndpoint == "" {
		md, err := verify.Discover(ctx, p.client, p.peer)
		if err != nil {
			return "", "", err
		}
		tokenEndpoint = md.TokenEndpoint
	}
	return tok.AccessToken, tokenEndpoint, nil
}

// present presents the grant at Y's token endpoint for C and returns Y's access token.
func (p *partner) present(ctx context.Context, grant, tokenEndpoint string) (string, error) {
	form := url.Values{"grant_type": {handlers.GrantTypeJWTBearer}, "assertion": {grant}, "resource": {p.resource}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return "", fmt.Errorf("peer token endpoint: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("peer token endpoint: %d %s: %s", resp.StatusCode, body.Error, body.Description)
	}
	return body.AccessToken, nil
}

// partnerHandler is B's /orders/partner: it calls C's /orders in the other domain on behalf of
// its caller and returns what C answered.
func partnerHandler(p *partner) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := receivedToken(r)
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		grant, endpoint, err := p.grant(ctx, received)
		if err == nil {
			var tok string
			if tok, err = p.present(ctx, grant, endpoint); err == nil {
				relay(ctx, w, p.client, strings.TrimSuffix(p.resource, "/")+"/orders", tok)
				return
			}
		}
		http.Error(w, "partner: "+err.Error(), http.StatusBadGateway)
	})
}

// relay GETs u with token and copies the answer.
func relay(ctx context.Context, w http.ResponseWriter, client *http.Client, u, token string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		http.Error(w, "partner: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<10))
}

func partnerWelcome(w io.Writer, rsURL string, p *partner) {
	fmt.Fprintf(w, "\nB calls %s in the trust domain of %s on behalf of the caller\n(a JWT grant by token exchange here, the jwt-bearer grant there):\n\n  curl -s -H \"Authorization: Bearer $TOKEN\" %s%s\n",
		p.resource, p.peer, rsURL, partnerPath)
}
