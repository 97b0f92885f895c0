package dpop

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Nonces are a server's DPoP nonces (RFC 9449 §8) without state: a nonce is a time window and
// its HMAC under a key, so every instance that shares the key issues and accepts the same ones,
// and none is stored. A nonce is accepted in the window it was issued in and the next, so it
// lives between one and two periods. It is safe for concurrent use.
type Nonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

// DefaultNoncePeriod is the period of [NewNonces] when it is given none.
const DefaultNoncePeriod = 5 * time.Minute

// NewNonces returns nonces keyed by key (at least 32 bytes, the same on every instance) that
// rotate every period (zero means [DefaultNoncePeriod]); now nil means time.Now.
func NewNonces(key []byte, period time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: the nonce key must be at least 32 bytes")
	}
	if period <= 0 {
		period = DefaultNoncePeriod
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), period: period, now: now}, nil
}

func (n *Nonces) window(t time.Time) uint64 { return uint64(t.UnixNano() / int64(n.period)) }

func (n *Nonces) make(w uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], w)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("dpop-nonce"))
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Current is the nonce to hand out now (in a DPoP-Nonce header).
func (n *Nonces) Current() string { return n.make(n.window(n.now())) }

// Valid reports whether nonce was issued in this window or the one before.
func (n *Nonces) Valid(nonce string) bool {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 {
		return false
	}
	w := binary.BigEndian.Uint64(b[:8])
	cur := n.window(n.now())
	if w != cur && w+1 != cur {
		return false
	}
	return hmac.Equal([]byte(nonce), []byte(n.make(w)))
}

// MemoryReplay is a [Replay] in memory, for one resource server process: a bounded set of
// keys, each forgotten when its time is up. When it is full of live keys it refuses new ones
// with [ErrReplayFull]: a replay cache must fail closed. It is safe for concurrent use.
type MemoryReplay struct {
	max   int
	now   func() time.Time
	mu    sync.Mutex
	seen  map[string]*list.Element
	order *list.List // of *entry, oldest first
}

type entry struct {
	key   string
	until time.Time
}

// ErrReplayFull is a [MemoryReplay] full of proofs that are still live: the proof is refused
// (the cache fails closed) and the server is overloaded rather than the client wrong.
var ErrReplayFull = errors.New("dpop: the replay cache is full")

// DefaultReplaySize is [NewMemoryReplay]'s size when it is given none: at the default maximum
// proof age, about 8,000 proofs a second.
const DefaultReplaySize = 1 << 20

// NewMemoryReplay returns a replay cache of at most max keys (zero: [DefaultReplaySize]); now
// nil means time.Now.
func NewMemoryReplay(max int, now func() time.Time) *MemoryReplay {
	if max <= 0 {
		max = DefaultReplaySize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplay{max: max, now: now, seen: make(map[string]*list.Element), order: list.New()}
}

// Use implements [Replay].
func (m *MemoryReplay) Use(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Forget what has expired (keys go in roughly in the order they expire).
	for e := m.order.Front(); e != nil; {
		en := e.Value.(*entry)
		if en.until.After(now) {
			break
		}
		next := e.Next()
		m.order.Remove(e)
		delete(m.seen, en.key)
		e = next
	}
	if e, ok := m.seen[key]; ok && e.Value.(*entry).until.After(now) {
		return false, nil
	}
	if len(m.seen) >= m.max {
		return false, ErrReplayFull
	}
	m.seen[key] = m.order.PushBack(&entry{key: key, until: until})
	return true, nil
}

// Len is the number of keys remembered.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
