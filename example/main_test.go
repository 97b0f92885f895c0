package main

// Black-box tests of the example binary: it is built once, started as a subprocess with -addr,
// -rs-addr, -data and -config flags, and driven over HTTP with the real golang.org/x/oauth2
// clients and hand-built RFC 7523 assertions, the way a newcomer following the README would.
// Tokens are checked with strategy/verify against the running server's metadata and keys.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	xjwt "golang.org/x/oauth2/jwt"

	"github.com/mandate-dev/mandate/strategy/verify"
)

const (
	// startTimeout bounds how long a started example may take to answer its metadata URL.
	startTimeout = 20 * time.Second
	// stopTimeout bounds a graceful stop (interrupt) before the process is killed.
	stopTimeout = 10 * time.Second

	grantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	clientAssertionTyp = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

	// The resource servers of the multi-resource configuration.
	rsOrders = "https://orders.example.com/"  // ES256, 10m, default
	rsBills  = "https://billing.example.com/" // RS256, 5m
	rsLedger = "https://ledger.example.com/"  // EdDSA, 2m

	idpIssuer = "https://idp.partner.example" // trust with jti required, EdDSA key
	saIssuer  = "svc-account@partner.example" // trust with jti_optional, RSA key (x/oauth2/jwt)

	basicSecret = "basic-secret-0123456789abcdef"
	postSecret  = "post-secret-0123456789abcdef"
)

// TestExample builds the example binary once and runs every black-box scenario against it.
func TestExample(t *testing.T) {
	bin := buildExample(t)
	t.Run("default demo", func(t *testing.T) {
		t.Parallel()
		testDefaultDemo(t, bin)
	})
	t.Run("several resource servers", func(t *testing.T) {
		t.Parallel()
		testConfig(t, bin)
	})
	t.Run("restart re-applies the config", func(t *testing.T) {
		t.Parallel()
		testRestart(t, bin)
	})
	t.Run("bad configs", func(t *testing.T) {
		t.Parallel()
		testBadConfigs(t, bin)
	})
	t.Run("two trust domains", func(t *testing.T) {
		t.Parallel()
		testTwoDomains(t, bin)
	})
	t.Run("DPoP", func(t *testing.T) {
		t.Parallel()
		testDPoP(t, bin)
	})
}

// buildExample compiles the example into a temporary directory and returns the binary's path.
// It skips the test if no go tool can be found.
func buildExample(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); runtime.GOROOT() == "" || err != nil {
		p, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("the go tool is needed to build the example: not in GOROOT/bin nor in PATH: %v", err)
		}
		goTool = p
	}
	bin := filepath.Join(t.TempDir(), "example")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./example: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe for the writes of os/exec's copying goroutine and the
// test's concurrent reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}

// startOptions say how to start the example.
type startOptions struct {
	// data is the -data directory.
	data string
	// addr and rsAddr are the listen addresses; empty picks free loopback ports (and retries
	// with new ones if another process took them first).
	addr, rsAddr string
	// config, if set, is written as the -config file, for the issuer http://ADDR.
	config func(issuer string) map[string]any
	// args are more flags.
	args []string
}

// example is a running example process.
type example struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	addr, rsAddr   string
	issuer         string
	done           chan struct{} // closed when the process has exited
	waitErr        error         // cmd.Wait's result, set before done is closed
}

// startExample starts the example and waits until its metadata URL and its demo resource server
// answer. The process is killed when the test ends.
func startExample(t *testing.T, bin string, o startOptions) *example {
	t.Helper()
	for attempt := 1; ; attempt++ {
		e, err := launch(t, bin, o)
		if err == nil {
			return e
		}
		picked := o.addr == "" && o.rsAddr == ""
		if !picked || attempt == 3 || !strings.Contains(e.stderr.String(), "address already in use") {
			t.Fatalf("example did not start: %v\nstdout:\n%s\nstderr:\n%s", err, e.stdout, e.stderr)
		}
	}
}

// launch is one attempt of startExample. On error the returned example holds the output.
func launch(t *testing.T, bin string, o startOptions) (*example, error) {
	t.Helper()
	e := &example{addr: o.addr, rsAddr: o.rsAddr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	if e.addr == "" {
		e.addr = freeAddr(t)
	}
	if e.rsAddr == "" {
		e.rsAddr = freeAddr(t)
	}
	e.issuer = "http://" + e.addr
	args := []string{"-addr", e.addr, "-rs-addr", e.rsAddr, "-data", o.data}
	if o.config != nil {
		path := filepath.Join(t.TempDir(), "mandate.json")
		writeConfig(t, path, o.config(e.issuer))
		args = append(args, "-config", path)
	}
	args = append(args, o.args...)
	e.cmd = exec.Command(bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = e.stdout, e.stderr
	if err := e.cmd.Start(); err != nil {
		return e, fmt.Errorf("start: %w", err)
	}
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.done)
	}()
	t.Cleanup(e.kill)

	deadline := time.Now().Add(startTimeout)
	metadataURL := e.issuer + "/.well-known/oauth-authorization-server"
	for u, status := range map[string]int{metadataURL: http.StatusOK, "http://" + e.rsAddr + "/orders": http.StatusUnauthorized} {
		if err := e.poll(deadline, u, status); err != nil {
			e.kill()
			return e, err
		}
	}
	return e, nil
}

// poll GETs u until it answers with status, the process exits, or deadline passes.
func (e *example) poll(deadline time.Time, u string, status int) error {
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(u)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == status {
				return nil
			}
			err = fmt.Errorf("status %d, want %d", resp.StatusCode, status)
		}
		select {
		case <-e.done:
			return fmt.Errorf("exited before %s answered: %w", u, e.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", u, startTimeout, err)
		}
	}
}

// kill ends the process (if it still runs) and waits for it.
func (e *example) kill() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Kill()
	<-e.done
}

// stop interrupts the process, as Ctrl-C would, and fails the test unless it shuts down
// cleanly (exit status 0) within stopTimeout.
func (e *example) stop(t *testing.T) {
	t.Helper()
	if err := e.cmd.Process.Signal(os.Interrupt); err != nil {
		e.kill() // no interrupts on this platform
		return
	}
	select {
	case <-e.done:
	case <-time.After(stopTimeout):
		e.kill()
		t.Fatalf("example did not stop within %s of an interrupt\nstderr:\n%s", stopTimeout, e.stderr)
	}
	if e.waitErr != nil {
		t.Fatalf("example stopped with %v\nstderr:\n%s", e.waitErr, e.stderr)
	}
}

// tokenURL fetches the RFC 8414 metadata, checks its issuer and returns its token endpoint.
func (e *example) tokenURL(t *testing.T) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: httpTimeout}).Get(e.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: status %d, %v", resp.StatusCode, err)
	}
	if md.Issuer != e.issuer || md.TokenEndpoint == "" {
		t.Fatalf("metadata issuer %q token_endpoint %q, want issuer %q", md.Issuer, md.TokenEndpoint, e.issuer)
	}
	return md.TokenEndpoint
}

// writeConfig writes doc as indented JSON to path.
func writeConfig(t *testing.T, path string, doc map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("config: %v", err)
	}
}

// httpTimeout bounds every request the test sends.
const httpTimeout = 10 * time.Second

// testContext is t's context carrying an HTTP client with a timeout, for the x/oauth2 clients.
func testContext(t *testing.T) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Timeout: httpTimeout})
}

// newVerifier is a resource server's verifier for audience, with keys discovered from the
// issuer's metadata.
func newVerifier(t *testing.T, issuer, audience string) *verify.Verifier {
	t.Helper()
	v, err := verify.New(t.Context(), verify.Config{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatalf("verifier for %s: %v", audience, err)
	}
	return v
}

// header decodes the JOSE header of a compact JWS without checking anything.
func header(t *testing.T, token string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return m
}

// tokenError is the RFC 6749 §5.2 error of a failed token request.
type tokenError struct {
	status int
	code   string
	header http.Header
}

// postToken sends form to the token endpoint (with HTTP Basic credentials if user is set) and
// returns the access token, or the error response.
func postToken(t *testing.T, tokenURL string, form url.Values, user, pass string) (string, *tokenError) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("token response (status %d): %v: %.200s", resp.StatusCode, err, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &tokenError{status: resp.StatusCode, code: body.Error, header: resp.Header}
	}
	if body.AccessToken == "" {
		t.Fatalf("token response without access_token: %.200s", raw)
	}
	return body.AccessToken, nil
}

// asTokenError extracts the status and error code of a failed x/oauth2 token request.
func asTokenError(t *testing.T, err error) *tokenError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want an *oauth2.RetrieveError", err)
	}
	return &tokenError{status: re.Response.StatusCode, code: re.ErrorCode, header: re.Response.Header}
}

// getOrders calls the demo resource server's /orders, with token as a Bearer token if set.
func getOrders(t *testing.T, rsAddr, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+rsAddr+"/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatalf("GET /orders: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// testDefaultDemo starts the example without -config and follows what it prints.
func testDefaultDemo(t *testing.T, bin string) {
	e := startExample(t, bin, startOptions{data: t.TempDir()})

	// The welcome text is printed after both servers listen; wait until it is complete.
	curl := regexp.MustCompile(`curl -s -u demo-client:([0-9a-f]+) \\\n.*-d scope=(\S+) \\\n\s+-d resource=(\S+) (\S+)\n`)
	rsLine := regexp.MustCompile(`Bearer \$TOKEN" (\S+)/orders\n`)
	var m, rs []string
	for deadline := time.Now().Add(startTimeout); ; {
		out := e.stdout.String()
		if m, rs = curl.FindStringSubmatch(out), rsLine.FindStringSubmatch(out); m != nil && rs != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no curl command and resource-server URL in the output:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	secret, scope, resource, tokenURL := m[1], m[2], m[3], m[4]
	if want := e.tokenURL(t); tokenURL != want {
		t.Fatalf("printed token URL %q, metadata says %q", tokenURL, want)
	}
	if rs[1] != "http://"+e.rsAddr {
		t.Fatalf("printed resource server %q, want http://%s", rs[1], e.rsAddr)
	}

	cc := clientcredentials.Config{
		ClientID: "demo-client", ClientSecret: secret, TokenURL: tokenURL, Scopes: []string{scope},
		EndpointParams: url.Values{"resource": {resource}}, AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(testContext(t))
	if err != nil {
		t.Fatalf("token with the printed credentials: %v", err)
	}
	c, err := newVerifier(t, e.issuer, resource).Verify(t.Context(), tok.AccessToken)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !slices.Equal(c.Audience, []string{resource}) || c.Subject != "demo-client" || c.Scope != scope {
		t.Fatalf("claims aud %q sub %q scope %q", c.Audience, c.Subject, c.Scope)
	}

	resp, body := getOrders(t, e.rsAddr, tok.AccessToken)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"client_id":"demo-client"`) {
		t.Fatalf("GET /orders with the token: %d %s", resp.StatusCode, body)
	}
	resp, _ = getOrders(t, e.rsAddr, "")
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(wa, "Bearer ") {
		t.Fatalf("GET /orders without a token: %d, WWW-Authenticate %q", resp.StatusCode, wa)
	}
	resp, _ = getOrders(t, e.rsAddr, tok.AccessToken+"x")
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(wa, `error="invalid_token"`) {
		t.Fatalf("GET /orders with a forged token: %d, WWW-Authenticate %q", resp.StatusCode, wa)
	}

	testLoginAndConsent(t, e)

	// B calls C on behalf of the caller: C sees the caller in sub and B in act.sub.
	if !strings.Contains(e.stdout.String(), "/orders/stock") {
		t.Fatalf("the token-exchange demo is not printed:\n%s", e.stdout.String())
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.rsAddr+"/orders/stock", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen struct {
		Sub      string `json:"sub"`
		ClientID string `json:"client_id"`
		Act      struct {
			Sub string `json:"sub"`
		} `json:"act"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&seen); resp.StatusCode != http.StatusOK || err != nil ||
		seen.Sub != "demo-client" || seen.ClientID != "orders-api" || seen.Act.Sub != "orders-api" {
		t.Fatalf("GET /orders/stock: %d %+v %v", resp.StatusCode, seen, err)
	}
	// C accepts only tokens for C: the caller's own token is refused there.
	req, _ = http.NewRequest(http.MethodGet, "http://"+e.rsAddr+"/inventory/stock", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if resp, err := (&http.Client{Timeout: httpTimeout}).Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("B's token at C: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// signer is a key that signs RFC 7523 assertions.
type signer struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

// newSigner generates a key for alg (RS256, ES256 or EdDSA).
func newSigner(t *testing.T, alg jose.SignatureAlgorithm, kid string) signer {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return signer{priv: priv, alg: alg, kid: kid}
}

// jwks is the public key set to declare inline in a config file, as a JSON value.
func (s signer) jwks(t *testing.T) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: s.priv.Public(), KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}}})
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	return b
}

// assertion signs a JWT with iss, sub and aud, living two minutes, with a fresh jti.
func (s signer) assertion(t *testing.T, iss, sub, aud string) string {
	t.Helper()
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims, err := json.Marshal(map[string]any{
		"iss": iss, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: jose.JSONWebKey{Key: s.priv, KeyID: s.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	obj, err := js.Sign(claims)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return out
}

// pemKey is the PKCS #8 PEM encoding of the private key, as golang.org/x/oauth2/jwt wants it.
func (s signer) pemKey(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		t.Fatalf("pem: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// keys are the keys a multi-resource configuration registers.
type keys struct {
	client signer // the private_key_jwt client "reports"
	idp    signer // the trust in idpIssuer (jti required)
	sa     signer // the trust in saIssuer (jti_optional, for x/oauth2/jwt)
}

// newKeys generates the keys of a multi-resource configuration.
func newKeys(t *testing.T) keys {
	return keys{
		client: newSigner(t, jose.ES256, "reports-1"),
		idp:    newSigner(t, jose.EdDSA, "idp-1"),
		sa:     newSigner(t, jose.RS256, "sa-1"),
	}
}

// multiConfig is a README-format configuration with three resource servers (different
// algorithms and lifetimes), clients of every confidential authentication method, and two
// trusted issuers.
func multiConfig(t *testing.T, issuer string, k keys) map[string]any {
	expires := time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	return map[string]any{
		"issuer": issuer,
		"resource_servers": []any{
			map[string]any{"identifier": rsOrders, "name": "orders", "scopes": []string{"orders:read", "orders:write"},
				"access_token_ttl": "10m", "signing_alg": "ES256", "default": true},
			map[string]any{"identifier": rsBills, "name": "billing", "scopes": []string{"billing:read", "billing:write"},
				"access_token_ttl": "5m", "signing_alg": "RS256"},
			map[string]any{"identifier": rsLedger, "name": "ledger", "scopes": []string{"ledger:read"},
				"access_token_ttl": "2m", "signing_alg": "EdDSA"},
		},
		"clients": []any{
			map[string]any{"client_id": "billing", "client_secret": basicSecret,
				"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
				"scopes": []string{"orders:read", "billing:read", "ledger:read"}, "resources": []string{rsOrders, rsBills, rsLedger}},
			map[string]any{"client_id": "poster", "client_secret": postSecret,
				"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"client_credentials"},
				"scopes": []string{"orders:read", "billing:read"}, "resources": []string{rsOrders, rsBills}},
			map[string]any{"client_id": "reports", "jwks": k.client.jwks(t),
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
				"grant_types": []string{"client_credentials"}, "scopes": []string{"billing:read"}, "resources": []string{rsBills}},
		},
		"trusted_issuers": []any{
			map[string]any{"issuer": idpIssuer, "subject": "svc-a", "jwks": k.idp.jwks(t),
				"scopes": []string{"orders:read", "billing:read"}, "resources": []string{rsOrders, rsBills}, "expires_at": expires},
			map[string]any{"issuer": saIssuer, "subject": "svc-b", "jwks": k.sa.jwks(t), "jti_optional": true,
				"scopes": []string{"orders:read"}, "resources": []string{rsOrders}, "expires_at": expires},
		},
	}
}

// testConfig drives a configuration with several resource servers, every client
// authentication method and both RFC 7523 trusts.
func testConfig(t *testing.T, bin string) {
	k := newKeys(t)
	e := startExample(t, bin, startOptions{data: t.TempDir(), config: func(issuer string) map[string]any {
		return multiConfig(t, issuer, k)
	}})
	tokenURL := e.tokenURL(t)
	verifiers := map[string]*verify.Verifier{}
	for _, aud := range []string{rsOrders, rsBills, rsLedger} {
		verifiers[aud] = newVerifier(t, e.issuer, aud)
	}
	// check verifies token for aud and that the verifiers of the other audiences refuse it.
	check := func(t *testing.T, token, aud string) *verify.Claims {
		t.Helper()
		c, err := verifiers[aud].Verify(t.Context(), token)
		if err != nil {
			t.Fatalf("verify for %s: %v", aud, err)
		}
		if !slices.Equal(c.Audience, []string{aud}) {
			t.Fatalf("aud %q, want exactly [%s]", c.Audience, aud)
		}
		for other, v := range verifiers {
			if _, err := v.Verify(t.Context(), token); other != aud && !errors.Is(err, verify.ErrAudience) {
				t.Fatalf("verifier for %s accepted a token for %s, or refused it for another reason: %v", other, aud, err)
			}
		}
		return c
	}

	t.Run("per resource server alg, aud and lifetime", func(t *testing.T) {
		for _, tc := range []struct {
			resource, wantAud, alg string
			ttl                    time.Duration
		}{
			{"", rsOrders, "ES256", 10 * time.Minute}, // no resource: the default resource server
			{rsOrders, rsOrders, "ES256", 10 * time.Minute},
			{rsBills, rsBills, "RS256", 5 * time.Minute},
			{rsLedger, rsLedger, "EdDSA", 2 * time.Minute},
		} {
			t.Run("resource="+tc.resource, func(t *testing.T) {
				cc := clientcredentials.Config{ClientID: "billing", ClientSecret: basicSecret, TokenURL: tokenURL,
					AuthStyle: oauth2.AuthStyleInHeader}
				if tc.resource != "" {
					cc.EndpointParams = url.Values{"resource": {tc.resource}}
				}
				tok, err := cc.Token(testContext(t))
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				if h := header(t, tok.AccessToken); h["alg"] != tc.alg || h["typ"] != "at+jwt" {
					t.Fatalf("header alg %v typ %v, want %s at+jwt", h["alg"], h["typ"], tc.alg)
				}
				// x/oauth2's client_credentials keeps expires_in only as Expiry and in Extra.
				if got, want := tok.Extra("expires_in"), float64(tc.ttl/time.Second); got != want {
					t.Fatalf("expires_in %v, want %v", got, want)
				}
				if got := tok.Extra("resource"); got != tc.wantAud {
					t.Fatalf("token response resource %v, want %s", got, tc.wantAud)
				}
				c := check(t, tok.AccessToken, tc.wantAud)
				if c.ExpiresAt.Sub(c.IssuedAt) != tc.ttl || c.Subject != "billing" || c.ClientID != "billing" || c.Issuer != e.issuer {
					t.Fatalf("claims exp-iat %s sub %q client_id %q iss %q", c.ExpiresAt.Sub(c.IssuedAt), c.Subject, c.ClientID, c.Issuer)
				}
			})
		}
	})

	t.Run("client_secret_post", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: "poster", ClientSecret: postSecret, TokenURL: tokenURL,
			Scopes: []string{"billing:read"}, EndpointParams: url.Values{"resource": {rsBills}}, AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(testContext(t))
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		if c := check(t, tok.AccessToken, rsBills); c.ClientID != "poster" || c.Scope != "billing:read" {
			t.Fatalf("client_id %q scope %q", c.ClientID, c.Scope)
		}
	})

	t.Run("demo resource server plays the default one", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: "billing", ClientSecret: basicSecret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(testContext(t))
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		if resp, body := getOrders(t, e.rsAddr, tok.AccessToken); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /orders with a token for %s: %d %s", rsOrders, resp.StatusCode, body)
		}
		cc.EndpointParams = url.Values{"resource": {rsBills}}
		if tok, err = cc.Token(testContext(t)); err != nil {
			t.Fatalf("token: %v", err)
		}
		resp, _ := getOrders(t, e.rsAddr, tok.AccessToken)
		if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(wa, `error="invalid_token"`) {
			t.Fatalf("GET /orders with a token for %s: %d, WWW-Authenticate %q", rsBills, resp.StatusCode, wa)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, client, secret, resource string
			style                          oauth2.AuthStyle
			status                         int
			code                           string
		}{
			{"resource the client may not use", "poster", postSecret, rsLedger, oauth2.AuthStyleInParams, http.StatusBadRequest, "invalid_target"},
			{"unregistered resource", "billing", basicSecret, "https://unknown.example.com/", oauth2.AuthStyleInHeader, http.StatusBadRequest, "invalid_target"},
			{"prefix of a resource", "billing", basicSecret, "https://billing.example.com", oauth2.AuthStyleInHeader, http.StatusBadRequest, "invalid_target"},
			{"fragment", "billing", basicSecret, rsBills + "#frag", oauth2.AuthStyleInHeader, http.StatusBadRequest, "invalid_target"},
			{"relative", "billing", basicSecret, "/billing/", oauth2.AuthStyleInHeader, http.StatusBadRequest, "invalid_target"},
			{"wrong secret", "billing", basicSecret + "x", rsBills, oauth2.AuthStyleInHeader, http.StatusUnauthorized, "invalid_client"},
			{"unknown client", "nobody", basicSecret, rsBills, oauth2.AuthStyleInHeader, http.StatusUnauthorized, "invalid_client"},
			{"basic for a client_secret_post client", "poster", postSecret, rsBills, oauth2.AuthStyleInHeader, http.StatusUnauthorized, "invalid_client"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cc := clientcredentials.Config{ClientID: tc.client, ClientSecret: tc.secret, TokenURL: tokenURL,
					EndpointParams: url.Values{"resource": {tc.resource}}, AuthStyle: tc.style}
				tok, err := cc.Token(testContext(t))
				if err == nil {
					t.Fatalf("got a token (%v), want %d %s", header(t, tok.AccessToken), tc.status, tc.code)
				}
				te := asTokenError(t, err)
				if te.status != tc.status || te.code != tc.code {
					t.Fatalf("got %d %q, want %d %s", te.status, te.code, tc.status, tc.code)
				}
				if tc.status == http.StatusUnauthorized && tc.style == oauth2.AuthStyleInHeader && !strings.HasPrefix(te.header.Get("WWW-Authenticate"), "Basic") {
					t.Fatalf("401 with WWW-Authenticate %q, want a Basic challenge", te.header.Get("WWW-Authenticate"))
				}
			})
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		form := url.Values{
			"grant_type": {"client_credentials"}, "resource": {rsBills}, "client_id": {"reports"},
			"client_assertion_type": {clientAssertionTyp},
			"client_assertion":      {k.client.assertion(t, "reports", "reports", tokenURL)},
		}
		tok, te := postToken(t, tokenURL, form, "", "")
		if te != nil {
			t.Fatalf("token: %d %s", te.status, te.code)
		}
		if c := check(t, tok, rsBills); c.ClientID != "reports" || c.Subject != "reports" || c.Scope != "billing:read" {
			t.Fatalf("client_id %q sub %q scope %q", c.ClientID, c.Subject, c.Scope)
		}
		if _, te := postToken(t, tokenURL, form, "", ""); te == nil || te.status != http.StatusUnauthorized || te.code != "invalid_client" {
			t.Fatalf("replayed client assertion: %+v, want 401 invalid_client", te)
		}
		other := newSigner(t, jose.ES256, "reports-1")
		form.Set("client_assertion", other.assertion(t, "reports", "reports", tokenURL))
		if _, te := postToken(t, tokenURL, form, "", ""); te == nil || te.status != http.StatusUnauthorized || te.code != "invalid_client" {
			t.Fatalf("client assertion signed with an unregistered key: %+v, want 401 invalid_client", te)
		}
	})

	t.Run("jwt-bearer grant", func(t *testing.T) {
		form := url.Values{
			"grant_type": {grantJWTBearer}, "resource": {rsBills}, "scope": {"billing:read"},
			"assertion": {k.idp.assertion(t, idpIssuer, "svc-a", tokenURL)},
		}
		tok, te := postToken(t, tokenURL, form, "", "")
		if te != nil {
			t.Fatalf("token: %d %s", te.status, te.code)
		}
		c := check(t, tok, rsBills)
		if c.Subject != "svc-a" || c.Scope != "billing:read" || slices.Contains(c.Audience, tokenURL) {
			t.Fatalf("sub %q scope %q aud %q", c.Subject, c.Scope, c.Audience)
		}
		if _, te := postToken(t, tokenURL, form, "", ""); te == nil || te.status != http.StatusBadRequest || te.code != "invalid_grant" {
			t.Fatalf("replayed assertion: %+v, want 400 invalid_grant", te)
		}
		form.Set("assertion", k.idp.assertion(t, idpIssuer, "svc-z", tokenURL))
		if _, te := postToken(t, tokenURL, form, "", ""); te == nil || te.status != http.StatusBadRequest || te.code != "invalid_grant" {
			t.Fatalf("subject the trust does not cover: %+v, want 400 invalid_grant", te)
		}
		form.Set("assertion", k.idp.assertion(t, idpIssuer, "svc-a", tokenURL))
		form.Set("resource", rsLedger)
		if _, te := postToken(t, tokenURL, form, "", ""); te == nil || te.status != http.StatusBadRequest || te.code != "invalid_target" {
			t.Fatalf("resource outside the trust: %+v, want 400 invalid_target", te)
		}
	})

	t.Run("golang.org/x/oauth2/jwt with a jti_optional trust", func(t *testing.T) {
		conf := &xjwt.Config{
			Email: saIssuer, Subject: "svc-b", PrivateKey: k.sa.pemKey(t), PrivateKeyID: k.sa.kid,
			TokenURL: tokenURL, Expires: 4 * time.Minute,
		}
		tok, err := conf.TokenSource(testContext(t)).Token()
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		if c := check(t, tok.AccessToken, rsOrders); c.Subject != "svc-b" || c.Scope != "orders:read" {
			t.Fatalf("sub %q scope %q", c.Subject, c.Scope)
		}
	})
}

// testRestart starts the example, stops it, edits the configuration and starts it again on
// the same data directory and addresses: the edited entries are updated, added ones created,
// entries no longer in the file left alone, and tokens issued before the restart still verify.
func testRestart(t *testing.T, bin string) {
	k := newKeys(t)
	data := t.TempDir()
	const ledgerSecret, addedSecret = "ledger-secret-0123456789", "added-secret-0123456789"
	edited := false
	config := func(issuer string) map[string]any {
		doc := multiConfig(t, issuer, k)
		clients := doc["clients"].([]any)
		if !edited {
			doc["clients"] = append(clients, map[string]any{"client_id": "ledger-only", "client_secret": ledgerSecret,
				"grant_types": []string{"client_credentials"}, "scopes": []string{"ledger:read"}, "resources": []string{rsLedger}})
			return doc
		}
		// The edit: the ledger resource server (EdDSA) and the ledger-only client leave the
		// file, the billing client gets billing:write and loses the ledger, a client is added.
		doc["resource_servers"] = doc["resource_servers"].([]any)[:2]
		billing := clients[0].(map[string]any)
		billing["scopes"] = []string{"orders:read", "billing:read", "billing:write"}
		billing["resources"] = []string{rsOrders, rsBills}
		doc["clients"] = append(clients, map[string]any{"client_id": "added", "client_secret": addedSecret,
			"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"client_credentials"},
			"scopes": []string{"billing:read"}, "resources": []string{rsBills}})
		return doc
	}
	// token gets a client_secret_basic token for resource.
	token := func(t *testing.T, tokenURL, client, secret, resource string) (*oauth2.Token, error) {
		t.Helper()
		cc := clientcredentials.Config{ClientID: client, ClientSecret: secret, TokenURL: tokenURL,
			EndpointParams: url.Values{"resource": {resource}}, AuthStyle: oauth2.AuthStyleInHeader}
		return cc.Token(testContext(t))
	}

	first := startExample(t, bin, startOptions{data: data, config: config})
	tokenURL := first.tokenURL(t)
	before := map[string]string{}
	for _, rs := range []string{rsBills, rsLedger} {
		tok, err := token(t, tokenURL, "billing", basicSecret, rs)
		if err != nil {
			t.Fatalf("token for %s before the restart: %v", rs, err)
		}
		if rs == rsBills && tok.Extra("scope") != "billing:read" {
			t.Fatalf("scope before the restart %v, want billing:read", tok.Extra("scope"))
		}
		before[rs] = tok.AccessToken
	}
	first.stop(t)

	edited = true
	second := startExample(t, bin, startOptions{data: data, addr: first.addr, rsAddr: first.rsAddr, config: config})
	for rs, tok := range before {
		if _, err := newVerifier(t, second.issuer, rs).Verify(t.Context(), tok); err != nil {
			t.Fatalf("a token for %s issued before the restart no longer verifies: %v", rs, err)
		}
	}
	t.Run("edited client: updated scopes", func(t *testing.T) {
		tok, err := token(t, tokenURL, "billing", basicSecret, rsBills)
		if err != nil {
			t.Fatalf("token after the restart: %v", err)
		}
		if got := tok.Extra("scope"); got != "billing:read billing:write" {
			t.Fatalf("scope after the restart %v, want the edited client's billing:read billing:write", got)
		}
	})
	t.Run("edited client: updated resources", func(t *testing.T) {
		_, err := token(t, tokenURL, "billing", basicSecret, rsLedger)
		if te := asTokenError(t, err); te.status != http.StatusBadRequest || te.code != "invalid_target" {
			t.Fatalf("token for a resource removed from the client: %d %s, want 400 invalid_target", te.status, te.code)
		}
	})
	t.Run("added client", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: "added", ClientSecret: addedSecret, TokenURL: tokenURL,
			EndpointParams: url.Values{"resource": {rsBills}}, AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(testContext(t))
		if err != nil {
			t.Fatalf("token for the added client: %v", err)
		}
		if _, err := newVerifier(t, second.issuer, rsBills).Verify(t.Context(), tok.AccessToken); err != nil {
			t.Fatalf("token of the added client: %v", err)
		}
	})
	t.Run("entries no longer in the file are left alone", func(t *testing.T) {
		tok, err := token(t, tokenURL, "ledger-only", ledgerSecret, rsLedger)
		if err != nil {
			t.Fatalf("token for the resource server left in storage: %v", err)
		}
		if h := header(t, tok.AccessToken); h["alg"] != "EdDSA" {
			t.Fatalf("alg %v, want the stored resource server's EdDSA", h["alg"])
		}
		if _, err := newVerifier(t, second.issuer, rsLedger).Verify(t.Context(), tok.AccessToken); err != nil {
			t.Fatalf("token for the resource server left in storage: %v", err)
		}
	})
}

// testBadConfigs checks that bad configuration files stop the start with a non-zero exit
// status and a message naming the field.
func testBadConfigs(t *testing.T, bin string) {
	const rs = `{"identifier": "https://orders.example.com/", "scopes": ["orders:read"]}`
	const client = `{"client_id": "billing", "client_secret": "` + basicSecret + `", "grant_types": ["client_credentials"],
	  "scopes": ["orders:read"], "resources": ["https://orders.example.com/"]}`
	for _, tc := range []struct {
		name, config, field string
	}{
		{"unknown field", `{"resource_servers": [{"identifier": "https://orders.example.com/", "scopes": [], "signing_algorithm": "ES256"}]}`,
			"resource_servers[0].signing_algorithm: unknown field"},
		{"unknown field of a client", `{"resource_servers": [` + rs + `], "clients": [{"client_id": "a", "secret": "x"}]}`,
			"clients[0].secret: unknown field"},
		{"malformed resource server identifier", `{"resource_servers": [` + rs + `, {"identifier": "orders.example.com", "scopes": []}]}`,
			"resource_servers[1].identifier"},
		{"resource server identifier with a fragment", `{"resource_servers": [{"identifier": "https://orders.example.com/#x", "scopes": []}]}`,
			"resource_servers[0].identifier"},
		{"unknown signing_alg", `{"resource_servers": [{"identifier": "https://orders.example.com/", "scopes": [], "signing_alg": "HS256"}]}`,
			"resource_servers[0].signing_alg"},
		{"duplicate client_id", `{"resource_servers": [` + rs + `], "clients": [` + client + `, ` + client + `]}`,
			"clients[1].client_id"},
		{"undeclared resource", `{"resource_servers": [], "clients": [` + client + `]}`,
			"clients[0].resources[0]"},
		{"public client with private_key_jwt", `{"resource_servers": [` + rs + `], "clients": [{"client_id": "web", "public": true,
		  "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://web.example.com/jwks",
		  "grant_types": ["authorization_code"], "redirect_uris": ["http://127.0.0.1:3000/cb"], "scopes": [], "resources": []}]}`,
			"clients[0].token_endpoint_auth_method"},
		{"not JSON", `{"resource_servers": [`, "provider: setup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "mandate.json")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-addr", freeAddr(t), "-rs-addr", freeAddr(t), "-data", filepath.Join(dir, "data"), "-config", path)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit status, got %v (context: %v)\nstdout:\n%s\nstderr:\n%s", err, ctx.Err(), &stdout, &stderr)
			}
			if !strings.Contains(stderr.String(), tc.field) {
				t.Fatalf("stderr does not name %q:\n%s", tc.field, &stderr)
			}
			if strings.Contains(stderr.String(), basicSecret) {
				t.Fatalf("stderr shows a client secret:\n%s", &stderr)
			}
			t.Logf("exit status %d: %s", exit.ExitCode(), strings.TrimSpace(stderr.String()))
		})
	}
}

// testLoginAndConsent follows the printed authorization URL as a browser would: the login form,
// the consent page (one of two scopes granted), the callback, the code exchange.
func testLoginAndConsent(t *testing.T, e *example) {
	t.Helper()
	m := regexp.MustCompile(`\n  (http://\S+/authorize\?\S+)\n`).FindStringSubmatch(e.stdout.String())
	if m == nil {
		t.Fatalf("no authorization URL printed:\n%s", e.stdout.String())
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: httpTimeout}
	get := func(u string, form url.Values) (*http.Response, string) {
		t.Helper()
		var resp *http.Response
		var err error
		if form == nil {
			resp, err = browser.Get(u)
		} else {
			resp, err = browser.PostForm(u, form)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// Not logged in: the login form; a wrong password is refused.
	resp, page := get(m[1], nil)
	if resp.Request.URL.Path != "/login" || !strings.Contains(page, `name="password"`) {
		t.Fatalf("authorize without a login: %s %q", resp.Request.URL, page)
	}
	back := resp.Request.URL.Query().Get("return")
	if resp, _ := get("http://"+e.addr+"/login", url.Values{"username": {"demo-user"}, "password": {"wrong"}, "return": {back}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	// Logged in: back to the authorization request, which shows the consent page.
	resp, page = get("http://"+e.addr+"/login", url.Values{"username": {"demo-user"}, "password": {"demo"}, "return": {back}})
	token := regexp.MustCompile(`name="consent" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || token == nil || !strings.Contains(page, "orders:write") {
		t.Fatalf("consent page: %d %q", resp.StatusCode, page)
	}
	u, _ := url.Parse(m[1])
	form := u.Query()
	form.Set("consent", token[1])
	form.Set("grant orders:read", "on") // orders:write left unchecked
	// A forged answer (another token) only shows the page again.
	forged := url.Values{}
	for k, v := range form {
		forged[k] = v
	}
	forged.Set("consent", strings.Repeat("0", 64))
	if _, page := get(u.Scheme+"://"+u.Host+u.Path, forged); !strings.Contains(page, `name="consent"`) {
		t.Fatalf("forged consent: %q", page)
	}
	noRedirect := &http.Client{Jar: jar, Timeout: httpTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(u.Scheme+"://"+u.Host+u.Path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	if cb == nil || cb.Query().Get("code") == "" || cb.Query().Get("state") != "demo-state-0123" {
		t.Fatalf("after consent: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The callback page prints the exchange; do it.
	_, page = get(cb.String(), nil)
	verifier := regexp.MustCompile(`code_verifier=(\S+)`).FindStringSubmatch(page)
	if verifier == nil {
		t.Fatalf("callback page: %q", page)
	}
	tok, te := postToken(t, e.tokenURL(t), url.Values{"grant_type": {"authorization_code"}, "client_id": {"demo-web"},
		"code": {cb.Query().Get("code")}, "code_verifier": {verifier[1]}, "redirect_uri": {"http://" + e.addr + "/callback"}}, "", "")
	if te != nil {
		t.Fatalf("code exchange: %+v", te)
	}
	rs := "http://" + e.rsAddr + "/"
	c, err := newVerifier(t, e.issuer, rs).Verify(t.Context(), tok)
	if err != nil || c.Subject != "demo-user" || c.Scope != "orders:read" || c.ClientID != "demo-web" || c.AuthTime.IsZero() {
		t.Fatalf("the user's token: %+v %v", c, err)
	}
}
