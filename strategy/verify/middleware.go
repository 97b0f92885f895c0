package verify

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strings"
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

// Middleware returns a handler that verifies the bearer token of each request and calls next
// with the claims in the request context ([FromContext]). It is a plain
// func(http.Handler) http.Handler, so it plugs into net/http, chi (r.Use), gin and echo (see the
// package documentation).
//
// The token is taken from the Authorization header (RFC 6750 §2.1,
// https://www.rfc-editor.org/rfc/rfc6750#section-2.1; the scheme name is case-insensitive), and
// from the access_token query or form parameter only when [Config.AllowQueryToken] or
// [Config.AllowFormToken] is set. Failures are answered as RFC 6750 §3 prescribes, with a
// Bearer challenge carrying realm and, if configured, resource_metadata (RFC 9728 §5.1):
//
//   - no bearer token: 401, no error code;
//   - a malformed Authorization header, or a token sent more than one way: 400 invalid_request;
//   - a token that fails [Verifier.Verify]: 401 invalid_token with a short, fixed
//     error_description that never contains the token or internal details;
//   - no key set could ever be fetched ([ErrKeysUnavailable]): 503 with Retry-After, no
//     challenge — the token may be fine, the resource server cannot tell yet.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, desc := v.bearerToken(w, r)
		if desc != "" {
			v.challenge(w, http.StatusBadRequest, "invalid_request", desc, "")
			return
		}
		if tok == "" {
			v.challenge(w, http.StatusUnauthorized, "", "", "")
			return
		}
		c, err := v.Verify(r.Context(), tok)
		if err != nil {
			if errors.Is(err, ErrKeysUnavailable) {
				w.Header().Set("Retry-After", "5")
				http.Error(w, "the access token cannot be validated right now", http.StatusServiceUnavailable)
				return
			}
			v.challenge(w, http.StatusUnauthorized, "invalid_token", describe(err), "")
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), c)))
	})
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
				v.challenge(w, http.StatusUnauthorized, "", "", "")
				return
			}
			for _, s := range want {
				if !c.HasScope(s) {
					v.challenge(w, http.StatusForbidden, "insufficient_scope",
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
				v.challenge(w, http.StatusUnauthorized, "", "", "")
				return
			}
			if c.Act == nil || c.Act.Issuer != "" && c.Act.Issuer != c.Issuer || !slices.Contains(want, c.Act.Subject) {
				v.challenge(w, http.StatusForbidden, "insufficient_scope",
					"the request must arrive through another acting party", "")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearerToken returns the token of r, or a description of why the request is malformed.
// An Authorization header with another scheme counts as no token.
func (v *Verifier) bearerToken(w http.ResponseWriter, r *http.Request) (tok, malformed string) {
	found := 0
	if hs := r.Header.Values("Authorization"); len(hs) > 1 {
		return "", "more than one Authorization header"
	} else if len(hs) == 1 {
		scheme, rest, _ := strings.Cut(hs[0], " ")
		if strings.EqualFold(scheme, "Bearer") {
			rest = strings.TrimLeft(rest, " ")
			if !isToken68(rest) {
				return "", "malformed Bearer credentials"
			}
			tok = rest
			found++
		}
	}
	if v.query {
		if q := r.URL.Query()["access_token"]; len(q) > 0 {
			if len(q) > 1 || !isToken68(q[0]) {
				return "", "malformed access_token parameter"
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
				return "", "malformed form body"
			}
			if f := r.PostForm["access_token"]; len(f) > 0 {
				if len(f) > 1 || !isToken68(f[0]) {
					return "", "malformed access_token parameter"
				}
				tok = f[0]
				found++
			}
		}
	}
	if found > 1 {
		return "", "the access token was sent in more than one way"
	}
	return tok, ""
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

// challenge writes status with a Bearer WWW-Authenticate challenge (RFC 6750 §3).
func (v *Verifier) challenge(w http.ResponseWriter, status int, code, desc, scope string) {
	var b strings.Builder
	b.WriteString("Bearer ")
	param(&b, "realm", v.realm)
	if code != "" {
		param(&b, "error", code)
		param(&b, "error_description", desc)
	}
	if scope != "" {
		param(&b, "scope", scope)
	}
	if v.metadata != "" {
		param(&b, "resource_metadata", v.metadata)
	}
	w.Header().Set("WWW-Authenticate", b.String())
	w.WriteHeader(status)
}

// param appends name="value", with a separator if needed. Backslash and double quote are
// escaped (RFC 9110 §5.6.4); control characters and non-ASCII bytes, which a quoted-string in
// these parameters may not carry, become "?".
func param(b *strings.Builder, name, value string) {
	if b.Len() > len("Bearer ") {
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
	}
	return "malformed access token"
}
