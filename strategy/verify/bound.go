package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// VerifyDPoP validates a DPoP-bound access token presented with its proof (RFC 9449 §7,
// https://www.rfc-editor.org/rfc/rfc9449#section-7): the token as [Verifier.Verify] does, then
// that it is bound (cnf.jkt), then the proof for a request with method to uri (RFC 9449 §4.3,
// with ath the hash of token, its jti single use, the nonce when [Config.DPoPNonces] is set),
// then that the proof's key is the one the token is bound to. [Verifier.Middleware] calls it
// for "Authorization: DPoP"; call it directly for other transports.
//
// Errors wrap this package's sentinels for the token, [ErrBinding] for the binding, and
// [dpop.ErrInvalidProof] or [dpop.ErrUseNonce] for the proof; any other error is the replay
// cache's (the proof could not be checked, a server-side condition).
func (v *Verifier) VerifyDPoP(ctx context.Context, token, proof, method, uri string) (*Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.Confirmation == nil || c.Confirmation.JKT == "" {
		return nil, errNotBound
	}
	p, err := v.dpop.Check(ctx, proof, dpop.Request{Method: method, URL: uri, AccessToken: token})
	if err != nil {
		return nil, err
	}
	if p.Thumbprint != c.Confirmation.JKT {
		return nil, errOtherKey
	}
	if err := v.checkRevoked(ctx, token, c); err != nil {
		return nil, err
	}
	return c, nil
}

// The ways a binding fails, all [ErrBinding].
var (
	errBound    = fmt.Errorf("%w: the access token is sender-constrained (cnf) and is only accepted with proof of possession", ErrBinding)
	errNotBound = fmt.Errorf("%w: the access token is not DPoP-bound", ErrBinding)
	errOtherKey = fmt.Errorf("%w: the proof is signed by another key than the one the access token is bound to", ErrBinding)
)

// setDPoP configures the DPoP side of v from cfg.
func (v *Verifier) setDPoP(cfg Config) error {
	algs := cfg.DPoPAlgorithms
	if algs == nil {
		algs = DefaultAlgorithms()
	}
	if len(algs) == 0 {
		return fmt.Errorf("%w: DPoPAlgorithms is empty", ErrConfig)
	}
	names := make([]string, len(algs))
	for i, a := range algs {
		if !slices.Contains(strict.Algorithms(), a) {
			return fmt.Errorf("%w: DPoPAlgorithms: %q is not one of %s", ErrConfig, strict.Echo(string(a)), AlgorithmNames())
		}
		names[i] = string(a)
	}
	replay := cfg.DPoPReplay
	if replay == nil {
		replay = dpop.NewMemoryReplay(0, v.now)
	}
	v.dpop = &dpop.Checker{Algorithms: slices.Clone(algs), Replay: replay, Nonces: cfg.DPoPNonces, Now: v.now}
	v.dpopAlgs = strings.Join(names, " ")
	v.dpopRequired = cfg.DPoPRequired
	v.forwarded = cfg.TrustForwardedHeaders
	if cfg.ExternalURL != "" {
		u, err := url.Parse(cfg.ExternalURL)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return fmt.Errorf("%w: ExternalURL must be an absolute http(s) URL without query or fragment", ErrConfig)
		}
		v.external = strings.TrimSuffix(cfg.ExternalURL, "/")
	}
	return nil
}

// requestURI is the URI a DPoP proof's htu must match for r (RFC 9449 §4.3 check 9): the
// configured external URL or r's own scheme and host (or the forwarded ones), then r's path.
// The query is left out: htu never has one.
func (v *Verifier) requestURI(r *http.Request) string {
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if v.external != "" {
		return v.external + path
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if v.forwarded {
		if p, h, ok := forwarded(r.Header); ok {
			if p != "" {
				scheme = p
			}
			if h != "" {
				host = h
			}
		} else {
			if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p != "" {
				scheme = p
			}
			if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
				host = h
			}
		}
	}
	return strings.ToLower(scheme) + "://" + host + path
}

// forwarded reads proto and host from the first element of an RFC 7239 Forwarded header.
func forwarded(h http.Header) (proto, host string, ok bool) {
	f := h.Get("Forwarded")
	if f == "" {
		return "", "", false
	}
	first, _, _ := strings.Cut(f, ",")
	for _, pair := range strings.Split(first, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "proto":
			proto = value
		case "host":
			host = value
		}
	}
	return proto, host, true
}

// firstValue is the first of a comma-separated header value, trimmed.
func firstValue(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return strings.TrimSpace(first)
}

// describeProof gives the error_description of a proof error: the checker's own text, which
// names the failed rule and never contains the proof or the token.
func describeProof(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, dpop.ErrInvalidProof.Error()+": "); ok {
		msg = rest
	}
	return strict.Text(msg, 120)
}
