package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// Manager changes the provider's clients, resource servers, trusted issuers and signing keys
// one record at a time, with exactly the declarative setup's rules ([ParseSetup], [Provider.Apply]):
// the same validation, the same field names in its errors, the same stored records. The admin
// API (package provider/admin) and the example's command line are built on it; an application
// may call it directly. Get one with [Provider.Manager].
//
// What deleting does to live grants and tokens:
//
//   - A deleted client can no longer authenticate, so nothing of it can be redeemed; its
//     authorization codes, refresh tokens and stored access tokens are deleted too
//     ([storage.ClientManager.RevokeClientGrants]), so a client created again under the same ID
//     inherits none of them. Introspection answers inactive for its access tokens, stateless
//     ones included (their client no longer exists, or was created after them: a client
//     deleted and created again within Config.AssertionLeeway, default 30 s, of its tokens'
//     iat — the allowance for clocks that differ between instances — would revive them). Resource
//     servers that verify tokens locally accept its access tokens until they expire, as for
//     any revocation: keep access-token lifetimes short.
//   - A deleted trust refuses its issuer's assertions at once. The jwt-bearer grant issues no
//     refresh token, so nothing else is left to revoke: tokens obtained with it by an
//     authenticated client live until they expire; those obtained without client
//     authentication (client_id is the issuer) are inactive at introspection once the issuer
//     has no trust left.
//   - A deleted resource server gets no new token; clients that list it are refused for it
//     (invalid_target) and their tokens for it expire.
type Manager struct {
	p  *Provider
	st storage.Manager
}

// ErrNoManagement is returned by [Provider.Manager] for a store without the management roles.
var ErrNoManagement = errors.New("provider: the store does not implement storage.Manager (list, create, update)")

// Manager returns the provider's [Manager]; the store must implement [storage.Manager]
// (gormstore does), else [ErrNoManagement].
func (p *Provider) Manager() (*Manager, error) {
	st, ok := p.store.(storage.Manager)
	if !ok {
		return nil, ErrNoManagement
	}
	return &Manager{p: p, st: st}, nil
}

// InvalidError reports a record that breaks the setup's rules, one [Problem] per field.
type InvalidError struct {
	Problems []Problem
}

// Problem is one broken rule: Field is the record's field in the setup's JSON names ("scopes[1]",
// "redirect_uris[0]", "jwks.keys[0].alg"), "" for the record as a whole.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("provider: invalid record")
	for _, p := range e.Problems {
		b.WriteString("; ")
		if p.Field != "" {
			b.WriteString(p.Field)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// checkOne validates a setup holding one record of kind ("clients", "resource_servers",
// "trusted_issuers", "peers") as Apply would, and turns the setup's messages (field paths prefixed
// with "kind[0].") into an *InvalidError naming the record's own fields. Other errors (a store
// that failed a lookup) are returned as they are.
func (m *Manager) checkOne(ctx context.Context, kind string, s *Setup) error {
	err := m.p.validateSetup(ctx, s)
	if err == nil {
		return nil
	}
	var lookup error
	var problems []Problem
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		msg, ok := strings.CutPrefix(e.Error(), "provider: setup: ")
		if !ok {
			lookup = errors.Join(lookup, e)
			return
		}
		field, text, found := strings.Cut(msg, ": ")
		if !found {
			problems = append(problems, Problem{Message: msg})
			return
		}
		field = strings.TrimPrefix(strings.TrimPrefix(field, kind+"[0]"), ".")
		problems = append(problems, Problem{Field: field, Message: text})
	}
	walk(err)
	if lookup != nil {
		return lookup
	}
	return &InvalidError{Problems: problems}
}

// invalid is an *InvalidError of one problem.
func invalid(field, format string, args ...any) error {
	return &InvalidError{Problems: []Problem{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// changed logs and emits an admin change.
func (m *Manager) changed(ctx context.Context, action, target, id, by string) {
	m.p.log.LogAttrs(ctx, slog.LevelInfo, "admin change", slog.String("action", action), slog.String("target", target),
		slog.String("id", id), slog.String("by", by))
	m.p.emit(ctx, &AdminChange{At: At{m.p.cfg.Now()}, Action: action, Target: target, ID: id, By: by})
}

// ListClients returns a page of clients (see [storage.Page]) and the cursor of the next.
func (m *Manager) ListClients(ctx context.Context, page storage.Page) ([]storage.Client, string, error) {
	return m.st.ListClients(ctx, page)
}

// Client returns one client, or storage.ErrNotFound.
func (m *Manager) Client(ctx context.Context, id string) (*storage.Client, error) {
	return m.p.store.Client(ctx, id)
}

// usesSecret reports whether a client entry authenticates with a secret.
func usesSecret(sc SetupClient) bool {
	method := sc.authMethod()
	return method == storage.AuthMethodSecretBasic || method == storage.AuthMethodSecretPost
}

// CreateClient registers the client sc describes. A client that authenticates with a secret
// gets a generated one (256 bits), returned here and never again: only its hash is stored;
// sc must not carry client_secret or client_secret_hash. A taken client_id is
// storage.ErrConflict; a record that breaks the setup's rules an *InvalidError. by names who
// asks (the admin token's subject), for the audit event.
func (m *Manager) CreateClient(ctx context.Context, sc SetupClient, by string) (*storage.Client, string, error) {
	if sc.ClientSecret != "" || sc.ClientSecretHash != "" {
		return nil, "", invalid("client_secret", "is generated by the server and shown once; it cannot be chosen")
	}
	var secret string
	if usesSecret(sc) {
		var err error
		if secret, err = GenerateSecret(); err != nil {
			return nil, "", err
		}
		sc.ClientSecret = secret
	}
	if err := m.checkOne(ctx, "clients", &Setup{Clients: []SetupClient{sc}}); err != nil {
		return nil, "", err
	}
	c, err := m.p.clientRecord(ctx, sc)
	if err != nil {
		return nil, "", err
	}
	if err := m.st.CreateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("provider: create client: %w", err)
	}
	m.changed(ctx, "create", "client", c.ID, by)
	stored, err := m.p.store.Client(ctx, c.ID)
	if err != nil {
		return c, secret, nil
	}
	return stored, secret, nil
}

// UpdateClient replaces the registration of the existing client sc.ClientID, keeping its
// secret (and the previous one a rotation keeps). sc must not carry a secret: rotate it with
// RotateClientSecret. A client that moves to a secret method without having a secret gets a
// generated one, returned here once; otherwise the returned secret is "".
func (m *Manager) UpdateClient(ctx context.Context, sc SetupClient, by string) (*storage.Client, string, error) {
	if sc.ClientSecret != "" || sc.ClientSecretHash != "" {
		return nil, "", invalid("client_secret", "cannot be set by an update; rotate it instead")
	}
	old, err := m.p.store.Client(ctx, sc.ClientID)
	if err != nil {
		return nil, "", err
	}
	var secret string
	if usesSecret(sc) {
		if len(old.SecretHash) == 0 {
			if secret, err = GenerateSecret(); err != nil {
				return nil, "", err
			}
			sc.ClientSecret = secret
		} else {
			sc.ClientSecret = strings.Repeat("x", 16) // validation only: the stored hash stays
		}
	}
	if err := m.checkOne(ctx, "clients", &Setup{Clients: []SetupClient{sc}}); err != nil {
		return nil, "", err
	}
	c, err := m.p.clientRecord(ctx, sc)
	if err != nil {
		return nil, "", err
	}
	if usesSecret(sc) && secret == "" {
		c.SecretHash, c.RotatedSecretHashes = old.SecretHash, old.RotatedSecretHashes
	}
	if err := m.st.UpdateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("provider: update client: %w", err)
	}
	m.changed(ctx, "update", "client", c.ID, by)
	stored, err := m.p.store.Client(ctx, c.ID)
	if err != nil {
		return c, secret, nil
	}
	return stored, secret, nil
}

// DeleteClient removes the client and revokes its grants (see [Manager]); it returns how
// many codes and token sessions it deleted.
func (m *Manager) DeleteClient(ctx context.Context, id, by string) (int64, error) {
	if err := m.p.store.DeleteClient(ctx, id); err != nil {
		return 0, err
	}
	n, err := m.st.RevokeClientGrants(ctx, id)
	m.changed(ctx, "delete", "client", id, by)
	if err != nil {
		return n, fmt.Errorf("provider: client %q deleted, but revoking its grants failed (run the delete again): %w", id, err)
	}
	return n, nil
}

// RotateClientSecret gives the client a new generated secret, returned here once. With
// keepPrevious the secret it had stays valid too (until the next rotation), so that its
// deployments can move over; without, it stops working at once.
func (m *Manager) RotateClientSecret(ctx context.Context, id string, keepPrevious bool, by string) (string, error) {
	c, err := m.p.store.Client(ctx, id)
	if err != nil {
		return "", err
	}
	if c.Public || c.GetTokenEndpointAuthMethod() == storage.AuthMethodPrivateKeyJWT || c.GetTokenEndpointAuthMethod() == storage.AuthMethodNone {
		return "", invalid("token_endpoint_auth_method", "%q: the client has no secret to rotate", c.GetTokenEndpointAuthMethod())
	}
	secret, err := GenerateSecret()
	if err != nil {
		return "", err
	}
	h, err := m.p.hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return "", err
	}
	c.RotatedSecretHashes = nil
	if keepPrevious && len(c.SecretHash) > 0 {
		c.RotatedSecretHashes = [][]byte{c.SecretHash}
	}
	c.SecretHash = h
	if err := m.st.UpdateClient(ctx, c); err != nil {
		return "", fmt.Errorf("provider: rotate client secret: %w", err)
	}
	m.changed(ctx, "rotate_secret", "client", id, by)
	return secret, nil
}

// ListResourceServers returns a page of resource servers and the cursor of the next.
func (m *Manager) ListResourceServers(ctx context.Context, page storage.Page) ([]storage.ResourceServer, string, error) {
	return m.st.ListResourceServers(ctx, page)
}

// ResourceServer returns one resource server, or storage.ErrNotFound.
func (m *Manager) ResourceServer(ctx context.Context, identifier string) (*storage.ResourceServer, error) {
	return m.p.store.ResourceServer(ctx, identifier)
}

// SaveResourceServer creates (create true: storage.ErrConflict when it exists) or updates
// (storage.ErrNotFound when it does not) the resource server r describes, with the setup's
// rules; its signing algorithm gets its keys first.
func (m *Manager) SaveResourceServer(ctx context.Context, r SetupResource, create bool, by string) (*storage.ResourceServer, error) {
	if err := m.checkOne(ctx, "resource_servers", &Setup{ResourceServers: []SetupResource{r}}); err != nil {
		return nil, err
	}
	if err := m.p.checkResourcePolicy(ctx, "resource_servers[0]", r); err != nil {
		_, text, _ := strings.Cut(strings.TrimPrefix(err.Error(), "provider: setup: resource_servers[0]."), ": ")
		return nil, invalid("access_token_ttl", "%s", text)
	}
	if err := m.p.ensureKey(ctx, r.SigningAlg); err != nil {
		return nil, invalid("signing_alg", "%q: %v", r.SigningAlg, err)
	}
	rs := r.record()
	action := "update"
	if create {
		action = "create"
		err := m.st.CreateResourceServer(ctx, rs)
		if err != nil {
			return nil, fmt.Errorf("provider: create resource server: %w", err)
		}
	} else if err := m.st.UpdateResourceServer(ctx, rs); err != nil {
		return nil, fmt.Errorf("provider: update resource server: %w", err)
	}
	m.changed(ctx, action, "resource_server", rs.Identifier, by)
	if stored, err := m.p.store.ResourceServer(ctx, rs.Identifier); err == nil {
		return stored, nil
	}
	return rs, nil
}

// DeleteResourceServer removes a resource server (see [Manager]).
func (m *Manager) DeleteResourceServer(ctx context.Context, identifier, by string) error {
	if err := m.p.store.DeleteResourceServer(ctx, identifier); err != nil {
		return err
	}
	m.changed(ctx, "delete", "resource_server", identifier, by)
	return nil
}

// ListTrusts returns a page of trusts and the cursor of the next.
func (m *Manager) ListTrusts(ctx context.Context, page storage.Page) ([]storage.Trust, string, error) {
	return m.st.ListTrusts(ctx, page)
}

// Trust returns one trust, or storage.ErrNotFound.
func (m *Manager) Trust(ctx context.Context, id string) (*storage.Trust, error) {
	return m.st.Trust(ctx, id)
}

// SaveTrust creates (create true) or updates the trust t describes, with the setup's rules.
// Its ID is t.ID, or — as in the setup — "ISSUER SUBJECT" ("ISSUER *" for any subject) when
// empty.
func (m *Manager) SaveTrust(ctx context.Context, t SetupTrust, create bool, by string) (*storage.Trust, error) {
	if err := m.checkOne(ctx, "trusted_issuers", &Setup{TrustedIssuers: []SetupTrust{t}}); err != nil {
		return nil, err
	}
	rec := t.record()
	action := "update"
	if create {
		action = "create"
		if err := m.st.CreateTrust(ctx, rec); err != nil {
			return nil, fmt.Errorf("provider: create trust: %w", err)
		}
	} else if err := m.st.UpdateTrust(ctx, rec); err != nil {
		return nil, fmt.Errorf("provider: update trust: %w", err)
	}
	m.changed(ctx, action, "trusted_issuer", rec.ID, by)
	if stored, err := m.st.Trust(ctx, rec.ID); err == nil {
		return stored, nil
	}
	return rec, nil
}

// DeleteTrust removes a trust (see [Manager]).
func (m *Manager) DeleteTrust(ctx context.Context, id, by string) error {
	if err := m.p.store.DeleteTrust(ctx, id); err != nil {
		return err
	}
	m.changed(ctx, "delete", "trusted_issuer", id, by)
	return nil
}

// Peers lists the peer authorization servers (identity chaining), ordered by issuer. There
// are few: the listing is not paged.
func (m *Manager) Peers(ctx context.Context) ([]storage.Peer, error) {
	return m.p.store.Peers(ctx)
}

// Peer returns one peer by its issuer identifier, or storage.ErrNotFound.
func (m *Manager) Peer(ctx context.Context, issuer string) (*storage.Peer, error) {
	return m.p.store.Peer(ctx, issuer)
}

// SavePeer creates (create true: storage.ErrConflict if the issuer is registered, also when
// another create of it wins a race) or updates (storage.ErrNotFound if it is not) the peer sp
// describes, with the setup's rules; a signing_alg without keys gets them, as in Apply.
func (m *Manager) SavePeer(ctx context.Context, sp SetupPeer, create bool, by string) (*storage.Peer, error) {
	if sp.Issuer == m.p.issuer {
		return nil, invalid("issuer", "%q is this provider's own issuer; a server is not its own peer", sp.Issuer)
	}
	if err := m.checkOne(ctx, "peers", &Setup{Peers: []SetupPeer{sp}}); err != nil {
		return nil, err
	}
	action, write := "update", m.st.UpdatePeer
	if create {
		action, write = "create", m.st.CreatePeer
		// Refused before any key is made for it; CreatePeer decides a race.
		if _, err := m.p.store.Peer(ctx, sp.Issuer); err == nil {
			return nil, fmt.Errorf("provider: create peer: %w", storage.ErrConflict)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	if err := m.p.ensureKey(ctx, sp.SigningAlg); err != nil {
		return nil, invalid("signing_alg", "%q: %v", sp.SigningAlg, err)
	}
	rec := sp.record()
	if err := write(ctx, rec); err != nil {
		return nil, fmt.Errorf("provider: %s peer: %w", action, err)
	}
	m.changed(ctx, action, "peer", rec.Issuer, by)
	if stored, err := m.p.store.Peer(ctx, rec.Issuer); err == nil {
		return stored, nil
	}
	return rec, nil
}

// DeletePeer removes a peer: grants for it are no longer issued (those issued live out their
// minutes at the peer).
func (m *Manager) DeletePeer(ctx context.Context, issuer, by string) error {
	if err := m.p.store.DeletePeer(ctx, issuer); err != nil {
		return err
	}
	m.changed(ctx, "delete", "peer", issuer, by)
	return nil
}

// Revoked is a verify.Config.Revoked for this provider's access tokens: whether introspection
// would call token inactive although it verified — revoked, or its client deleted. c must come
// from a verifier of this issuer (the signature is not checked again). A store that cannot be
// reached returns its error. The admin API asks it about every admin token, so that revoking
// one stops it at once, not when it expires.
func (m *Manager) Revoked(ctx context.Context, token string, c *verify.Claims) (bool, error) {
	claims := map[string]any{"client_id": c.ClientID, "jti": c.ID, "iat": json.Number(strconv.FormatInt(c.IssuedAt.Unix(), 10))}
	live, err := m.p.live(ctx, token, claims)
	return !live, err
}

// KeyInfo describes a signing key without its private part.
type KeyInfo struct {
	ID          string           `json:"kid"`
	Algorithm   string           `json:"alg"`
	State       storage.KeyState `json:"state"`
	CreatedAt   time.Time        `json:"created_at"`
	ActivatesAt time.Time        `json:"activates_at,omitzero"`
	RetiredAt   time.Time        `json:"retired_at,omitzero"`
	RemoveAt    time.Time        `json:"remove_at,omitzero"`
	// Public is the public key as published in the JWKS.
	Public *jose.JSONWebKey `json:"public_key,omitempty"`
}

// Keys lists the stored signing keys (next, current and retired), public parts only.
func (m *Manager) Keys(ctx context.Context) ([]KeyInfo, error) {
	keys, err := m.p.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		info := KeyInfo{ID: k.ID, Algorithm: k.Algorithm, State: k.State, CreatedAt: k.CreatedAt,
			ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt, RemoveAt: k.RemoveAt}
		var pub jose.JSONWebKey
		if json.Unmarshal(k.Public, &pub) == nil && pub.IsPublic() {
			info.Public = &pub
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b KeyInfo) int {
		return strings.Compare(a.Algorithm+string(a.State)+a.ID, b.Algorithm+string(b.State)+b.ID)
	})
	return out, nil
}

// ErrFixedKeys is returned by [Manager.RotateKeys] when Config.Keys supplies the keys: they
// rotate where they come from.
var ErrFixedKeys = errors.New("provider: the signing keys come from Config.Keys and rotate there, not here")

// RotateKeys makes the next key of every algorithm sign now (strategy.RotatingKeys.RotateNow),
// provided it has been published for the JWKS cache lifetime (handlers.JWKSMaxAge); a newer one
// takes over once it has. It returns the kids that sign from now on.
func (m *Manager) RotateKeys(ctx context.Context, by string) ([]string, error) {
	rk, ok := m.p.keys.(*strategy.RotatingKeys)
	if !ok {
		return nil, ErrFixedKeys
	}
	kids, err := rk.RotateNow(ctx, handlers.JWKSMaxAge)
	if err != nil {
		return nil, err
	}
	m.changed(ctx, "rotate_keys", "keys", strings.Join(kids, " "), by)
	return kids, nil
}

// Export returns everything stored as a setup that -config style loading ([LoadSetup],
// [Provider.Apply]) accepts: resource servers, clients (their secrets as the stored hashes,
// which verify only under the same Config.Secret), trusted issuers and peers.
func (m *Manager) Export(ctx context.Context) (*Setup, error) {
	s := &Setup{Issuer: m.p.issuer, ResourceServers: []SetupResource{}, Clients: []SetupClient{}, TrustedIssuers: []SetupTrust{}, Peers: []SetupPeer{}}
	for page := (storage.Page{Limit: storage.MaxPageLimit}); ; {
		list, next, err := m.st.ListResourceServers(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, rs := range list {
			e := SetupResource{Identifier: rs.Identifier, Name: rs.Name, Scopes: nonNilStrings(rs.Scopes), SigningAlg: rs.SigningAlg,
				EncryptionKey: rs.Encryption, Default: rs.Default, DPoPRequired: rs.DPoPRequired}
			if rs.AccessTokenTTL > 0 {
				e.AccessTokenTTL = rs.AccessTokenTTL.String()
			}
			s.ResourceServers = append(s.ResourceServers, e)
		}
		if page.After = next; next == "" {
			break
		}
	}
	for page := (storage.Page{Limit: storage.MaxPageLimit}); ; {
		list, next, err := m.st.ListClients(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			e := SetupClient{ClientID: c.ID, Name: c.Name, Public: c.Public, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
				TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg, GrantTypes: nonNilStrings(c.GrantTypes),
				RedirectURIs: c.RedirectURIs, Scopes: nonNilStrings(c.Scopes), Resources: nonNilStrings(c.Resources), Serves: c.Serves,
				IntrospectAll: c.IntrospectAll, Impersonate: c.Impersonate, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
				JWKS: c.JWKS, JWKSURI: c.JWKSURI,
				ClientSecretHash: string(c.SecretHash)}
			s.Clients = append(s.Clients, e)
		}
		if page.After = next; next == "" {
			break
		}
	}
	for page := (storage.Page{Limit: storage.MaxPageLimit}); ; {
		list, next, err := m.st.ListTrusts(ctx, page)
		if err != nil {
			return nil, err
		}
		for _, t := range list {
			e := SetupTrust{ID: t.ID, Issuer: t.Issuer, Subject: t.Subject, AllowAnySubject: t.AllowAnySubject, JWKS: t.JWKS,
				JWKSURI: t.JWKSURI, JWKSFromMetadata: t.MetadataKeys, Transcribe: nonNilStrings(t.Transcribe),
				Scopes: nonNilStrings(t.Scopes), Resources: nonNilStrings(t.Resources), JTIOptional: t.JTIOptional}
			if !t.ExpiresAt.IsZero() {
				e.ExpiresAt = t.ExpiresAt.UTC().Format(time.RFC3339)
			}
			if t.MaxAssertionLifetime > 0 {
				e.MaxAssertionLifetime = t.MaxAssertionLifetime.String()
			}
			s.TrustedIssuers = append(s.TrustedIssuers, e)
		}
		if page.After = next; next == "" {
			break
		}
	}
	peers, err := m.p.store.Peers(ctx)
	if err != nil {
		return nil, err
	}
	for i := range peers {
		s.Peers = append(s.Peers, PeerSetup(&peers[i]))
	}
	slices.SortFunc(s.ResourceServers, func(a, b SetupResource) int { return strings.Compare(a.Identifier, b.Identifier) })
	slices.SortFunc(s.Clients, func(a, b SetupClient) int { return strings.Compare(a.ClientID, b.ClientID) })
	slices.SortFunc(s.TrustedIssuers, func(a, b SetupTrust) int { return strings.Compare(a.ID, b.ID) })
	return s, nil
}

func nonNilStrings(a []string) []string {
	if a == nil {
		return []string{}
	}
	return a
}

// setupApplied logs and emits a setup that Apply wrote.
func (p *Provider) setupApplied(ctx context.Context, s *Setup) {
	p.log.LogAttrs(ctx, slog.LevelInfo, "setup applied", slog.Int("resource_servers", len(s.ResourceServers)),
		slog.Int("clients", len(s.Clients)), slog.Int("trusted_issuers", len(s.TrustedIssuers)), slog.Int("peers", len(s.Peers)))
	p.emit(ctx, &SetupApplied{At: At{p.cfg.Now()}, ResourceServers: len(s.ResourceServers), Clients: len(s.Clients),
		TrustedIssuers: len(s.TrustedIssuers), Peers: len(s.Peers)})
}

// keysRotated logs, measures and emits a change of the key set (strategy.RotationConfig.OnRotate).
func (p *Provider) keysRotated(before, after []storage.Key) {
	ctx := context.Background()
	was := map[string]storage.KeyState{}
	for _, k := range before {
		was[k.ID] = k.State
	}
	var next, retired, current []storage.Key
	for _, k := range after {
		switch {
		case k.State == storage.KeyCurrent && was[k.ID] != storage.KeyCurrent:
			current = append(current, k)
		case k.State == storage.KeyNext && was[k.ID] != storage.KeyNext:
			next = append(next, k)
		case k.State == storage.KeyRetired && was[k.ID] != storage.KeyRetired:
			retired = append(retired, k)
		}
	}
	p.metrics.rotation(ctx)
	now := p.cfg.Now()
	if len(current) == 0 {
		current = append(current, storage.Key{}) // only next keys added or retired ones dropped
	}
	// kids of keys of alg ("" for every algorithm).
	kids := func(keys []storage.Key, alg string) []string {
		var out []string
		for _, k := range keys {
			if alg == "" || k.Algorithm == alg {
				out = append(out, k.ID)
			}
		}
		return out
	}
	for _, k := range current {
		n, r := kids(next, k.Algorithm), kids(retired, k.Algorithm)
		p.log.LogAttrs(ctx, slog.LevelInfo, "signing keys rotated", slog.String("alg", k.Algorithm), slog.String("kid", k.ID),
			slog.String("next", strings.Join(n, " ")), slog.String("retired", strings.Join(r, " ")))
		p.emit(ctx, &KeyRotated{At: At{now}, Algorithm: k.Algorithm, KeyID: k.ID, Next: n, Retired: r})
	}
}

// partyLive reports whether the party an access token was issued to still stands, for
// introspection: its client_id names a registered client (with stateless access tokens, one
// created no later than the token's iat, give or take the assertion leeway: a client deleted
// and created again does not revive them), or — a jwt-bearer token obtained without client authentication — an issuer that still
// has an unexpired trust. A store that cannot be reached returns its error.
func (p *Provider) partyLive(ctx context.Context, claims map[string]any) (bool, error) {
	cid, _ := claims["client_id"].(string)
	c, err := p.store.Client(ctx, cid)
	switch {
	case err == nil:
		if p.cfg.StatelessAccessTokens && !c.CreatedAt.IsZero() {
			n, _ := claims["iat"].(json.Number)
			// The store's clock stamped CreatedAt, the minting instance's clock iat: the
			// assertion leeway absorbs the difference, as it does between instances elsewhere.
			if iat, err := n.Int64(); err == nil && iat < c.CreatedAt.Add(-p.cfg.AssertionLeeway).Unix() {
				return false, nil
			}
		}
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		trusts, err := p.store.Trusts(ctx, cid)
		if err != nil {
			if unavailable(err) {
				return false, err
			}
			p.log.Error("introspection trust lookup", "error", err.Error())
			return false, nil
		}
		now := p.cfg.Now()
		for _, t := range trusts {
			if t.ExpiresAt.IsZero() || t.ExpiresAt.After(now) {
				return true, nil
			}
		}
		return false, nil
	case unavailable(err):
		return false, err
	}
	p.log.Error("introspection client lookup", "error", err.Error())
	return false, nil
}
