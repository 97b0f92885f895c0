// Command load drives an authorization server's token endpoint with client_credentials requests
// over HTTP and reports tokens per second, latency percentiles, errors by status, a verified
// sample of the tokens and, optionally, the target process's resident memory over the run.
// It talks to loopback addresses only, and every run is bounded in count (-n) and time (-d).
//
//	go build -o /tmp/mandate-example ./example && /tmp/mandate-example -data /tmp/m &
//	go run ./example/load -url http://127.0.0.1:9400/token -client demo-client \
//	    -secret "$(cat /tmp/m/demo-client.secret)" -resource http://127.0.0.1:9401/ \
//	    -scope orders:read -c 16 -d 20s -verify 100 -pid $!
//
// Each client sends its requests on one keep-alive connection of its own, through a minimal
// HTTP/1.1 client that builds the request's bytes once and reads the response (Content-Length
// or chunked) on the client's goroutine; -nethttp uses net/http's client instead. The load
// generator runs on one core's worth of Go scheduler (-procs 1) so that, on a machine it shares
// with the server, it takes as little as it can of the server's CPU; -procs 0 lifts that. On
// Linux its threads run under SCHED_BATCH during load (-sched batch, the default): they get
// their fair share of the CPU, but a response that wakes the load generator does not preempt
// the server in the middle of a signature, as a woken SCHED_OTHER thread does; -sched normal
// keeps the ordinary policy.
//
// -vs-sign ALG sets the run beside the machine's bare signing rate: it cuts -d into -slices
// turns of load, each followed (and the first preceded) by a turn of bare ALG signatures on
// every core in this process while the server idles, and reports each load turn's tokens/s
// against the signing turns around it, and their median. On a shared machine whose speed
// drifts, that pairs every figure with the machine of the same moment:
//
//	go run ./example/load -url … -c 16 -d 30s -vs-sign RS256
//
// -vs-url URL does the same against a second token endpoint (a baseline; -vs-client and
// -vs-secret when its client differs): turns on -url and on URL alternate in the order ABBA,
// and each pair's tokens/s ratio is reported, with the median:
//
//	go run ./example/load -url http://127.0.0.1:9400/token … -d 30s \
//	    -vs-url http://127.0.0.1:9500/oauth2/token -vs-secret S
//
// -url (and -vs-url) may list several instances' token endpoints, separated by commas: client i
// keeps its connection to endpoint i mod n for the run, as a round-robin load balancer spreads
// connections, and the report counts each endpoint's tokens. Two instances against one, on one
// database, turn by turn:
//
//	go run ./example/load -url http://127.0.0.1:9620/token,http://127.0.0.1:9621/token … \
//	    -vs-url http://127.0.0.1:9620/token -d 40s
//
// The subcommand sign-rate is that signing rate alone:
//
//	go run ./example/load sign-rate -alg RS256 -d 10s
//
// The subcommand serve-baseline runs plain fosite v0.49 (its own JWT strategy, memory store, a
// cheap secret hash) as a comparison target on the same machine:
//
//	go run ./example/load serve-baseline -addr 127.0.0.1:9500 -alg ES256 -secret S &
//	go run ./example/load -url http://127.0.0.1:9500/oauth2/token -client demo-client -secret S …
//
// The baseline's memory store keeps every token it issues, so its memory grows with the run;
// that is fosite's example store, not something to compare memory against.
package main
