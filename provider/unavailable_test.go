package provider_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
)

// downStore is a store whose database can be taken away: while down, the methods it selects
// (all when only is nil) fail as gormstore fails when the server refuses connections.
type downStore struct {
	storage.Store
	down atomic.Bool
	only func(method string) bool
}

func (d *downStore) fail(method string) error {
	if !d.down.Load() || d.only != nil && !d.only(method) {
		return nil
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	return fmt.Errorf("gormstore: %s: %w: %w", method, storage.ErrUnavailable, refused)
}

func (d *downStore) Client(ctx context.Context, id string) (*storage.Client, error) {
	if err := d.fail("Client"); err != nil {
		return nil, err
	}
	return d.Store.Client(ctx, id)
}

func (d *downStore) ResourceServer(ctx context.Context, id string) (*storage.ResourceServer, error) {
	if err := d.fail("ResourceServer"); err != nil {
		return nil, err
	}
	return d.Store.ResourceServer(ctx, id)
}

func (d *downStore) ResourceServers(ctx context.Context) ([]storage.ResourceServer, error) {
	if err := d.fail("ResourceServers"); err != nil {
		return nil, err
	}
	return d.Store.ResourceServers(ctx)
}

func (d *downStore) Trusts(ctx context.Context, issuer string) ([]storage.Trust, error) {
	if err := d.fail("Trusts"); err != nil {
		return nil, err
	}
	return d.Store.Trusts(ctx, issuer)
}

func (d *downStore) Keys(ctx context.Context) ([]storage.Key, error) {
	if err := d.fail("Keys"); err != nil {
		return nil, err
	}
	return d.Store.Keys(ctx)
}

func (d *downStore) UpdateKeys(ctx context.Context, update func([]storage.Key) ([]storage.Key, error)) error {
	if err := d.fail("UpdateKeys"); err != nil {
		return err
	}
	return d.Store.UpdateKeys(ctx, update)
}

func (d *downStore) AccessTokenExists(ctx context.Context, sig string) (bool, error) {
	if err := d.fail("AccessTokenExists"); err != nil {
		return false, err
	}
	return d.Store.(storage.AccessTokenChecker).AccessTokenExists(ctx, sig)
}

func (d *downStore) UseJTI(ctx context.Context, key string, exp time.Time) error {
	if err := d.fail("UseJTI"); err != nil {
		return err
	}
	return d.Store.UseJTI(ctx, key, exp)
}

func (d *downStore) JTIUsed(ctx context.Context, key string) (bool, error) {
	if err := d.fail("JTIUsed"); err != nil {
		return false, err
	}
	return d.Store.JTIUsed(ctx, key)
}

func (d *downStore) BeginTX(ctx context.Context) (context.Context, error) {
	if err := d.fail("BeginTX"); err != nil {
		return ctx, err
	}
	return d.Store.BeginTX(ctx)
}

func (d *downStore) Commit(ctx context.Context) error {
	if err := d.fail("Commit"); err != nil {
		_ = d.Store.Rollback(ctx) // what a lost connection does to the transaction
		return err
	}
	return d.Store.Commit(ctx)
}

func (d *downStore) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	if err := d.fail("CreateAuthorizeCodeSession"); err != nil {
		return err
	}
	return d.Store.CreateAuthorizeCodeSession(ctx, code, req)
}

func (d *downStore) GetAuthorizeCodeSession(ctx context.Context, code string, s fosite.Session) (fosite.Requester, error) {
	if err := d.fail("GetAuthorizeCodeSession"); err != nil {
		return nil, err
	}
	return d.Store.GetAuthorizeCodeSession(ctx, code, s)
}

func (d *downStore) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	if err := d.fail("InvalidateAuthorizeCodeSession"); err != nil {
		return err
	}
	return d.Store.InvalidateAuthorizeCodeSession(ctx, code)
}

func (d *downStore) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	if err := d.fail("CreateAccessTokenSession"); err != nil {
		return err
	}
	return d.Store.CreateAccessTokenSession(ctx, sig, req)
}

func (d *downStore) GetAccessTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	if err := d.fail("GetAccessTokenSession"); err != nil {
		return nil, err
	}
	return d.Store.GetAccessTokenSession(ctx, sig, s)
}

func (d *downStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	if err := d.fail("DeleteAccessTokenSession"); err != nil {
		return err
	}
	return d.Store.DeleteAccessTokenSession(ctx, sig)
}

func (d *downStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, req fosite.Requester) error {
	if err := d.fail("CreateRefreshTokenSession"); err != nil {
		return err
	}
	return d.Store.CreateRefreshTokenSession(ctx, sig, accessSig, req)
}

func (d *downStore) GetRefreshTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	if err := d.fail("GetRefreshTokenSession"); err != nil {
		return nil, err
	}
	return d.Store.GetRefreshTokenSession(ctx, sig, s)
}

func (d *downStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	if err := d.fail("DeleteRefreshTokenSession"); err != nil {
		return err
	}
	return d.Store.DeleteRefreshTokenSession(ctx, sig)
}

func (d *downStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	if err := d.fail("RotateRefreshToken"); err != nil {
		return err
	}
	return d.Store.RotateRefreshToken(ctx, requestID, sig)
}

func (d *downStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if err := d.fail("RevokeRefreshToken"); err != nil {
		return err
	}
	return d.Store.RevokeRefreshToken(ctx, requestID)
}

func (d *downStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	if err := d.fail("RevokeAccessToken"); err != nil {
		return err
	}
	return d.Store.RevokeAccessToken(ctx, requestID)
}

func (d *downStore) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	if err := d.fail("CreatePKCERequestSession"); err != nil {
		return err
	}
	return d.Store.CreatePKCERequestSession(ctx, sig, req)
}

func (d *downStore) GetPKCERequestSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	if err := d.fail("GetPKCERequestSession"); err != nil {
		return nil, err
	}
	return d.Store.GetPKCERequestSession(ctx, sig, s)
}

func (d *downStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	if err := d.fail("DeletePKCERequestSession"); err != nil {
		return err
	}
	return d.Store.DeletePKCERequestSession(ctx, sig)
}

func (d *downStore) DeleteExpired(ctx context.Context, before time.Time, batch int) (int64, error) {
	if err := d.fail("DeleteExpired"); err != nil {
		return 0, err
	}
	return d.Store.DeleteExpired(ctx, before, batch)
}

// logLines is a slog handler that keeps every record's message and attributes as one line.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// matching returns the lines that contain s.
func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// downAS starts an authorization server on a store that the test can take down.
func downAS(t *testing.T, only func(string) bool, opts ...asOption) (*testAS, *downStore, *logLines) {
	t.Helper()
	ds := &downStore{Store: newStore(t), only: only}
	logs := &logLines{}
	opts = append([]asOption{func(c *provider.Config) { c.Logger = slog.New(logs) }}, opts...)
	return newASWith(t, ds, testSecret(t), "", opts...), ds, logs
}

// checkUnavailable checks a 503 temporarily_unavailable answer in RFC 6749 §5.2 JSON.
func checkUnavailable(t *testing.T, what string, resp *http.Response, m map[string]any) {
	t.Helper()
	if resp.StatusCode != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" {
		t.Errorf("%s while the store is down: %d %v, want 503 temporarily_unavailable", what, resp.StatusCode, m)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("%s: Retry-After %q, want 2", what, ra)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, cc)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("%s: WWW-Authenticate on a 503: the client's credentials were not refused", what)
	}
	if d, _ := m["error_description"].(string); strings.Contains(d, "connect") || strings.Contains(d, "gormstore") {
		t.Errorf("%s: the description exposes the cause: %q", what, d)
	}
}

var ccForm = url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}, "resource": {orders}}

// TestTokenEndpointStoreDown: the token endpoint answers 503 temporarily_unavailable with
// Retry-After — never 500, never invalid_client — whether the client cannot be read or the
// token cannot be written, logs the outage once, and works again by itself.
func TestTokenEndpointStoreDown(t *testing.T) {
	for name, only := range map[string]func(string) bool{
		"everything down":     nil,
		"token write fails":   func(m string) bool { return m == "CreateAccessTokenSession" },
		"client lookup fails": func(m string) bool { return m == "Client" },
	} {
		t.Run(name, func(t *testing.T) {
			as, ds, logs := downAS(t, only)
			as.clientCredentials("orders:read", orders)
			ds.down.Store(true)
			for i := range 20 {
				resp, m := as.post("token", ccForm, "svc", "svc-secret-0123456789")
				checkUnavailable(t, fmt.Sprintf("token request %d", i), resp, m)
			}
			if got := logs.matching("storage"); len(got) != 1 || !strings.Contains(got[0], "ERROR") || !strings.Contains(got[0], "connection refused") {
				t.Errorf("20 failed requests logged as %q, want one error line with the cause", got)
			}
			if n := len(logs.matching("server error")); n != 0 {
				t.Errorf("%d server-error lines: an outage is not a server error", n)
			}
			ds.down.Store(false)
			as.clientCredentials("orders:read", orders)
			if got := logs.matching("storage available again"); len(got) != 0 {
				t.Errorf("a success right after the failures logged the recovery: %q", got)
			}
			time.Sleep(1100 * time.Millisecond) // a success a second after the last failure ends the outage
			as.clientCredentials("orders:read", orders)
			if got := logs.matching("storage available again"); len(got) != 1 || !strings.Contains(got[0], "failures=20") {
				t.Errorf("recovery logged as %q, want one line counting 20 failures", got)
			}
			if strings.Contains(logs.all(), "svc-secret") {
				t.Error("a client secret reached the log")
			}
		})
	}
}

// TestCodeAndRefreshStoreDown: the code exchange and the refresh grant answer 503 when their
// transaction cannot begin or commit, and nothing is half-written: the code and the refresh
// token still work once the store is back.
func TestCodeAndRefreshStoreDown(t *testing.T) {
	for _, failing := range []string{"BeginTX", "Commit"} {
		t.Run(failing, func(t *testing.T) {
			as, ds, _ := downAS(t, func(m string) bool { return m == failing })
			conf := &oauth2.Config{
				ClientID: "conf", ClientSecret: "conf-secret-0123456789", Scopes: []string{"orders:read"},
				RedirectURL: "http://127.0.0.1:3000/cb",
				Endpoint:    oauth2.Endpoint{AuthURL: as.endpoint("authorize"), TokenURL: as.endpoint("token")},
			}
			code := authorize(t, conf.AuthCodeURL("state-1234567890"))
			exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {conf.RedirectURL}}
			ds.down.Store(true)
			resp, m := as.post("token", exchange, "conf", "conf-secret-0123456789")
			checkUnavailable(t, "code exchange", resp, m)
			ds.down.Store(false)
			resp, m = as.post("token", exchange, "conf", "conf-secret-0123456789")
			if resp.StatusCode != 200 {
				t.Fatalf("the code after the outage: %d %v, want it still usable", resp.StatusCode, m)
			}
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)}}
			ds.down.Store(true)
			resp, m = as.post("token", refresh, "conf", "conf-secret-0123456789")
			checkUnavailable(t, "refresh", resp, m)
			ds.down.Store(false)
			if resp, m = as.post("token", refresh, "conf", "conf-secret-0123456789"); resp.StatusCode != 200 {
				t.Fatalf("the refresh token after the outage: %d %v, want it still usable (not rotated)", resp.StatusCode, m)
			}
		})
	}
}

// TestCodeWithPKCEStoreDown documents fosite's window: its PKCE handler deletes the code's PKCE
// record before the exchange's transaction begins, so a code exchange that the outage fails
// after that point cannot be retried: the code is refused with invalid_grant (never a 500), and
// the client starts a new authorization.
func TestCodeWithPKCEStoreDown(t *testing.T) {
	as, ds, _ := downAS(t, func(m string) bool { return m == "BeginTX" })
	_, code, verifier := auditCode(t, as, "web", "", []string{"orders:read"})
	ds.down.Store(true)
	resp, m := as.auditExchange(code, verifier)
	checkUnavailable(t, "code exchange", resp, m)
	ds.down.Store(false)
	if resp, m = as.auditExchange(code, verifier); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("the PKCE code after the outage: %d %v, want 400 invalid_grant", resp.StatusCode, m)
	}
	_, code, verifier = auditCode(t, as, "web", "", []string{"orders:read"})
	if resp, m = as.auditExchange(code, verifier); resp.StatusCode != 200 {
		t.Fatalf("a new authorization after the outage: %d %v", resp.StatusCode, m)
	}
}

// TestIntrospectionStoreDown: introspection does not answer active:false for a token it cannot
// check; it answers 503, and active:true again once the store is back.
func TestIntrospectionStoreDown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		only      func(string) bool
		stateless bool
	}{
		{"everything down", nil, false},
		{"token lookup fails", func(m string) bool { return m == "GetAccessTokenSession" || m == "AccessTokenExists" }, false},
		{"stateless deny list fails", func(m string) bool { return m == "JTIUsed" }, true},
		{"refresh token lookup fails", func(m string) bool { return strings.HasPrefix(m, "Get") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as, ds, _ := downAS(t, tc.only, func(c *provider.Config) { c.StatelessAccessTokens = tc.stateless })
			token := as.clientCredentials("orders:read", orders)
			if strings.HasPrefix(tc.name, "refresh") {
				_, tok := authCode(t, as, "web", "", []string{"orders:read"})
				token = tok.RefreshToken
			}
			ds.down.Store(true)
			resp, m := as.post("introspect", url.Values{"token": {token}}, "rs", "rs-secret-0123456789")
			checkUnavailable(t, "introspection", resp, m)
			ds.down.Store(false)
			if m := as.auditIntrospect(token); m["active"] != true {
				t.Fatalf("after the outage: %v, want active", m)
			}
		})
	}
}

// TestRevocationStoreDown: revocation answers 503 when the client or the token cannot be read,
// never invalid_client or a silent 200, and revokes once the store is back.
func TestRevocationStoreDown(t *testing.T) {
	for name, only := range map[string]func(string) bool{
		"everything down":  nil,
		"token lookup":     func(m string) bool { return strings.HasPrefix(m, "Get") },
		"revocation write": func(m string) bool { return strings.HasPrefix(m, "Revoke") },
	} {
		t.Run(name, func(t *testing.T) {
			as, ds, _ := downAS(t, only)
			token := as.clientCredentials("orders:read", orders)
			ds.down.Store(true)
			resp, m := as.post("revoke", url.Values{"token": {token}}, "svc", "svc-secret-0123456789")
			checkUnavailable(t, "revocation", resp, m)
			ds.down.Store(false)
			if resp, m := as.post("revoke", url.Values{"token": {token}}, "svc", "svc-secret-0123456789"); resp.StatusCode != 200 {
				t.Fatalf("revocation after the outage: %d %v", resp.StatusCode, m)
			}
			if m := as.auditIntrospect(token); m["active"] != false {
				t.Fatalf("revoked token: %v", m)
			}
		})
	}
	t.Run("stateless deny list", func(t *testing.T) {
		as, ds, _ := downAS(t, func(m string) bool { return m == "UseJTI" }, func(c *provider.Config) { c.StatelessAccessTokens = true })
		token := as.clientCredentials("orders:read", orders)
		ds.down.Store(true)
		resp, m := as.post("revoke", url.Values{"token": {token}}, "svc", "svc-secret-0123456789")
		checkUnavailable(t, "stateless revocation", resp, m)
	})
}

// TestAuthorizeStoreDown: /authorize answers 503 with Retry-After while the client cannot be
// read (there is no validated redirect URI to send an error to), and redirects with
// error=temporarily_unavailable (RFC 6749 §4.1.2.1) when the code cannot be stored.
func TestAuthorizeStoreDown(t *testing.T) {
	authURL := func(as *testAS) string {
		return as.endpoint("authorize") + "?" + url.Values{
			"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"http://127.0.0.1:3000/cb"},
			"scope": {"orders:read"}, "state": {"state-1234567890"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		}.Encode()
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	as, ds, _ := downAS(t, nil)
	ds.down.Store(true)
	resp, m := as.do(mustReq(t, http.MethodGet, authURL(as)))
	checkUnavailable(t, "authorize without a readable client", resp, m)

	as, ds, _ = downAS(t, func(m string) bool { return strings.HasPrefix(m, "Create") })
	ds.down.Store(true)
	r, err := noFollow.Get(authURL(as))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "temporarily_unavailable" || loc.Query().Get("state") != "state-1234567890" {
		t.Fatalf("authorize with the code write failing: %d %q, want a redirect with error=temporarily_unavailable", r.StatusCode, r.Header.Get("Location"))
	}
	ds.down.Store(false)
	authorize(t, authURL(as))
}

// TestMetadataAndKeysStoreDown: the metadata document, which lists the registered scopes from
// the store, answers 503 with Retry-After while the store is down; the JWKS comes from memory
// and keeps answering.
func TestMetadataAndKeysStoreDown(t *testing.T) {
	as, ds, _ := downAS(t, nil)
	iu, _ := url.Parse(as.issuer)
	wk := "http://" + as.srv.Listener.Addr().String() + "/.well-known/oauth-authorization-server" + iu.Path
	ds.down.Store(true)
	resp, err := http.Get(wk)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("metadata while the store is down: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Get(as.endpoint("jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("JWKS while the store is down: %d, want 200 from memory", resp.StatusCode)
	}
}
