package gormstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "mandate")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(dir, "mandate.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.SaveClient(ctx, &storage.Client{ID: "orders-service", Scopes: []string{"orders:read"}}); err != nil {
		log.Fatal(err)
	}
	c, err := s.Client(ctx, "orders-service")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ID, c.Scopes)

	// A JWT ID is accepted once.
	exp := time.Now().Add(time.Minute)
	fmt.Println(s.UseJTI(ctx, "https://issuer.example|jti-1", exp))
	fmt.Println(s.UseJTI(ctx, "https://issuer.example|jti-1", exp))
	// Output:
	// orders-service [orders:read]
	// <nil>
	// storage: jwt id already used
}
