package provider

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The provider's metrics, on the OpenTelemetry metric API (Config.MeterProvider; the host
// picks the exporter). Names follow OpenTelemetry's conventions (dots, a unit per instrument);
// a Prometheus exporter turns them into mandate_request_duration_seconds (whose _count counts the
// requests), mandate_tokens_issued_total and so on.
const (
	// meterName is the instrumentation scope.
	meterName = "github.com/mandate-dev/mandate/provider"

	// MetricRequestDuration is the time spent serving a request, in seconds, by endpoint
	// (token, authorize, introspect, revoke, jwks, metadata) and outcome ("ok", or the RFC 6749
	// error code answered). Its count is the request counter (Prometheus:
	// mandate_request_duration_seconds_count): one instrument, not two, because every
	// measurement costs the token endpoint time.
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
	duration  metric.Float64Histogram
	rotations metric.Int64Counter
	storage   metric.Int64Counter

	// sets caches the measurement options by their attribute values (a string key per kind,
	// then per first value): building an attribute set allocates, and the combinations are few
	// (endpoints × outcomes, grants × resource servers).
	sets sync.Map // kind + "\x00" + a → *sync.Map (b → *opts)

	// tokenSets are the options of kind "tok" ever made, for the tokens counter's callback.
	mu        sync.Mutex
	tokenSets []*opts
}

// opts are the prepared options of one attribute set: passed as a ready slice, a measurement
// allocates nothing for them.
type opts struct {
	add    []metric.AddOption
	record []metric.RecordOption
	// set and n serve the tokens counter, which is asynchronous: a token costs one atomic
	// add, and the collection reads n.
	set attribute.Set
	n   atomic.Int64
}

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
	out.duration, e = m.Float64Histogram(MetricRequestDuration, metric.WithUnit("s"),
		metric.WithDescription("Time spent serving a request, by endpoint and outcome (ok or the OAuth error code); its count counts the requests."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	err = firstErr(err, e)
	// The tokens counter is observed at collection from counts kept in memory: a
	// synchronous counter would add a second SDK measurement to every token.
	_, e = m.Int64ObservableCounter(MetricTokens, metric.WithUnit("{token}"),
		metric.WithDescription("Access tokens issued, by grant type and resource server."),
		metric.WithInt64Callback(out.observeTokens))
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

// attrs returns the cached options for the attribute pair (na=a, nb=b); nb "" means one.
func (m *metrics) attrs(kind, na, a, nb, b string) *opts {
	inner, ok := m.sets.Load(kind + "\x00" + a)
	if !ok {
		inner, _ = m.sets.LoadOrStore(kind+"\x00"+a, &sync.Map{})
	}
	byB := inner.(*sync.Map)
	if o, ok := byB.Load(b); ok {
		return o.(*opts)
	}
	set := attribute.NewSet(attribute.String(na, a))
	if nb != "" {
		set = attribute.NewSet(attribute.String(na, a), attribute.String(nb, b))
	}
	o := metric.WithAttributeSet(set)
	prepared := &opts{add: []metric.AddOption{o}, record: []metric.RecordOption{o}, set: set}
	got, loaded := byB.LoadOrStore(b, prepared)
	if !loaded && kind == "tok" {
		m.mu.Lock()
		m.tokenSets = append(m.tokenSets, prepared)
		m.mu.Unlock()
	}
	return got.(*opts)
}

// observeTokens reports the tokens counted so far, at collection.
func (m *metrics) observeTokens(_ context.Context, o metric.Int64Observer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokenSets {
		o.Observe(t.n.Load(), metric.WithAttributeSet(t.set))
	}
	return nil
}

// request records one served request.
func (m *metrics) request(ctx context.Context, endpoint, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.duration.Record(ctx, d.Seconds(), m.attrs("req", "endpoint", endpoint, "outcome", outcome).record...)
}

// token records one issued access token.
func (m *metrics) token(ctx context.Context, grant, resource string) {
	if m == nil {
		return
	}
	m.attrs("tok", "grant_type", grant, "resource", resource).n.Add(1)
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
	m.storage.Add(ctx, 1, m.attrs("st", "kind", kind, "", "").add...)
}

// BatchSizeObserver returns a function that records the size of every group commit in the
// histogram [MetricBatchRows] of mp; pass it to the store with gormstore.WithBatchObserver. The
// store is opened before the provider, so the provider cannot set it itself. A nil mp returns
// nil.
func BatchSizeObserver(mp metric.MeterProvider) (func(rows int), error) {
	if mp == nil {
		return nil, nil
	}
	h, err := mp.Meter(meterName).Int64Histogram(MetricBatchRows, metric.WithUnit("{row}"),
		metric.WithDescription("Rows written by one group commit."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128))
	if err != nil {
		return nil, fmt.Errorf("provider: metrics: %w", err)
	}
	return func(rows int) { h.Record(context.Background(), int64(rows)) }, nil
}
