package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// DefaultScope is the scope an admin token must carry unless [Config.Scope] says otherwise.
const DefaultScope = "mandate:admin"

// DefaultPrefix is where the API is mounted unless [Config.Prefix] says otherwise.
const DefaultPrefix = "/admin"

// maxBody bounds a request body.
const maxBody = 256 << 10

// Config configures the admin API.
type Config struct {
	// Provider is the authorization server whose records the API manages. Its store must
	// implement storage.Manager (gormstore does). Required.
	Provider *provider.Provider
	// Resource is the identifier of the admin API as a resource server of Provider: admin
	// tokens must carry it as aud. Required. The API registers nothing itself: declare the
	// resource server (with Scope among its scopes, and a short access_token_ttl) and a client
	// allowed to obtain tokens for it, in the setup or with the example's command line. Admin
	// tokens are checked against the store on every request: a revoked one stops at once.
	Resource string
	// Scope is the scope an admin token must carry. Default [DefaultScope].
	Scope string
	// Prefix is the path the handler is mounted at (routes are below it), without a trailing
	// slash. Default [DefaultPrefix].
	Prefix string
	// HTTPClient, if set, fetches the issuer's metadata and keys over the network instead of
	// in-process (for an issuer behind a proxy that rewrites what it serves).
	HTTPClient *http.Client
}

// Handler is the admin API, an http.Handler. Create it with [New].
type Handler struct {
	m       *provider.Manager
	prefix  string
	guard   http.Handler          // token check, then route
	records map[string]collection // resource-servers, trusted-issuers, peers
}

// New validates cfg and returns the admin API. It does no network I/O: the issuer's keys are
// fetched (in-process unless Config.HTTPClient is set) when the first request arrives.
func New(ctx context.Context, cfg Config) (*Handler, error) {
	if cfg.Provider == nil {
		return nil, errors.New("admin: Config.Provider is required")
	}
	if cfg.Resource == "" {
		return nil, errors.New("admin: Config.Resource (the admin API's resource identifier) is required")
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("admin: Config.Prefix %q must start with / and not end with one", cfg.Prefix)
	}
	m, err := cfg.Provider.Manager()
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Transport: inProcess{cfg.Provider}}
	}
	// Every admin token is also checked against the store, as introspection would: a revoked
	// one (or one of a deleted client) stops working at once, not when it expires.
	v, err := verify.New(ctx, verify.Config{Issuer: cfg.Provider.Issuer(), Audience: cfg.Resource, HTTPClient: client, Lazy: true,
		Revoked: m.Revoked})
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	h := &Handler{m: m, prefix: cfg.Prefix}
	h.records = h.collections()
	h.guard = v.Middleware(v.RequireScope(cfg.Scope)(http.HandlerFunc(h.route)))
	return h, nil
}

// ServeHTTP implements http.Handler: every request must carry an admin token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.guard.ServeHTTP(w, r)
}

// Pattern is the ServeMux pattern the handler is mounted on: the prefix and everything below.
func (h *Handler) Pattern() string { return h.prefix + "/" }

// route dispatches an authenticated request.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), h.prefix+"/")
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such route", nil)
		return
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "the path is not validly percent-encoded", nil)
			return
		}
		segs[i] = u
	}
	by := ""
	if c, ok := verify.FromContext(r.Context()); ok {
		by = c.Subject
	}
	ctx := r.Context()
	switch {
	case len(segs) == 1 && segs[0] == "clients":
		switch r.Method {
		case http.MethodGet:
			listPage(h.m.ListClients, func(c *storage.Client) *ClientDoc { return clientOut(c, "") })(ctx, w, r)
		case http.MethodPost:
			h.createClient(ctx, w, r, by)
		default:
			notAllowed(w, "GET, POST")
		}
	case len(segs) == 2 && segs[0] == "clients" && segs[1] != "":
		switch r.Method {
		case http.MethodGet:
			c, err := h.m.Client(ctx, segs[1])
			if err != nil {
				writeStoreError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, clientOut(c, ""))
		case http.MethodPut:
			h.updateClient(ctx, w, r, segs[1], by)
		case http.MethodDelete:
			n, err := h.m.DeleteClient(ctx, segs[1], by)
			if err != nil {
				writeStoreError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"deleted": segs[1], "revoked_grants": n})
		default:
			notAllowed(w, "GET, PUT, DELETE")
		}
	case len(segs) == 3 && segs[0] == "clients" && segs[2] == "secret":
		if r.Method != http.MethodPost {
			notAllowed(w, "POST")
			return
		}
		keep, _ := strconv.ParseBool(r.URL.Query().Get("keep_previous"))
		secret, err := h.m.RotateClientSecret(ctx, segs[1], keep, by)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"client_id": segs[1], "client_secret": secret, "client_secret_expires_at": 0,
			"previous_secret_valid": keep})
	case h.records[segs[0]].get != nil && (len(segs) == 1 || len(segs) == 2 && segs[1] != ""):
		h.serveCollection(ctx, w, r, h.records[segs[0]], segs, by)
	case len(segs) == 1 && segs[0] == "keys":
		if r.Method != http.MethodGet {
			notAllowed(w, "GET")
			return
		}
		keys, err := h.m.Keys(ctx)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": keys})
	case len(segs) == 2 && segs[0] == "keys" && segs[1] == "rotate":
		if r.Method != http.MethodPost {
			notAllowed(w, "POST")
			return
		}
		kids, err := h.m.RotateKeys(ctx, by)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"signing": kids})
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such route", nil)
	}
}

// page reads the after and limit query parameters.
func page(r *http.Request) (storage.Page, error) {
	q := r.URL.Query()
	p := storage.Page{After: q.Get("after")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > storage.MaxPageLimit {
			return p, fmt.Errorf("limit must be a number from 1 to %d", storage.MaxPageLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// collection is a kind of record served at /NAME (GET lists, POST creates) and /NAME/{id}
// (GET, PUT replaces, DELETE).
type collection struct {
	list func(ctx context.Context, w http.ResponseWriter, r *http.Request)
	get  func(ctx context.Context, id string) (any, error)
	save func(ctx context.Context, w http.ResponseWriter, r *http.Request, id, by string)
	del  func(ctx context.Context, id, by string) error
}

// collections are the records with nothing but those routes: clients have more (a generated
// secret, its rotation, the grants revoked with them).
func (h *Handler) collections() map[string]collection {
	return map[string]collection{
		"resource-servers": {
			list: listPage(h.m.ListResourceServers, resourceOut),
			get:  getter(h.m.ResourceServer, resourceOut),
			save: h.saveResourceServer,
			del:  h.m.DeleteResourceServer,
		},
		"trusted-issuers": {
			list: listPage(h.m.ListTrusts, trustOut),
			get:  getter(h.m.Trust, trustOut),
			save: h.saveTrust,
			del:  h.m.DeleteTrust,
		},
		"peers": {
			list: h.listPeers,
			get:  getter(h.m.Peer, peerOut),
			save: h.savePeer,
			del:  h.m.DeletePeer,
		},
	}
}

// serveCollection serves segs ([NAME] or [NAME, id]) of the collection c.
func (h *Handler) serveCollection(ctx context.Context, w http.ResponseWriter, r *http.Request, c collection, segs []string, by string) {
	if len(segs) == 1 {
		switch r.Method {
		case http.MethodGet:
			c.list(ctx, w, r)
		case http.MethodPost:
			c.save(ctx, w, r, "", by)
		default:
			notAllowed(w, "GET, POST")
		}
		return
	}
	id := segs[1]
	switch r.Method {
	case http.MethodGet:
		doc, err := c.get(ctx, id)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, doc)
	case http.MethodPut:
		c.save(ctx, w, r, id, by)
	case http.MethodDelete:
		if err := c.del(ctx, id, by); err != nil {
			writeStoreError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"deleted": id})
	default:
		notAllowed(w, "GET, PUT, DELETE")
	}
}

// getter reads one record with get and answers it as out renders it.
func getter[T, D any](get func(context.Context, string) (*T, error), out func(*T) D) func(context.Context, string) (any, error) {
	return func(ctx context.Context, id string) (any, error) {
		rec, err := get(ctx, id)
		if err != nil {
			return nil, err
		}
		return out(rec), nil
	}
}

// listPage answers a page of a listing (the after and limit query parameters) as out renders
// each record.
func listPage[T, D any](list func(context.Context, storage.Page) ([]T, string, error), out func(*T) D) func(context.Context, http.ResponseWriter, *http.Request) {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request) {
		p, err := page(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
			return
		}
		recs, next, err := list(ctx, p)
		if err != nil {
			writeStoreError(w, err)
			return
		}
		items := make([]D, len(recs))
		for i := range recs {
			items[i] = out(&recs[i])
		}
		writeJSON(w, http.StatusOK, listing{Items: items, Next: next})
	}
}

// listPeers answers every peer: there are few, and the listing is not paged.
func (h *Handler) listPeers(ctx context.Context, w http.ResponseWriter, _ *http.Request) {
	peers, err := h.m.Peers(ctx)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	items := make([]*PeerDoc, len(peers))
	for i := range peers {
		items[i] = peerOut(&peers[i])
	}
	writeJSON(w, http.StatusOK, listing{Items: items})
}

// listing is a page of a listing.
type listing struct {
	Items any `json:"items"`
	// Next is the after parameter of the next page; absent on the last page.
	Next string `json:"next,omitempty"`
}

// readBody reads a bounded JSON request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "the body must be application/json", nil)
		return nil, false
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("the body is larger than %d bytes", maxBody), nil)
		return nil, false
	}
	return data, true
}

func (h *Handler) createClient(ctx context.Context, w http.ResponseWriter, r *http.Request, by string) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	in, err := DecodeClient(data)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	if in.ClientID == "" {
		in.ClientID = newClientID() // RFC 7591 §3.2.1: the server issues the identifier
	}
	c, secret, err := h.m.CreateClient(ctx, in.setup(), by)
	if err != nil {
		writeStoreError(w, renamed(err))
		return
	}
	writeJSON(w, http.StatusCreated, clientOut(c, secret))
}

func (h *Handler) updateClient(ctx context.Context, w http.ResponseWriter, r *http.Request, id, by string) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	in, err := DecodeClient(data)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	if in.ClientID != "" && in.ClientID != id {
		writeInvalid(w, problem("client_id", "%q differs from the client in the path", in.ClientID))
		return
	}
	in.ClientID = id
	c, secret, err := h.m.UpdateClient(ctx, in.setup(), by)
	if err != nil {
		writeStoreError(w, renamed(err))
		return
	}
	writeJSON(w, http.StatusOK, clientOut(c, secret))
}

// saveRecord answers the create (id "") or update (id from the path) of a record in the body:
// decoded strictly, its identifier (*key) taken from the path on an update (a different one in
// the body is refused, naming field), saved by save, and answered 201 or 200 as out renders it.
func saveRecord[T, R, D any](ctx context.Context, w http.ResponseWriter, r *http.Request, id, by, field, what string,
	decode func([]byte) (*T, error), key func(*T) *string,
	save func(ctx context.Context, in T, create bool, by string) (*R, error), out func(*R) D) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	in, err := decode(data)
	if err != nil {
		writeInvalid(w, err)
		return
	}
	if id != "" {
		k := key(in)
		if *k != "" && *k != id {
			writeInvalid(w, problem(field, "%q differs from the %s in the path", *k, what))
			return
		}
		*k = id
	}
	rec, err := save(ctx, *in, id == "", by)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	status := http.StatusOK
	if id == "" {
		status = http.StatusCreated
	}
	writeJSON(w, status, out(rec))
}

func (h *Handler) saveResourceServer(ctx context.Context, w http.ResponseWriter, r *http.Request, id, by string) {
	saveRecord(ctx, w, r, id, by, "identifier", "resource server", DecodeResource,
		func(in *provider.SetupResource) *string { return &in.Identifier }, h.m.SaveResourceServer, resourceOut)
}

func (h *Handler) saveTrust(ctx context.Context, w http.ResponseWriter, r *http.Request, id, by string) {
	saveRecord(ctx, w, r, id, by, "id", "trust", DecodeTrust,
		func(in *provider.SetupTrust) *string { return &in.ID }, h.m.SaveTrust, trustOut)
}

// savePeer creates (issuer "") or updates a peer; a peer is named by its issuer, percent-encoded
// in the path.
func (h *Handler) savePeer(ctx context.Context, w http.ResponseWriter, r *http.Request, issuer, by string) {
	saveRecord(ctx, w, r, issuer, by, "issuer", "peer", DecodePeer,
		func(in *provider.SetupPeer) *string { return &in.Issuer }, h.m.SavePeer, peerOut)
}

// newClientID is a client_id for a client registered without one: 128 random bits.
func newClientID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "client-" + hex.EncodeToString(b[:])
}

// errorBody is every error answer: an OAuth-style code, a description and, for an invalid
// record, the problems field by field.
type errorBody struct {
	Error       string             `json:"error"`
	Description string             `json:"error_description,omitempty"`
	Problems    []provider.Problem `json:"problems,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, desc string, problems []provider.Problem) {
	writeJSON(w, status, errorBody{Error: code, Description: desc, Problems: problems})
}

// writeInvalid answers a record that breaks the rules: 400 with the fields named.
func writeInvalid(w http.ResponseWriter, err error) {
	var inv *provider.InvalidError
	if errors.As(err, &inv) {
		desc := make([]string, len(inv.Problems))
		for i, p := range inv.Problems {
			desc[i] = p.Field + ": " + p.Message
			if p.Field == "" {
				desc[i] = p.Message
			}
		}
		writeError(w, http.StatusBadRequest, "invalid_client_metadata", strings.Join(desc, "; "), inv.Problems)
		return
	}
	writeError(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
}

// writeStoreError answers an error of the Manager.
func writeStoreError(w http.ResponseWriter, err error) {
	var inv *provider.InvalidError
	switch {
	case errors.As(err, &inv):
		writeInvalid(w, err)
	case errors.Is(err, storage.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such record", nil)
	case errors.Is(err, storage.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "a record with this identifier exists", nil)
	case errors.Is(err, storage.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the store cannot be reached; retry", nil)
	case errors.Is(err, provider.ErrFixedKeys):
		writeError(w, http.StatusConflict, "fixed_keys", err.Error(), nil)
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "the change failed; see the server's log", nil)
	}
}

func notAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed; allowed: "+allow, nil)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// inProcess is an http.RoundTripper that serves requests with the provider's own handler: the
// admin API verifies tokens with the issuer's published metadata and keys without a network
// round trip to itself.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: r,
	}, nil
}

// recorder is a minimal http.ResponseWriter that keeps the response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
