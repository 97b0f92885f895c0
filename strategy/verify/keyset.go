package verify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// KeySet is a set of public signature keys for verifying JWTs other than access tokens — RFC
// 7523 assertions, for instance — with the rules the [Verifier] applies to its own keys: only
// public RSA (2048 bits or more), ECDSA (P-256, P-384, P-521) and Ed25519 keys whose use is
// "sig" or absent; private, symmetric and "enc" keys are never used. A remote KeySet is cached
// like the Verifier's: one fetch at a time shared by all callers, a refetch on an unknown kid
// at most once per MinRefreshInterval, and the last good set kept when a refresh fails.
// It is safe for concurrent use.
type KeySet struct {
	src keySource
}

// KeySetConfig tunes a remote [KeySet]. Every zero field means the default of the [Config]
// field with the same name.
type KeySetConfig struct {
	HTTPClient         *http.Client
	MinRefreshInterval time.Duration
	RefreshInterval    time.Duration
	FetchTimeout       time.Duration
	Logger             *slog.Logger
	Now                func() time.Time
}

// NewStaticKeySet returns a KeySet holding the usable keys of set. Keys that must not be used
// (see [KeySet]) are left out; a set with no usable key is an [ErrConfig] error.
func NewStaticKeySet(set *jose.JSONWebKeySet) (*KeySet, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: no key set", ErrConfig)
	}
	var keys []*jose.JSONWebKey
	for i := range set.Keys {
		k := set.Keys[i]
		if usable(&k) == "" {
			keys = append(keys, &k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: key set holds no usable signature key", ErrConfig)
	}
	return &KeySet{src: staticKeys{newKeySet(keys)}}, nil
}

// NewRemoteKeySet returns a KeySet fetched from jwksURL (an https URL, or http for a loopback
// host). It does no network I/O: the first [KeySet.Key] fetches. ctx's values (not its
// cancellation) are used for every fetch.
func NewRemoteKeySet(ctx context.Context, jwksURL string, cfg KeySetConfig) (*KeySet, error) {
	if err := checkURL(jwksURL); err != nil {
		return nil, fmt.Errorf("%w: JWKS URL: %w", ErrConfig, err)
	}
	return newRemoteKeySet(ctx, "", jwksURL, cfg)
}

// newRemoteKeySet is a KeySet fetched from jwksURL, or from the jwks_uri of issuer's metadata
// when jwksURL is empty.
func newRemoteKeySet(ctx context.Context, issuer, jwksURL string, cfg KeySetConfig) (*KeySet, error) {
	r := &remoteKeys{
		client:      cfg.HTTPClient,
		issuer:      issuer,
		jwksURL:     jwksURL,
		minInterval: cfg.MinRefreshInterval,
		maxInterval: cfg.RefreshInterval,
		timeout:     cfg.FetchTimeout,
		now:         cfg.Now,
		log:         cfg.Logger,
		base:        context.WithoutCancel(ctx),
	}
	if err := r.setDefaults(); err != nil {
		return nil, err
	}
	return &KeySet{src: r}, nil
}

// setDefaults fills the zero fields of r with their documented defaults and checks the
// intervals.
func (r *remoteKeys) setDefaults() error {
	if r.minInterval == 0 {
		r.minInterval = DefaultMinRefreshInterval
	}
	if r.maxInterval == 0 {
		r.maxInterval = DefaultRefreshInterval
	}
	if r.timeout == 0 {
		r.timeout = DefaultFetchTimeout
	}
	if r.minInterval < 0 || r.maxInterval < r.minInterval || r.timeout < 0 {
		return fmt.Errorf("%w: need 0 < MinRefreshInterval <= RefreshInterval and FetchTimeout >= 0", ErrConfig)
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: r.timeout}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return nil
}

// Key returns the key that verifies alg for kid. A kid unknown to the cached set of a remote
// KeySet triggers one (rate-limited, shared) refetch; ctx bounds only that wait. An empty kid
// finds a key only when exactly one key of the set fits alg. Errors wrap [ErrUnknownKey], or
// [ErrKeysUnavailable] when a remote set was never obtained.
func (s *KeySet) Key(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, error) {
	set, err := s.src.current(ctx)
	if err != nil {
		return nil, err
	}
	if k := set.find(kid, alg); k != nil {
		return k, nil
	}
	newer, err := s.src.refresh(ctx, set)
	if newer != set {
		if k := newer.find(kid, alg); k != nil {
			return k, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kid %q (refetch: %w)", ErrUnknownKey, strict.Echo(kid), err)
	}
	return nil, fmt.Errorf("%w: kid %q with alg %q", ErrUnknownKey, strict.Echo(kid), alg)
}
