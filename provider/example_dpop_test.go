package provider_test

import (
	"context"
	"crypto"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// callWithDPoP is service A with a DPoP key (the README's snippet): every request through
// golang.org/x/oauth2 carries a fresh proof, so the token it gets is bound to key, and the call
// to B sends it as "Authorization: DPoP" with a proof for that request.
func callWithDPoP(ctx context.Context, conf clientcredentials.Config, key crypto.Signer, ordersURL string) (*oauth2.Token, *http.Response, error) {
	signer, err := dpop.NewSigner(key) // ECDSA P-256/P-384, RSA ≥ 2048 bits, Ed25519
	if err != nil {
		return nil, nil, err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &dpop.Transport{Signer: signer}})
	tok, err := conf.Token(ctx) // tok.Type() == "DPoP"
	if err != nil {
		return nil, nil, err
	}
	resp, err := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok)).Get(ordersURL)
	return tok, resp, err
}
