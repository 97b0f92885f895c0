package strategy

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify"
)

// Defaults of [RotationConfig].
const (
	// DefaultPeriod is how long a key signs before its successor takes over.
	DefaultPeriod = 30 * 24 * time.Hour
	// DefaultPropagation is the least time a next key is published before it signs. Resource
	// servers that cache the JWKS for longer see unknown kids after a rotation.
	DefaultPropagation = 24 * time.Hour
	// DefaultRetention is how long a retired key stays published. It covers access tokens
	// living up to a day; longer TTLs need a longer Retention.
	DefaultRetention = 24 * time.Hour
	// DefaultReload is how often [RotatingKeys.Run] re-reads the store.
	DefaultReload = time.Minute
)

// KEKSize is the length of the key-encryption key, in bytes (AES-256).
const KEKSize = 32

// rsaBits is the size of the RSA keys RotatingKeys generates.
const rsaBits = 2048

// sealVersion prefixes sealed keys so that the format can change later.
const sealVersion = 1

// errNoChange aborts a KeyStore.UpdateKeys whose update has nothing to write.
var errNoChange = errors.New("strategy: key set unchanged")

// errDue stops a dry run of the state machine at the first key it would generate.
var errDue = errors.New("strategy: rotation due")

// RotationConfig configures [NewRotatingKeys]. Zero durations take the defaults; negative ones
// are an error.
type RotationConfig struct {
	// Store keeps the key set; every instance of a cluster shares it. Required.
	Store storage.KeyStore
	// KEK is the key-encryption key: 32 secret bytes under which private keys are sealed
	// (AES-256-GCM) before they reach the store. Every instance needs the same one. Required.
	KEK []byte
	// Algorithms are the JWS algorithms to keep keys for, each with its own life cycle; the
	// first is the default. Default ["RS256"]. Any of [Algorithms]: RS256, PS256 (RSA 2048),
	// ES256, ES384, EdDSA (Ed25519). Algorithms whose keys are already in the store are kept
	// too, and [RotatingKeys.Ensure] adds one at run time: instances of a cluster may list
	// different ones, and none retires another's.
	Algorithms []string
	// Period is how long a key signs before the next one takes over. Default [DefaultPeriod].
	Period time.Duration
	// Propagation is the least time a next key is published before it signs; it must cover
	// the resource servers' JWKS cache window. A next key is created when its predecessor
	// starts signing and takes over after max(Period, Propagation). Default
	// [DefaultPropagation].
	Propagation time.Duration
	// Retention is how long a retired key stays published after it stopped signing; it must be
	// at least the longest access-token TTL plus the resource servers' clock leeway. Default
	// [DefaultRetention].
	Retention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Reload is how often [RotatingKeys.Run] re-reads the store, so that an instance picks up
	// another instance's rotation; with a store that is a [storage.KeyWatcher] it also
	// re-reads as soon as the store reports a change. Default [DefaultReload].
	Reload time.Duration
	// OnError, if set, receives the errors of [RotatingKeys.Run]'s background work (which
	// keeps the keys it has and retries on the next tick). Optional.
	OnError func(error)
	// OnRotate, if set, is told every change of the key set this instance writes (a key
	// became current, a next key was published, retired keys dropped): the set before and
	// after. It runs with the rotation's lock held, so it must return at once. Optional.
	OnRotate func(before, after []storage.Key)
}

// RotatingKeys is a [KeySource] whose keys live in a storage.KeyStore and rotate by
// themselves: for each algorithm one current key signs, one next key is published ahead of
// it, and retired keys stay published until the tokens they signed have expired:
//
//	next ──(ActivatesAt ≥ created + Propagation)──▶ current ──(successor activates)──▶ retired ──(RemoveAt = retired + Retention)──▶ gone
//
// Every instance selects the signing key from its in-memory copy of the set by time (the next
// key signs as soon as its ActivatesAt has passed), so instances that share a store switch
// together without talking to each other; the store's state is advanced by [RotatingKeys.Rotate]
// with a compare-and-swap. Signing never touches the store. Safe for concurrent use.
type RotatingKeys struct {
	store       storage.KeyStore
	aead        cipher.AEAD
	algs        []string
	period      time.Duration
	propagation time.Duration
	retention   time.Duration
	reload      time.Duration
	now         func() time.Time
	onError     func(error)
	onRotate    func(before, after []storage.Key)

	mu     sync.Mutex // serializes Refresh and Rotate; guards cache
	cache  map[string]*loadedKey
	active atomic.Pointer[keySnapshot]
}

var _ KeySource = (*RotatingKeys)(nil)

// loadedKey is a stored key decoded once: its public JWK and, for keys that may sign, the
// opened private key.
type loadedKey struct {
	public  jose.JSONWebKey
	signing *SigningKey
	sealed  []byte
}

// keySnapshot is an immutable view of the key set, swapped atomically.
type keySnapshot struct {
	keys       []storage.Key
	byAlg      map[string]*algKeys
	published  []publishedKey
	defaultAlg string
}

type algKeys struct {
	current  *SigningKey
	next     *SigningKey
	nextFrom time.Time
}

type publishedKey struct {
	jwk      jose.JSONWebKey
	removeAt time.Time
}

// NewRotatingKeys checks cfg, loads the key set from the store and, when the set is empty or a
// transition is due, advances it (creating the first keys on a fresh store) through the
// store's compare-and-swap, so that several instances starting at once agree. A KEK that cannot
// open the stored keys is an error.
func NewRotatingKeys(ctx context.Context, cfg RotationConfig) (*RotatingKeys, error) {
	if cfg.Store == nil {
		return nil, errors.New("strategy: RotationConfig.Store is required")
	}
	if len(cfg.KEK) != KEKSize {
		return nil, fmt.Errorf("strategy: RotationConfig.KEK must be %d bytes, got %d", KEKSize, len(cfg.KEK))
	}
	block, err := aes.NewCipher(cfg.KEK)
	if err != nil {
		return nil, fmt.Errorf("strategy: key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("strategy: key-encryption key: %w", err)
	}
	r := &RotatingKeys{
		store:   cfg.Store,
		aead:    aead,
		algs:    slices.Clone(cfg.Algorithms),
		now:     cfg.Now,
		onError: cfg.OnError,
		cache:   make(map[string]*loadedKey),

		onRotate: cfg.OnRotate,
	}
	if len(r.algs) == 0 {
		r.algs = []string{string(jose.RS256)}
	}
	for i, a := range r.algs {
		if !Supported(a) {
			return nil, fmt.Errorf("strategy: RotationConfig.Algorithms[%d]: unsupported algorithm %q", i, a)
		}
		if slices.Index(r.algs, a) != i {
			return nil, fmt.Errorf("strategy: RotationConfig.Algorithms: %q listed twice", a)
		}
	}
	for _, d := range []struct {
		name string
		in   time.Duration
		def  time.Duration
		out  *time.Duration
	}{
		{"Period", cfg.Period, DefaultPeriod, &r.period},
		{"Propagation", cfg.Propagation, DefaultPropagation, &r.propagation},
		{"Retention", cfg.Retention, DefaultRetention, &r.retention},
		{"Reload", cfg.Reload, DefaultReload, &r.reload},
	} {
		switch {
		case d.in < 0:
			return nil, fmt.Errorf("strategy: RotationConfig.%s is negative", d.name)
		case d.in == 0:
			*d.out = d.def
		default:
			*d.out = d.in
		}
	}
	if r.now == nil {
		r.now = time.Now
	}

	keys, err := r.store.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("strategy: load keys: %w", err)
	}
	if r.due(keys, r.now()) {
		err = r.Rotate(ctx)
	} else {
		r.mu.Lock()
		err = r.install(keys)
		r.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// SigningKey implements [KeySource] from memory: the next key once its ActivatesAt has passed,
// else the current key, for alg ("" is the first configured algorithm).
func (r *RotatingKeys) SigningKey(_ context.Context, alg string) (*SigningKey, error) {
	s := r.active.Load()
	if alg == "" {
		alg = s.defaultAlg
	}
	a := s.byAlg[alg]
	switch {
	case a == nil:
	case a.next != nil && !r.now().Before(a.nextFrom):
		return a.next, nil
	case a.current != nil:
		return a.current, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSigningKey, alg)
}

// PublicKeys implements [KeySource] from memory: next, current and retired keys (those whose
// RemoveAt has not passed), public members only, with kid, use "sig" and alg.
func (r *RotatingKeys) PublicKeys(context.Context) ([]jose.JSONWebKey, error) {
	s := r.active.Load()
	now := r.now()
	out := make([]jose.JSONWebKey, 0, len(s.published))
	for _, p := range s.published {
		if p.removeAt.IsZero() || now.Before(p.removeAt) {
			out = append(out, p.jwk)
		}
	}
	return out, nil
}

// Refresh re-reads the key set from the store, to pick up another instance's rotation. On
// error the keys in memory stay as they were.
func (r *RotatingKeys) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, err := r.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("strategy: refresh keys: %w", err)
	}
	return r.install(keys)
}

// Rotate advances the stored key set now, if anything is due: a next key whose ActivatesAt
// has passed becomes current and the current one retired (RemoveAt = now + Retention); retired
// keys past RemoveAt are dropped; every algorithm gets a current key (at once on a fresh
// store) and a next one; keys of algorithms no longer configured are retired. It is
// idempotent and safe to call from many instances at once: the change is one
// compare-and-swap, and an instance that loses the race re-evaluates the winner's set, finds
// nothing due and writes nothing.
func (r *RotatingKeys) Rotate(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var before, result []storage.Key
	err := r.store.UpdateKeys(ctx, func(current []storage.Key) ([]storage.Key, error) {
		next, changed, err := r.advance(current, r.now(), r.generate)
		if err != nil {
			return nil, err
		}
		if !changed {
			result = current
			return nil, errNoChange
		}
		before, result = current, next
		return next, nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return fmt.Errorf("strategy: rotate keys: %w", err)
	}
	if err == nil && r.onRotate != nil {
		r.onRotate(before, result)
	}
	return r.install(result)
}

// Run re-reads the store every Reload and rotates when a transition is due, until ctx is done.
// A store that implements [storage.KeyWatcher] (gormstore does) also makes it re-read at once
// when the key set changed — typically another instance's rotation — so that every instance
// publishes the same keys within the store's notice delay rather than within Reload. Errors go
// to RotationConfig.OnError; the keys in memory stay usable. The provider runs it in a goroutine.
func (r *RotatingKeys) Run(ctx context.Context) {
	t := time.NewTicker(r.reload)
	defer t.Stop()
	var changed chan struct{}
	if w, ok := r.store.(storage.KeyWatcher); ok {
		changed = make(chan struct{}, 1)
		stop := w.WatchKeys(func() {
			select {
			case changed <- struct{}{}:
			default: // a reload is pending already
			}
		})
		defer stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		err := r.Refresh(ctx)
		if err == nil && r.due(r.active.Load().keys, r.now()) {
			err = r.Rotate(ctx)
		}
		if err != nil && r.onError != nil && ctx.Err() == nil {
			r.onError(err)
		}
	}
}

// due reports whether Rotate would change keys at now.
func (r *RotatingKeys) due(keys []storage.Key, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, changed, err := r.advance(keys, now, func(string, time.Time) (storage.Key, error) {
		return storage.Key{}, errDue
	})
	return changed || errors.Is(err, errDue)
}

// advance is the rotation state machine: it returns the key set as it should be at now, and
// whether that differs from keys. gen creates a key.
func (r *RotatingKeys) advance(keys []storage.Key, now time.Time, gen func(alg string, now time.Time) (storage.Key, error)) ([]storage.Key, bool, error) {
	algs := r.keptFor(keys)
	out := make([]storage.Key, 0, len(keys)+2*len(algs))
	changed := false
	retire := func(k *storage.Key) {
		k.State, k.RetiredAt, k.RemoveAt = storage.KeyRetired, now, now.Add(r.retention)
		changed = true
	}
	for _, k := range keys {
		if k.State == storage.KeyRetired && !now.Before(k.RemoveAt) {
			changed = true // its tokens have expired
			continue
		}
		out = append(out, k.Clone())
	}
	for _, alg := range algs {
		cur, next := -1, -1
		for i := range out {
			if out[i].Algorithm != alg {
				continue
			}
			switch out[i].State {
			case storage.KeyCurrent:
				if cur < 0 || out[i].ActivatesAt.After(out[cur].ActivatesAt) {
					if cur >= 0 {
						retire(&out[cur]) // two current keys: keep the newest
					}
					cur = i
				} else {
					retire(&out[i])
				}
			case storage.KeyNext:
				if next < 0 || out[i].ActivatesAt.Before(out[next].ActivatesAt) {
					next = i
				}
			}
		}
		if next >= 0 && (cur < 0 || !now.Before(out[next].ActivatesAt)) {
			if cur >= 0 {
				retire(&out[cur])
			} else if now.Before(out[next].ActivatesAt) {
				out[next].ActivatesAt = now // nothing signs for alg: no need to wait
			}
			out[next].State = storage.KeyCurrent
			cur, next = next, -1
			changed = true
		}
		if cur < 0 {
			k, err := gen(alg, now)
			if err != nil {
				return nil, false, err
			}
			k.State, k.ActivatesAt = storage.KeyCurrent, now
			out = append(out, k)
			cur = len(out) - 1
			changed = true
		}
		if next < 0 {
			k, err := gen(alg, now)
			if err != nil {
				return nil, false, err
			}
			k.State = storage.KeyNext
			k.ActivatesAt = later(out[cur].ActivatesAt.Add(r.period), now.Add(r.propagation))
			out = append(out, k)
			changed = true
		}
	}
	return out, changed, nil
}

// keptFor returns the algorithms keys are kept for: the configured ones (and those added by
// Ensure), then every other supported algorithm of a current or next key in keys.
func (r *RotatingKeys) keptFor(keys []storage.Key) []string {
	algs := slices.Clone(r.algs)
	for _, k := range keys {
		if (k.State == storage.KeyCurrent || k.State == storage.KeyNext) && Supported(k.Algorithm) && !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	return algs
}

// Ensure makes alg one of the algorithms keys are kept for, and creates its keys now (in the
// store every instance shares) if it has none. The provider calls it for the algorithm of every
// resource server it applies, and when a token is asked for with an algorithm it has no key
// for. An unsupported alg is an error.
func (r *RotatingKeys) Ensure(ctx context.Context, alg string) error {
	if !Supported(alg) {
		return fmt.Errorf("strategy: unsupported algorithm %q (%s)", alg, verify.AlgorithmNames())
	}
	r.mu.Lock()
	if !slices.Contains(r.algs, alg) {
		r.algs = append(r.algs, alg)
	}
	r.mu.Unlock()
	if a := r.active.Load().byAlg[alg]; a != nil && a.current != nil {
		return nil
	}
	return r.Rotate(ctx)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// generate creates a key for alg, sealed under the KEK.
func (r *RotatingKeys) generate(alg string, now time.Time) (storage.Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch jose.SignatureAlgorithm(alg) {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return storage.Key{}, fmt.Errorf("strategy: generate %s key: %w", alg, err)
	}
	sk, err := NewSigningKey("", jose.SignatureAlgorithm(alg), priv)
	if err != nil {
		return storage.Key{}, err
	}
	pub, err := json.Marshal(sk.Public())
	if err != nil {
		return storage.Key{}, fmt.Errorf("strategy: encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.Key{}, fmt.Errorf("strategy: encode private key: %w", err)
	}
	sealed := r.seal(sk.ID, der)
	clear(der)
	return storage.Key{
		ID:        sk.ID,
		Algorithm: alg,
		Public:    pub,
		Sealed:    sealed,
		CreatedAt: now.UTC(),
	}, nil
}

// seal encrypts a PKCS#8 private key: version byte, 12-byte nonce, AES-256-GCM ciphertext,
// with the kid as additional data so that a sealed key cannot be swapped onto another kid.
func (r *RotatingKeys) seal(kid string, der []byte) []byte {
	out := make([]byte, 1+r.aead.NonceSize(), 1+r.aead.NonceSize()+len(der)+r.aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	return r.aead.Seal(out, out[1:], der, []byte(kid))
}

// open reverses seal.
func (r *RotatingKeys) open(kid string, sealed []byte) (crypto.Signer, error) {
	n := r.aead.NonceSize()
	if len(sealed) < 1+n+r.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("strategy: sealed key %q is malformed", kid)
	}
	der, err := r.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("strategy: cannot open key %q: wrong key-encryption key (KEK) or corrupted key", kid)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("strategy: sealed key %q: %w", kid, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("strategy: sealed key %q has type %T, which cannot sign", kid, key)
	}
	return s, nil
}

// install decodes keys and makes them the active snapshot. r.mu must be held.
func (r *RotatingKeys) install(keys []storage.Key) error {
	keys = slices.Clone(keys)
	slices.SortStableFunc(keys, func(a, b storage.Key) int {
		return cmp.Or(
			cmp.Compare(stateRank(a.State), stateRank(b.State)),
			cmp.Compare(algRank(r.algs, a.Algorithm), algRank(r.algs, b.Algorithm)),
			b.ActivatesAt.Compare(a.ActivatesAt),
			cmp.Compare(a.ID, b.ID),
		)
	})
	s := &keySnapshot{byAlg: make(map[string]*algKeys), defaultAlg: r.algs[0]}
	cache := make(map[string]*loadedKey, len(keys))
	for _, k := range keys {
		lk, err := r.load(k)
		if err != nil {
			return err
		}
		cache[k.ID] = lk
		s.keys = append(s.keys, k.Clone())
		s.published = append(s.published, publishedKey{jwk: lk.public, removeAt: k.RemoveAt})
		a := s.byAlg[k.Algorithm]
		if a == nil {
			a = &algKeys{}
			s.byAlg[k.Algorithm] = a
		}
		switch k.State {
		case storage.KeyCurrent:
			if a.current == nil { // sorted: the newest current key comes first
				a.current = lk.signing
			}
		case storage.KeyNext:
			if a.next == nil || k.ActivatesAt.Before(a.nextFrom) {
				a.next, a.nextFrom = lk.signing, k.ActivatesAt
			}
		}
	}
	r.cache = cache
	r.active.Store(s)
	return nil
}

func stateRank(s storage.KeyState) int {
	switch s {
	case storage.KeyNext:
		return 0
	case storage.KeyCurrent:
		return 1
	default:
		return 2
	}
}

func algRank(algs []string, alg string) int {
	if i := slices.Index(algs, alg); i >= 0 {
		return i
	}
	return len(algs)
}

// load decodes one stored key, reusing what was decoded before for the same kid and sealed
// bytes. Keys that may sign (next and current) are opened, and their private half must match
// the stored public key.
func (r *RotatingKeys) load(k storage.Key) (*loadedKey, error) {
	mustSign := k.State == storage.KeyCurrent || k.State == storage.KeyNext
	if lk := r.cache[k.ID]; lk != nil && bytes.Equal(lk.sealed, k.Sealed) && (lk.signing != nil || !mustSign) {
		return lk, nil
	}
	switch k.State {
	case storage.KeyNext, storage.KeyCurrent, storage.KeyRetired:
	default:
		return nil, fmt.Errorf("strategy: stored key %q has unknown state %q", k.ID, k.State)
	}
	alg := jose.SignatureAlgorithm(k.Algorithm)
	if !slices.Contains(algorithms, alg) {
		return nil, fmt.Errorf("strategy: stored key %q has unsupported algorithm %q", k.ID, k.Algorithm)
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(k.Public); err != nil {
		return nil, fmt.Errorf("strategy: stored key %q: public key: %w", k.ID, err)
	}
	pub = pub.Public()
	if pub.Key == nil {
		return nil, fmt.Errorf("strategy: stored key %q: public key is not asymmetric", k.ID)
	}
	if err := checkAlg(alg, pub.Key); err != nil {
		return nil, fmt.Errorf("strategy: stored key %q: %w", k.ID, err)
	}
	pub.KeyID, pub.Algorithm, pub.Use = k.ID, k.Algorithm, "sig"
	lk := &loadedKey{public: pub, sealed: slices.Clone(k.Sealed)}
	if !mustSign {
		return lk, nil
	}
	priv, err := r.open(k.ID, k.Sealed)
	if err != nil {
		return nil, err
	}
	want, err := thumbprint(pub.Key)
	if err != nil {
		return nil, fmt.Errorf("strategy: stored key %q: %w", k.ID, err)
	}
	got, err := thumbprint(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("strategy: stored key %q: %w", k.ID, err)
	}
	if got != want {
		return nil, fmt.Errorf("strategy: stored key %q: private key does not match its public key", k.ID)
	}
	if lk.signing, err = newSigningKey(k.ID, alg, priv); err != nil {
		return nil, fmt.Errorf("strategy: stored key %q: %w", k.ID, err)
	}
	return lk, nil
}
