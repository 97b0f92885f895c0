package main

// Black-box test of operating the example, as a new user would: the command line creates the
// admin client on the store, the admin API (with its token) creates a resource server and a
// client, which gets a token; they are listed and deleted; the health endpoints answer with the
// database up and down; a Prometheus scrape shows the counters move; and the log is scanned
// for secrets and tokens.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// cliRun runs the example binary's command line and returns its stdout; it fails the test if
// the command fails, unless wantErr.
func cliRun(t *testing.T, bin string, wantErr bool, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if (err != nil) != wantErr {
		t.Fatalf("example %s: err %v (want error: %v)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, wantErr, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// apiCall sends a JSON request to the running example.
func apiCall(t *testing.T, method, u, token string, body any) (int, map[string]any, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := map[string]any{}
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

// scrape returns the value of the Prometheus sample whose line starts with name and holds every
// label of labels (0 when there is none).
func scrape(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	code, _, body := apiCall(t, "GET", base+metricsPath, "", nil)
	if code != 200 {
		t.Fatalf("scrape: %d", code)
	}
	total := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		total += v
	}
	return total
}

func TestOperations(t *testing.T) {
	bin := buildExample(t)
	data := filepath.Join(t.TempDir(), "data")

	// A store that cannot be opened is refused, and nothing is created.
	_, stderr := cliRun(t, bin, true, "clients", "list", "-data", data, "-db", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if !strings.Contains(stderr, "cannot open the store (nothing was changed)") {
		t.Fatalf("unopenable store: %q", stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the refused command created %s (%v)", data, err)
	}

	e := startExample(t, bin, startOptions{data: data, args: []string{"-admin"}})
	base, adminRes := e.issuer, e.issuer+adminPath
	var secrets []string

	// 1. The first admin client, made on the store with the command line.
	out, _ := cliRun(t, bin, false, "clients", "create", "-data", data, "-issuer", e.issuer, "-id", "ops",
		"-grant", "client_credentials", "-scope", "mandate:admin", "-resource", adminRes)
	var ops struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &ops); err != nil || ops.ClientSecret == "" {
		t.Fatalf("clients create: %q (%v)", out, err)
	}
	secrets = append(secrets, ops.ClientSecret)
	// A record that breaks the rules is refused with the field named.
	_, stderr = cliRun(t, bin, true, "clients", "create", "-data", data, "-issuer", e.issuer, "-id", "bad",
		"-grant", "password", "-resource", adminRes)
	if !strings.Contains(stderr, "grant_types[0]") {
		t.Fatalf("invalid client: %q", stderr)
	}

	// 2. An admin token, from the running server.
	tokenURL := e.tokenURL(t)
	adminTok, terr := postToken(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "resource": {adminRes}}, "ops", ops.ClientSecret)
	if terr != nil {
		t.Fatalf("admin token: %+v", terr)
	}
	secrets = append(secrets, adminTok)
	if code, _, _ := apiCall(t, "GET", base+"/admin/clients", "", nil); code != 401 {
		t.Fatalf("admin API without a token: %d", code)
	}

	// 3. A resource server and a client through the API; a token for it.
	const rs = "https://orders.ops.example/"
	if code, m, _ := apiCall(t, "POST", base+"/admin/resource-servers", adminTok, map[string]any{
		"identifier": rs, "scopes": []string{"orders:read"}, "access_token_ttl": "5m"}); code != 201 {
		t.Fatalf("create resource server: %d %v", code, m)
	}
	code, m, _ := apiCall(t, "POST", base+"/admin/clients", adminTok, map[string]any{
		"client_id": "billing", "client_name": "billing", "grant_types": []string{"client_credentials"}, "scope": "orders:read", "resources": []string{rs}})
	billingSecret, _ := m["client_secret"].(string)
	if code != 201 || billingSecret == "" {
		t.Fatalf("create client: %d %v", code, m)
	}
	secrets = append(secrets, billingSecret)
	before := scrape(t, base, "mandate_tokens_issued_total", `grant_type="client_credentials"`, `resource="`+rs+`"`)
	tok, terr := postToken(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "resource": {rs}, "scope": {"orders:read"}}, "billing", billingSecret)
	if terr != nil {
		t.Fatalf("token for the new client: %+v", terr)
	}
	secrets = append(secrets, tok)
	if after := scrape(t, base, "mandate_tokens_issued_total", `grant_type="client_credentials"`, `resource="`+rs+`"`); after != before+1 {
		t.Fatalf("tokens issued for %s: %v then %v", rs, before, after)
	}

	// 4. Listed, then deleted: the client gets no more tokens.
	code, _, raw := apiCall(t, "GET", base+"/admin/clients", adminTok, nil)
	if code != 200 || !strings.Contains(raw, `"client_id":"billing"`) || strings.Contains(raw, billingSecret) {
		t.Fatalf("list clients: %d %s", code, raw)
	}
	out, _ = cliRun(t, bin, false, "clients", "list", "-data", data)
	if !strings.Contains(out, "billing") || !strings.Contains(out, "ops") {
		t.Fatalf("clients list: %q", out)
	}
	if code, m, _ = apiCall(t, "DELETE", base+"/admin/clients/billing", adminTok, nil); code != 200 {
		t.Fatalf("delete client: %d %v", code, m)
	}
	if _, terr = postToken(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "resource": {rs}}, "billing", billingSecret); terr == nil || terr.code != "invalid_client" {
		t.Fatalf("a deleted client's token request: %+v", terr)
	}
	if code, _, _ = apiCall(t, "DELETE", base+"/admin/resource-servers/"+url.PathEscape(rs), adminTok, nil); code != 200 {
		t.Fatalf("delete resource server: %d", code)
	}

	// A peer authorization server through the API, then seen and deleted on the command line.
	const peer = "https://as.partner.example"
	if code, m, _ := apiCall(t, "POST", base+"/admin/peers", adminTok, map[string]any{
		"issuer": peer, "scopes": []string{"stock:read"}, "claims": []string{"act"}}); code != 201 {
		t.Fatalf("create peer: %d %v", code, m)
	}
	if out, _ = cliRun(t, bin, false, "peers", "list", "-data", data); !strings.Contains(out, peer) || !strings.Contains(out, "stock:read") {
		t.Fatalf("peers list: %q", out)
	}
	if out, _ = cliRun(t, bin, false, "peers", "delete", "-data", data, peer); !strings.Contains(out, "deleted peer "+peer) {
		t.Fatalf("peers delete: %q", out)
	}
	// The command line is another instance on the same database: the server, which cached the
	// peer when it created it, drops it at the next poll of the change counters (1 s).
	deleted := time.Now()
	for {
		code, _, _ = apiCall(t, "GET", base+"/admin/peers/"+url.PathEscape(peer), adminTok, nil)
		if code == 404 {
			break
		}
		if code != 200 || time.Since(deleted) > 5*time.Second {
			t.Fatalf("a peer deleted on the command line, read through the API %v later: %d", time.Since(deleted).Round(time.Millisecond), code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the server saw the command line's deletion after %v", time.Since(deleted).Round(time.Millisecond))

	// 5. Health, and the counters moving.
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, m, _ := apiCall(t, "GET", base+p, "", nil); code != 200 || m["status"] != "ok" {
			t.Fatalf("%s: %d %v", p, code, m)
		}
	}
	if n := scrape(t, base, "mandate_request_duration_seconds_count", `endpoint="token"`, `outcome="invalid_client"`); n < 1 {
		t.Fatalf("requests{token,invalid_client} = %v", n)
	}
	if n := scrape(t, base, "mandate_request_duration_seconds_count", `endpoint="token"`, `outcome="ok"`); n < 2 {
		t.Fatalf("token latency count = %v", n)
	}

	// 6. Setup export: JSON that -config accepts, holding what the API created and kept.
	out, _ = cliRun(t, bin, false, "setup", "export", "-data", data, "-issuer", e.issuer)
	exported := filepath.Join(t.TempDir(), "exported.json")
	if err := os.WriteFile(exported, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"client_id": "ops"`) {
		t.Fatalf("export: %s", out)
	}

	// 7. A graceful stop, and the log scanned for secrets.
	e.stop(t)
	logs := e.stderr.String()
	for _, want := range []string{`msg="token issued"`, `msg="token refused"`, `msg="admin change"`, `step="requests drained"`, `step="store closed`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log has no %s", want)
		}
	}
	key, _ := os.ReadFile(filepath.Join(data, "secret.key"))
	demo, _ := os.ReadFile(filepath.Join(data, "demo-client.secret"))
	secrets = append(secrets, strings.TrimSpace(string(key)), strings.TrimSpace(string(demo)))
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the log holds a secret or token: %.16s…", s)
		}
	}
	if loc := regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.`).FindStringIndex(logs); loc != nil {
		t.Errorf("the log holds a JWT: %q", logs[loc[0]:min(len(logs), loc[1]+20)])
	}

	// 8. The exported setup starts a server (the same data directory, so the same secret).
	e2 := startExample(t, bin, startOptions{data: data, addr: e.addr, rsAddr: e.rsAddr, args: []string{"-config", exported}})
	if _, terr = postToken(t, e2.tokenURL(t), url.Values{"grant_type": {"client_credentials"}, "resource": {adminRes}}, "ops", ops.ClientSecret); terr != nil {
		t.Fatalf("after re-applying the export: %+v", terr)
	}
	e2.stop(t)
}

// TestReadinessWithTheDatabaseDown runs the example on a PostgreSQL database of its own and
// drops that database under it: readiness fails (503, the database check named), liveness
// stays 200.
func TestReadinessWithTheDatabaseDown(t *testing.T) {
	base := os.Getenv("MANDATE_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("MANDATE_TEST_POSTGRES_DSN is not set; CI requires the PostgreSQL suite")
		}
		t.Skip("MANDATE_TEST_POSTGRES_DSN not set")
	}
	adm, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("PostgreSQL unreachable: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "mandate_example_" + hex.EncodeToString(b)
	if err := adm.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		adm.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		if db, err := adm.DB(); err == nil {
			db.Close()
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	bin := buildExample(t)
	e := startExample(t, bin, startOptions{data: filepath.Join(t.TempDir(), "data"), args: []string{"-db", u.String()}})
	if code, m, _ := apiCall(t, "GET", e.issuer+"/readyz", "", nil); code != 200 {
		t.Fatalf("readyz with the database up: %d %v", code, m)
	}
	if err := adm.Exec("DROP DATABASE " + name + " WITH (FORCE)").Error; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, m, raw := apiCall(t, "GET", e.issuer+"/readyz", "", nil)
		if code == 503 {
			if checks, _ := m["checks"].(map[string]any); checks["database"] != "failed" || m["status"] != "unavailable" {
				t.Fatalf("readyz with the database down: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d %s after the database was dropped", code, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _, _ := apiCall(t, "GET", e.issuer+"/healthz", "", nil); code != 200 {
		t.Fatalf("healthz with the database down: %d", code)
	}
	e.stop(t)
}
