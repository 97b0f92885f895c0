package strategy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// RotateNow advances the schedule: the next key of every algorithm becomes current now rather
// than at its ActivatesAt, provided it has been published for at least minPublished (pass at
// least the resource servers' JWKS cache lifetime, handlers.JWKSMaxAge: a resource server that
// cached the key set before the key appeared fetches it again within that time — and verify's
// key sets at once, on the unknown kid). A next key published more recently becomes current
// once it has been published that long (Run's next tick after that time). Each algorithm gets a
// new next key, and the replaced current key is retired as in [RotatingKeys.Rotate]. It is one
// compare-and-swap of the stored set, safe from many instances at once.
//
// It returns the kids of the keys that sign from now on (those whose activation is pending are
// not among them).
func (r *RotatingKeys) RotateNow(ctx context.Context, minPublished time.Duration) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var before, result []storage.Key
	err := r.store.UpdateKeys(ctx, func(current []storage.Key) ([]storage.Key, error) {
		now := r.now()
		keys := make([]storage.Key, len(current))
		moved := false
		for i, k := range current {
			keys[i] = k.Clone()
			if k.State != storage.KeyNext {
				continue
			}
			at := k.CreatedAt.Add(minPublished)
			if at.Before(now) {
				at = now
			}
			if at.Before(k.ActivatesAt) {
				keys[i].ActivatesAt, moved = at, true
			}
		}
		next, changed, err := r.advance(keys, now, r.generate)
		if err != nil {
			return nil, err
		}
		if !changed && !moved {
			result = current
			return nil, errNoChange
		}
		before, result = current, next
		return next, nil
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return nil, fmt.Errorf("strategy: rotate keys now: %w", err)
	}
	if err == nil && r.onRotate != nil {
		r.onRotate(before, result)
	}
	if err := r.install(result); err != nil {
		return nil, err
	}
	var signing []string
	for _, k := range result {
		if k.State == storage.KeyCurrent {
			signing = append(signing, k.ID)
		}
	}
	return signing, nil
}
