package provider

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mandate-dev/mandate/storage/gormstore"
)

// The provider's metrics, on the OpenTelemetry metric API (Config.MeterProvider; the host
// picks the exporter). Names follow OpenTelemetry's conventions (dots, a unit per instrument);
// a Prometheus exporter turns them into mandate_requests_total, mandate_request_duration_seconds
// and so on.
const (
	// meterName is the instrumentation scope.
	meterName = "github.com/mandate-dev/mandate/provider"

	// MetricRequests counts requests by endpoint (token, authorize, introspect, revoke, jwks,
	// metadata) and outcome ("ok", or the RFC 6749 error code answered).
	MetricRequests = "mandate.requests"
	// MetricRequestDuration is the time spent serving a request, in seconds, by endpoint and
	// outcome.
	MetricRequestDuration = "mandate.request.duration"
	// MetricTokens counts the access tokens issued, by grant_type and resource.
	MetricTokens = "mandate.tokens.issued"
	// MetricKeyRotations counts the changes of the signing keys this instance made (a key
	// became current, a next key was published, retired keys were dropped).
	MetricKeyRotations = "mandate.keys.rotations"
	// MetricStorageErrors counts the requests that failed in the store, by kind: "unavailable"
	// (storage.ErrUnavailable: 503 temporarily_unavailable) or "error" (a server error whose
	// cause was not a protocol error).
	MetricStorageErrors = "mandate.storage.errors"
	// MetricBatchRows is the number of rows of each SQLite group commit (see
	// [BatchSizeObserver]).
	MetricBatchRows = "mandate.storage.batch.rows"
)

// metrics are the provider's instruments; nil when Config.MeterProvider is nil, so that a
// provider without metrics measures nothing and allocates nothing for them.
type metrics struct {
	requests  metric.Int64Counter
	duration  metric.Float64Histogram
	tokens    metric.Int64Counter
	rotations metric.Int64Counter
	storage   metric.Int64Counter

	// sets caches the attribute sets by their values: building one allocates, and the
	// combinations are few (endpoints × outcomes, grants × resource servers).
	sets sync.Map // attrKey → metric.MeasurementOption
}

type attrKey struct{ kind, a, b string }

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		return nil, nil
	}
	m := mp.Meter(meterName)
	var (
		out metrics
		err error
		e   error
	)
	out.requests, e = m.Int64Counter(MetricRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Requests served, by endpoint and outcome (ok or the OAuth error code)."))
	err = firstErr(err, e)
	out.duration, e = m.Float64Histogram(MetricRequestDuration, metric.WithUnit("s"),
		metric.WithDescription("Time spent serving a request, by endpoint and outcome."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	err = firstErr(err, e)
	out.tokens, e = m.Int64Counter(MetricTokens, metric.WithUnit("{token}"),
		metric.WithDescription("Access tokens issued, by grant type and resource server."))
	err = firstErr(err, e)
	out.rotations, e = m.Int64Counter(MetricKeyRotations, metric.WithUnit("{rotation}"),
		metric.WithDescription("Changes of the signing keys made by this instance."))
	err = firstErr(err, e)
	out.storage, e = m.Int64Counter(MetricStorageErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Requests that failed in the store, by kind (unavailable, error)."))
	err = firstErr(err, e)
	if err != nil {
		return nil, fmt.Errorf("provider: metrics: %w", err)
	}
	return &out, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// attrs returns the cached measurement option for the attribute pair (na=a, nb=b).
func (m *metrics) attrs(kind, na, a, nb, b string) metric.MeasurementOption {
	k := attrKey{kind, a, b}
	if o, ok := m.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	set := attribute.NewSet(attribute.String(na, a))
	if nb != "" {
		set = attribute.NewSet(attribute.String(na, a), attribute.String(nb, b))
	}
	o := metric.WithAttributeSet(set)
	m.sets.Store(k, o)
	return o
}

// request records one served request.
func (m *metrics) request(ctx context.Context, endpoint, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	o := m.attrs("req", "endpoint", endpoint, "outcome", outcome)
	m.requests.Add(ctx, 1, o)
	m.duration.Record(ctx, d.Seconds(), o)
}

// token records one issued access token.
func (m *metrics) token(ctx context.Context, grant, resource string) {
	if m == nil {
		return
	}
	m.tokens.Add(ctx, 1, m.attrs("tok", "grant_type", grant, "resource", resource))
}

// rotation records one change of the key set.
func (m *metrics) rotation(ctx context.Context) {
	if m == nil {
		return
	}
	m.rotations.Add(ctx, 1)
}

// storageError records a request that failed in the store.
func (m *metrics) storageError(ctx context.Context, kind string) {
	if m == nil {
		return
	}
	m.storage.Add(ctx, 1, m.attrs("st", "kind", kind, "", ""))
}

// BatchSizeObserver returns a [gormstore.BatchObserver] that records the size of every SQLite
// group commit in the histogram [MetricBatchRows] of mp; pass it to the store with
// gormstore.WithBatchObserver. The store is opened before the provider, so the provider cannot
// set it itself (it does for the embedded store, Config.Storage nil). A nil mp returns nil.
func BatchSizeObserver(mp metric.MeterProvider) (gormstore.BatchObserver, error) {
	if mp == nil {
		return nil, nil
	}
	h, err := mp.Meter(meterName).Int64Histogram(MetricBatchRows, metric.WithUnit("{row}"),
		metric.WithDescription("Rows written by one SQLite group commit."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128))
	if err != nil {
		return nil, fmt.Errorf("provider: metrics: %w", err)
	}
	return func(rows int) { h.Record(context.Background(), int64(rows)) }, nil
}
