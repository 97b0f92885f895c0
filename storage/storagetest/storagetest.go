package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/mandate-dev/mandate/storage"
)

// Races is the number of goroutines each race test starts.
const Races = 32

// Run runs the conformance suite. newStore must return an empty store private to the test it
// is given (and clean up after it, with t.Cleanup). It is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	areas := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Clients", testClients},
		{"ResourceServers", testResourceServers},
		{"Trusts", testTrusts},
		{"Peers", testPeers},
		{"Keys", testKeys},
		{"JTI", testJTI},
		{"AuthorizeCode", testAuthorizeCode},
		{"AccessToken", testAccessToken},
		{"AccessToken/OneTokenGrant", testOneTokenGrant},
		{"RefreshToken", testRefreshToken},
		{"PKCE", testPKCE},
		{"RequestFidelity", testRequestFidelity},
		{"Aliasing", testAliasing},
		{"Transactions", testTransactions},
		{"Transactions/EveryMethod", testTxEveryMethod},
		{"Transactions/JTIReuse", testTxJTIReuse},
		{"GarbageCollection", testGC},
		{"BadInput", testBadInput},
		{"Race/InvalidateAuthorizeCode", testRaceInvalidate},
		{"Race/InvalidateAuthorizeCodeInTx", testRaceInvalidateTx},
		{"Race/RotateRefreshToken", testRaceRotate},
		{"Race/RotateRefreshTokenInTx", testRaceRotateTx},
		{"Race/CreateTokenSessions", testRaceCreate},
		{"Race/UseJTI", testRaceJTI},
		{"Race/UseJTIExpiredTakeover", testRaceJTIExpired},
		{"Race/UpdateKeys", testRaceKeys},
		// The management roles (storage.Manager, optional: skipped for a store without them).
		{"Manage/Clients", testManageClients},
		{"Manage/RevokeClientGrants", testRevokeClientGrants},
		{"Manage/ResourceServers", testManageResourceServers},
		{"Manage/Trusts", testManageTrusts},
		{"Manage/RaceCreateClient", testRaceCreateClient},
		{"Manage/Peers", testManagePeers},
		{"Manage/RaceCreatePeer", testRaceCreatePeer},
	}
	for _, a := range areas {
		t.Run(a.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			a.fn(t, s)
		})
	}
}

// now is the current time in UTC at microsecond precision, which every SQL database keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// randID returns a random identifier with the given prefix.
func randID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// bigSig mimics the signature segment of an RS256 JWT: 342 characters.
func bigSig() string {
	var b [256]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:342]
}

func mustSaveClient(t *testing.T, s storage.Store, id string) *storage.Client {
	t.Helper()
	c := &storage.Client{
		ID:           id,
		Name:         "client " + id,
		SecretHash:   []byte("hash-of-secret"),
		RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes:   []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:       []string{"orders:read", "orders:write", "offline"},
		Resources:    []string{"https://api.example/"},
	}
	if err := s.SaveClient(context.Background(), c); err != nil {
		t.Fatalf("SaveClient: %v", err)
	}
	return c
}

// newRequest builds a requester as fosite would store it, with every token kind expiring an
// hour from now.
func newRequest(t *testing.T, client *storage.Client) *fosite.Request {
	t.Helper()
	r := fosite.NewRequest()
	r.ID = randID("req-")
	r.RequestedAt = now()
	r.Client = client
	r.RequestedScope = fosite.Arguments{"orders:read", "offline"}
	r.GrantedScope = fosite.Arguments{"orders:read"}
	r.RequestedAudience = fosite.Arguments{"https://api.example/"}
	r.GrantedAudience = fosite.Arguments{"https://api.example/"}
	r.Form = url.Values{"code_challenge": {"abc"}, "code_challenge_method": {"S256"}}
	exp := now().Add(time.Hour)
	sess := &storage.Session{
		Subject:  "user-1",
		Username: "alice",
		AuthTime: now().Add(-time.Minute),
		ACR:      "urn:acr:pwd",
		AMR:      []string{"pwd", "otp"},
		// Numbers read back exactly, as int64 when they are integers (see storage.Session):
		// 2^53+1 is not a float64.
		Extra: map[string]any{"roles": []any{"admin", "ops"}, "n": int64(3), "ratio": 2.5,
			"nested": map[string]any{"k": "v", "id": int64(9007199254740993)}},
		AccessToken: map[string]any{
			"iss": "https://as.example", "aud": "https://api.example/", "scope": "orders:read",
			"account": int64(-9007199254740993), "exp": int64(1893456000),
		},
	}
	for _, k := range []fosite.TokenType{fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken} {
		sess.SetExpiresAt(k, exp)
	}
	r.Session = sess
	return r
}

// checkRequest compares a read request with the stored one.
func checkRequest(t *testing.T, what string, got fosite.Requester, want *fosite.Request) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil request", what)
	}
	if got.GetID() != want.ID {
		t.Errorf("%s: ID = %q, want %q", what, got.GetID(), want.ID)
	}
	if !got.GetRequestedAt().Equal(want.RequestedAt) || got.GetRequestedAt().Location() != time.UTC {
		t.Errorf("%s: RequestedAt = %v, want %v in UTC", what, got.GetRequestedAt(), want.RequestedAt)
	}
	if got.GetClient() == nil || got.GetClient().GetID() != want.Client.GetID() {
		t.Errorf("%s: client = %v, want %q", what, got.GetClient(), want.Client.GetID())
	} else if _, ok := got.GetClient().(*storage.Client); !ok {
		t.Errorf("%s: client is %T, want *storage.Client", what, got.GetClient())
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"RequestedScope", got.GetRequestedScopes(), want.RequestedScope},
		{"GrantedScope", got.GetGrantedScopes(), want.GrantedScope},
		{"RequestedAudience", got.GetRequestedAudience(), want.RequestedAudience},
		{"GrantedAudience", got.GetGrantedAudience(), want.GrantedAudience},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %s = %q, want %q", what, c.name, c.got, c.want)
		}
	}
	if !reflect.DeepEqual(normForm(got.GetRequestForm()), normForm(want.Form)) {
		t.Errorf("%s: Form = %v, want %v", what, got.GetRequestForm(), want.Form)
	}
	checkSession(t, what, got.GetSession(), want.Session)
}

func normForm(v url.Values) url.Values {
	if len(v) == 0 {
		return url.Values{}
	}
	return v
}

func checkSession(t *testing.T, what string, got, want fosite.Session) {
	t.Helper()
	g, ok := got.(*storage.Session)
	if !ok {
		t.Fatalf("%s: session is %T, want *storage.Session", what, got)
	}
	w := want.(*storage.Session)
	if g.Subject != w.Subject || g.Username != w.Username || g.ACR != w.ACR || !slices.Equal(g.AMR, w.AMR) {
		t.Errorf("%s: session = %+v, want %+v", what, g, w)
	}
	if !g.AuthTime.Equal(w.AuthTime) || (!g.AuthTime.IsZero() && g.AuthTime.Location() != time.UTC) {
		t.Errorf("%s: session AuthTime = %v, want %v in UTC", what, g.AuthTime, w.AuthTime)
	}
	if !reflect.DeepEqual(g.Extra, w.Extra) || !reflect.DeepEqual(g.AccessToken, w.AccessToken) {
		t.Errorf("%s: session claims = %v %v, want %v %v", what, g.Extra, g.AccessToken, w.Extra, w.AccessToken)
	}
	if len(g.ExpiresAt) != len(w.ExpiresAt) {
		t.Errorf("%s: session ExpiresAt = %v, want %v", what, g.ExpiresAt, w.ExpiresAt)
	}
	for k, v := range w.ExpiresAt {
		if gv := g.ExpiresAt[k]; !gv.Equal(v) || gv.Location() != time.UTC {
			t.Errorf("%s: session ExpiresAt[%s] = %v, want %v in UTC", what, k, gv, v)
		}
	}
}

// isNotFound reports fosite.ErrNotFound (== storage.ErrNotFound).
func isNotFound(err error) bool { return errors.Is(err, fosite.ErrNotFound) }

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !isNotFound(err) {
		t.Errorf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// start runs n goroutines that all begin fn at the same moment and returns their errors.
func start(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	ready := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			defer func() {
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("panic: %v", r)
				}
			}()
			<-ready
			errs[i] = fn(i)
		}()
	}
	close(ready)
	for range n {
		<-done
	}
	return errs
}

func winners(errs []error) (n int, winner int) {
	winner = -1
	for i, err := range errs {
		if err == nil {
			n++
			winner = i
		}
	}
	return n, winner
}
