package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// openEmbedded opens (creating if needed) the embedded SQLite store at dir/mandate.db.
func openEmbedded(ctx context.Context, dir string) (storage.Store, func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("provider: DataDir: %w", err)
	}
	st, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(dir, "mandate.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("provider: embedded storage: %w", err)
	}
	return st, st.Close, nil
}
