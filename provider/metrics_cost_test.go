package provider

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkMetricsCost is the absolute cost of what a token request records with an SDK meter
// provider: the request counter and latency histogram, and the token counter.
func BenchmarkMetricsCost(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	m, err := newMetrics(mp)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m.request(ctx, "token", "ok", 50*time.Microsecond)
		m.token(ctx, "client_credentials", "https://orders.example.com/")
	}
}
