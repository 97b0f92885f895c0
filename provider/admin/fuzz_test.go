package admin_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mandate-dev/mandate/provider/admin"
)

// FuzzDecode feeds the admin API's request decoders arbitrary bodies: none may panic, and a
// body one accepts must encode to a body it accepts again, decoding to the same value.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"client_id":"a","client_name":"n","grant_types":["client_credentials"],"scope":"x y","resources":["https://a.example/"]}`,
		`{"identifier":"https://a.example/","scopes":["x"],"access_token_ttl":"5m","default":true}`,
		`{"issuer":"https://i.example","subject":"s","jwks_uri":"https://i.example/k","scopes":[],"resources":[]}`,
		`{"issuer":"https://as.y.example","scopes":["s"],"claims":["act"],"max_grant_lifetime":"2m","signing_alg":"EdDSA"}`,
		`{"client_id":"a","client_id":"b"}`, `{"Client_ID":"a"}`, `{"scope":"a  b"}`, `[]`, `{"jwks":{"keys":[{"kty":"EC"}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := admin.DecodeClient(data); err == nil {
			again(t, c, func(b []byte) (any, error) { return admin.DecodeClient(b) })
		}
		if r, err := admin.DecodeResource(data); err == nil {
			again(t, r, func(b []byte) (any, error) { return admin.DecodeResource(b) })
		}
		if tr, err := admin.DecodeTrust(data); err == nil {
			again(t, tr, func(b []byte) (any, error) { return admin.DecodeTrust(b) })
		}
		if pe, err := admin.DecodePeer(data); err == nil {
			again(t, pe, func(b []byte) (any, error) { return admin.DecodePeer(b) })
		}
	})
}

func again(t *testing.T, v any, decode func([]byte) (any, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	w, err := decode(b)
	if err != nil {
		t.Fatalf("%s: accepted, but its encoding is refused: %v", b, err)
	}
	bw, _ := json.Marshal(w)
	if !reflect.DeepEqual(b, bw) {
		t.Fatalf("round trip changed %s into %s", b, bw)
	}
}
