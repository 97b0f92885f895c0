// Package storagetest is the conformance suite for [storage.Store] implementations. Every store
// — mandate's own gormstore or an application's — proves itself by calling [Run] from a test:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			s := mystore.New(...) // empty, private to t
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite covers every method, the error values fosite branches on
// (fosite.ErrNotFound, fosite.ErrInvalidatedAuthorizeCode and fosite.ErrInactiveToken returned
// together with the request, fosite.ErrSerializationFailure), nil session prototypes, UTC times,
// aliasing, garbage collection (sessions without an expiry are kept), transactions (every write
// method runs in the caller's transaction: rolled back it leaves nothing, committed it keeps
// everything), hostile input in every identifier, list, signature and session field, and
// races: of many concurrent
// callers of InvalidateAuthorizeCodeSession, RotateRefreshToken, UseJTI and UpdateKeys exactly
// the right number win, concurrent token creates are all stored (one winner per signature),
// and the test fails otherwise.
//
// Times are compared as instants ([time.Time.Equal]) and must come back in UTC.
package storagetest
