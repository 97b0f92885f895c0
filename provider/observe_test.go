package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/oauth2"

	"github.com/mandate-dev/mandate/provider"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventLog records audit events.
type eventLog struct {
	mu     sync.Mutex
	events []provider.Event
}

func (l *eventLog) Event(_ context.Context, e provider.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []provider.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func (l *eventLog) kinds() map[string]int {
	out := map[string]int{}
	for _, e := range l.all() {
		out[e.Kind()]++
	}
	return out
}

// observed is an authorization server whose logs (JSON, Debug and up), events and metrics are
// captured.
type observed struct {
	*testAS
	logs   *syncBuffer
	events *eventLog
	reader *sdkmetric.ManualReader
	secret []byte
}

func newObserved(t *testing.T, opts ...asOption) *observed {
	t.Helper()
	o := &observed{logs: &syncBuffer{}, events: &eventLog{}, reader: sdkmetric.NewManualReader(), secret: testSecret(t)}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	opts = append([]asOption{func(c *provider.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Events = o.events
		c.MeterProvider = mp
	}}, opts...)
	o.testAS = newASWith(t, newStore(t), o.secret, "", opts...)
	return o
}

// sum is the value of a counter for the data points whose attributes include attrs.
func (o *observed) sum(name string, attrs map[string]string) int64 {
	o.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		o.t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			match := func(get func(string) (string, bool)) bool {
				for k, v := range attrs {
					if got, ok := get(k); !ok || got != v {
						return false
					}
				}
				return true
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if match(func(k string) (string, bool) { v, ok := dp.Attributes.Value(attrKey(k)); return v.AsString(), ok }) {
						total += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if match(func(k string) (string, bool) { v, ok := dp.Attributes.Value(attrKey(k)); return v.AsString(), ok }) {
						total += int64(dp.Count)
					}
				}
			}
		}
	}
	return total
}

// TestObservabilityFullFlow runs every kind of request (client credentials, a failed client
// authentication, a token exchange, the code flow with refresh, introspection, revocation,
// the jwt-bearer grant, admin changes, a key rotation), then checks the log lines, the audit
// events and the metrics — and scans everything logged for secrets, tokens, assertions and
// key material.
func TestObservabilityFullFlow(t *testing.T) {
	o := newObserved(t, auditLogin)
	as := o.testAS
	ctx := context.Background()
	var secrets []string // everything that must never be logged
	secrets = append(secrets, "svc-secret-0123456789", "rs-secret-0123456789", "conf-secret-0123456789",
		hex.EncodeToString(o.secret), base64.StdEncoding.EncodeToString(o.secret), base64.RawURLEncoding.EncodeToString(o.secret))

	// client_credentials, and a wrong secret.
	tokA := as.clientCredentials("orders:read", orders)
	secrets = append(secrets, tokA)
	resp, m := as.post("token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-secret-that-must-not-leak")
	if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("bad secret: %d %v", resp.StatusCode, m)
	}
	secrets = append(secrets, "wrong-secret-that-must-not-leak")

	// The code flow with PKCE and a refresh.
	conf, code, verifier := auditCode(t, as, "web", "", []string{"orders:read"}, orders)
	secrets = append(secrets, code, verifier)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", orders))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
	resp, m = as.auditRefresh(tok.RefreshToken)
	if resp.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", resp.StatusCode, m)
	}
	secrets = append(secrets, m["access_token"].(string), m["refresh_token"].(string))

	// Introspection and revocation.
	if got := as.auditIntrospect(tokA); got["active"] != true {
		t.Fatalf("introspect: %v", got)
	}
	resp, _ = as.post("revoke", url.Values{"token": {m["refresh_token"].(string)}, "client_id": {"web"}}, "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}

	// The jwt-bearer grant with an assertion.
	idp := genKey(t, jose.ES256, "idp-1")
	bearerAS(t, as, idp)
	assertion := idp.sign(t, as.assertionClaims(idpIssuer, "svc-a"))
	secrets = append(secrets, assertion, strings.Split(assertion, ".")[2], "bearer-secret-0123456789")
	resp, m = as.post("token", url.Values{"grant_type": {jwtBearer}, "assertion": {assertion}, "scope": {"orders:read"}, "resource": {orders}},
		"bearer-client", "bearer-secret-0123456789")
	if resp.StatusCode != 200 {
		t.Fatalf("jwt-bearer: %d %v", resp.StatusCode, m)
	}
	secrets = append(secrets, m["access_token"].(string))

	// Admin changes: a client created (its generated secret), its secret rotated, keys rotated.
	mgr, err := as.p.Manager()
	if err != nil {
		t.Fatal(err)
	}
	_, gen, err := mgr.CreateClient(ctx, provider.SetupClient{ClientID: "made", GrantTypes: []string{"client_credentials"},
		Scopes: []string{"orders:read"}, Resources: []string{orders}}, "admin-1")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := mgr.RotateClientSecret(ctx, "made", true, "admin-1")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, gen, rotated)
	resp, m = as.post("token", url.Values{"grant_type": {"client_credentials"}}, "made", gen)
	if resp.StatusCode != 200 {
		t.Fatalf("the previous secret, kept by the rotation: %d %v", resp.StatusCode, m)
	}
	secrets = append(secrets, m["access_token"].(string))
	if _, err := mgr.RotateKeys(ctx, "admin-1"); err != nil {
		t.Fatal(err)
	}

	// The log lines.
	logs := o.logs.String()
	for _, want := range []string{`"msg":"token issued"`, `"msg":"token refused"`, `"msg":"token introspected"`, `"msg":"token revoked"`,
		`"msg":"signing keys rotated"`, `"msg":"setup applied"`, `"msg":"admin change"`, `"msg":"authorization code issued"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s line in the log", want)
		}
	}
	issued := jsonLogLines(t, logs, "token issued")
	if len(issued) < 5 {
		t.Fatalf("%d token issued lines, want at least 5", len(issued))
	}
	claims := claimsOf(t, tokA)
	first := issued[0]
	for k, want := range map[string]any{"client_id": "svc", "grant_type": "client_credentials", "resource": orders, "jti": claims["jti"]} {
		if first[k] != want {
			t.Errorf("token issued line: %s = %v, want %v (%v)", k, first[k], want, first)
		}
	}
	if kid, _ := first["kid"].(string); kid == "" || kid != jwtHeader(t, tokA)["kid"] {
		t.Errorf("token issued line: kid %v, token's %v", first["kid"], jwtHeader(t, tokA)["kid"])
	}
	refused := jsonLogLines(t, logs, "token refused")
	if len(refused) != 1 || refused[0]["error"] != "invalid_client" || refused[0]["client_id"] != "svc" || refused[0]["reason"] == "" {
		t.Errorf("token refused lines: %v", refused)
	}

	// The audit events.
	kinds := o.events.kinds()
	for _, k := range []string{"token_issued", "introspection", "revocation", "client_authentication_failed", "key_rotated", "setup_applied", "admin_change"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event (got %v)", k, kinds)
		}
	}
	for _, e := range o.events.all() {
		if ti, ok := e.(*provider.TokenIssued); ok && ti.JTI == claims["jti"] {
			if ti.ClientID != "svc" || ti.Resource != orders || ti.GrantType != "client_credentials" || ti.KeyID == "" || ti.When().IsZero() {
				t.Errorf("TokenIssued = %+v", ti)
			}
		}
		if ca, ok := e.(*provider.ClientAuthFailed); ok && (ca.ClientID != "svc" || ca.Endpoint != "token") {
			t.Errorf("ClientAuthFailed = %+v", ca)
		}
	}
	evJSON, err := json.Marshal(o.events.all())
	if err != nil {
		t.Fatal(err)
	}

	// The metrics.
	if n := o.sum(provider.MetricRequestDuration, map[string]string{"endpoint": "token", "outcome": "ok"}); n < 5 {
		t.Errorf("%s{token,ok} count = %d", provider.MetricRequestDuration, n)
	}
	if n := o.sum(provider.MetricRequestDuration, map[string]string{"endpoint": "token", "outcome": "invalid_client"}); n != 1 {
		t.Errorf("%s{token,invalid_client} count = %d, want 1", provider.MetricRequestDuration, n)
	}
	if n := o.sum(provider.MetricRequestDuration, map[string]string{"endpoint": "introspect"}); n != 1 {
		t.Errorf("%s{introspect} count = %d, want 1", provider.MetricRequestDuration, n)
	}
	if n := o.sum(provider.MetricTokens, map[string]string{"grant_type": "client_credentials", "resource": orders}); n < 2 {
		t.Errorf("%s{client_credentials, orders} = %d", provider.MetricTokens, n)
	}
	if n := o.sum(provider.MetricTokens, map[string]string{"grant_type": "refresh_token"}); n != 1 {
		t.Errorf("%s{refresh_token} = %d, want 1", provider.MetricTokens, n)
	}
	if n := o.sum(provider.MetricKeyRotations, nil); n == 0 {
		t.Errorf("%s = 0", provider.MetricKeyRotations)
	}

	// Nothing secret in the logs or the events.
	scanForSecrets(t, "log", logs, secrets)
	scanForSecrets(t, "events", string(evJSON), secrets)
}

// scanForSecrets fails if text holds any of secrets, or anything shaped like a token, a JWS or
// private key material.
func scanForSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the %s holds a secret or token: %.24s…", what, s)
		}
	}
	for name, re := range map[string]*regexp.Regexp{
		"a JWS or JWE":          regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.`),
		"a private JWK":         regexp.MustCompile(`"d"\s*:\s*"`),
		"a PEM private key":     regexp.MustCompile(`PRIVATE KEY`),
		"a client_secret value": regexp.MustCompile(`client_secret"?\s*[:=]\s*"?[A-Za-z0-9_-]{8,}`),
	} {
		if loc := re.FindStringIndex(text); loc != nil {
			t.Errorf("the %s holds %s: %q", what, name, text[max(0, loc[0]-40):min(len(text), loc[1]+40)])
		}
	}
}

// jsonLogLines returns the JSON log lines whose msg is msg.
func jsonLogLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func attrKey(k string) attribute.Key { return attribute.Key(k) }
