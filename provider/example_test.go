package provider_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// readmeSetup is the setup document of the README ("Configuration"); TestReadme checks that the
// two are the same.
const readmeSetup = `{
  "resource_servers": [
    {"identifier": "https://orders.example.com/", "scopes": ["orders:read", "orders:write"],
     "access_token_ttl": "10m", "signing_alg": "ES256", "default": true}
  ],
  "clients": [
    {"client_id": "billing", "client_secret": "plain text here, stored hashed",
     "token_endpoint_auth_method": "client_secret_basic", "grant_types": ["client_credentials"],
     "scopes": ["orders:read"], "resources": ["https://orders.example.com/"]},
    {"client_id": "orders-api", "client_secret": "the resource server's own credentials",
     "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "scopes": [], "resources": [],
     "serves": ["https://orders.example.com/"]},
    {"client_id": "web", "public": true, "redirect_uris": ["http://127.0.0.1:3000/cb"],
     "grant_types": ["authorization_code", "refresh_token"], "scopes": ["orders:read"],
     "resources": ["https://orders.example.com/"]}
  ],
  "trusted_issuers": [
    {"issuer": "https://idp.partner.example", "subject": "svc-a", "jwks_uri": "https://idp.partner.example/jwks",
     "scopes": ["orders:read"], "resources": ["https://orders.example.com/"], "expires_at": "2027-01-01T00:00:00Z"}
  ]
}`

// mustLoadSecret stands for the application's own secret: 32 random bytes it keeps.
func mustLoadSecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return b
}

// Example is the README's "Embedding": the authorization server inside an application, on the
// README's own setup, with the orders service (service B) validating tokens in the same process.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mandate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() // https://auth.example.com in production

	store, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(dir, "mandate.db")) // or postgres://…, mysql://…
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	as, err := provider.New(ctx, provider.Config{
		Issuer:  issuer,
		Secret:  mustLoadSecret(), // 32+ random bytes your app keeps; see Security
		Storage: store,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer as.Close()

	if err := os.WriteFile(filepath.Join(dir, "mandate.json"), []byte(readmeSetup), 0o600); err != nil {
		log.Fatal(err)
	}
	setup, err := provider.LoadSetup(filepath.Join(dir, "mandate.json")) // resource servers, clients, trusts
	if err != nil {
		log.Fatal(err)
	}
	if err := as.Apply(ctx, setup); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	for _, p := range as.Patterns() {
		mux.Handle(p, as)
	}

	// Service B, in the same process: Lazy, because it is built before the server serves.
	v, err := verify.New(ctx, verify.Config{
		Issuer:   issuer,                        // keys found through RFC 8414 metadata
		Audience: "https://orders.example.com/", // this service's resource identifier, exactly
		Lazy:     true,                          // fetch the keys at the first request
	})
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("/orders", v.Middleware(v.RequireScope("orders:read")(ordersHandler)))

	// Bound every connection: slow or idle clients would otherwise hold their sockets for ever.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	go srv.Serve(ln) // log.Fatal(srv.ListenAndServe()) in a main function
	defer srv.Close()

	// Service A, the billing client of the setup, gets a token for B and calls it.
	cc := clientcredentials.Config{ClientID: "billing", ClientSecret: "plain text here, stored hashed",
		TokenURL: issuer + "/token", Scopes: []string{"orders:read"},
		EndpointParams: url.Values{"resource": {"https://orders.example.com/"}}}
	resp, err := cc.Client(ctx).Get(issuer + "/orders")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("X-Caller"))
	// Output: 200 OK billing
}

// ordersHandler is service B's handler: the verified claims are in the request's context.
var ordersHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	claims, _ := verify.FromContext(r.Context())
	w.Header().Set("X-Caller", claims.Subject)
})

// User is an application's own user model.
type User struct {
	ID    string
	Roles []string
}

// userDB stands for the application's user store.
type userDB map[string]*User

// LoadUser returns the user with the id subject.
func (d userDB) LoadUser(_ context.Context, subject string) (*User, error) {
	if u, ok := d[subject]; ok {
		return u, nil
	}
	return nil, errors.New("no such user")
}

// ExampleConfig_claimMappers adds claims from the application's user model (the README's claim
// mapper), here to the token of a user who logged in through the authorization-code flow.
func ExampleConfig_claimMappers() {
	ctx := context.Background()
	db := userDB{"alice": {ID: "alice", Roles: []string{"orders-admin"}}}
	as, stop := exampleServer(ctx, provider.Config{
		Users: strategy.UsersFunc(func(ctx context.Context, subject string) (any, error) {
			return db.LoadUser(ctx, subject) // your user model; an error for an unknown subject
		}),
		ClaimMappers: []strategy.ClaimMapper{strategy.ClaimMapperFunc(
			func(ctx context.Context, r strategy.TokenRequest) (map[string]any, error) {
				u, err := r.User(ctx) // Users, once per token, for r.Subject
				if err != nil || u == nil {
					return nil, err
				}
				return map[string]any{"roles": u.(*User).Roles}, nil // RFC 9068 §2.2.3.1
			})},
		Authenticator: provider.AuthenticatorFunc(func(http.ResponseWriter, *http.Request) (*provider.Authentication, bool) {
			return &provider.Authentication{Subject: "alice", AuthTime: time.Now()}, true // your login
		}),
	})
	defer stop()

	conf := &oauth2.Config{ClientID: "web", RedirectURL: "http://127.0.0.1:3000/cb", Scopes: []string{"orders:read"},
		Endpoint: oauth2.Endpoint{AuthURL: as.Issuer() + "/authorize", TokenURL: as.Issuer() + "/token"}}
	verifier := oauth2.GenerateVerifier()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(conf.AuthCodeURL("state-1234567890", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		log.Fatal(err)
	}
	v, err := verify.New(ctx, verify.Config{Issuer: as.Issuer(), Audience: "https://orders.example.com/"})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	var app struct{ Roles []string }
	_ = claims.Decode(&app)
	fmt.Println(claims.Subject, app.Roles)
	// Output: alice [orders-admin]
}

// ExampleConfig_subjectMapper links the subjects that a partner's authorization server asserts
// (jwt-bearer grants, token exchange of its JWTs) to the application's own accounts, and
// refuses the subjects it has no account for.
func ExampleConfig_subjectMapper() {
	accounts := map[[2]string]string{{"https://as.partner.example", "svc-billing"}: "partner-billing"}
	cfg := provider.Config{
		SubjectMapper: handlers.SubjectMapperFunc(func(ctx context.Context, r handlers.SubjectRequest) (string, error) {
			local, ok := accounts[[2]string{r.Issuer, r.Subject}] // your user model
			if !ok {
				return "", handlers.ErrUnknownSubject // invalid_grant
			}
			return local, nil
		}),
	}
	ctx := context.Background()
	sub, err := cfg.SubjectMapper.MapSubject(ctx, handlers.SubjectRequest{Issuer: "https://as.partner.example", Subject: "svc-billing"})
	fmt.Println(sub, err)
	_, err = cfg.SubjectMapper.MapSubject(ctx, handlers.SubjectRequest{Issuer: "https://as.partner.example", Subject: "svc-other"})
	fmt.Println(errors.Is(err, handlers.ErrUnknownSubject))
	// Output:
	// partner-billing <nil>
	// true
}

// ExampleProvider_Store registers a client in code rather than in a setup file, with a
// generated secret (256 bits, stored as a keyed hash: show it to its owner once).
func ExampleProvider_Store() {
	ctx := context.Background()
	as, stop := exampleServer(ctx, provider.Config{})
	defer stop()

	secret, err := provider.GenerateSecret()
	if err != nil {
		log.Fatal(err)
	}
	hash, err := as.Hasher().Hash(ctx, []byte(secret))
	if err != nil {
		log.Fatal(err)
	}
	err = as.Store().SaveClient(ctx, &storage.Client{
		ID: "reports", SecretHash: hash, GrantTypes: []string{"client_credentials"},
		Scopes: []string{"orders:read"}, Resources: []string{"https://orders.example.com/"},
	})
	if err != nil {
		log.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: "reports", ClientSecret: secret, TokenURL: as.Issuer() + "/token"}
	tok, err := cc.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.Extra("resource"))
	// Output: bearer https://orders.example.com/
}

// exampleServer starts a provider with cfg (Issuer, Secret and Storage filled in) and the
// README's setup, on a loopback listener; stop closes all of it.
func exampleServer(ctx context.Context, cfg provider.Config) (as *provider.Provider, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	store, err := gormstore.Open(ctx, "sqlite::memory:")
	if err != nil {
		log.Fatal(err)
	}
	cfg.Issuer, cfg.Secret, cfg.Storage = "http://"+ln.Addr().String(), mustLoadSecret(), store
	as, err = provider.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	setup, err := provider.ParseSetup([]byte(readmeSetup))
	if err != nil {
		log.Fatal(err)
	}
	if err := as.Apply(ctx, setup); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range as.Patterns() {
		mux.Handle(p, as)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return as, func() { srv.Close(); as.Close(); store.Close() }
}
