package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

const (
	// maxJWKSSize bounds the JWKS and metadata documents read from the network.
	maxJWKSSize = 512 << 10
	// initialRetry is the shortest gap between two attempts to fetch the first key set, so that
	// a verifier started while the authorization server is down recovers quickly once it is up
	// without sending it a request per incoming token.
	initialRetry = time.Second
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
	minRSABits = 2048
)

// keySet is an immutable set of usable public verification keys.
type keySet struct {
	byKID map[string][]*jose.JSONWebKey
	all   []*jose.JSONWebKey
}

// find returns the key that verifies alg for kid. A token without kid is accepted only when
// exactly one key of the set fits alg: with one signing key there is nothing to choose; with
// several the token must say which.
func (s *keySet) find(kid string, alg jose.SignatureAlgorithm) *jose.JSONWebKey {
	if s == nil {
		return nil
	}
	if kid != "" {
		for _, k := range s.byKID[kid] {
			if fits(k, alg) {
				return k
			}
		}
		return nil
	}
	var found *jose.JSONWebKey
	for _, k := range s.all {
		if fits(k, alg) {
			if found != nil {
				return nil
			}
			found = k
		}
	}
	return found
}

// fits reports whether k can verify signatures made with alg: the key type and curve match the
// algorithm family and the JWK's own alg, if set, equals alg.
func fits(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		case jose.ES512:
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// usable reports why k must not be used for verification, or "" when it may: only public
// asymmetric signature keys of sound size are kept. Private and symmetric keys published in a
// JWKS are never used (a JWKS is public; such a key is a leak or an attack).
func usable(k *jose.JSONWebKey) string {
	if k.Use != "" && k.Use != "sig" {
		return "use is not sig"
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key.N == nil || key.N.BitLen() < minRSABits {
			return "RSA key shorter than 2048 bits"
		}
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() && key.Curve != elliptic.P384() && key.Curve != elliptic.P521() {
			return "unsupported curve"
		}
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return "bad Ed25519 key"
		}
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return "private key"
	case []byte:
		return "symmetric key"
	default:
		return "unsupported key type"
	}
	return ""
}

// newKeySet builds a keySet from keys that already passed usable.
func newKeySet(keys []*jose.JSONWebKey) *keySet {
	s := &keySet{byKID: make(map[string][]*jose.JSONWebKey, len(keys)), all: keys}
	for _, k := range keys {
		s.byKID[k.KeyID] = append(s.byKID[k.KeyID], k)
	}
	return s
}

// parseKeySet parses a JWKS document (RFC 7517 §5). Keys that cannot be parsed or must not be
// used are skipped (and logged), as RFC 7517 §5 asks; a document with no usable key is an error.
func parseKeySet(body []byte, log *slog.Logger) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	// Strict: a key (or the key list) given twice would leave the choice to the decoder.
	if err := strict.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("verify: JWKS is not valid JSON: %w", err)
	}
	var keys []*jose.JSONWebKey
	for i, raw := range doc.Keys {
		k := new(jose.JSONWebKey)
		if err := k.UnmarshalJSON(raw); err != nil {
			log.Warn("verify: skipping JWKS key that does not parse", "index", i, "err", err)
			continue
		}
		if why := usable(k); why != "" {
			log.Warn("verify: skipping JWKS key", "index", i, "kid", k.KeyID, "reason", why)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("verify: JWKS holds no usable signature key")
	}
	return newKeySet(keys), nil
}

// keySource gives the verifier its keys.
type keySource interface {
	// current returns the key set to use now. It never does network I/O when a set is cached.
	current(ctx context.Context) (*keySet, error)
	// refresh is called when seen has no key for a token's kid. It returns a newer set if one
	// could be obtained, else seen.
	refresh(ctx context.Context, seen *keySet) (*keySet, error)
}

// staticKeys is a fixed key set (Config.Keys).
type staticKeys struct{ set *keySet }

func (s staticKeys) current(context.Context) (*keySet, error)          { return s.set, nil }
func (s staticKeys) refresh(context.Context, *keySet) (*keySet, error) { return s.set, nil }

// remoteKeys is a JWKS fetched over HTTP and cached. Readers load the current set with one
// atomic load; every fetch runs in its own goroutine, one at a time, and callers that need it
// wait for that single fetch (single flight).
type remoteKeys struct {
	client      *http.Client
	issuer      string // for discovery; "" when jwksURL was configured
	minInterval time.Duration
	maxInterval time.Duration
	timeout     time.Duration
	now         func() time.Time
	log         *slog.Logger
	base        context.Context // values of New's context, never cancelled

	set       atomic.Pointer[keySet]
	refreshAt atomic.Int64 // UnixNano after which the next use starts a background refresh

	mu         sync.Mutex
	jwksURL    string     // configured, or found by discovery
	inflight   *fetchCall // the fetch running now, if any
	lastForced time.Time  // start of the last refetch triggered by an unknown kid
	lastFail   time.Time  // end of the last failed fetch
	lastErr    error
}

type fetchCall struct {
	done chan struct{}
	set  *keySet
	err  error
}

func (r *remoteKeys) current(ctx context.Context) (*keySet, error) {
	if s := r.set.Load(); s != nil {
		if r.now().UnixNano() >= r.refreshAt.Load() {
			r.mu.Lock()
			if r.inflight == nil && r.now().UnixNano() >= r.refreshAt.Load() {
				// Push the deadline out while the fetch runs, so that readers stop taking the
				// lock; the fetch sets the real one when it ends.
				r.refreshAt.Store(r.now().Add(r.minInterval).UnixNano())
				r.start()
			}
			r.mu.Unlock()
		}
		return s, nil
	}
	// No set yet: the first fetch failed or never ran (lazy start).
	r.mu.Lock()
	if s := r.set.Load(); s != nil {
		r.mu.Unlock()
		return s, nil
	}
	c := r.inflight
	if c == nil {
		if !r.lastFail.IsZero() && r.now().Sub(r.lastFail) < min(initialRetry, r.minInterval) {
			err := r.lastErr
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
		}
		c = r.start()
	}
	r.mu.Unlock()
	s, err := r.wait(ctx, c)
	if s == nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	return s, nil
}

func (r *remoteKeys) refresh(ctx context.Context, seen *keySet) (*keySet, error) {
	r.mu.Lock()
	if s := r.set.Load(); s != seen {
		r.mu.Unlock() // someone refreshed since the caller looked
		return s, nil
	}
	c := r.inflight
	if c == nil {
		now := r.now()
		if !r.lastForced.IsZero() && now.Sub(r.lastForced) < r.minInterval {
			r.mu.Unlock() // rate-limited: a flood of unknown kids cannot hammer the issuer
			return seen, nil
		}
		r.lastForced = now
		c = r.start()
	}
	r.mu.Unlock()
	s, err := r.wait(ctx, c)
	if s == nil {
		return seen, err
	}
	return s, nil
}

// wait waits for c or for ctx; the fetch itself is never cancelled by one caller's ctx.
func (r *remoteKeys) wait(ctx context.Context, c *fetchCall) (*keySet, error) {
	select {
	case <-c.done:
		if c.err != nil {
			return r.set.Load(), c.err
		}
		return c.set, nil
	case <-ctx.Done():
		return r.set.Load(), ctx.Err()
	}
}

// start begins a fetch. r.mu must be held and no fetch running.
func (r *remoteKeys) start() *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	r.inflight = c
	go r.run(c)
	return c
}

func (r *remoteKeys) run(c *fetchCall) {
	ctx, cancel := context.WithTimeout(r.base, r.timeout)
	defer cancel()
	s, ttl, err := r.fetch(ctx)
	r.mu.Lock()
	now := r.now()
	if err != nil {
		// Keep the last good set; try again after the minimum interval.
		r.lastFail, r.lastErr = now, err
		r.refreshAt.Store(now.Add(r.minInterval).UnixNano())
		c.err = err
		r.log.Warn("verify: key set refresh failed; keeping the cached keys", "err", err)
	} else {
		r.set.Store(s)
		r.refreshAt.Store(now.Add(ttl).UnixNano())
		r.lastFail, r.lastErr = time.Time{}, nil
		c.set = s
	}
	r.inflight = nil
	r.mu.Unlock()
	close(c.done)
}

// fetch discovers the JWKS location if needed, then fetches and parses the key set.
func (r *remoteKeys) fetch(ctx context.Context) (*keySet, time.Duration, error) {
	r.mu.Lock()
	jwksURL := r.jwksURL
	r.mu.Unlock()
	if jwksURL == "" {
		u, err := discover(ctx, r.client, r.issuer)
		if err != nil {
			return nil, 0, err
		}
		r.mu.Lock()
		r.jwksURL = u
		r.mu.Unlock()
		jwksURL = u
	}
	body, header, err := get(ctx, r.client, jwksURL)
	if err != nil {
		return nil, 0, fmt.Errorf("verify: fetch JWKS: %w", err)
	}
	s, err := parseKeySet(body, r.log)
	if err != nil {
		return nil, 0, err
	}
	return s, cacheTTL(header.Get("Cache-Control"), r.minInterval, r.maxInterval), nil
}

// maxRedirects bounds the redirects a metadata or JWKS fetch follows.
const maxRedirects = 3

// get fetches u and returns a body of at most maxJWKSSize bytes from a 200 response. Every
// redirect is checked like the first URL ([strict.FetchURL]: https, or http to a loopback
// host), may not leave https for http, and at most maxRedirects are followed: the rule on the
// configured URL would mean little if a redirect could take the fetch anywhere.
func get(ctx context.Context, client *http.Client, u string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	c := *client // the caller's transport and timeout, with the redirect rule on top
	c.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		if err := strict.FetchURL(next.URL.String()); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if via[len(via)-1].URL.Scheme == "https" && next.URL.Scheme != "https" {
			return errors.New("redirect from https to http refused")
		}
		if client.CheckRedirect != nil {
			return client.CheckRedirect(next, via)
		}
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxJWKSSize {
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", u, maxJWKSSize)
	}
	return body, resp.Header, nil
}

// cacheTTL returns how long a fetched key set is used before a background refresh: the
// Cache-Control max-age, bounded to [lo, hi]; hi when there is none. no-cache and no-store
// give lo: the issuer asked for fresh keys, but never more often than the minimum interval.
func cacheTTL(cc string, lo, hi time.Duration) time.Duration {
	ttl := hi
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-cache", "no-store":
			return lo
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			if n > int64(hi/time.Second) {
				ttl = hi
			} else {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return max(lo, min(ttl, hi))
}

// checkURL is the one fetch rule of [strict.FetchURL]: https, or http to a loopback host.
func checkURL(s string) error { return strict.FetchURL(s) }

// wellKnownURL inserts /.well-known/{name} between the host and the path of id, as RFC 8414 §3.1
// and RFC 9728 §3.1 prescribe: https://h/p → https://h/.well-known/{name}/p. A terminating "/"
// of the path is removed first; the query, if any, is kept.
func wellKnownURL(id, name string) (string, error) {
	u, err := url.Parse(id)
	if err != nil {
		return "", fmt.Errorf("verify: %q is not a URL: %w", strict.Echo(id), err)
	}
	if u.Scheme == "" || u.Host == "" || u.Fragment != "" {
		return "", fmt.Errorf("verify: %q is not an absolute URL without fragment", strict.Echo(id))
	}
	w := *u
	w.Path, w.RawPath = insertWellKnown(u.Path, name), ""
	if u.RawPath != "" {
		w.RawPath = insertWellKnown(u.RawPath, name)
	}
	return w.String(), nil
}

func insertWellKnown(p, name string) string {
	return "/.well-known/" + name + strings.TrimSuffix(p, "/")
}
