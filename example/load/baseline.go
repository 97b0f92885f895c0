package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	fstorage "github.com/ory/fosite/storage"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// serveBaseline runs plain fosite v0.49 as a comparison target until ctx is done: compose with
// fosite's own JWT access-token strategy, the memory store, one client_credentials client under
// a cheap secret hash. Its issuer is http://ADDR/oauth2; it serves /oauth2/token,
// /oauth2/jwks.json and RFC 8414 metadata, so that -verify works against it as against mandate.
func serveBaseline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9500", "listen address (loopback only)")
	alg := fs.String("alg", "ES256", "signing algorithm: ES256, EdDSA or RS256")
	client := fs.String("client", "demo-client", "client_id of the demo client")
	secret := fs.String("secret", "", "its secret (default: generated and printed)")
	resources := fs.String("resource", "http://127.0.0.1:9401/", "comma-separated resources the client may ask for (granted as aud)")
	scopes := fs.String("scope", "orders:read orders:write", "space-separated scopes the client may ask for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve-baseline: unexpected arguments %q", fs.Args())
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !strict.LoopbackHost(host) {
		return fmt.Errorf("serve-baseline: -addr %q must be a loopback host:port", *addr)
	}
	if *secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		*secret = base64.RawURLEncoding.EncodeToString(b)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	issuer := "http://" + ln.Addr().String() + "/oauth2"
	h, err := newBaseline(baselineConfig{
		Issuer: issuer, Alg: *alg, Client: *client, Secret: *secret,
		Resources: strings.Split(*resources, ","), Scopes: strings.Fields(*scopes),
	})
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stdout, "plain fosite %s baseline\n  token: %s/token\n  client: %s  secret: %s\n", *alg, issuer, *client, *secret)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return err
	}
}

// baselineConfig describes the baseline server.
type baselineConfig struct {
	Issuer, Alg, Client, Secret string
	Resources, Scopes           []string
}

// newBaseline returns the baseline's handler.
func newBaseline(c baselineConfig) (http.Handler, error) {
	priv, err := generateKey(c.Alg)
	if err != nil {
		return nil, err
	}
	kid := keyID(priv.Public())
	global := make([]byte, 32)
	_, _ = rand.Read(global)
	hash, _ := sha256Hasher{}.Hash(context.Background(), []byte(c.Secret))
	cfg := &fosite.Config{
		AccessTokenLifespan:      10 * time.Minute,
		AccessTokenIssuer:        c.Issuer,
		TokenURL:                 c.Issuer + "/token",
		GlobalSecret:             global,
		ClientSecretsHasher:      sha256Hasher{},
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy, // set: fosite's getter sets it lazily, a data race
		JWTScopeClaimKey:         fjwt.JWTScopeFieldString,
	}
	store := fstorage.NewMemoryStore()
	store.Clients[c.Client] = &fosite.DefaultClient{
		ID: c.Client, Secret: hash, GrantTypes: []string{"client_credentials"},
		Scopes: c.Scopes, Audience: c.Resources,
	}
	key := &josev3.JSONWebKey{Key: priv, KeyID: kid, Algorithm: c.Alg}
	strategy := compose.NewOAuth2JWTStrategy(func(context.Context) (any, error) { return key, nil }, compose.NewOAuth2HMACStrategy(cfg), cfg)
	oauth := compose.Compose(cfg, store, strategy, compose.OAuth2ClientCredentialsGrantFactory)

	jwks, err := json.Marshal(josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{{Key: priv.Public(), KeyID: kid, Algorithm: c.Alg, Use: "sig"}}})
	if err != nil {
		return nil, fmt.Errorf("baseline: JWKS: %w", err)
	}
	metadata, _ := json.Marshal(map[string]any{
		"issuer": c.Issuer, "token_endpoint": c.Issuer + "/token", "jwks_uri": c.Issuer + "/jwks.json",
		"grant_types_supported": []string{"client_credentials"},
	})
	iu, err := url.Parse(c.Issuer)
	if err != nil {
		return nil, fmt.Errorf("baseline: issuer: %w", err)
	}
	path := strings.TrimSuffix(iu.Path, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+path+"/token", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		sess := &oauth2.JWTSession{JWTClaims: &fjwt.JWTClaims{}, JWTHeader: &fjwt.Headers{}}
		ar, err := oauth.NewAccessRequest(ctx, r, sess)
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		if res := ar.GetRequestForm().Get("resource"); res != "" && slices.Contains(ar.GetClient().GetAudience(), res) {
			ar.GrantAudience(res)
		}
		sess.JWTClaims.Subject = ar.GetClient().GetID()
		sess.JWTClaims.Add("client_id", ar.GetClient().GetID())
		resp, err := oauth.NewAccessResponse(ctx, ar)
		if err != nil {
			oauth.WriteAccessError(ctx, w, ar, err)
			return
		}
		oauth.WriteAccessResponse(ctx, w, ar, resp)
	})
	serveJSON := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("GET "+path+"/jwks.json", serveJSON(jwks))
	mux.HandleFunc("GET /.well-known/oauth-authorization-server"+path, serveJSON(metadata))
	return mux, nil
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("baseline: -alg %q is not one of ES256, EdDSA, RS256", alg)
}

// keyID is a short identifier of the public key: the start of its SPKI's SHA-256.
func keyID(pub crypto.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:8])
}

// sha256Hasher is a cheap fosite.Hasher, so that the baseline measures fosite, not bcrypt.
type sha256Hasher struct{}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	s := sha256.Sum256(data)
	return []byte(hex.EncodeToString(s[:])), nil
}

func (h sha256Hasher) Compare(ctx context.Context, hash, data []byte) error {
	want, _ := h.Hash(ctx, data)
	if subtle.ConstantTimeCompare(want, hash) != 1 {
		return errors.New("baseline: secret mismatch")
	}
	return nil
}
