// Command example runs a mandate authorization server with embedded SQLite, and next to it a
// demo resource server that validates the access tokens locally, from the authorization
// server's published metadata and keys.
//
//	go run ./example                      # AS on 127.0.0.1:9400, resource server on 127.0.0.1:9401
//	go run ./example -config mandate.json # declare resource servers, clients and trusts
//
// Flags:
//
//	-addr    listen address of the authorization server (default 127.0.0.1:9400)
//	-issuer  issuer identifier (default http://ADDR, or the config file's "issuer")
//	-data    data directory: SQLite database, master secret, demo client secret (default ./mandate-data)
//	-db      storage DSN: sqlite:PATH, postgres://…, mysql://… (default sqlite:DATA/mandate.db)
//	-config  declarative JSON configuration, re-applied on every start (create or update)
//	-rs-addr listen address of the demo resource server (default 127.0.0.1:9401; "" disables it)
//	-stateless do not persist access tokens (provider.Config.StatelessAccessTokens)
//	-admin   mount the admin API at /admin (its resource server ISSUER/admin, scope mandate:admin,
//	         is created on start); /healthz, /readyz and /metrics (Prometheus) are always served
//	-partner the resource identifier of a service in the configuration's peer trust domain:
//	         the demo resource server calls its /orders at /orders/partner on behalf of its
//	         caller (identity chaining across domains; see partner.go)
//
// The example runs as either of two trust domains from its configuration (the README has
// both files): domain X declares its resource server B, B's client and domain Y as a peer;
// domain Y trusts X's issuer, keyed to X's metadata, for its service C.
//
//	go run ./example -config x.json -partner http://127.0.0.1:9501/
//	go run ./example -config y.json -addr 127.0.0.1:9500 -rs-addr 127.0.0.1:9501 -data y-data
//
// Commands manage the store the server uses, directly (the same -data, -db and -issuer flags);
// a store they cannot open is refused and nothing is changed:
//
//	go run ./example clients create -id ops -grant client_credentials -scope mandate:admin -resource http://127.0.0.1:9400/admin
//	go run ./example clients list | delete ID | rotate-secret [-keep-previous] ID
//	go run ./example resources list | create -id URL -scope S … | delete URL
//	go run ./example trusts list | delete ID
//	go run ./example peers list | delete ISSUER
//	go run ./example keys list | rotate
//	go run ./example setup export > mandate.json    # what -config accepts
//
// Without -config the example loads a built-in demo: one resource server (the demo resource
// server itself) and a client_credentials client whose secret it prints, with a curl command.
package main
