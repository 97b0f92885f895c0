package storage

import "context"

// Listing limits for [Page].
const (
	// DefaultPageLimit is the page size of a [Page] whose Limit is zero or negative.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page a store returns, whatever Limit asks for.
	MaxPageLimit = 1000
)

// Page asks for one page of a listing. Listings are paginated by cursor: each record kind is
// listed in an order the store chooses and keeps (gormstore: the SHA-256 of the key, so not
// alphabetical), and a page starts after the record whose key is After. The cursor is the key
// itself, so it stays valid when that record is deleted meanwhile; a record created or deleted
// during a listing may or may not appear in it, every other record appears exactly once.
type Page struct {
	// After is the key (client ID, resource identifier, trust ID) of the last record of the
	// previous page; empty for the first page.
	After string
	// Limit is the most records returned: [DefaultPageLimit] when <= 0, at most [MaxPageLimit].
	Limit int
}

// Size is the page size p asks for, with the defaults and bounds applied.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// ClientManager is the management side of the [ClientStore]: listing, create-only and
// update-only writes, and revoking a client's grants. The admin API and the example's command
// line use it; the token endpoint never does.
type ClientManager interface {
	// ListClients returns one page of clients (see [Page]) and the After of the next page,
	// "" when this page is the last.
	ListClients(ctx context.Context, page Page) ([]Client, string, error)
	// CreateClient stores a new client; ErrConflict if the ID is taken.
	CreateClient(ctx context.Context, c *Client) error
	// UpdateClient replaces an existing client, keeping its CreatedAt; ErrNotFound if there is
	// none.
	UpdateClient(ctx context.Context, c *Client) error
	// RevokeClientGrants deletes every authorization code, access and refresh token session,
	// and PKCE request issued to the client, and returns how many it deleted: its codes
	// and refresh tokens can never be redeemed, and its stored access tokens are inactive at
	// introspection. Rows written concurrently (a token issued while this runs) may survive.
	// Call it after DeleteClient, so that no new grant starts meanwhile.
	RevokeClientGrants(ctx context.Context, clientID string) (int64, error)
}

// ResourceManager is the management side of the [ResourceStore].
type ResourceManager interface {
	// ListResourceServers returns one page of resource servers (see [Page]) and the After of
	// the next page, "" when this page is the last.
	ListResourceServers(ctx context.Context, page Page) ([]ResourceServer, string, error)
	// CreateResourceServer stores a new resource server (clearing Default on every other when
	// it is the default, atomically); ErrConflict if the identifier is taken.
	CreateResourceServer(ctx context.Context, rs *ResourceServer) error
	// UpdateResourceServer replaces an existing resource server, keeping its CreatedAt (and
	// clearing Default on every other when it is the default); ErrNotFound if there is none.
	UpdateResourceServer(ctx context.Context, rs *ResourceServer) error
}

// TrustManager is the management side of the [TrustStore].
type TrustManager interface {
	// Trust returns the trust with this ID, or ErrNotFound.
	Trust(ctx context.Context, id string) (*Trust, error)
	// ListTrusts returns one page of trusts (see [Page]) and the After of the next page, ""
	// when this page is the last.
	ListTrusts(ctx context.Context, page Page) ([]Trust, string, error)
	// CreateTrust stores a new trust (an empty ID is generated and written back to t.ID);
	// ErrConflict if the ID is taken.
	CreateTrust(ctx context.Context, t *Trust) error
	// UpdateTrust replaces an existing trust, keeping its CreatedAt; ErrNotFound if there is
	// none.
	UpdateTrust(ctx context.Context, t *Trust) error
}

// PeerManager is the management side of the [PeerStore]: writes that fail instead of
// replacing, so that of two concurrent creates of one issuer exactly one succeeds.
type PeerManager interface {
	// CreatePeer stores a new peer; ErrConflict if its Issuer is registered.
	CreatePeer(ctx context.Context, p *Peer) error
	// UpdatePeer replaces the peer with the same Issuer, keeping its CreatedAt; ErrNotFound if
	// there is none.
	UpdatePeer(ctx context.Context, p *Peer) error
}

// Manager is every management role: what the admin API and the command line need of a store
// besides [Store]. It is optional: a [Store] without it still serves tokens.
type Manager interface {
	ClientManager
	ResourceManager
	TrustManager
	PeerManager
}

// Pinger is an optional upgrade of a [Store]: whether the database answers, for readiness
// checks. A store without it is asked for its keys instead.
type Pinger interface {
	// Ping makes one round trip to the database; an unreachable one is ErrUnavailable.
	Ping(ctx context.Context) error
}
