package provider

import (
	"context"
	"errors"

	"github.com/mandate-dev/mandate/storage"
)

// openEmbedded opens the embedded SQLite store in dir.
func openEmbedded(ctx context.Context, dir string) (storage.Store, func() error, error) {
	_ = ctx
	_ = dir
	return nil, nil, errors.New("provider: embedded storage not wired yet")
}
