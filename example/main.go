package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy/verify"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	addr, issuer, data, db, config, rsAddr string
	partner                                string
	stateless, dpop, admin                 bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9400", "listen address of the authorization server")
	fs.StringVar(&o.issuer, "issuer", "", "issuer identifier (default http://ADDR, or the config file's issuer)")
	fs.StringVar(&o.data, "data", "mandate-data", "data directory (SQLite database, master secret)")
	fs.StringVar(&o.db, "db", "", "storage DSN: sqlite:PATH, postgres://…, mysql://… (default sqlite:DATA/mandate.db)")
	fs.StringVar(&o.config, "config", "", "declarative JSON configuration file")
	fs.StringVar(&o.rsAddr, "rs-addr", "127.0.0.1:9401", "listen address of the demo resource server (empty: none)")
	fs.BoolVar(&o.stateless, "stateless", false, "do not persist access tokens (see provider.Config.StatelessAccessTokens)")
	fs.BoolVar(&o.dpop, "dpop", false, "the demo resource server accepts only DPoP-bound tokens (RFC 9449); call it with 'example call'")
	fs.BoolVar(&o.admin, "admin", false, "mount the admin API at "+adminPath+" (protected by tokens for ISSUER"+adminPath+" with scope mandate:admin)")
	fs.StringVar(&o.partner, "partner", "", "resource identifier of a service in the config's peer trust domain, which the demo resource server calls at "+partnerPath)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

// run starts everything and blocks until ctx is done or a signal arrives.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "call" {
		return runCall(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && isCommand(args[0]) {
		return runCLI(ctx, args, stdout, stderr) // cli.go: manage the store directly
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	secret, err := loadOrCreateSecret(filepath.Join(o.data, "secret.key"), 32)
	if err != nil {
		return err
	}

	// The setup: from the file, or the built-in demo.
	var setup *provider.Setup
	var demoSecret, ordersSecret string
	var web bool // the built-in setup has the demo web client (authorization code flow)
	if o.config != "" {
		if setup, err = provider.LoadSetup(o.config); err != nil {
			return err
		}
	}
	if o.issuer == "" {
		o.issuer = "http://" + o.addr
		if setup != nil && setup.Issuer != "" {
			o.issuer = setup.Issuer
		}
	}
	if setup == nil {
		s, err := loadOrCreateSecret(filepath.Join(o.data, "demo-client.secret"), 32)
		if err != nil {
			return err
		}
		demoSecret = hex.EncodeToString(s)
		b, err := loadOrCreateSecret(filepath.Join(o.data, "demo-orders-api.secret"), 32)
		if err != nil {
			return err
		}
		ordersSecret = hex.EncodeToString(b)
		setup = demoSetup(o, demoSecret, ordersSecret)
		web = true
	}

	if o.dpop {
		for i := range setup.ResourceServers {
			if setup.ResourceServers[i].Default {
				setup.ResourceServers[i].DPoPRequired = true
			}
		}
	}

	dsn := o.db
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(o.data, "mandate.db")
	}
	tel, err := newTelemetry() // ops.go: OpenTelemetry metrics, served for Prometheus
	if err != nil {
		return err
	}
	defer tel.meters.Shutdown(context.WithoutCancel(ctx))
	batches, err := provider.BatchSizeObserver(tel.meters)
	if err != nil {
		return err
	}
	store, err := gormstore.Open(ctx, dsn, gormstore.WithBatchObserver(batches))
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer func() {
		logShutdown(logger, "store closed (group-commit queue flushed)")
		store.Close()
	}()
	ui := newDemoUI(secret)
	p, err := provider.New(ctx, provider.Config{
		Issuer:        o.issuer,
		Secret:        secret,
		Storage:       store,
		Authenticator: ui, // the demo's login form
		Consenter:     ui, // and consent page
		Logger:        logger,
		MeterProvider: tel.meters,

		StatelessAccessTokens: o.stateless,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Apply(ctx, setup); err != nil {
		return err
	}

	mux := http.NewServeMux()
	for _, pattern := range p.Patterns() {
		mux.Handle(pattern, p)
	}
	mountHealth(mux, p)
	mux.Handle(metricsPath, tel.handler)
	var adminRes string
	if o.admin {
		if adminRes, err = mountAdmin(ctx, mux, p, o.issuer); err != nil {
			return err
		}
	}
	verifier := oauth2.GenerateVerifier() // the demo web client's PKCE verifier, shown at its callback
	mux.HandleFunc(loginPath, ui.ServeLogin)
	mux.Handle(callbackPath, ui.ServeCallback(p.Issuer()+"/token", verifier))
	asLn, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	servers := []*http.Server{newServer(mux, defaultLimits())}
	errc := make(chan error, 2)
	go func() { errc <- servers[0].Serve(asLn) }()

	var rsURL string
	var partnerOf *partner
	serveRS := func() {}
	if o.partner != "" && o.rsAddr == "" {
		return errors.New("-partner needs the demo resource server (-rs-addr)")
	}
	if o.rsAddr != "" {
		rs, err := defaultResource(setup)
		if err != nil {
			logger.Warn("demo resource server not started", "reason", err.Error())
		} else {
			rsLn, err := net.Listen("tcp", o.rsAddr)
			if err != nil {
				return err
			}
			md, err := p.Metadata(ctx)
			if err != nil {
				return err
			}
			var chain *exchanger
			if ordersSecret != "" {
				chain = &exchanger{tokenURL: md.TokenEndpoint, clientID: ordersAPIClient, secret: ordersSecret,
					inventory: inventoryResource(rs.Identifier), client: &http.Client{Timeout: 10 * time.Second}}
			}
			if o.partner != "" {
				if partnerOf, err = newPartner(setup, rs, md.TokenEndpoint, o.partner); err != nil {
					return err
				}
			}
			h, err := resourceServer(ctx, o.issuer, rs, chain, partnerOf, "http://"+rsLn.Addr().String())
			if err != nil {
				return err
			}
			srv := newServer(h, defaultLimits())
			servers = append(servers, srv)
			serveRS = func() { go func() { errc <- srv.Serve(rsLn) }() }
			rsURL = "http://" + rsLn.Addr().String()
		}
	}

	printWelcome(stdout, p, setup, demoSecret, rsURL)
	if rsURL != "" && ordersSecret != "" {
		rs, _ := defaultResource(setup)
		md, _ := p.Metadata(ctx)
		chainWelcome(stdout, rsURL, md.TokenEndpoint, rs)
	}
	if partnerOf != nil {
		partnerWelcome(stdout, rsURL, partnerOf)
	}
	if web {
		webWelcome(stdout, p.Issuer(), verifier)
	}
	opsWelcome(stdout, "http://"+asLn.Addr().String(), adminRes, cliFlags(o))
	// The demo resource server answers once the welcome is printed (its listener holds early
	// connections until then): whoever waits for it, a script or the tests, reads all of it.
	serveRS()

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	// Graceful stop: the listeners close, in-flight requests finish (up to 5 s), then the
	// provider's background work stops and the store flushes its group-commit queue and closes
	// (the deferred calls above, in that order).
	logShutdown(logger, "draining in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); err != nil {
			logger.Warn("shutdown", "error", err.Error())
		}
	}
	logShutdown(logger, "requests drained")
	return nil
}

// serverLimits bound what one connection may hold on to. Without them a client that trickles
// its headers or body a byte at a time, or leaves a keep-alive connection idle, keeps its
// socket (and its goroutine) for ever: a few hundred of them exhaust a low file limit and
// ordinary requests get nothing.
type serverLimits struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxHeaderBytes                int
}

// defaultLimits are the example's limits, sized for a token endpoint whose requests are a
// small form (the provider refuses bodies over Config.MaxBodyBytes, 64 KiB) and whose answers
// take milliseconds:
//
//   - ReadHeader 5 s: a request line and a few headers arrive in one round trip; 5 s allows a
//     slow link and ends a slowloris on the headers.
//   - Read 10 s: the whole request, body included, from the connection's first byte: a
//     trickled body is cut off here (ReadHeaderTimeout alone leaves the body unbounded).
//   - Write 10 s: from the end of the request headers to the end of the response: a signature
//     and a database write, with room for a busy database; a client that does not read its
//     answer releases the connection.
//   - Idle 60 s: long enough for a service's next token request to reuse its keep-alive
//     connection, no longer than common load balancers keep theirs.
//   - MaxHeaderBytes 16 KiB: Basic credentials, a client assertion's headers or a DPoP proof
//     fit many times over; net/http's default is 1 MiB. Larger header blocks get 431.
func defaultLimits() serverLimits {
	return serverLimits{
		ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 10 * time.Second,
		Idle: 60 * time.Second, MaxHeaderBytes: 16 << 10,
	}
}

// newServer is the http.Server of the authorization server and of the demo resource server.
func newServer(h http.Handler, l serverLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// loadOrCreateSecret reads n random bytes (hex) from path, creating the file (0600) if needed.
func loadOrCreateSecret(path string, n int) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		s, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(s) < n {
			return nil, fmt.Errorf("%s: not %d hex-encoded bytes", path, n)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s := make([]byte, n)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(s)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// demoSetup is the built-in configuration: the demo resource server B and a client for it;
// with the demo resource server running, also service C (inventory) and B's own client
// (orders-api), which exchanges the tokens B receives for tokens for C.
func demoSetup(o options, secret, ordersSecret string) *provider.Setup {
	rs := "http://" + o.rsAddr + "/"
	if o.rsAddr == "" {
		rs = "https://api.example.com/"
	}
	s := &provider.Setup{
		ResourceServers: []provider.SetupResource{{
			Identifier: rs, Name: "demo resource server",
			Scopes: []string{"orders:read", "orders:write"}, AccessTokenTTL: "10m",
			SigningAlg: "ES256", Default: true,
		}},
		Clients: []provider.SetupClient{{
			ClientID: "demo-client", ClientSecret: secret, Name: "demo service",
			TokenEndpointAuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"},
			Scopes: []string{"orders:read", "orders:write"}, Resources: []string{rs},
		}, {
			ClientID: webClient, Public: true, Name: "demo web application (a user logs in)",
			RedirectURIs: []string{strings.TrimSuffix(o.issuer, "/") + callbackPath},
			GrantTypes:   []string{"authorization_code", "refresh_token"},
			Scopes:       []string{"orders:read", "orders:write"}, Resources: []string{rs},
		}},
	}
	if o.rsAddr != "" {
		inv := inventoryResource(rs)
		s.ResourceServers = append(s.ResourceServers, provider.SetupResource{
			Identifier: inv, Name: "demo inventory (service C)", Scopes: []string{"orders:read"},
			AccessTokenTTL: "5m", SigningAlg: "ES256",
		})
		s.Clients = append(s.Clients, provider.SetupClient{
			ClientID: ordersAPIClient, ClientSecret: ordersSecret, Name: "the demo resource server's own identity",
			GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"},
			Scopes:     []string{"orders:read"}, Resources: []string{inv}, Serves: []string{rs},
		})
	}
	return s
}

// defaultResource is the resource server the demo resource server plays.
func defaultResource(s *provider.Setup) (provider.SetupResource, error) {
	for _, rs := range s.ResourceServers {
		if rs.Default {
			return rs, nil
		}
	}
	if len(s.ResourceServers) > 0 {
		return s.ResourceServers[0], nil
	}
	return provider.SetupResource{}, errors.New("no resource server declared")
}

// resourceServer is service B: it validates access tokens on its own, from the issuer's
// metadata and keys, for its own identifier only, and shows the caller (and who acts for it,
// when a token exchange made the token). With chain set it also plays service C at
// /inventory/ and calls it from /orders/stock on behalf of its caller (base is its own URL);
// with partner set it calls a service of another trust domain from /orders/partner.
func resourceServer(ctx context.Context, issuer string, rs provider.SetupResource, chain *exchanger, partner *partner, base string) (http.Handler, error) {
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: rs.Identifier, DPoPRequired: rs.DPoPRequired})
	if err != nil {
		return nil, fmt.Errorf("demo resource server: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/orders", v.Middleware(v.RequireScope(firstScope(rs))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.FromContext(r.Context())
		out := map[string]any{"orders": []any{}, "caller": c.Subject, "client_id": c.ClientID, "scope": c.Scope}
		if c.Act != nil {
			out["act"] = c.Act
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))))
	if partner != nil {
		mux.Handle(partnerPath, v.Middleware(v.RequireScope(firstScope(rs))(partnerHandler(partner))))
	}
	if chain != nil {
		inv, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: chain.inventory})
		if err != nil {
			return nil, fmt.Errorf("demo inventory: %w", err)
		}
		mux.Handle(inventoryPath+"stock", inventoryHandler(inv))
		mux.Handle("/orders/stock", v.Middleware(v.RequireScope(firstScope(rs))(stockHandler(chain, base+inventoryPath+"stock"))))
	}
	return mux, nil
}

func firstScope(rs provider.SetupResource) string {
	if len(rs.Scopes) > 0 {
		return rs.Scopes[0]
	}
	return ""
}

func printWelcome(w io.Writer, p *provider.Provider, s *provider.Setup, demoSecret, rsURL string) {
	md, _ := p.Metadata(context.Background())
	fmt.Fprintf(w, "mandate authorization server\n  issuer:   %s\n", p.Issuer())
	if md != nil {
		fmt.Fprintf(w, "  token:    %s\n  jwks:     %s\n", md.TokenEndpoint, md.JWKSURI)
	}
	if wk, err := handlers.WellKnownURL(p.Issuer()); err == nil {
		fmt.Fprintf(w, "  metadata: %s\n", wk)
	}
	rs, _ := defaultResource(s)
	if demoSecret != "" && md != nil && !rs.DPoPRequired {
		fmt.Fprintf(w, "\nGet a token (demo client, built-in configuration):\n\n")
		fmt.Fprintf(w, "  curl -s -u demo-client:%s \\\n    -d grant_type=client_credentials -d scope=orders:read \\\n    -d resource=%s %s\n", demoSecret, rs.Identifier, md.TokenEndpoint)
	}
	if demoSecret == "" && md != nil && !rs.DPoPRequired {
		fmt.Fprintf(w, "\nGet a token with one of your configured clients:\n\n  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials \\\n    -d resource=%s %s\n", rs.Identifier, md.TokenEndpoint)
	}
	if rsURL != "" && !rs.DPoPRequired {
		fmt.Fprintf(w, "\nDemo resource server for %s (validates tokens locally):\n\n  curl -s -H \"Authorization: Bearer $TOKEN\" %s/orders\n", rs.Identifier, rsURL)
	}
	if rsURL != "" && md != nil {
		what := "With a DPoP-bound token (RFC 9449; a fresh key, a proof per request)"
		if rs.DPoPRequired {
			what = "Demo resource server for " + rs.Identifier + " (DPoP-bound tokens only, RFC 9449)"
		}
		fmt.Fprintf(w, "\n%s:\n\n  %s%s/orders\n", what, callCommand(md.TokenEndpoint, rs), rsURL)
		if demoSecret == "" {
			fmt.Fprintf(w, "  (add -client CLIENT_ID -secret CLIENT_SECRET)\n")
		}
	}
	fmt.Fprintln(w)
}
