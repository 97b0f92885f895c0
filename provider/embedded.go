package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.opentelemetry.io/otel/metric"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// openEmbedded opens (creating if needed) the embedded SQLite store at dir/mandate.db, its
// group commits measured in mp (nil: not measured).
func openEmbedded(ctx context.Context, dir string, mp metric.MeterProvider) (storage.Store, func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("provider: DataDir: %w", err)
	}
	batches, err := BatchSizeObserver(mp)
	if err != nil {
		return nil, nil, err
	}
	st, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(dir, "mandate.db"), gormstore.WithBatchObserver(batches))
	if err != nil {
		return nil, nil, fmt.Errorf("provider: embedded storage: %w", err)
	}
	return st, st.Close, nil
}
