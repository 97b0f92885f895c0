package provider_test

import (
	"context"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// exchangeWithXOAuth2 is what service B runs to call service C on behalf of its caller (RFC
// 8693): it trades the access token it received for one whose audience is C. Any client that
// can send extra token-request parameters can do the same; golang.org/x/oauth2's
// clientcredentials lets the grant type be overridden.
func exchangeWithXOAuth2(ctx context.Context, tokenURL, clientID, secret, received, serviceC string) (*oauth2.Token, error) {
	conf := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL,
		EndpointParams: url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {received}, // the caller's token, as B received it
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"resource":           {serviceC},
		},
	}
	tok, err := conf.Token(ctx) // for C; cache it no longer than the token B received is in use
	return tok, err
}
