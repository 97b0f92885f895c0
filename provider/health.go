package provider

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/mandate-dev/mandate/storage"
)

// Health endpoints, in the convention orchestrators (Kubernetes probes, load balancers) expect:
// mount [Provider.Liveness] at /healthz and [Provider.Readiness] at /readyz, outside the
// issuer's paths (the provider does not serve them itself: where health is asked is the
// application's business). Both answer GET and HEAD with a small JSON body and
// Cache-Control: no-store; neither needs credentials nor says more than "ok" or which check
// failed (the cause is logged).

// LivenessPath and ReadinessPath are the conventional paths of the two handlers.
const (
	LivenessPath  = "/healthz"
	ReadinessPath = "/readyz"
)

// readinessTimeout bounds the readiness checks.
const readinessTimeout = 2 * time.Second

// Liveness answers 200 {"status":"ok"} while the process serves HTTP: restart it when this
// fails. It checks nothing else on purpose — a database outage is not cured by a restart.
func (p *Provider) Liveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, r, http.StatusOK, map[string]any{"status": "ok"})
	})
}

// Readiness answers 200 {"status":"ok","checks":{"database":"ok","signing_keys":"ok"}} when the
// provider can issue tokens: the database answers (storage.Pinger, else a read of the keys)
// and a signing key is loaded for the default algorithm; else 503 with "status":"unavailable"
// and the failing check marked "failed". Send traffic elsewhere while it fails.
func (p *Provider) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
		defer cancel()
		checks := map[string]string{"database": "ok", "signing_keys": "ok"}
		status := http.StatusOK
		if err := p.pingStore(ctx); err != nil {
			checks["database"], status = "failed", http.StatusServiceUnavailable
			p.log.LogAttrs(ctx, slog.LevelWarn, "readiness: database", slog.String("error", err.Error()))
		}
		if _, err := p.keys.SigningKey(ctx, ""); err != nil {
			checks["signing_keys"], status = "failed", http.StatusServiceUnavailable
			p.log.LogAttrs(ctx, slog.LevelWarn, "readiness: signing keys", slog.String("error", err.Error()))
		}
		body := map[string]any{"status": "ok", "checks": checks}
		if status != http.StatusOK {
			body["status"] = "unavailable"
		}
		writeHealth(w, r, status, body)
	})
}

// pingStore asks the store whether its database answers.
func (p *Provider) pingStore(ctx context.Context) error {
	if pg, ok := p.store.(storage.Pinger); ok {
		return pg.Ping(ctx)
	}
	_, err := p.store.Keys(ctx)
	return err
}

func writeHealth(w http.ResponseWriter, r *http.Request, status int, body map[string]any) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		_ = json.NewEncoder(w).Encode(body)
	}
}
