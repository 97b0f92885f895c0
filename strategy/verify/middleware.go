package verify

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/mandate-dev/mandate/strategy/verify/dpop"
)

type claimsKey struct{}

// NewContext returns a copy of ctx carrying c; [Verifier.Middleware] uses it, and tests of
// handlers behind the middleware can too.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims [Verifier.Middleware] put in ctx.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware returns a handler that verifies the access token of each request and calls next
// with the claims in the request context ([FromContext]). It is a plain
// func(http.Handler) http.Handler, so it plugs into net/http, chi (r.Use), gin and echo (see the
// package documentation).
//
// The token is taken from the Authorization header (RFC 6750 §2.1,
// https://www.rfc-editor.org/rfc/rfc6750#section-2.1; the scheme name is case-insensitive), and
// from the access_token query or form parameter only when [Config.AllowQueryToken] or
// [Config.AllowFormToken] is set. "Authorization: DPoP" takes a DPoP-bound token with the proof
// in the DPoP header ([Verifier.VerifyDPoP], RFC 9449 §7.1); a DPoP-bound token sent any other
// way is refused (§7.2), and so is every token but a DPoP one with [Config.DPoPRequired].
// Failures are answered as RFC 6750 §3 and RFC 9449 §7.1 prescribe, with a challenge carrying
// realm, the error, and resource_metadata if configured (RFC 9728 §5.1) — a Bearer challenge
// and a DPoP one with algs, the one the request used first:
//
//   - no token: 401, no error code;
//   - a malformed Authorization header, or a token sent more than one way: 400 invalid_request;
//   - a token that fails verification, or whose binding does not hold: 401 invalid_token with
//     a short, fixed error_description that never contains the token or internal details;
//   - a missing, duplicated or invalid proof: 401 invalid_dpop_proof naming the failed rule;
//   - a proof without this server's current nonce ([Config.DPoPNonces]): 401 use_dpop_nonce
//     with the nonce in a DPoP-Nonce header;
//   - a token [Config.Revoked] calls revoked: 401 invalid_token;
//   - no key set could ever be fetched ([ErrKeysUnavailable]), Config.Revoked could not tell
//     ([ErrRevocationUnavailable]), or the replay cache failed: 503 with Retry-After, no
//     challenge — the request may be fine, the resource server cannot tell yet.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, scheme, desc := v.accessToken(w, r)
		switch {
		case desc != "":
			v.challenge(w, http.StatusBadRequest, scheme, "invalid_request", desc, "")
			return
		case tok == "":
			v.challenge(w, http.StatusUnauthorized, scheme, "", "", "")
			return
		case scheme == schemeBearer && v.dpopRequired:
			v.challenge(w, http.StatusUnauthorized, schemeDPoP, "invalid_token",
				"this resource requires a DPoP-bound access token and its proof", "")
			return
		}
		var c *Claims
		var err error
		if scheme == schemeDPoP {
			var proof string
			if proof, err = dpop.FromHeader(r.Header); err == nil {
				c, err = v.VerifyDPoP(r.Context(), tok, proof, r.Method, v.requestURI(r))
			}
		} else if c, err = v.Verify(r.Context(), tok); errors.Is(err, ErrBinding) {
			scheme = schemeDPoP // tell the client which scheme the token needs
		}
		if err != nil {
			v.refuse(w, scheme, err)
			return
		}
		if v.dpop.Nonces != nil && scheme == schemeDPoP {
			w.Header().Set(dpop.NonceHeader, v.dpop.Nonces.Current())
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), c)))
	})
}

// refuse answers a request whose token or proof failed with err.
func (v *Verifier) refuse(w http.ResponseWriter, scheme string, err error) {
	var nonce *dpop.NonceError
	switch {
	case errors.Is(err, ErrKeysUnavailable), errors.Is(err, ErrRevocationUnavailable):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the access token cannot be validated right now", http.StatusServiceUnavailable)
	case errors.As(err, &nonce):
		w.Header().Set(dpop.NonceHeader, nonce.Nonce)
		v.challenge(w, http.StatusUnauthorized, schemeDPoP, "use_dpop_nonce", "the proof must carry the server's current nonce", "")
	case errors.Is(err, dpop.ErrInvalidProof):
		v.challenge(w, http.StatusUnauthorized, schemeDPoP, "invalid_dpop_proof", describeProof(err), "")
	case errors.Is(err, ErrBinding):
		v.challenge(w, http.StatusUnauthorized, schemeDPoP, "invalid_token", v.describeBinding(err), "")
	case scheme == schemeDPoP && !isTokenError(err):
		// The replay cache failed (or is full): the proof could not be checked.
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the DPoP proof cannot be checked right now", http.StatusServiceUnavailable)
	default:
		v.challenge(w, http.StatusUnauthorized, scheme, "invalid_token", describe(err), "")
	}
}

// RequireScope returns middleware that lets a request through only if the claims that
// [Verifier.Middleware] put in its context hold every one of scopes; otherwise it answers 403
// insufficient_scope with a scope parameter listing them (RFC 6750 §3.1). Without claims in
// the context (Middleware not in front of it) it answers 401.
func (v *Verifier) RequireScope(scopes ...string) func(http.Handler) http.Handler {
	want := slices.Clone(scopes)
	param := strings.Join(want, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				v.challenge(w, http.StatusUnauthorized, schemeBearer, "", "", "")
				return
			}
			for _, s := range want {
				if !c.HasScope(s) {
					v.challenge(w, http.StatusForbidden, c.scheme(), "insufficient_scope",
						"the access token does not grant the scope this request needs", param)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireActor returns middleware that lets a request through only if its access token was
// obtained by a token exchange in which one of subjects acts for the token's subject (the act
// claim's outermost sub, RFC 8693 §4.1), an actor of the token's own issuer. A service that
// must be called only through a given gateway or upstream service says so with it. Otherwise
// it answers 403 insufficient_scope (RFC 6750 §3.1: the token lacks the privilege); without
// claims in the context (Middleware not in front of it), 401.
func (v *Verifier) RequireActor(subjects ...string) func(http.Handler) http.Handler {
	want := slices.Clone(subjects)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				v.challenge(w, http.StatusUnauthorized, schemeBearer, "", "", "")
				return
			}
			if c.Act == nil || c.Act.Issuer != "" && c.Act.Issuer != c.Issuer || !slices.Contains(want, c.Act.Subject) {
				v.challenge(w, http.StatusForbidden, c.scheme(), "insufficient_scope",
					"the request must arrive through another acting party", "")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Authorization schemes.
const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// accessToken returns the token of r and the scheme it came with (Bearer for the query and
// form parameters), or a description of why the request is malformed. An Authorization header
// with another scheme counts as no token.
func (v *Verifier) accessToken(w http.ResponseWriter, r *http.Request) (tok, scheme, malformed string) {
	found := 0
	scheme = schemeBearer
	if hs := r.Header.Values("Authorization"); len(hs) > 1 {
		return "", scheme, "more than one Authorization header"
	} else if len(hs) == 1 {
		name, rest, _ := strings.Cut(hs[0], " ")
		switch {
		case strings.EqualFold(name, schemeBearer):
		case strings.EqualFold(name, schemeDPoP):
			scheme = schemeDPoP
		default:
			name = ""
		}
		if name != "" {
			rest = strings.TrimLeft(rest, " ")
			if !isToken68(rest) {
				return "", scheme, "malformed " + scheme + " credentials"
			}
			tok = rest
			found++
		}
	}
	if v.query {
		if q := r.URL.Query()["access_token"]; len(q) > 0 {
			if len(q) > 1 || !isToken68(q[0]) {
				return "", scheme, "malformed access_token parameter"
			}
			tok = q[0]
			found++
			w.Header().Set("Cache-Control", "private") // RFC 6750 §2.3
		}
	}
	if v.form && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				return "", scheme, "malformed form body"
			}
			if f := r.PostForm["access_token"]; len(f) > 0 {
				if len(f) > 1 || !isToken68(f[0]) {
					return "", scheme, "malformed access_token parameter"
				}
				tok = f[0]
				found++
			}
		}
	}
	if found > 1 {
		return "", scheme, "the access token was sent in more than one way"
	}
	return tok, scheme, ""
}

// isToken68 reports whether s matches b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/" ) *"=" (RFC 6750 §2.1).
func isToken68(s string) bool {
	t := strings.TrimRight(s, "=")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// challenge writes status with WWW-Authenticate challenges (RFC 6750 §3, RFC 9449 §7.1): the
// one of scheme with the error, if any, then the other scheme's plain one — Bearer only when
// bearer tokens are accepted, DPoP always, with the algorithms a proof may use.
func (v *Verifier) challenge(w http.ResponseWriter, status int, scheme, code, desc, scope string) {
	schemes := [2]string{schemeBearer, schemeDPoP}
	if scheme == schemeDPoP {
		schemes = [2]string{schemeDPoP, schemeBearer}
	}
	h := w.Header()
	for i, s := range schemes {
		if s == schemeBearer && v.dpopRequired {
			continue
		}
		var b strings.Builder
		b.WriteString(s)
		first := true
		param(&b, &first, "realm", v.realm)
		if i == 0 && code != "" {
			param(&b, &first, "error", code)
			param(&b, &first, "error_description", desc)
			if scope != "" {
				param(&b, &first, "scope", scope)
			}
		}
		if s == schemeDPoP {
			param(&b, &first, "algs", v.dpopAlgs)
		}
		if v.metadata != "" {
			param(&b, &first, "resource_metadata", v.metadata)
		}
		h.Add("WWW-Authenticate", b.String())
	}
	w.WriteHeader(status)
}

// param appends name="value", with a separator if needed. Backslash and double quote are
// escaped (RFC 9110 §5.6.4); control characters and non-ASCII bytes, which a quoted-string in
// these parameters may not carry, become "?".
func param(b *strings.Builder, first *bool, name, value string) {
	if *first {
		b.WriteByte(' ')
		*first = false
	} else {
		b.WriteString(", ")
	}
	b.WriteString(name)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// scheme is the Authorization scheme c's token came with.
func (c *Claims) scheme() string {
	if c.Confirmation != nil {
		return schemeDPoP
	}
	return schemeBearer
}

// describeBinding gives the error_description for an [ErrBinding].
func (v *Verifier) describeBinding(err error) string {
	switch {
	case errors.Is(err, errOtherKey):
		return "the proof is signed by another key than the one the access token is bound to"
	case errors.Is(err, errNotBound) && v.dpopRequired:
		return "this resource requires a DPoP-bound access token and its proof"
	case errors.Is(err, errNotBound):
		return "the access token is not DPoP-bound: send it with the Bearer scheme"
	}
	return "the access token is sender-constrained: send it with the DPoP scheme and a proof"
}

// isTokenError reports whether err is one of Verify's errors about the token itself.
func isTokenError(err error) bool {
	for _, e := range []error{ErrMalformed, ErrType, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrIssuer,
		ErrAudience, ErrExpired, ErrNotYetValid, ErrMissingClaim, ErrDecrypt, ErrBinding, ErrRevoked} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// describe gives the error_description for a Verify error: fixed text per cause.
func describe(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "the access token expired"
	case errors.Is(err, ErrNotYetValid):
		return "the access token is not valid yet"
	case errors.Is(err, ErrAudience):
		return "the access token is not meant for this resource"
	case errors.Is(err, ErrIssuer):
		return "the access token is not from the expected issuer"
	case errors.Is(err, ErrType):
		return "not an access token (typ must be at+jwt)"
	case errors.Is(err, ErrAlgorithm):
		return "signature algorithm not accepted"
	case errors.Is(err, ErrUnknownKey):
		return "unknown signing key"
	case errors.Is(err, ErrSignature):
		return "invalid signature"
	case errors.Is(err, ErrMissingClaim):
		return "a required claim is missing"
	case errors.Is(err, ErrDecrypt):
		return "the access token cannot be decrypted"
	case errors.Is(err, ErrRevoked):
		return "the access token has been revoked"
	}
	return "malformed access token"
}
