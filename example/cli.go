package main

// The example's command line: manage the store the server uses, directly, without the server
// running — which is how the first admin client is made.
//
//	go run ./example clients create -id ops -grant client_credentials -scope mandate:admin -resource URL
//	go run ./example clients list
//	go run ./example clients delete ID
//	go run ./example clients rotate-secret [-keep-previous] ID
//	go run ./example resources create -id URL -scope S [-scope S2] [-ttl 10m] [-alg ES256] [-default]
//	go run ./example resources list | delete URL
//	go run ./example trusts list | delete ID
//	go run ./example peers list | delete ISSUER
//	go run ./example keys list | rotate
//	go run ./example setup export > mandate.json     # JSON that -config accepts
//
// Every command takes the server's -data, -db and -issuer flags and opens the same store. A
// store it cannot open is refused with the reason, and nothing is changed.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// commands are the nouns of the command line and their verbs.
var commands = map[string][]string{
	"clients":   {"list", "create", "delete", "rotate-secret"},
	"resources": {"list", "create", "delete"},
	"trusts":    {"list", "delete"},
	"peers":     {"list", "delete"},
	"keys":      {"list", "rotate"},
	"setup":     {"export"},
}

// isCommand reports whether the first argument names a command rather than a flag.
func isCommand(arg string) bool {
	_, ok := commands[arg]
	return ok
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// cli is one command's environment.
type cli struct {
	stdout, stderr io.Writer
	m              *provider.Manager
}

// runCLI runs `NOUN VERB [flags] [ARG]`.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	noun := args[0]
	if len(args) < 2 || !contains(commands[noun], args[1]) {
		return fmt.Errorf("usage: example %s %s [flags]", noun, strings.Join(commands[noun], "|"))
	}
	verb := args[1]
	fs := flag.NewFlagSet("example "+noun+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "mandate-data", "data directory of the server (SQLite database, master secret)")
	db := fs.String("db", "", "storage DSN: sqlite:PATH, postgres://…, mysql://… (default sqlite:DATA/mandate.db)")
	issuer := fs.String("issuer", "http://127.0.0.1:9400", "the server's issuer identifier")
	var (
		id, name, ttl, alg, method     string
		grants, scopes, resources, uri stringList
		serves                         stringList
		public, introspectAll, isDef   bool
		keepPrevious                   bool
		limit                          int
	)
	switch noun + " " + verb {
	case "clients create":
		fs.StringVar(&id, "id", "", "client_id (required)")
		fs.StringVar(&name, "name", "", "a human-readable name")
		fs.Var(&grants, "grant", "a grant type the client may use (repeatable)")
		fs.Var(&scopes, "scope", "a scope the client may be granted (repeatable)")
		fs.Var(&resources, "resource", "a resource server the client may get tokens for (repeatable)")
		fs.Var(&uri, "redirect-uri", "a redirect URI (repeatable)")
		fs.Var(&serves, "serves", "a resource server this client is, for introspection (repeatable)")
		fs.StringVar(&method, "auth-method", "", "token_endpoint_auth_method (default client_secret_basic; none for -public)")
		fs.BoolVar(&public, "public", false, "a public client (no secret, PKCE)")
		fs.BoolVar(&introspectAll, "introspect-all", false, "may introspect every token")
	case "clients rotate-secret":
		fs.BoolVar(&keepPrevious, "keep-previous", false, "keep the current secret valid too, until the next rotation")
	case "resources create":
		fs.StringVar(&id, "id", "", "the resource identifier, an absolute URI (required)")
		fs.StringVar(&name, "name", "", "a human-readable name")
		fs.Var(&scopes, "scope", "a scope it accepts (repeatable)")
		fs.StringVar(&ttl, "ttl", "", "access-token lifetime, like 10m")
		fs.StringVar(&alg, "alg", "", "JWS algorithm of its tokens (default the server's)")
		fs.BoolVar(&isDef, "default", false, "the resource server of requests that name none")
	case "clients list", "resources list", "trusts list":
		fs.IntVar(&limit, "limit", 0, "at most this many (default all)")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if verb == "delete" || verb == "rotate-secret" {
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: example %s %s [flags] ID", noun, verb)
		}
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	c, closeFn, err := openForCLI(ctx, *data, *db, *issuer, stderr)
	if err != nil {
		return err
	}
	defer closeFn()
	c.stdout = stdout

	switch noun + " " + verb {
	case "clients list":
		return c.listClients(ctx, limit)
	case "clients create":
		if method == "" && public {
			method = storage.AuthMethodNone
		}
		sc := provider.SetupClient{ClientID: id, Name: name, Public: public, TokenEndpointAuthMethod: method,
			GrantTypes: nonNil(grants), Scopes: nonNil(scopes), Resources: nonNil(resources), RedirectURIs: uri,
			Serves: serves, IntrospectAll: introspectAll}
		made, secret, err := c.m.CreateClient(ctx, sc, "")
		if err != nil {
			return explain(err)
		}
		out := map[string]any{"client_id": made.ID, "token_endpoint_auth_method": made.GetTokenEndpointAuthMethod()}
		if secret != "" {
			out["client_secret"] = secret
		}
		return printJSON(stdout, out)
	case "clients delete":
		n, err := c.m.DeleteClient(ctx, id, "")
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted client %s (%d codes and tokens revoked)\n", id, n)
	case "clients rotate-secret":
		secret, err := c.m.RotateClientSecret(ctx, id, keepPrevious, "")
		if err != nil {
			return explain(err)
		}
		return printJSON(stdout, map[string]any{"client_id": id, "client_secret": secret, "previous_secret_valid": keepPrevious})
	case "resources list":
		return c.listResources(ctx, limit)
	case "resources create":
		rs, err := c.m.SaveResourceServer(ctx, provider.SetupResource{Identifier: id, Name: name, Scopes: nonNil(scopes),
			AccessTokenTTL: ttl, SigningAlg: alg, Default: isDef}, true, "")
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "created resource server %s\n", rs.Identifier)
	case "resources delete":
		if err := c.m.DeleteResourceServer(ctx, id, ""); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted resource server %s\n", id)
	case "trusts list":
		return c.listTrusts(ctx, limit)
	case "trusts delete":
		if err := c.m.DeleteTrust(ctx, id, ""); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted trust %s\n", id)
	case "peers list":
		peers, err := c.m.Peers(ctx)
		if err != nil {
			return explain(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "ISSUER\tSCOPES\tCLAIMS\tMAX LIFETIME\tALG")
		for _, pe := range peers {
			life := "default"
			if pe.MaxGrantLifetime > 0 {
				life = pe.MaxGrantLifetime.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", pe.Issuer, strings.Join(pe.Scopes, ","), strings.Join(pe.Claims, ","), life, pe.SigningAlg)
		}
		return tw.Flush()
	case "peers delete":
		if err := c.m.DeletePeer(ctx, id, ""); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "deleted peer %s\n", id)
	case "keys list":
		keys, err := c.m.Keys(ctx)
		if err != nil {
			return explain(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tSTATE\tACTIVATES\tREMOVED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, stampOf(k.ActivatesAt), stampOf(k.RemoveAt))
		}
		return tw.Flush()
	case "keys rotate":
		kids, err := c.m.RotateKeys(ctx, "")
		if err != nil {
			return explain(err)
		}
		fmt.Fprintf(stdout, "signing now: %s (a next key published less than 5 minutes ago takes over once it has been)\n", strings.Join(kids, " "))
	case "setup export":
		s, err := c.m.Export(ctx)
		if err != nil {
			return explain(err)
		}
		return printJSON(stdout, s)
	}
	return nil
}

// openForCLI opens the store the server would open and a provider on it (no background work
// but key rotation), or refuses with the reason. A DSN is opened before anything is touched; the
// default SQLite file must exist already or be creatable in the data directory.
func openForCLI(ctx context.Context, data, dsn, issuer string, stderr io.Writer) (*cli, func(), error) {
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(data, "mandate.db")
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, nil, fmt.Errorf("data directory: %w", err)
		}
	}
	store, err := gormstore.Open(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot open the store (nothing was changed): %w", err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	secret, err := loadOrCreateSecret(filepath.Join(data, "secret.key"), 32)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	p, err := provider.New(ctx, provider.Config{
		Issuer: issuer, Secret: secret, Storage: store, GCInterval: -1,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	m, err := p.Manager()
	if err != nil {
		p.Close()
		store.Close()
		return nil, nil, err
	}
	return &cli{stderr: stderr, m: m}, func() { p.Close(); store.Close() }, nil
}

// explain turns a Manager error into the command's message.
func explain(err error) error {
	var inv *provider.InvalidError
	switch {
	case errors.As(err, &inv):
		var b strings.Builder
		b.WriteString("refused:")
		for _, p := range inv.Problems {
			b.WriteString("\n  ")
			if p.Field != "" {
				b.WriteString(p.Field + ": ")
			}
			b.WriteString(p.Message)
		}
		return errors.New(b.String())
	case errors.Is(err, storage.ErrNotFound):
		return errors.New("no such record")
	case errors.Is(err, storage.ErrConflict):
		return errors.New("a record with this identifier exists already")
	}
	return err
}

func (c *cli) listClients(ctx context.Context, limit int) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tAUTH\tGRANTS\tSCOPES\tRESOURCES")
	err := pages(limit, func(p storage.Page) (int, string, error) {
		list, next, err := c.m.ListClients(ctx, p)
		for _, cl := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.GetTokenEndpointAuthMethod(), strings.Join(cl.GrantTypes, ","),
				strings.Join(cl.Scopes, ","), strings.Join(cl.Resources, ","))
		}
		return len(list), next, err
	})
	if err != nil {
		return explain(err)
	}
	return tw.Flush()
}

func (c *cli) listResources(ctx context.Context, limit int) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "IDENTIFIER\tSCOPES\tTTL\tALG\tDEFAULT")
	err := pages(limit, func(p storage.Page) (int, string, error) {
		list, next, err := c.m.ListResourceServers(ctx, p)
		for _, rs := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", rs.Identifier, strings.Join(rs.Scopes, ","), rs.AccessTokenTTL, rs.SigningAlg, rs.Default)
		}
		return len(list), next, err
	})
	if err != nil {
		return explain(err)
	}
	return tw.Flush()
}

func (c *cli) listTrusts(ctx context.Context, limit int) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tISSUER\tSUBJECT\tSCOPES\tRESOURCES")
	err := pages(limit, func(p storage.Page) (int, string, error) {
		list, next, err := c.m.ListTrusts(ctx, p)
		for _, t := range list {
			sub := t.Subject
			if t.AllowAnySubject {
				sub = "*"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Issuer, sub, strings.Join(t.Scopes, ","), strings.Join(t.Resources, ","))
		}
		return len(list), next, err
	})
	if err != nil {
		return explain(err)
	}
	return tw.Flush()
}

// pages calls list page by page until the end, or until limit (> 0) records were listed.
func pages(limit int, list func(storage.Page) (int, string, error)) error {
	p := storage.Page{Limit: storage.MaxPageLimit}
	for seen := 0; ; {
		if limit > 0 {
			p.Limit = min(storage.MaxPageLimit, limit-seen)
		}
		n, next, err := list(p)
		if err != nil {
			return err
		}
		seen += n
		if next == "" || (limit > 0 && seen >= limit) {
			return nil
		}
		p.After = next
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil(l stringList) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func stampOf(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
