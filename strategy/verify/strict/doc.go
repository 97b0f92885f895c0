// Package strict holds the rules mandate applies to everything that arrives from outside and
// is parsed before anybody trusts it: JWTs (assertions, access tokens presented for
// introspection, resource-server tokens), JWKS and metadata documents, and the URLs keys are
// fetched from. Each rule is written once, here, and used by the authorization server and by
// the resource-server verifier alike.
//
//   - [Segment]: base64url segments of a compact JWS or JWE in their canonical form only
//     (RFC 7515 §2 and RFC 4648 §5, no padding, no white space, unused bits zero), so that one
//     signed content has exactly one encoding and a replay key derived from it cannot be
//     dodged by re-encoding.
//
//   - [Unmarshal]: JSON decoding that refuses a member name twice in any object, and a member
//     whose name differs from a field of the target only in case — encoding/json would
//     otherwise keep the last duplicate and match names case-insensitively, so that a signed
//     {"sub":"user-123","Sub":"admin"} reads as sub=admin.
//
//   - [LoopbackHost] and [FetchURL]: https everywhere, plain http only for a host that is
//     "localhost" or a loopback IP address, parsed as one (never a name that merely starts
//     with "127.").
//
//   - [Echo]: the bounded, printable form of a value quoted back in an error description.
//
//   - [Algorithms]: the one list of JWS algorithms mandate signs with and accepts.
//
// The package imports only the standard library and go-jose (for the algorithm names), so that
// strategy/verify, which a resource server imports, stays free of everything else.
package strict
