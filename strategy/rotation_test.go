package strategy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

var testKEK = bytes.Repeat([]byte{0x42}, KEKSize)

func newRotating(t *testing.T, store storage.KeyStore, clock *fakeClock, mutate ...func(*RotationConfig)) *RotatingKeys {
	t.Helper()
	cfg := RotationConfig{
		Store: store, KEK: testKEK, Algorithms: []string{"ES256"},
		Period: 10 * 24 * time.Hour, Propagation: 2 * 24 * time.Hour, Retention: 24 * time.Hour,
		Now: clock.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := NewRotatingKeys(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kids(keys []jose.JSONWebKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KeyID
	}
	return out
}

func stateOf(keys []storage.Key) map[string]storage.KeyState {
	out := map[string]storage.KeyState{}
	for _, k := range keys {
		out[k.ID] = k.State
	}
	return out
}

func signingID(t *testing.T, r *RotatingKeys, alg string) string {
	t.Helper()
	k, err := r.SigningKey(context.Background(), alg)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func TestRotationLifecycle(t *testing.T) {
	clock := newClock()
	t0 := clock.Now()
	store := &memKeyStore{}
	r := newRotating(t, store, clock)
	ctx := context.Background()

	keys, _ := store.snapshot()
	if len(keys) != 2 {
		t.Fatalf("fresh store: %d keys, want current + next", len(keys))
	}
	var a, b storage.Key
	for _, k := range keys {
		switch k.State {
		case storage.KeyCurrent:
			a = k
		case storage.KeyNext:
			b = k
		}
	}
	if a.ID == "" || b.ID == "" || a.Algorithm != "ES256" || b.Algorithm != "ES256" {
		t.Fatalf("fresh store: %+v", stateOf(keys))
	}
	if !a.ActivatesAt.Equal(t0) || !b.ActivatesAt.Equal(t0.Add(10*24*time.Hour)) {
		t.Errorf("activation times %v %v", a.ActivatesAt, b.ActivatesAt)
	}
	if pub, _ := r.PublicKeys(ctx); !slices.Equal(kids(pub), []string{b.ID, a.ID}) {
		t.Errorf("published %v, want next %s then current %s", kids(pub), b.ID, a.ID)
	}
	if got := signingID(t, r, ""); got != a.ID {
		t.Errorf("signs with %s, want current %s", got, a.ID)
	}

	// One second before the next key's activation: nothing changes.
	clock.Set(b.ActivatesAt.Add(-time.Second))
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, w := store.snapshot(); w != 1 {
		t.Errorf("Rotate with nothing due wrote the store (%d writes)", w)
	}
	if got := signingID(t, r, "ES256"); got != a.ID {
		t.Errorf("signs with %s before activation, want %s", got, a.ID)
	}

	// At activation the next key signs, from memory, before anyone rotates the store.
	clock.Set(b.ActivatesAt)
	if got := signingID(t, r, ""); got != b.ID {
		t.Errorf("signs with %s at activation, want %s", got, b.ID)
	}
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ = store.snapshot()
	st := stateOf(keys)
	if st[a.ID] != storage.KeyRetired || st[b.ID] != storage.KeyCurrent || len(keys) != 3 {
		t.Fatalf("after rotation: %v", st)
	}
	var c storage.Key
	for _, k := range keys {
		if k.State == storage.KeyNext {
			c = k
		}
		if k.ID == a.ID && (!k.RetiredAt.Equal(b.ActivatesAt) || !k.RemoveAt.Equal(b.ActivatesAt.Add(24*time.Hour))) {
			t.Errorf("retired key times: retired %v remove %v", k.RetiredAt, k.RemoveAt)
		}
	}
	if !c.ActivatesAt.Equal(b.ActivatesAt.Add(10 * 24 * time.Hour)) {
		t.Errorf("new next activates %v, want %v", c.ActivatesAt, b.ActivatesAt.Add(10*24*time.Hour))
	}
	if pub, _ := r.PublicKeys(ctx); !slices.Equal(kids(pub), []string{c.ID, b.ID, a.ID}) {
		t.Errorf("published %v, want next, current, retired", kids(pub))
	}

	// The retired key stays published for Retention, then leaves.
	clock.Set(b.ActivatesAt.Add(24*time.Hour - time.Second))
	if pub, _ := r.PublicKeys(ctx); !slices.Contains(kids(pub), a.ID) {
		t.Error("retired key unpublished before Retention")
	}
	clock.Set(b.ActivatesAt.Add(24 * time.Hour))
	if pub, _ := r.PublicKeys(ctx); slices.Contains(kids(pub), a.ID) {
		t.Error("retired key still published after Retention")
	}
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ = store.snapshot()
	if _, ok := stateOf(keys)[a.ID]; ok || len(keys) != 2 {
		t.Errorf("retired key not dropped from the store: %v", stateOf(keys))
	}
}

// TestRotationInvariants drives a cluster of two instances through 100 simulated days, one
// hour at a time, and checks the promises every resource server relies on.
func TestRotationInvariants(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		period, propagation, retains time.Duration
	}{
		{"period longer than propagation", 10 * 24 * time.Hour, 2 * 24 * time.Hour, 24 * time.Hour},
		{"propagation longer than period", 24 * time.Hour, 3 * 24 * time.Hour, 12 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			store := &memKeyStore{}
			cfg := func(c *RotationConfig) {
				c.Period, c.Propagation, c.Retention = tc.period, tc.propagation, tc.retains
				c.Algorithms = []string{"EdDSA"}
			}
			r1 := newRotating(t, store, clock, cfg)
			r2 := newRotating(t, store, clock, cfg)
			ctx := context.Background()
			firstPublished := map[string]time.Time{}
			firstSigned := map[string]time.Time{}
			lastSigned := map[string]time.Time{}
			lastPublished := map[string]time.Time{}
			bootstrap := ""
			for step := 0; step < 100*24; step++ {
				now := clock.Now()
				// Alternate which instance runs the background work.
				r := []*RotatingKeys{r1, r2}[step%2]
				if err := r.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if r.due(r.active.Load().keys, now) {
					if err := r.Rotate(ctx); err != nil {
						t.Fatal(err)
					}
				}
				for _, r := range []*RotatingKeys{r1, r2} {
					pub, _ := r.PublicKeys(ctx)
					for _, id := range kids(pub) {
						if _, ok := firstPublished[id]; !ok {
							firstPublished[id] = now
						}
						lastPublished[id] = now
					}
				}
				s1, s2 := signingID(t, r1, ""), signingID(t, r2, "")
				if s1 != s2 {
					t.Fatalf("%v: instances sign with %s and %s", now, s1, s2)
				}
				if bootstrap == "" {
					bootstrap = s1
				}
				if _, ok := firstSigned[s1]; !ok {
					firstSigned[s1] = now
				}
				lastSigned[s1] = now
				if pub, _ := r1.PublicKeys(ctx); !slices.Contains(kids(pub), s1) {
					t.Fatalf("%v: signing key %s not published", now, s1)
				}
				clock.Advance(time.Hour)
			}
			if len(firstSigned) < 4 {
				t.Fatalf("only %d keys signed in 100 days", len(firstSigned))
			}
			for id, signed := range firstSigned {
				if id == bootstrap {
					continue
				}
				if lead := signed.Sub(firstPublished[id]); lead < tc.propagation {
					t.Errorf("key %s published only %v before signing, want >= %v", id, lead, tc.propagation)
				}
			}
			end := clock.Now().Add(-time.Hour)
			for id, last := range lastSigned {
				if lastPublished[id].Equal(end) {
					continue // still published at the end
				}
				if kept := lastPublished[id].Sub(last); kept < tc.retains-time.Hour {
					t.Errorf("key %s unpublished %v after it last signed, want >= %v", id, kept, tc.retains)
				}
				if kept := lastPublished[id].Sub(last); kept > tc.retains+2*time.Hour {
					t.Errorf("key %s kept %v after it last signed, Retention is %v", id, kept, tc.retains)
				}
			}
		})
	}
}

func TestRotationTwoInstancesAgree(t *testing.T) {
	clock := newClock()
	store := &memKeyStore{}
	r1 := newRotating(t, store, clock, func(c *RotationConfig) { c.Algorithms = []string{"ES256", "EdDSA"} })
	r2 := newRotating(t, store, clock, func(c *RotationConfig) { c.Algorithms = []string{"ES256", "EdDSA"} })
	ctx := context.Background()
	if _, w := store.snapshot(); w != 1 {
		t.Errorf("two instances starting on a fresh store wrote it %d times, want 1", w)
	}
	for _, alg := range []string{"", "ES256", "EdDSA"} {
		if a, b := signingID(t, r1, alg), signingID(t, r2, alg); a != b {
			t.Errorf("alg %q: instances sign with %s and %s", alg, a, b)
		}
	}
	if k, _ := r1.SigningKey(ctx, ""); k.Algorithm != jose.ES256 {
		t.Errorf("default algorithm %s, want the first configured (ES256)", k.Algorithm)
	}
	if _, err := r1.SigningKey(ctx, "RS256"); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("unconfigured alg: %v", err)
	}

	// A token signed by one instance validates on the other.
	j1 := newStrategy(t, r1, clock.Now)
	j2 := newStrategy(t, r2, clock.Now)
	sess := &storage.Session{}
	tok, _, err := j1.GenerateAccessToken(withPolicy(ctx, testPolicy), newRequest(sess, "client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.ValidateAccessToken(ctx, newRequest(sess, "client_credentials"), tok); err != nil {
		t.Errorf("token from instance 1 rejected by instance 2: %v", err)
	}

	// Instance 1 rotates; instance 2 agrees after Refresh (and by time even before).
	clock.Advance(10 * 24 * time.Hour)
	if err := r1.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	before := signingID(t, r2, "")
	if err := r2.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	after := signingID(t, r2, "")
	if now := signingID(t, r1, ""); before != now || after != now {
		t.Errorf("instance 1 signs with %s; instance 2 with %s before Refresh, %s after", now, before, after)
	}
	p1, _ := r1.PublicKeys(ctx)
	p2, _ := r2.PublicKeys(ctx)
	if !slices.Equal(kids(p1), kids(p2)) {
		t.Errorf("published sets differ: %v vs %v", kids(p1), kids(p2))
	}
	// The token signed before the rotation still validates with the retired key.
	if err := j2.ValidateAccessToken(ctx, newRequest(sess, "client_credentials"), tok); err != nil && !errors.Is(err, fosite.ErrTokenExpired) {
		t.Errorf("old token: %v", err)
	}
}

func TestRotationConcurrentRotate(t *testing.T) {
	clock := newClock()
	store := &memKeyStore{}
	const n = 4
	var rs []*RotatingKeys
	for range n {
		rs = append(rs, newRotating(t, store, clock))
	}
	keys, writes := store.snapshot()
	clock.Advance(10 * 24 * time.Hour) // the next key is due

	// Make every instance read the same version before any of them writes.
	var reads atomic.Int32
	var gate sync.WaitGroup
	gate.Add(n)
	store.mu.Lock()
	store.beforeUpdate = func() {
		if reads.Add(1) <= n {
			gate.Done()
			gate.Wait()
		}
	}
	store.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Rotate(context.Background())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	after, writesAfter := store.snapshot()
	if writesAfter != writes+1 {
		t.Errorf("%d concurrent rotations wrote %d times, want exactly 1", n, writesAfter-writes)
	}
	var added []string
	old := stateOf(keys)
	for _, k := range after {
		if _, ok := old[k.ID]; !ok {
			added = append(added, k.ID)
		}
	}
	if len(added) != 1 || len(after) != 3 {
		t.Fatalf("rotation added %d keys (%v), store has %d; want exactly one new key and 3 in all", len(added), added, len(after))
	}
	want := signingID(t, rs[0], "")
	for i, r := range rs {
		if got := signingID(t, r, ""); got != want {
			t.Errorf("instance %d signs with %s, instance 0 with %s", i, got, want)
		}
		if pub, _ := r.PublicKeys(context.Background()); !slices.Contains(kids(pub), added[0]) {
			t.Errorf("instance %d does not publish the new next key", i)
		}
	}
}

func TestRotationSealing(t *testing.T) {
	clock := newClock()
	store := &memKeyStore{}
	r := newRotating(t, store, clock, func(c *RotationConfig) { c.Algorithms = []string{"ES256", "EdDSA", "RS256"} })
	keys, _ := store.snapshot()
	if len(keys) != 6 {
		t.Fatalf("%d keys, want 6", len(keys))
	}
	for _, k := range keys {
		priv, err := r.open(k.ID, k.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		var secret []byte
		switch p := priv.(type) {
		case *ecdsa.PrivateKey:
			secret = p.D.Bytes()
		case ed25519.PrivateKey:
			secret = p.Seed()
		default:
			secret = der[len(der)-64:]
		}
		if bytes.Contains(k.Sealed, der) || bytes.Contains(k.Sealed, secret) {
			t.Errorf("key %s: sealed bytes contain the private key", k.ID)
		}
		if strings.Contains(string(k.Public), `"d"`) || strings.Contains(string(k.Public), `"p"`) {
			t.Errorf("key %s: stored public JWK has private members: %s", k.ID, k.Public)
		}
	}

	t.Run("wrong KEK", func(t *testing.T) {
		_, err := NewRotatingKeys(context.Background(), RotationConfig{Store: store, KEK: bytes.Repeat([]byte{1}, KEKSize), Algorithms: []string{"ES256", "EdDSA", "RS256"}, Now: clock.Now})
		if err == nil || !strings.Contains(err.Error(), "wrong key-encryption key") {
			t.Fatalf("error %v, want a clear wrong-KEK error", err)
		}
	})
	t.Run("sealed key moved to another kid", func(t *testing.T) {
		swapped := cloneKeys(keys)
		swapped[0].Sealed, swapped[1].Sealed = swapped[1].Sealed, swapped[0].Sealed
		_, err := NewRotatingKeys(context.Background(), RotationConfig{Store: &memKeyStore{keys: swapped}, KEK: testKEK, Algorithms: []string{"ES256", "EdDSA", "RS256"}, Now: clock.Now})
		if err == nil || !strings.Contains(err.Error(), "cannot open key") {
			t.Fatalf("error %v, want the AAD (kid) check to fail", err)
		}
	})
	t.Run("corrupt stored keys", func(t *testing.T) {
		for name, mutate := range map[string]func(*storage.Key){
			"short sealed":   func(k *storage.Key) { k.Sealed = k.Sealed[:5] },
			"flipped bit":    func(k *storage.Key) { k.Sealed[len(k.Sealed)-1] ^= 1 },
			"bad public":     func(k *storage.Key) { k.Public = []byte("{") },
			"unknown state":  func(k *storage.Key) { k.State = "weird" },
			"HS256":          func(k *storage.Key) { k.Algorithm = "HS256" },
			"public swapped": func(k *storage.Key) { k.Public = keys[1].Public },
		} {
			bad := cloneKeys(keys)
			mutate(&bad[0])
			_, err := NewRotatingKeys(context.Background(), RotationConfig{Store: &memKeyStore{keys: bad}, KEK: testKEK, Algorithms: []string{"ES256", "EdDSA", "RS256"}, Now: clock.Now})
			if err == nil || !strings.HasPrefix(err.Error(), "strategy: ") {
				t.Errorf("%s: error %v", name, err)
			}
		}
	})
	t.Run("refresh keeps working keys on a store error", func(t *testing.T) {
		store.mu.Lock()
		store.failKeys = errors.New("db down")
		store.mu.Unlock()
		defer func() { store.mu.Lock(); store.failKeys = nil; store.mu.Unlock() }()
		before := signingID(t, r, "")
		if err := r.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "db down") {
			t.Fatalf("error %v", err)
		}
		if after := signingID(t, r, ""); after != before {
			t.Errorf("signing key changed after a failed refresh")
		}
	})
}

func TestRotationConfig(t *testing.T) {
	store := &memKeyStore{}
	tests := []struct {
		name string
		cfg  RotationConfig
		want string
	}{
		{"no store", RotationConfig{KEK: testKEK}, "Store"},
		{"no KEK", RotationConfig{Store: store}, "KEK must be 32 bytes, got 0"},
		{"short KEK", RotationConfig{Store: store, KEK: make([]byte, 16)}, "KEK must be 32 bytes"},
		{"HS256", RotationConfig{Store: store, KEK: testKEK, Algorithms: []string{"HS256"}}, `unsupported algorithm "HS256"`},
		{"none", RotationConfig{Store: store, KEK: testKEK, Algorithms: []string{"none"}}, `unsupported algorithm "none"`},
		{"duplicate", RotationConfig{Store: store, KEK: testKEK, Algorithms: []string{"ES256", "ES256"}}, "twice"},
		{"negative period", RotationConfig{Store: store, KEK: testKEK, Period: -1}, "Period is negative"},
		{"negative retention", RotationConfig{Store: store, KEK: testKEK, Retention: -1}, "Retention is negative"},
		{"store error", RotationConfig{Store: &memKeyStore{failKeys: errors.New("db down")}, KEK: testKEK}, "db down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRotatingKeys(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRotatingKeys = %v, %v; want error %q", r, err, tt.want)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		clock := newClock()
		r, err := NewRotatingKeys(context.Background(), RotationConfig{Store: &memKeyStore{}, KEK: testKEK, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if r.period != DefaultPeriod || r.propagation != DefaultPropagation || r.retention != DefaultRetention || r.reload != DefaultReload {
			t.Errorf("defaults: %v %v %v %v", r.period, r.propagation, r.retention, r.reload)
		}
		k, err := r.SigningKey(context.Background(), "")
		if err != nil || k.Algorithm != jose.RS256 {
			t.Errorf("default algorithm: %v %v, want RS256", k, err)
		}
	})

	t.Run("an algorithm another instance keeps is not retired", func(t *testing.T) {
		clock := newClock()
		store := &memKeyStore{}
		newRotating(t, store, clock, func(c *RotationConfig) { c.Algorithms = []string{"ES256", "EdDSA"} })
		r := newRotating(t, store, clock) // ES256 only
		clock.Advance(DefaultPeriod + time.Hour)
		if err := r.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if k, err := r.SigningKey(context.Background(), "EdDSA"); err != nil || k.Algorithm != jose.EdDSA {
			t.Fatalf("EdDSA after a rotation by an instance that does not list it: %v %v", k, err)
		}
	})

	t.Run("Ensure adds an algorithm at run time, for every instance", func(t *testing.T) {
		clock := newClock()
		store := &memKeyStore{}
		r1 := newRotating(t, store, clock) // ES256
		r2 := newRotating(t, store, clock)
		ctx := context.Background()
		if _, err := r1.SigningKey(ctx, "PS256"); !errors.Is(err, ErrNoSigningKey) {
			t.Fatalf("PS256 before Ensure: %v", err)
		}
		if err := r1.Ensure(ctx, "PS256"); err != nil {
			t.Fatal(err)
		}
		if k, err := r1.SigningKey(ctx, "PS256"); err != nil || k.Algorithm != jose.PS256 {
			t.Fatalf("PS256 after Ensure: %v %v", k, err)
		}
		_, writes := store.snapshot()
		if err := r1.Ensure(ctx, "PS256"); err != nil {
			t.Fatal(err)
		}
		if _, w := store.snapshot(); w != writes {
			t.Error("a second Ensure wrote the store again")
		}
		if err := r2.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if k, err := r2.SigningKey(ctx, "PS256"); err != nil || k.Algorithm != jose.PS256 {
			t.Fatalf("the other instance: %v %v", k, err)
		}
		if err := r1.Ensure(ctx, "HS256"); err == nil {
			t.Fatal("Ensure(HS256) accepted")
		}
	})
}

func TestRotationRun(t *testing.T) {
	clock := newClock()
	store := &memKeyStore{}
	var errs atomic.Int32
	r := newRotating(t, store, clock, func(c *RotationConfig) {
		c.Reload = time.Millisecond
		c.OnError = func(error) { errs.Add(1) }
	})
	r2 := newRotating(t, store, clock)
	clock.Advance(10 * 24 * time.Hour)
	if err := r2.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, _ := store.snapshot()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.After(10 * time.Second)
	for {
		keys := r.active.Load().keys
		if fmt.Sprint(stateOf(keys)) == fmt.Sprint(stateOf(want)) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Run did not pick up the rotation: %v vs %v", stateOf(keys), stateOf(want))
		case <-time.After(time.Millisecond):
		}
	}
	store.mu.Lock()
	store.failKeys = errors.New("db down")
	store.mu.Unlock()
	for errs.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("Run did not report the store error")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
}

// watchedKeyStore is a memKeyStore that tells its watchers about every write, as a store shared
// by several instances does (storage.KeyWatcher).
type watchedKeyStore struct {
	memKeyStore
	wmu      sync.Mutex
	watchers map[int]func()
	next     int
}

func (s *watchedKeyStore) UpdateKeys(ctx context.Context, update func([]storage.Key) ([]storage.Key, error)) error {
	err := s.memKeyStore.UpdateKeys(ctx, update)
	if err == nil {
		s.wmu.Lock()
		for _, fn := range s.watchers {
			fn()
		}
		s.wmu.Unlock()
	}
	return err
}

func (s *watchedKeyStore) WatchKeys(changed func()) func() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.watchers == nil {
		s.watchers = map[int]func(){}
	}
	id := s.next
	s.next++
	s.watchers[id] = changed
	return func() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		delete(s.watchers, id)
	}
}

// TestRotationRunWatches: Run re-reads at once when a KeyWatcher store reports a change, long
// before its Reload: another instance's rotation is published here without waiting; Run
// unsubscribes when it ends.
func TestRotationRunWatches(t *testing.T) {
	clock := newClock()
	store := &watchedKeyStore{}
	r := newRotating(t, store, clock, func(c *RotationConfig) { c.Reload = time.Hour })
	other := newRotating(t, store, clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !cond() {
			select {
			case <-deadline:
				t.Fatalf("gave up waiting for %s", what)
			case <-time.After(time.Millisecond):
			}
		}
	}
	waitFor("Run to watch the store", func() bool { store.wmu.Lock(); defer store.wmu.Unlock(); return len(store.watchers) == 1 })
	clock.Advance(10 * 24 * time.Hour)
	if err := other.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, _ := other.PublicKeys(context.Background())
	waitFor("the other instance's rotation to be published here", func() bool {
		got, _ := r.PublicKeys(context.Background())
		return slices.Equal(kids(got), kids(want))
	})
	cancel()
	<-done
	if len(store.watchers) != 0 {
		t.Error("Run still watches the store after it ended")
	}
}
