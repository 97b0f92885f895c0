package main

// Operating the example: health endpoints, Prometheus metrics, the admin API.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/provider/admin"
	"github.com/mandate-dev/mandate/storage"
)

// metricsPath is where the example serves its metrics for Prometheus to scrape.
const metricsPath = "/metrics"

// adminPath is where the example mounts the admin API (with -admin).
const adminPath = "/admin"

// telemetry is the example's metrics pipeline: the provider records on the OpenTelemetry
// metric API, and the OpenTelemetry Prometheus exporter serves what it recorded.
type telemetry struct {
	meters  *sdkmetric.MeterProvider
	handler http.Handler
}

func newTelemetry() (*telemetry, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &telemetry{
		meters:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// adminResource is the admin API's resource identifier for an issuer: the issuer's URL with
// /admin appended, which is also where the example mounts it.
func adminResource(issuer string) string { return strings.TrimSuffix(issuer, "/") + adminPath }

// mountAdmin makes sure the admin API's resource server exists (scope mandate:admin, tokens
// of 5 minutes) and mounts the API on mux. It returns the resource identifier.
func mountAdmin(ctx context.Context, mux *http.ServeMux, p *provider.Provider, issuer string) (string, error) {
	m, err := p.Manager()
	if err != nil {
		return "", err
	}
	resource := adminResource(issuer)
	if _, err := m.ResourceServer(ctx, resource); errors.Is(err, storage.ErrNotFound) {
		if _, err := m.SaveResourceServer(ctx, provider.SetupResource{Identifier: resource, Name: "mandate admin API",
			Scopes: []string{admin.DefaultScope}, AccessTokenTTL: "5m"}, true, ""); err != nil {
			return "", fmt.Errorf("admin API resource server: %w", err)
		}
	} else if err != nil {
		return "", err
	}
	h, err := admin.New(ctx, admin.Config{Provider: p, Resource: resource, Prefix: adminPath})
	if err != nil {
		return "", err
	}
	mux.Handle(h.Pattern(), h)
	return resource, nil
}

// mountHealth serves the liveness and readiness probes.
func mountHealth(mux *http.ServeMux, p *provider.Provider) {
	mux.Handle(provider.LivenessPath, p.Liveness())
	mux.Handle(provider.ReadinessPath, p.Readiness())
}

// opsWelcome prints where the operational endpoints are.
func opsWelcome(w io.Writer, base, adminRes string, dataFlags string) {
	fmt.Fprintf(w, "Operations:\n\n  health:   %s%s  %s%s\n  metrics:  %s%s\n", base, provider.LivenessPath, base, provider.ReadinessPath, base, metricsPath)
	if adminRes == "" {
		fmt.Fprintf(w, "  admin API: off (start with -admin)\n\n")
		return
	}
	fmt.Fprintf(w, "  admin API: %s%s/ (resource %s, scope %s)\n\n", base, adminPath, adminRes, admin.DefaultScope)
	fmt.Fprintf(w, "A client for it, created on the store directly:\n\n  go run ./example clients create%s -id ops -grant client_credentials \\\n    -scope %s -resource %s\n\n",
		dataFlags, admin.DefaultScope, adminRes)
}

// logShutdown logs the steps of a graceful stop.
func logShutdown(log *slog.Logger, step string) {
	log.Info("shutdown", "step", step)
}

// cliFlags are the flags that point the command line at the server's store and issuer (a DSN
// is not repeated: it may hold a password).
func cliFlags(o options) string {
	var b strings.Builder
	if o.data != "mandate-data" {
		b.WriteString(" -data " + o.data)
	}
	if o.db != "" {
		b.WriteString(" -db \"$DSN\"")
	}
	if o.issuer != "http://127.0.0.1:9400" {
		b.WriteString(" -issuer " + o.issuer)
	}
	return b.String()
}
