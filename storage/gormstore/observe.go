package gormstore

// BatchObserver is told the size of every SQLite group commit (see [WithWriteBatch]): the
// number of rows one transaction of the writer committed, 1 for a row written alone. It is
// called on the writer's goroutine, after the commit and before the callers are answered, so it
// must return at once (an OpenTelemetry histogram's Record does).
type BatchObserver func(rows int)

// WithBatchObserver sets the [BatchObserver] of the group-commit writer; nil (the default)
// observes nothing. PostgreSQL and MySQL stores write directly and never call it.
//
// The hook point is groupWriter.committed (writer.go), which the writer calls with the rows of
// each write it made; a writer that batches other databases' writes calls it the same way.
func WithBatchObserver(o BatchObserver) Option {
	return func(s *Store) { s.batchObserver = o }
}
