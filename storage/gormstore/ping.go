package gormstore

import (
	"context"
	"time"
)

// Ping implements storage.Pinger: one round trip to the database (a connection of the pool,
// opened if needed), bounded by ctx. An unreachable database is storage.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	db, err := s.db.DB()
	if err != nil {
		return wrap("ping", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return wrap("ping", markUnavailable(db.PingContext(ctx)))
}
