package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/strategy/verify"
)

// Regression tests of the outside attack run (issue 13).

// signRaw signs payload exactly as given (so that it may hold duplicate members).
func (k testKey) signRaw(t testing.TB, payload string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// reencodings returns other encodings of a compact JWS that go-jose still verifies: spare bits
// of a segment's last character set, and line breaks inside a segment (Go's base64 decoder
// skips them).
func reencodings(raw string) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(raw, ".")
	var out []string
	for i := 0; i < 2; i++ {
		seg := parts[i]
		spare := map[int]int{2: 4, 3: 2}[len(seg)%4] // unused low bits of the last character
		last := strings.IndexByte(alphabet, seg[len(seg)-1])
		for v := 1; v < 1<<spare; v++ {
			p := append([]string(nil), parts...)
			p[i] = seg[:len(seg)-1] + string(alphabet[last|v])
			out = append(out, strings.Join(p, "."))
		}
		p := append([]string(nil), parts...)
		p[i] = seg[:4] + "\n" + seg[4:]
		out = append(out, strings.Join(p, "."))
	}
	return out
}

// Finding 1: an assertion without jti is one use however it is encoded.
func TestAssertionReencodingIsRefused(t *testing.T) {
	now := time.Now()
	k := newKey(t, jose.ES256, "k1")
	c := with(claims("https://idp.example", "svc", now), "jti", nil, "exp", now.Add(4*time.Minute).Unix())
	good := k.sign(t, c, nil)
	a, err := parseAssertion(good)
	if err != nil {
		t.Fatal(err)
	}
	variants := reencodings(good)
	if len(variants) < 3 {
		t.Fatalf("only %d variants", len(variants))
	}
	set, _ := (&KeySets{}).forKeys(context.Background(), k.set(), "")
	for _, v := range variants {
		if _, err := jose.ParseSignedCompact(v, verify.DefaultAlgorithms()); err != nil {
			continue // not one go-jose accepts: nothing to prove with it
		}
		va, err := parseAssertion(v)
		if err == nil {
			// Were it accepted, it must at least verify to the same replay key.
			if verr := va.verify(context.Background(), set, assertionRules{Audiences: []string{tokenURL}, MaxLifetime: time.Hour, JTIOptional: true, Now: now}); verr == nil && va.content != a.content {
				t.Fatalf("a re-encoding verifies with another replay key: %q", v)
			}
			t.Fatalf("re-encoded assertion accepted: %q", v)
		}
		checkReason(t, err, "canonical base64url")
	}
	// And the replay key is the decoded content's: the same for the one accepted encoding.
	jtis := &memJTIs{}
	if err := UseAssertion(context.Background(), jtis, "ns", a, 0); err != nil {
		t.Fatal(err)
	}
	b, _ := parseAssertion(good)
	if err := UseAssertion(context.Background(), jtis, "ns", b, 0); err == nil {
		t.Fatal("second use accepted")
	}
}

// Finding 3: duplicate or differently-cased members in an assertion's claims or header.
func TestAssertionAmbiguousMembers(t *testing.T) {
	now := time.Now()
	k := newKey(t, jose.ES256, "k1")
	base := fmt.Sprintf(`"iss":"https://idp.example","jti":"j-%d","iat":%d,"exp":%d`, now.UnixNano(), now.Unix(), now.Add(time.Minute).Unix())
	for name, payload := range map[string]string{
		"sub then Sub":        `{` + base + `,"aud":"` + tokenURL + `","sub":"user-123","Sub":"admin"}`,
		"sub twice":           `{` + base + `,"aud":"` + tokenURL + `","sub":"user-123","sub":"admin"}`,
		"escaped sub twice":   `{` + base + `,"aud":"` + tokenURL + `","sub":"user-123","s\u0075b":"admin"}`,
		"aud then Aud":        `{` + base + `,"sub":"svc","aud":"https://evil.example","Aud":"` + tokenURL + `"}`,
		"only SUB":            `{` + base + `,"aud":"` + tokenURL + `","SUB":"admin"}`,
		"exp in another case": `{` + base + `,"aud":"` + tokenURL + `","sub":"svc","EXP":99999999999}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseAssertion(k.signRaw(t, payload))
			checkReason(t, err, "ambiguous")
		})
	}
	// The header too: a typ given twice, or an "Alg" beside "alg".
	c := claims("https://idp.example", "svc", now)
	for name, header := range map[string]string{
		"typ twice": `{"alg":"ES256","kid":"k1","typ":"JWT","typ":"at+jwt"}`,
		"TYP":       `{"alg":"ES256","kid":"k1","TYP":"at+jwt"}`,
	} {
		t.Run(name, func(t *testing.T) {
			raw := b64(header) + "." + strings.Split(k.sign(t, c, nil), ".")[1] + ".AAAA"
			if _, err := parseAssertion(raw); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// Finding 6: before the signature verifies with the client's registered key, every
// private_key_jwt failure reads the same, and so does every failure of the secret path.
func TestClientAuthenticationIsGeneric(t *testing.T) {
	now := time.Now()
	ck := newKey(t, jose.ES256, "c1")
	stranger := newKey(t, jose.ES256, "c1")
	clients := memClients{
		"pkj":    {ID: "pkj", TokenEndpointAuthMethod: "private_key_jwt", JWKS: ck.set()},
		"secret": {ID: "secret", SecretHash: []byte("x")},
	}
	fallback := func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		// What fosite's secret authentication answers for a client registered for another
		// method: it names the method.
		return nil, fosite.ErrInvalidClient.WithHint("The OAuth 2.0 Client supports client authentication method 'private_key_jwt', but method 'client_secret_basic' was requested.")
	}
	p := &PrivateKeyJWT{Clients: clients, JTIs: &memJTIs{}, Keys: &KeySets{}, Audiences: []string{tokenURL}, Fallback: fallback}
	form := func(a string) url.Values {
		return url.Values{"client_assertion_type": {ClientAssertionTypeJWTBearer}, "client_assertion": {a}}
	}
	cl := func(id string) map[string]any { return claims(id, id, now) }
	var descriptions []string
	for _, f := range []url.Values{
		form(ck.sign(t, cl("ghost"), nil)),             // no such client
		form(ck.sign(t, cl("secret"), nil)),            // a client that authenticates with a secret
		form(stranger.sign(t, cl("pkj"), nil)),         // the right client, another key
		{"client_id": {"pkj"}, "client_secret": {"x"}}, // the secret path, method mismatch
	} {
		_, err := p.Authenticate(context.Background(), httptest.NewRequest(http.MethodPost, tokenURL, nil), f)
		if !errors.Is(err, fosite.ErrInvalidClient) {
			t.Fatalf("%v: %v", f, err)
		}
		rfc := fosite.ErrorToRFC6749Error(err)
		descriptions = append(descriptions, rfc.GetDescription())
		if rfc.Debug() == "" {
			t.Errorf("the reason is lost for the server's own logs: %v", err)
		}
	}
	for _, d := range descriptions[1:] {
		if d != descriptions[0] {
			t.Fatalf("descriptions differ:\n%s", strings.Join(descriptions, "\n"))
		}
	}
	// After the signature verified, the client learns what is wrong with its own assertion.
	_, err := p.Authenticate(context.Background(), httptest.NewRequest(http.MethodPost, tokenURL, nil),
		form(ck.sign(t, with(cl("pkj"), "aud", "https://evil.example/"), nil)))
	if d := fosite.ErrorToRFC6749Error(err).GetDescription(); !strings.Contains(d, "aud") {
		t.Fatalf("after a verified signature: %q", d)
	}
}

// Finding 7: one client authentication method per request.
func TestOneAuthenticationMethod(t *testing.T) {
	calls := 0
	p := &PrivateKeyJWT{Clients: memClients{}, JTIs: &memJTIs{}, Keys: &KeySets{},
		Fallback: func(context.Context, *http.Request, url.Values) (fosite.Client, error) {
			calls++
			return &fosite.DefaultClient{ID: "svc"}, nil
		}}
	for name, tc := range map[string]struct {
		headers []string
		form    url.Values
		ok      bool
	}{
		"basic only":                  {[]string{basic("svc", "s")}, url.Values{}, true},
		"basic and the same id":       {[]string{basic("svc", "s")}, url.Values{"client_id": {"svc"}}, true},
		"body only":                   {nil, url.Values{"client_id": {"svc"}, "client_secret": {"s"}}, true},
		"basic and a body secret":     {[]string{basic("svc", "s")}, url.Values{"client_secret": {"wrong"}}, false},
		"basic and an empty secret":   {[]string{basic("svc", "s")}, url.Values{"client_secret": {""}}, false},
		"basic and another client_id": {[]string{basic("svc", "s")}, url.Values{"client_id": {"admin"}}, false},
		"two Authorization headers":   {[]string{basic("svc", "s"), basic("admin", "x")}, url.Values{}, false},
		"bearer and a body secret":    {[]string{"Bearer abc"}, url.Values{"client_id": {"svc"}, "client_secret": {"s"}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tokenURL, nil)
			for _, h := range tc.headers {
				r.Header.Add("Authorization", h)
			}
			before := calls
			_, err := p.Authenticate(context.Background(), r, tc.form)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, fosite.ErrInvalidRequest) || calls != before {
				t.Fatalf("err = %v (fallback called: %v), want invalid_request before any authentication", err, calls != before)
			}
		})
	}
}

func basic(user, pass string) string {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// Finding 4: resource values are handled in linear time and bounded in number.
func TestIndicatorsBounded(t *testing.T) {
	form := url.Values{}
	for i := range MaxIndicators {
		form.Add("resource", fmt.Sprintf("https://rs%d.example/", i%3))
	}
	got, err := Indicators(form)
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	form.Add("resource", "https://one-more.example/")
	if _, err := Indicators(form); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("%d values: %v", len(form["resource"]), err)
	}
}

func BenchmarkIndicators(b *testing.B) {
	form := url.Values{}
	for i := range MaxIndicators {
		form.Add("resource", fmt.Sprintf("https://rs%d.example/api", i))
	}
	for b.Loop() {
		if _, err := Indicators(form); err != nil {
			b.Fatal(err)
		}
	}
}
