package storage

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	fstorage "github.com/ory/fosite/storage"
)

// Errors every store returns for the same conditions. Compare with [errors.Is].
var (
	// ErrNotFound reports a record that does not exist. It is fosite.ErrNotFound itself, so
	// fosite's handlers recognise it.
	ErrNotFound = fosite.ErrNotFound
	// ErrConflict reports a create that collides with an existing record, or a lost
	// compare-and-swap that the caller may retry.
	ErrConflict = errors.New("storage: conflict")
	// ErrJTIUsed reports a JWT ID that was already used and has not yet expired.
	ErrJTIUsed = errors.New("storage: jwt id already used")
	// ErrUnavailable reports that the store cannot be reached right now (the database is down,
	// restarting or refusing connections); the caller may retry. A store wraps it around the
	// driver's error, which stays in the chain. Nothing the failed call was to write is
	// committed — except that a commit whose acknowledgement was lost (the connection broke
	// after COMMIT was sent) may have happened after all. The provider answers it with HTTP 503
	// temporarily_unavailable and Retry-After.
	ErrUnavailable = errors.New("storage: unavailable")
)

// Store is everything mandate persists. [github.com/mandate-dev/mandate/storage/gormstore.Store]
// implements it.
type Store interface {
	ClientStore
	ResourceStore
	TokenStore
	KeyStore
	TrustStore
	PeerStore
	JTIStore
	Collector
}

// ClientStore keeps registered OAuth 2.0 clients.
type ClientStore interface {
	// Client returns the client with this id, or ErrNotFound.
	Client(ctx context.Context, id string) (*Client, error)
	// SaveClient creates the client or replaces the one with the same ID.
	SaveClient(ctx context.Context, c *Client) error
	// DeleteClient removes the client; ErrNotFound if there is none.
	DeleteClient(ctx context.Context, id string) error
}

// ResourceStore keeps the registered resource servers (RFC 8707 resource indicators).
type ResourceStore interface {
	// ResourceServer returns the resource server whose Identifier equals identifier exactly,
	// or ErrNotFound.
	ResourceServer(ctx context.Context, identifier string) (*ResourceServer, error)
	// ResourceServers lists every registered resource server, ordered by Identifier.
	ResourceServers(ctx context.Context) ([]ResourceServer, error)
	// SaveResourceServer creates the resource server or replaces the one with the same
	// Identifier. Saving one with Default set clears Default on every other, atomically.
	SaveResourceServer(ctx context.Context, rs *ResourceServer) error
	// DeleteResourceServer removes it; ErrNotFound if there is none.
	DeleteResourceServer(ctx context.Context, identifier string) error
}

// TokenStore keeps authorization codes, access and refresh token sessions and PKCE requests:
// exactly what the fosite handlers mandate composes need (no pushed authorization requests:
// mandate serves no PAR endpoint). Implementations must make
// InvalidateAuthorizeCodeSession and RotateRefreshToken conditional (one of two concurrent
// callers wins, the other gets fosite.ErrSerializationFailure or fosite.ErrInvalidatedAuthorizeCode
// / fosite.ErrInactiveToken), and must return an inactive refresh token's request together with
// fosite.ErrInactiveToken, because fosite's reuse detection reads it.
//
// The session prototype passed to Get methods may be nil (fosite's revocation does that); the
// store then decodes into a fresh [*Session].
type TokenStore interface {
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	fstorage.Transactional
}

// JTITokenWriter is an optional upgrade of a [Store]: an access token's session written in one
// unit with the use of a JWT ID (see [JTIStore.UseJTI]) — the assertion of a jwt-bearer grant
// (RFC 7523) and the token it buys. Both are written or neither: a jti already in use
// (ErrJTIUsed) writes no token, and a token that cannot be written leaves the jti unused, so
// the client can retry with the same assertion. One commit instead of two.
type JTITokenWriter interface {
	CreateAccessTokenSessionUsingJTI(ctx context.Context, signature string, req fosite.Requester, jti string, jtiExpiresAt time.Time) error
}

// AccessTokenChecker is an optional upgrade of a [TokenStore]: whether an access token's
// session still exists (it was issued here and not revoked), without decoding it. The provider
// asks it on the hot paths that only need that answer (introspection of a signed token, a
// token exchange's subject token); a store without it is asked GetAccessTokenSession.
type AccessTokenChecker interface {
	// AccessTokenExists reports whether the access-token session of signature exists.
	AccessTokenExists(ctx context.Context, signature string) (bool, error)
}

// KeyStore keeps the authorization server's signing keys. The whole set is read and written as
// one value so that several instances sharing the store agree on it.
type KeyStore interface {
	// Keys returns the current key set (possibly empty).
	Keys(ctx context.Context) ([]Key, error)
	// UpdateKeys atomically replaces the key set with what update returns for the current one.
	// If another writer changed the set in between, update is called again with the new set
	// (bounded retries, then ErrConflict). If update returns an error, nothing is written and
	// that error is returned.
	UpdateKeys(ctx context.Context, update func(current []Key) ([]Key, error)) error
}

// KeyWatcher is an optional upgrade of a [KeyStore] that several instances share: it tells this
// instance when the key set changes, so that a rotation one instance commits reaches the others'
// published key sets (JWKS) within the store's notice delay rather than at their next periodic
// reload. [github.com/mandate-dev/mandate/strategy.RotatingKeys] reloads on each call.
type KeyWatcher interface {
	// WatchKeys calls changed, on a goroutine of the store's, each time the store learns that
	// the key set has changed, until stop is called; changed is not called after stop returns.
	// changed must not block.
	WatchKeys(changed func()) (stop func())
}

// TrustStore keeps the RFC 7523 §2.1 trust relationships: which issuers' assertions are
// accepted as authorization grants, for which subjects, scopes and resources.
type TrustStore interface {
	// Trusts returns every trust registered for this issuer (subject-specific and
	// any-subject), expired ones included; the caller checks ExpiresAt.
	Trusts(ctx context.Context, issuer string) ([]Trust, error)
	// SaveTrust creates the trust or replaces the one with the same ID.
	SaveTrust(ctx context.Context, t *Trust) error
	// DeleteTrust removes it; ErrNotFound if there is none.
	DeleteTrust(ctx context.Context, id string) error
}

// JTIStore records single-use JWT IDs (RFC 7523 §3 item 7, private_key_jwt assertions).
type JTIStore interface {
	// UseJTI records key as used until expiresAt. It is one atomic operation: of any number of
	// concurrent calls with the same key — from any process sharing the store — exactly one
	// returns nil and the others ErrJTIUsed. A key whose previous use has expired may be used
	// again. Callers namespace the key (for example issuer and jti).
	UseJTI(ctx context.Context, key string, expiresAt time.Time) error
	// JTIUsed reports whether key is recorded and its use has not expired. It changes nothing:
	// the deny list of revoked, unpersisted access tokens reads through it.
	JTIUsed(ctx context.Context, key string) (bool, error)
}

// Collector deletes what has expired.
type Collector interface {
	// DeleteExpired removes authorization codes, token sessions, PKCE requests and JWT
	// IDs that expired before the given time, in batches of at most batch rows (a default when
	// batch <= 0), and returns how many rows it removed. A code or token whose session has no
	// expiry for its kind (fosite leaves the refresh-token expiry unset when refresh tokens never
	// expire) is never removed.
	DeleteExpired(ctx context.Context, before time.Time, batch int) (int64, error)
}
