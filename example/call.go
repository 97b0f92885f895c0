package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

// callCommand is the command line of "example call" for a token for rs, without the URL.
func callCommand(tokenURL string, rs provider.SetupResource) string {
	return fmt.Sprintf("go run ./example call -token-url %s -resource %s \\\n    -scope %s ", tokenURL, rs.Identifier, firstScope(rs))
}

// runCall is "example call URL": what service A does. It gets a token with the client
// credentials grant — DPoP-bound to a fresh P-256 key, unless -bearer — and calls URL with it,
// through golang.org/x/oauth2 over dpop.Transport (which signs a proof for every request and
// answers a server's nonce). It prints the token type and the answer.
func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("example call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokenURL := fs.String("token-url", "http://127.0.0.1:9400/token", "the authorization server's token endpoint")
	clientID := fs.String("client", "demo-client", "client_id")
	secret := fs.String("secret", "", "client secret (default: the demo client's, from -data)")
	data := fs.String("data", "mandate-data", "the example's data directory, for the demo client's secret")
	resource := fs.String("resource", "", "RFC 8707 resource the token is for (default: the server's default)")
	scope := fs.String("scope", "", "space-separated scopes")
	bearer := fs.Bool("bearer", false, "get a plain bearer token instead of a DPoP-bound one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: example call [flags] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("call: one URL to call")
	}
	target := fs.Arg(0)
	if *secret == "" {
		b, err := os.ReadFile(filepath.Join(*data, "demo-client.secret"))
		if err != nil {
			return fmt.Errorf("call: no -secret, and the demo client's secret cannot be read: %w", err)
		}
		*secret = strings.TrimSpace(string(b))
	}

	var rt http.RoundTripper = http.DefaultTransport
	var signer *dpop.Signer
	if !*bearer {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		if signer, err = dpop.NewSigner(key); err != nil {
			return err
		}
		rt = &dpop.Transport{Signer: signer}
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: rt, Timeout: 10 * time.Second})
	cc := clientcredentials.Config{ClientID: *clientID, ClientSecret: *secret, TokenURL: *tokenURL,
		Scopes: strings.Fields(*scope), EndpointParams: url.Values{},
		// Not auto-detected: x/oauth2 would retry a refusal with the secret in the body,
		// and the answer would be that retry's invalid_client.
		AuthStyle: oauth2.AuthStyleInHeader}
	if *resource != "" {
		cc.EndpointParams.Set("resource", *resource)
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		return fmt.Errorf("call: token: %w", err)
	}
	if signer != nil {
		fmt.Fprintf(stdout, "token_type %s, bound to the key with thumbprint %s\n", tok.Type(), signer.Thumbprint())
	} else {
		fmt.Fprintf(stdout, "token_type %s\n", tok.Type())
	}
	resp, err := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok)).Get(target)
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(stdout, "%s %s\n%s", resp.Status, resp.Header.Get("WWW-Authenticate"), body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("call: %s", resp.Status)
	}
	return nil
}
