package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/handlers"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/strategy/verify/dpop"
	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// DPoP at the token endpoint (RFC 9449 §5, https://www.rfc-editor.org/rfc/rfc9449#section-5):
//
//   - A token request of any grant may carry one DPoP proof for POST at the token endpoint's URL.
//     It is checked as §4.3 says (dpop.Checker); its jti is used up in the store's JTIStore,
//     so a proof is good once across every instance on one database. A bad proof is
//     invalid_dpop_proof; with Config.DPoPNonces, a proof without the current nonce is
//     use_dpop_nonce with the nonce in a DPoP-Nonce header.
//   - With a proof, the access token is bound to its key: cnf.jkt, token_type DPoP. Without
//     one, a client with DPoPBoundAccessTokens or a resource server with DPoPRequired is
//     refused (invalid_dpop_proof).
//   - A code requested with dpop_jkt (§10), and the refresh tokens of a public client that
//     used DPoP (§5), are bound to the key in the session (storage.Session.DPoPJKT): redeeming
//     them needs a proof by that key, else invalid_grant. A confidential client's refresh
//     tokens are not bound (it authenticates, §5).
//   - A grant for a peer authorization server (identity chaining) is not bound: the peer sees
//     the client's own proof at its token endpoint.

// newDPoP returns the checker of token-endpoint proofs.
func (p *Provider) newDPoP() (*dpop.Checker, error) {
	c := &dpop.Checker{
		Replay: dpop.ReplayFunc(func(ctx context.Context, key string, until time.Time) (bool, error) {
			switch err := p.store.UseJTI(ctx, key, until); {
			case errors.Is(err, storage.ErrJTIUsed):
				return false, nil
			case err != nil:
				return false, err
			}
			return true, nil
		}),
		Now: p.cfg.Now,
	}
	if p.cfg.DPoPNonces {
		n, err := dpop.NewNonces(derive(p.cfg.Secret, "mandate dpop nonces"), p.cfg.DPoPNoncePeriod, p.cfg.Now)
		if err != nil {
			return nil, err
		}
		c.Nonces = n
	}
	return c, nil
}

// tokenProof checks the DPoP proof of a token request: nil without one. Its errors are the
// RFC 9449 ones, or the store's (a jti that could not be recorded).
func (p *Provider) tokenProof(ctx context.Context, w http.ResponseWriter, r *http.Request) (*dpop.Proof, error) {
	raw, err := dpop.FromHeader(r.Header)
	if err != nil {
		return nil, handlers.ErrInvalidDPoPProof.WithHint("A token request carries at most one DPoP header.")
	}
	if raw == "" {
		return nil, nil
	}
	if p.dpop.Nonces != nil {
		w.Header().Set(dpop.NonceHeader, p.dpop.Nonces.Current())
	}
	proof, err := p.dpop.Check(ctx, raw, dpop.Request{Method: r.Method, URL: p.paths.tokenURL})
	var nonce *dpop.NonceError
	switch {
	case errors.As(err, &nonce):
		w.Header().Set(dpop.NonceHeader, nonce.Nonce)
		return nil, handlers.ErrUseDPoPNonce.WithHint("Send the proof again with the nonce of the DPoP-Nonce header.")
	case errors.Is(err, dpop.ErrInvalidProof):
		return nil, handlers.ErrInvalidDPoPProof.WithHintf("The DPoP proof is invalid: %s.", proofReason(err))
	case err != nil:
		return nil, err // the store: unavailable or a server error
	}
	return proof, nil
}

// proofReason is the checker's reason for refusing a proof (it never quotes the proof).
func proofReason(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, dpop.ErrInvalidProof.Error()+": "); ok {
		msg = rest
	}
	return strict.Text(msg, 160)
}

// binding is the DPoP key an access token for client at rs is bound to: the proof's, or none
// for a bearer token, which a client or resource server that requires DPoP refuses.
func binding(proof *dpop.Proof, client fosite.Client, rs *storage.ResourceServer) (string, error) {
	if proof != nil {
		return proof.Thumbprint, nil
	}
	if sc, ok := client.(*storage.Client); ok && sc.DPoPBoundAccessTokens {
		return "", handlers.ErrInvalidDPoPProof.WithHint("The client is registered to use DPoP: send a DPoP proof with every token request.")
	}
	if rs.DPoPRequired {
		return "", handlers.ErrInvalidDPoPProof.WithHint("The resource server accepts only DPoP-bound access tokens: send a DPoP proof.")
	}
	return "", nil
}

// bindGrant checks a code or refresh token's binding (storage.Session.DPoPJKT) against the
// request's proof, then sets the binding the refresh tokens issued now will carry: the proof's
// key for a public client (RFC 9449 §5), none for a confidential one, which authenticates.
func bindGrant(ar fosite.AccessRequester, proof *dpop.Proof) error {
	sess, ok := ar.GetSession().(*storage.Session)
	if !ok || sess == nil {
		return nil
	}
	if sess.DPoPJKT != "" {
		what := "refresh token"
		if ar.GetGrantTypes().ExactOne("authorization_code") {
			what = "authorization code (dpop_jkt)"
		}
		switch {
		case proof == nil:
			return fosite.ErrInvalidGrant.WithHintf("The %s is bound to a DPoP key: send a DPoP proof signed with it.", what)
		case proof.Thumbprint != sess.DPoPJKT:
			return fosite.ErrInvalidGrant.WithHintf("The %s is bound to another DPoP key than the proof's.", what)
		}
	}
	sess.DPoPJKT = ""
	if proof != nil && ar.GetClient().IsPublic() {
		sess.DPoPJKT = proof.Thumbprint
	}
	return nil
}

// checkDPoPJKT validates the dpop_jkt authorization request parameter (RFC 9449 §10): the
// base64url SHA-256 thumbprint of a key, 43 characters.
func checkDPoPJKT(jkt string) error {
	if len(jkt) != 43 || !strict.Canonical(jkt) {
		return fosite.ErrInvalidRequest.WithHint("The dpop_jkt parameter must be a JWK SHA-256 thumbprint, base64url-encoded (RFC 9449 §10).")
	}
	return nil
}
