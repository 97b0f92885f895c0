package verify

import (
	"context"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and whatever it accepts
// must satisfy every rule (it can only be one of the genuinely signed seeds).
//
//	go test -run '^$' -fuzz FuzzVerify -fuzztime 20s ./strategy/verify
func FuzzVerify(f *testing.F) {
	clk := newClock()
	keys := []testKey{newRSAKey(f, "rsa-1"), newECKey(f, "ec-1"), newEdKey(f, "ed-1")}
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	v, err := New(context.Background(), Config{Issuer: testIssuer, Audience: testAudience, Keys: &set, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	c := claimsAt(testIssuer, clk.Now())
	for _, k := range keys {
		good := k.token(f, k.header(), c)
		p := strings.Split(good, ".")
		f.Add(good)
		f.Add(p[0] + "." + p[1])
		f.Add(good + ".x.y")
		f.Add(p[0] + "." + b64([]byte(`{"exp":"1","aud":[1],"iss":{}}`)) + "." + p[2])
		f.Add(k.sign(f, mustJSON(f, k.header()), []byte(`{"aud":"a","aud":"b"}`)))
		f.Add(k.sign(f, []byte(`{"alg":"`+string(k.alg)+`","typ":"at+jwt","kid":"`+k.kid+`","jku":"https://x"}`), mustJSON(f, c)))
	}
	f.Add(b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + b64(mustJSON(f, c)) + ".")
	f.Add("a.b.c.d.e")
	f.Add("")
	f.Add("....")
	f.Add(b64([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"\u0072sa-1"`)) + ".e30.AA")

	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(context.Background(), raw)
		if err != nil {
			if got != nil {
				t.Fatal("claims with an error")
			}
			for _, s := range segments(raw) {
				if len(s) > 16 && strings.Contains(err.Error(), s) {
					t.Fatalf("error contains part of the token: %v", err)
				}
			}
			return
		}
		if got.Issuer != testIssuer || !slices.Contains(got.Audience, testAudience) ||
			got.Subject == "" || got.ClientID == "" || got.ID == "" || got.ExpiresAt.IsZero() {
			t.Fatalf("accepted claims break the rules: %+v", got)
		}
	})
}
