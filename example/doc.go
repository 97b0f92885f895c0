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
//
// Without -config the example loads a built-in demo: one resource server (the demo resource
// server itself) and a client_credentials client whose secret it prints, with a curl command.
package main
