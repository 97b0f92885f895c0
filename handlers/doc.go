// Package handlers holds the protocol pieces mandate adds around fosite: RFC 8707 resource
// indicators (the one funnel every grant goes through to get its audience), RFC 8414
// authorization-server metadata and the JWKS document, and RFC 7523: the jwt-bearer grant
// ([JWTBearer]) and private_key_jwt client authentication ([PrivateKeyJWT]), on one assertion
// verifier ([parseAssertion], [JWTBearer.Verify], [UseAssertion]).
//
// The provider package wires them; applications rarely use this package directly, except to
// compute a metadata URL ([WellKnownPath]) or validate a resource indicator ([ParseIndicator]).
package handlers
