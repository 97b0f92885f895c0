// Package admin is mandate's admin API: an http.Handler that an application mounts where it
// wants (it is never on by default) to manage, as JSON over HTTP, the clients (RFC 7591 client
// metadata names; a generated secret shown once, stored hashed; secret rotation), the resource
// servers, the trusted issuers (RFC 7523), the peer authorization servers of identity chaining
// and the signing keys (list, rotate now) of a [provider.Provider].
//
// It is protected by the provider's own access tokens: the application declares a resource
// server for the admin API (its identifier is [Config.Resource]) with the admin scope
// ([DefaultScope]) and a client allowed to obtain tokens for it; every request must carry such
// a token, which is checked with strategy/verify exactly as any resource server of the issuer
// checks its tokens (RFC 9068 §4: typ, issuer, audience, expiry, signature from the published
// keys). A request without a valid token gets 401 and one without the scope 403, each with an
// RFC 6750 WWW-Authenticate challenge. Verification runs in-process (metadata and keys are
// fetched from the provider's own handlers), so the API works before the server listens and
// needs no route back to itself.
//
// Records are validated with the declarative setup's rules ([provider.Manager]): an invalid
// one is answered 400 with the field named, in this API's JSON names. A secret is returned only
// by the request that generated it (a client's creation, a rotation).
//
// It lives beside the provider, not in it, because it is optional and built on the provider's
// public surface only (Manager, Issuer, the handler) — an application that does not mount it
// does not compile it in.
//
// Routes, below [Config.Prefix] (default /admin):
//
//	GET    /clients[?after=ID&limit=N]        a page of clients: {"items": [...], "next": "ID"}
//	POST   /clients                            create; 201 with client_secret (once)
//	GET    /clients/{client_id}
//	PUT    /clients/{client_id}                replace the metadata (the secret stays)
//	DELETE /clients/{client_id}                delete it and revoke its grants
//	POST   /clients/{client_id}/secret[?keep_previous=true]   rotate; 200 with client_secret (once)
//	GET    /resource-servers, POST /resource-servers
//	GET|PUT|DELETE /resource-servers/{identifier}   (the identifier percent-encoded as one segment)
//	GET    /trusted-issuers, POST /trusted-issuers
//	GET|PUT|DELETE /trusted-issuers/{id}
//	GET    /peers, POST /peers                  every peer ({"items": [...]}: few, not paged); create
//	GET|PUT|DELETE /peers/{issuer}              (the issuer percent-encoded as one segment)
//	GET    /keys                                the signing keys (public parts, states, dates)
//	POST   /keys/rotate                         the next key of every algorithm signs now
package admin
