//go:build mandate_nosqlite

package gormstore

// Built with the mandate_nosqlite tag, the store links no SQLite driver: a program that stores
// its tokens in PostgreSQL or MySQL does not carry the SQLite runtime (about 20 MB of the
// binary; CONTRIBUTING.md, "Binary size"). Open refuses a sqlite: DSN with errNoSQLite.

import (
	"errors"

	"gorm.io/gorm"
)

// errNoSQLite is Open's error for a sqlite: DSN in a build without SQLite.
var errNoSQLite = errors.New("gormstore: this program was built with the mandate_nosqlite tag: sqlite: DSNs are not available")

func openSQLite(string, *gorm.Config) (*gorm.DB, error) { return nil, errNoSQLite }

// Without the driver no error is SQLite's.
func sqliteUnique(error) bool      { return false }
func sqliteUnavailable(error) bool { return false }
func sqliteRowIDTaken(error) bool  { return false }
