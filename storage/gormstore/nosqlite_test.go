//go:build mandate_nosqlite

package gormstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestOpenWithoutSQLite: built with mandate_nosqlite, Open refuses a sqlite: DSN with a
// reason, and opens nothing. TestBuildWithoutSQLite runs it.
func TestOpenWithoutSQLite(t *testing.T) {
	s, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "m.db"))
	if !errors.Is(err, errNoSQLite) || s != nil {
		t.Fatalf("Open(sqlite:) = %v, %v; want errNoSQLite", s, err)
	}
}
