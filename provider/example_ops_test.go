package provider_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage/gormstore"
)

// Operating a provider: logs to stderr, audit events to the application, metrics to any
// OpenTelemetry meter provider, health probes beside the endpoints.
func ExampleConfig_operations() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mandate-example-ops") // your data directory
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := gormstore.Open(ctx, "sqlite:"+filepath.Join(dir, "mandate.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	meters := sdkmetric.NewMeterProvider() // add the exporter of your choice (Prometheus, OTLP)
	defer meters.Shutdown(ctx)
	p, err := provider.New(ctx, provider.Config{
		Issuer:  "https://auth.example.com",
		Secret:  []byte("an example secret of 32 bytes!!!"),
		Storage: store,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Events: provider.EventsFunc(func(ctx context.Context, e provider.Event) {
			if f, ok := e.(*provider.ClientAuthFailed); ok {
				fmt.Println("failed login of", f.ClientID) // synchronous: hand slow work to a queue
			}
		}),
		MeterProvider: meters,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	mux := http.NewServeMux()
	for _, pattern := range p.Patterns() {
		mux.Handle(pattern, p)
	}
	mux.Handle(provider.LivenessPath, p.Liveness())
	mux.Handle(provider.ReadinessPath, p.Readiness())
	fmt.Println(provider.LivenessPath, provider.ReadinessPath)
	// Output: /healthz /readyz
}
