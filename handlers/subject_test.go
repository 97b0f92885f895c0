package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// TestSubjectMapper: the mapper sees the verified JWT and its trust and names the token's
// subject; a refusal is invalid_grant and leaves the assertion unused; a failing or misbehaving
// mapper is a server error, temporarily_unavailable when its store is down.
func TestSubjectMapper(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	idp := newKey(t, jose.ES256, "idp-1")
	const iss = "https://idp.example"
	trusts := memTrusts{{ID: "idp", Issuer: iss, AllowAnySubject: true, JWKS: idp.set(), Scopes: []string{"orders:read"}, Resources: []string{"https://orders.example/"}}}
	jtis := &memJTIs{}
	var seen SubjectRequest
	directory := map[string]string{"alice@idp": "user-17"} // the application's link of outside subjects to its users
	mapper := SubjectMapperFunc(func(_ context.Context, r SubjectRequest) (string, error) {
		seen = r
		var tenant string
		if _, err := r.Assertion.Claim("tenant", &tenant); err != nil {
			return "", err
		}
		switch local, ok := directory[r.Subject]; {
		case r.Subject == "broken":
			return "", fmt.Errorf("directory: %w", storage.ErrUnavailable)
		case r.Subject == "empty":
			return "", nil
		case r.Subject == "long":
			return strings.Repeat("x", maxSubjectLength+1), nil
		case !ok:
			return "", fmt.Errorf("no link for %q: %w", r.Subject, ErrUnknownSubject)
		default:
			return local + "@" + tenant, nil
		}
	})
	h := &JWTBearer{
		Trusts: trusts, JTIs: jtis, Keys: &KeySets{}, Audiences: []string{tokenURL, asIssuer},
		Resolver:     Resolver{Resources: fakeResources{{Identifier: "https://orders.example/", Scopes: []string{"orders:read"}, Default: true}}},
		AccessTokens: &fakeTokens{}, AccessTokenStorage: &fakeTokens{}, Now: func() time.Time { return now },
		Subjects: mapper,
	}
	ctx := context.Background()
	grant := func(sub, jti string) (*fosite.AccessRequest, error) {
		ar := bearerRequest(idp.sign(t, with(with(claims(iss, sub, now), "jti", jti), "tenant", "acme"), nil), nil)
		return ar, h.HandleTokenEndpointRequest(ctx, ar)
	}

	ar, err := grant("alice@idp", "j1")
	if err != nil {
		t.Fatalf("a linked subject: %v", fosite.ErrorToRFC6749Error(err).GetDescription())
	}
	if got := ar.GetSession().GetSubject(); got != "user-17@acme" {
		t.Fatalf("token subject %q, want the mapped user-17@acme", got)
	}
	if seen.Issuer != iss || seen.Subject != "alice@idp" || seen.Trust == nil || seen.Trust.ID != "idp" || seen.Assertion == nil {
		t.Fatalf("the mapper saw %+v", seen)
	}
	if ar.GetClient().GetID() != iss {
		t.Fatalf("client_id %q: still the issuer without client authentication", ar.GetClient().GetID())
	}

	// Refused: invalid_grant, and the assertion is still unused — once the link exists, the same
	// assertion works.
	ar, err = grant("bob@idp", "j2")
	if !errors.Is(err, fosite.ErrInvalidGrant) || !strings.Contains(fosite.ErrorToRFC6749Error(err).GetDescription(), "not known here") {
		t.Fatalf("an unknown subject: %v", err)
	}
	if len(ar.GetGrantedAudience()) != 0 {
		t.Fatal("a refused subject was granted an audience")
	}
	directory["bob@idp"] = "user-18"
	if ar, err := grant("bob@idp", "j2"); err != nil || ar.GetSession().GetSubject() != "user-18@acme" {
		t.Fatalf("the refused assertion after the link was made: %v", err)
	}

	for _, sub := range []string{"broken", "empty", "long"} {
		_, err := grant(sub, "j-"+sub)
		if !errors.Is(err, fosite.ErrServerError) {
			t.Fatalf("%s: %v, want server_error", sub, err)
		}
		if unavailable := errors.Is(err, storage.ErrUnavailable); unavailable != (sub == "broken") {
			t.Fatalf("%s: wraps storage.ErrUnavailable: %v", sub, unavailable)
		}
	}
}
