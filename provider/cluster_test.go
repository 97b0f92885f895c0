package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// postgresDSN returns a DSN for a fresh, empty PostgreSQL database that is dropped after the
// test, or skips (fails under CI=true) when MANDATE_TEST_POSTGRES_DSN is not set.
func postgresDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("MANDATE_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("MANDATE_TEST_POSTGRES_DSN is not set; CI requires the PostgreSQL suite")
		}
		t.Skip("MANDATE_TEST_POSTGRES_DSN not set; skipping the PostgreSQL test")
	}
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("PostgreSQL unreachable: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "mandate_provider_" + hex.EncodeToString(b)
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		if db, err := admin.DB(); err == nil {
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// mysqlDSN returns a DSN for a fresh, empty MariaDB/MySQL database that is dropped after the
// test, or skips (fails under CI=true) when MANDATE_TEST_MYSQL_DSN is not set.
func mysqlDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("MANDATE_TEST_MYSQL_DSN")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("MANDATE_TEST_MYSQL_DSN is not set; CI requires the MariaDB suite")
		}
		t.Skip("MANDATE_TEST_MYSQL_DSN not set; skipping the MariaDB test")
	}
	cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(base, "mysql://"))
	if err != nil {
		t.Fatalf("MANDATE_TEST_MYSQL_DSN: %v", err)
	}
	admin, err := gorm.Open(mysql.Open(cfg.FormatDSN()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("MariaDB unreachable: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "mandate_provider_" + hex.EncodeToString(b)
	if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").Error; err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name)
		if db, err := admin.DB(); err == nil {
			db.Close()
		}
	})
	cfg.DBName = name
	return "mysql://" + cfg.FormatDSN()
}

// openStore opens dsn with gormstore, closed when the test ends.
func openStore(t *testing.T, dsn string, opts ...gormstore.Option) *gormstore.Store {
	t.Helper()
	st, err := gormstore.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// cluster starts n providers of one issuer on the database of dsn, each with its own store
// (its own connection pool, read cache and change feed: storeOpts) and its own loopback
// listener, as n replicas behind a load balancer; config, if set, adjusts instance i's
// configuration. Every instance applies the test setup at start, as every replica of a
// deployment would.
func cluster(t *testing.T, dsn string, n int, storeOpts []gormstore.Option, config func(i int, c *provider.Config)) []*testAS {
	t.Helper()
	secret := testSecret(t)
	out := make([]*testAS, n)
	for i := range out {
		var issuer string
		if i > 0 {
			issuer = out[0].issuer
		}
		var opts []asOption
		if config != nil {
			opts = append(opts, func(c *provider.Config) { config(i, c) })
		}
		out[i] = newASWith(t, openStore(t, dsn, storeOpts...), secret, issuer, opts...)
	}
	return out
}

// replicas starts two providers of one issuer on one fresh PostgreSQL database, each with its
// own connection pool and listener, as two replicas behind a load balancer.
func replicas(t *testing.T) (a, b *testAS) {
	t.Helper()
	cl := cluster(t, postgresDSN(t), 2, nil, nil)
	return cl[0], cl[1]
}

// TestTwoInstancesShareOnePostgres runs two providers on one PostgreSQL database, as two
// replicas would: they agree on the signing keys without talking to each other, and a token
// from either is valid against the other's JWKS and introspection.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	a, b := replicas(t)
	ta := a.clientCredentials("orders:read", orders)
	tb := b.clientCredentials("orders:read", orders)
	// Each token verifies against the other replica's metadata and JWKS.
	ha, _ := b.verifyIndependently(ta, orders)
	hb, _ := a.verifyIndependently(tb, orders)
	if ha["kid"] != hb["kid"] {
		t.Fatalf("replicas sign with different keys: %v vs %v", ha["kid"], hb["kid"])
	}
	// a introspects b's token (the rows are shared).
	_, m := a.post("introspect", url.Values{"token": {tb}}, "rs", "rs-secret-0123456789")
	if m["active"] != true || m["iss"] != a.issuer {
		t.Fatalf("a introspecting b's token: %v", m)
	}
}
