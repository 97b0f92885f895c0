package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mandate-dev/mandate/strategy/verify/strict"
)

// Bounds of a run.
const (
	maxConcurrency = 1024
	maxRequests    = 10_000_000
	maxDuration    = 10 * time.Minute
	maxVerify      = 10_000
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve-baseline":
		err = serveBaseline(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "sign-rate":
		err = signRate(ctx, os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// options are the load generator's flags.
type options struct {
	url, client, secret, resource, scope, jwks string
	urls, vsURLs                               []string // -url and -vs-url, split at commas
	concurrency, requests, verify, pid         int
	duration                                   time.Duration
	json, netHTTP                              bool
	procs, slices                              int
	vsSign, vsURL, vsClient, vsSecret, sched   string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:9400/token", "token endpoint (loopback only), or a comma-separated list of several instances' token endpoints: the clients are spread over them round-robin")
	fs.StringVar(&o.client, "client", "demo-client", "client_id (HTTP Basic)")
	fs.StringVar(&o.secret, "secret", "", "client secret (default: $LOAD_CLIENT_SECRET)")
	fs.StringVar(&o.resource, "resource", "", "RFC 8707 resource parameter (optional)")
	fs.StringVar(&o.scope, "scope", "", "scope parameter (optional)")
	fs.IntVar(&o.concurrency, "c", 16, fmt.Sprintf("concurrent clients, each on its own keep-alive connection (1–%d)", maxConcurrency))
	fs.IntVar(&o.requests, "n", 1_000_000, fmt.Sprintf("maximum number of requests (1–%d)", maxRequests))
	fs.DurationVar(&o.duration, "d", 10*time.Second, fmt.Sprintf("maximum duration (up to %s)", maxDuration))
	fs.IntVar(&o.verify, "verify", 0, fmt.Sprintf("verify the signature and claims of a random sample of this many tokens (0–%d)", maxVerify))
	fs.StringVar(&o.jwks, "jwks", "", "JWKS URL for -verify (default: jwks_uri from the RFC 8414 metadata of the tokens' issuer)")
	fs.IntVar(&o.pid, "pid", 0, "process id of the target: report its resident memory (VmRSS) every second and its CPU time")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.netHTTP, "nethttp", false, "send the token requests through net/http's client instead of the load generator's own HTTP/1.1 connections")
	fs.StringVar(&o.vsSign, "vs-sign", "", "alternate the load with bare signing on every core with this algorithm (ES256, EdDSA, RS256) and report tokens/s against the signing rate, turn by turn")
	fs.StringVar(&o.vsURL, "vs-url", "", "alternate turns of load on -url with turns on this token endpoint (loopback only; a baseline; a comma-separated list as for -url), and report the tokens/s of the two, turn by turn")
	fs.StringVar(&o.vsClient, "vs-client", "", "client_id at -vs-url (default: -client)")
	fs.StringVar(&o.vsSecret, "vs-secret", "", "client secret at -vs-url (default: -secret)")
	fs.IntVar(&o.slices, "slices", 10, "with -vs-sign or -vs-url: turns of load on -url, each -d/slices long (each with a turn of signing or on -vs-url)")
	fs.IntVar(&o.procs, "procs", 1, "GOMAXPROCS of the load generator (0: all cores); 1 leaves the most CPU to a server on the same cores")
	fs.StringVar(&o.sched, "sched", "batch", "scheduling policy of the load generator's threads during load (Linux): batch (SCHED_BATCH: its fair share of the CPU, but its wakeups do not preempt the server) or normal")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.secret == "" {
		o.secret = os.Getenv("LOAD_CLIENT_SECRET")
	}
	var errs []error
	o.urls = strings.Split(o.url, ",")
	for _, u := range o.urls {
		if err := checkLoopbackURL(u); err != nil {
			errs = append(errs, fmt.Errorf("-url: %w", err))
		}
	}
	if o.jwks != "" {
		if err := checkLoopbackURL(o.jwks); err != nil {
			errs = append(errs, fmt.Errorf("-jwks: %w", err))
		}
	}
	if o.client == "" || o.secret == "" {
		errs = append(errs, errors.New("-client and -secret (or $LOAD_CLIENT_SECRET) are required"))
	}
	if o.concurrency < 1 || o.concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("-c must be between 1 and %d", maxConcurrency))
	}
	if o.requests < 1 || o.requests > maxRequests {
		errs = append(errs, fmt.Errorf("-n must be between 1 and %d", maxRequests))
	}
	if o.duration <= 0 || o.duration > maxDuration {
		errs = append(errs, fmt.Errorf("-d must be positive and at most %s", maxDuration))
	}
	if o.verify < 0 || o.verify > maxVerify {
		errs = append(errs, fmt.Errorf("-verify must be between 0 and %d", maxVerify))
	}
	if o.vsSign != "" && !slices.Contains([]string{"ES256", "EdDSA", "RS256"}, o.vsSign) {
		errs = append(errs, fmt.Errorf("-vs-sign %q is not one of ES256, EdDSA, RS256", o.vsSign))
	}
	if o.vsURL != "" {
		o.vsURLs = strings.Split(o.vsURL, ",")
		for _, u := range o.vsURLs {
			if err := checkLoopbackURL(u); err != nil {
				errs = append(errs, fmt.Errorf("-vs-url: %w", err))
			}
		}
		if o.vsSign != "" {
			errs = append(errs, errors.New("-vs-url and -vs-sign exclude each other"))
		}
	}
	if o.vsClient == "" {
		o.vsClient = o.client
	}
	if o.vsSecret == "" {
		o.vsSecret = o.secret
	}
	if o.slices < 1 || o.slices > 1000 {
		errs = append(errs, errors.New("-slices must be between 1 and 1000"))
	}
	if o.procs < 0 || o.procs > 1024 {
		errs = append(errs, errors.New("-procs must be between 0 and 1024"))
	}
	if o.sched != "batch" && o.sched != "normal" {
		errs = append(errs, fmt.Errorf("-sched %q is not batch or normal", o.sched))
	}
	if o.pid < 0 {
		errs = append(errs, errors.New("-pid must be a process id"))
	}
	return o, errors.Join(errs...)
}

// checkLoopbackURL accepts http(s) URLs whose host is a loopback address or "localhost".
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if !strict.LoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q is not a loopback address; this tool only loads the local machine", u.Hostname())
	}
	return nil
}

// newHTTPClient keeps one idle connection per worker and refuses, at dial time, any address
// that is not loopback (so neither a redirect nor a metadata document can send it elsewhere).
func newHTTPClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         loopbackDialer().DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// loopbackDialer refuses, at dial time, any address that is not loopback.
func loopbackDialer() *net.Dialer {
	return &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil || !strict.LoopbackHost(host) {
				return fmt.Errorf("refusing to connect to non-loopback address %s", address)
			}
			return nil
		},
	}
}

// worker is one client's share of the results.
type worker struct {
	target string // its token endpoint
	send   func(ctx context.Context, buf *bytes.Buffer) (int, error)
	close  func() // of its connection, if it has one of its own
	rng    *rand.Rand
	buf    bytes.Buffer

	latencies []time.Duration // of successful requests
	statuses  map[string]int  // failures by status ("401", "transport", "200 without token")
	firstErr  string          // one example failure, for the report
	sample    []string        // reservoir of tokens (Algorithm R)
	seen      int             // successful requests, for the reservoir
}

// Report is what a run measured.
type Report struct {
	URL         string         `json:"url"`
	Concurrency int            `json:"concurrency"`
	Sched       string         `json:"sched"` // the load generator's policy during load: SCHED_BATCH or SCHED_OTHER
	Elapsed     float64        `json:"elapsed_seconds"`
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	TokensPerS  float64        `json:"tokens_per_second"`
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Errors      map[string]int `json:"errors,omitempty"`
	FirstError  string         `json:"first_error,omitempty"`
	PerURL      []URLCount     `json:"per_url,omitempty"` // with several -url endpoints: each one's tokens
	Verify      *VerifyReport  `json:"verify,omitempty"`
	RSS         *RSSReport     `json:"rss,omitempty"`
	VsSign      *VsSignReport  `json:"vs_sign,omitempty"`
	VsURL       *VsURLReport   `json:"vs_url,omitempty"`
}

// VsURLReport sets the run beside another token endpoint's, turn by turn (-vs-url).
type VsURLReport struct {
	URL        string     `json:"url"`
	Elapsed    float64    `json:"elapsed_seconds"`
	OK         int        `json:"ok"`
	Failed     int        `json:"failed"`
	TokensPerS float64    `json:"tokens_per_second"`
	Ratios     []float64  `json:"ratios"` // each turn's tokens/s on -url ÷ that of the turn next to it on -vs-url
	Median     float64    `json:"median_ratio"`
	PerURL     []URLCount `json:"per_url,omitempty"` // with several -vs-url endpoints: each one's tokens
}

// URLCount is how many tokens one of several endpoints issued in a run.
type URLCount struct {
	URL string `json:"url"`
	OK  int    `json:"ok"`
}

// perURL counts the tokens of workers by endpoint, in the order of urls; nil for one endpoint.
func perURL(urls []string, ws []*worker) []URLCount {
	if len(urls) < 2 {
		return nil
	}
	out := make([]URLCount, len(urls))
	for i, u := range urls {
		out[i].URL = u
		for _, w := range ws {
			if w.target == u {
				out[i].OK += len(w.latencies)
			}
		}
	}
	return out
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	r := slices.Clone(xs)
	slices.Sort(r)
	if len(r)%2 == 0 {
		return (r[len(r)/2-1] + r[len(r)/2]) / 2
	}
	return r[len(r)/2]
}

// VsSignReport sets the run's tokens/s beside the bare signing rate of the same machine, turn
// by turn (-vs-sign).
type VsSignReport struct {
	Alg            string    `json:"alg"`
	Procs          int       `json:"procs"`
	SignaturesPerS float64   `json:"signatures_per_second"` // mean over the signing turns
	Ratios         []float64 `json:"ratios"`                // each load turn's tokens/s ÷ the mean of the signing turns around it
	Median         float64   `json:"median_ratio"`
}

func (v *VsSignReport) summarize(rates []float64) {
	var sum float64
	for _, r := range rates {
		sum += r
	}
	v.SignaturesPerS = sum / float64(len(rates))
	v.Median = median(v.Ratios)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.procs))
	}
	// Load turns run under -sched; signing turns, and whatever follows the run (the tests
	// call run in their own process), under the policy the process started with.
	own, err := schedPolicyOf(0)
	if err != nil {
		own = schedOther
	}
	loadPolicy := own
	if o.sched == "batch" {
		loadPolicy = schedBatch
	}
	schedName := map[int]string{schedOther: "SCHED_OTHER", schedBatch: "SCHED_BATCH"}[loadPolicy]
	if schedName == "" {
		schedName = fmt.Sprintf("policy %d", loadPolicy)
	}
	setPolicy := func(p int) {
		if err := setSchedPolicy(p); err != nil && schedName != "default" {
			fmt.Fprintf(stderr, "load: %v; the load generator keeps its policy\n", err)
			schedName = "default"
		}
	}
	defer setSchedPolicy(own)
	httpClient := newHTTPClient(o.concurrency)
	form := url.Values{"grant_type": {"client_credentials"}}
	if o.scope != "" {
		form.Set("scope", o.scope)
	}
	if o.resource != "" {
		form.Set("resource", o.resource)
	}
	body := []byte(form.Encode())

	var rss *rssSampler
	if o.pid > 0 {
		if rss, err = startRSS(o.pid); err != nil {
			return err
		}
	}

	perWorker := (o.verify + o.concurrency - 1) / o.concurrency
	start := time.Now()
	// Each client keeps one endpoint for the run: with several, client i talks to endpoint
	// i mod n, as a round-robin load balancer spreads connections.
	newWorkers := func(targets []string, client, secret string) ([]*worker, error) {
		// RFC 6749 §2.3.1: client_id and secret are form-encoded before Basic encoding.
		user, pass := url.QueryEscape(client), url.QueryEscape(secret)
		ws := make([]*worker, o.concurrency)
		for i := range ws {
			target := targets[i%len(targets)]
			w := &worker{target: target, statuses: map[string]int{}, rng: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))}
			ws[i] = w
			w.send = func(ctx context.Context, buf *bytes.Buffer) (int, error) {
				return w.request(ctx, httpClient, target, body, user, pass, buf)
			}
			if !o.netHTTP {
				wc, err := newWireConn(target, body, user, pass, loopbackDialer().DialContext)
				if err != nil {
					return nil, err
				}
				w.send, w.close = wc.do, wc.close
			}
		}
		return ws, nil
	}
	workers, err := newWorkers(o.urls, o.client, o.secret)
	if err != nil {
		return err
	}
	defer closeAll(workers)

	// The run is one turn of load, or, with -vs-sign, -slices turns of load each followed by
	// a turn of bare signing on every core (and one before the first), so that every turn of
	// load has the signing rate of the moments before and after it.
	var started atomic.Int64
	var sign func() error
	turns := 1
	if o.vsSign != "" {
		if sign, err = newSignFunc(o.vsSign); err != nil {
			return err
		}
		turns = o.slices
	}
	turn := o.duration / time.Duration(turns)
	var loadTime time.Duration
	var vs *VsSignReport
	var signRates []float64
	signTurn := func() error {
		setPolicy(own)
		n, el, err := measureSign(ctx, sign, runtime.NumCPU(), turn)
		signRates = append(signRates, float64(n)/el.Seconds())
		return err
	}
	if sign != nil {
		vs = &VsSignReport{Alg: o.vsSign, Procs: runtime.NumCPU()}
		if err := signTurn(); err != nil {
			return err
		}
	}
	// With -vs-url, every turn on -url has a turn on the other endpoint next to it, in the
	// order ABBA ABBA…, so that a machine slowing down or speeding up favours neither.
	var other []*worker
	var vsURL *VsURLReport
	var otherStarted atomic.Int64
	if o.vsURL != "" {
		if other, err = newWorkers(o.vsURLs, o.vsClient, o.vsSecret); err != nil {
			return err
		}
		defer closeAll(other)
		vsURL = &VsURLReport{URL: o.vsURL}
		turns = o.slices
		turn = o.duration / time.Duration(turns)
	}
	runTurn := func(ws []*worker, started *atomic.Int64) (float64, time.Duration) {
		setPolicy(loadPolicy)
		before := okCount(ws)
		t0 := time.Now()
		deadline := t0.Add(turn)
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() { w.loop(ctx, deadline, started, int64(o.requests), perWorker) })
		}
		wg.Wait()
		el := time.Since(t0)
		return float64(okCount(ws)-before) / el.Seconds(), el
	}
	for t := 0; t < turns && ctx.Err() == nil && started.Load() < int64(o.requests); t++ {
		var otherRate float64
		if other != nil && t%2 == 1 {
			var el time.Duration
			otherRate, el = runTurn(other, &otherStarted)
			vsURL.Elapsed += el.Seconds()
		}
		rate, el := runTurn(workers, &started)
		loadTime += el
		if other != nil {
			if t%2 == 0 {
				var el time.Duration
				otherRate, el = runTurn(other, &otherStarted)
				vsURL.Elapsed += el.Seconds()
			}
			if otherRate > 0 {
				vsURL.Ratios = append(vsURL.Ratios, rate/otherRate)
			}
		}
		if sign == nil {
			continue
		}
		if err := signTurn(); err != nil {
			return err
		}
		n := len(signRates)
		vs.Ratios = append(vs.Ratios, rate/((signRates[n-2]+signRates[n-1])/2))
	}
	if vsURL != nil {
		vsURL.OK = okCount(other)
		for _, w := range other {
			for _, v := range w.statuses {
				vsURL.Failed += v
			}
		}
		if vsURL.Elapsed > 0 {
			vsURL.TokensPerS = float64(vsURL.OK) / vsURL.Elapsed
		}
		vsURL.Median = median(vsURL.Ratios)
		vsURL.PerURL = perURL(o.vsURLs, other)
	}
	elapsed := loadTime
	if vs != nil {
		vs.summarize(signRates)
	}

	rep := Report{URL: o.url, Concurrency: o.concurrency, Sched: schedName, Elapsed: elapsed.Seconds(), Errors: map[string]int{}}
	var lats []time.Duration
	var sample []string
	for _, w := range workers {
		lats = append(lats, w.latencies...)
		sample = append(sample, w.sample...)
		for k, v := range w.statuses {
			rep.Errors[k] += v
			rep.Requests += v
		}
		if rep.FirstError == "" {
			rep.FirstError = w.firstErr
		}
	}
	rep.OK = len(lats)
	rep.Requests += rep.OK
	rep.PerURL = perURL(o.urls, workers)
	rep.TokensPerS = float64(rep.OK) / elapsed.Seconds()
	slices.Sort(lats)
	rep.P50, rep.P90, rep.P99 = ms(percentile(lats, 50)), ms(percentile(lats, 90)), ms(percentile(lats, 99))
	if len(lats) > 0 {
		rep.Max = ms(lats[len(lats)-1])
	}
	if rss != nil {
		rep.RSS = rss.stop()
	}
	rep.VsSign, rep.VsURL = vs, vsURL
	if o.verify > 0 && len(sample) > 0 {
		if len(sample) > o.verify {
			sample = sample[:o.verify]
		}
		rep.Verify = verifySample(ctx, httpClient, sample, o.jwks, o.resource)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(stdout)
	return nil
}

// loop sends requests until deadline, until max requests have been started by all workers
// together, or until ctx ends.
func (w *worker) loop(ctx context.Context, deadline time.Time, started *atomic.Int64, max int64, perWorker int) {
	for ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= max {
		t0 := time.Now()
		status, err := w.send(ctx, &w.buf)
		lat := time.Since(t0)
		switch {
		case err != nil:
			w.fail("transport", err.Error())
		case status != http.StatusOK:
			w.fail(strconv.Itoa(status), fmt.Sprintf("status %d: %.200s", status, w.buf.Bytes()))
		default:
			tok := accessToken(w.buf.Bytes())
			if tok == "" {
				w.fail("200 without access_token", fmt.Sprintf("%.200s", w.buf.Bytes()))
				continue
			}
			w.latencies = append(w.latencies, lat)
			w.keep(tok, perWorker)
		}
	}
}

func closeAll(ws []*worker) {
	for _, w := range ws {
		if w.close != nil {
			w.close()
		}
	}
}

func okCount(ws []*worker) int {
	n := 0
	for _, w := range ws {
		n += len(w.latencies)
	}
	return n
}

// request posts the token request and leaves the response body in buf.
func (w *worker) request(ctx context.Context, c *http.Client, target string, body []byte, user, pass string, buf *bytes.Buffer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func (w *worker) fail(kind, msg string) {
	w.statuses[kind]++
	if w.firstErr == "" {
		w.firstErr = msg
	}
}

// keep adds tok to the worker's reservoir of size k.
func (w *worker) keep(tok string, k int) {
	w.seen++
	switch {
	case k == 0:
	case len(w.sample) < k:
		w.sample = append(w.sample, tok)
	default:
		if j := w.rng.IntN(w.seen); j < k {
			w.sample[j] = tok
		}
	}
}

// accessToken returns the access_token member of a token response, or "".
func accessToken(body []byte) string {
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	return r.AccessToken
}

// percentile returns the p-th percentile (nearest rank) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *Report) print(w io.Writer) {
	fmt.Fprintf(w, "target    %s  (%d concurrent clients, %.1fs, load generator %s)\n", r.URL, r.Concurrency, r.Elapsed, r.Sched)
	fmt.Fprintf(w, "tokens    %d of %d requests  %.0f tokens/s\n", r.OK, r.Requests, r.TokensPerS)
	fmt.Fprintf(w, "latency   p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", r.P50, r.P90, r.P99, r.Max)
	if len(r.PerURL) > 0 {
		fmt.Fprintf(w, "per url   %s\n", formatPerURL(r.PerURL))
	}
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "errors    %s\n          e.g. %s\n", strings.Join(parts, ", "), r.FirstError)
	}
	if v := r.Verify; v != nil {
		fmt.Fprintf(w, "verified  %d of %d sampled tokens (keys from %s; typ %s)\n", v.Valid, v.Checked, v.KeysFrom, strings.Join(v.Types, ", "))
		for _, e := range v.Failures {
			fmt.Fprintf(w, "          %s\n", e)
		}
	}
	if s := r.RSS; s != nil {
		fmt.Fprintf(w, "rss       pid %d: start %.1f MB, end %.1f MB, min %.1f MB, max %.1f MB\n", s.PID, s.StartMB, s.EndMB, s.MinMB, s.MaxMB)
		var parts []string
		for _, m := range s.SamplesMB {
			parts = append(parts, strconv.FormatFloat(m, 'f', 1, 64))
		}
		fmt.Fprintf(w, "          every second: %s\n", strings.Join(parts, " "))
		if s.CPUSeconds > 0 {
			fmt.Fprintf(w, "cpu       pid %d: %.1f CPU-seconds, %.0f tokens per CPU-second\n", s.PID, s.CPUSeconds, float64(r.OK)/s.CPUSeconds)
		}
	}
	if v := r.VsURL; v != nil && len(v.Ratios) > 0 {
		fmt.Fprintf(w, "vs url    %s: %d tokens (%d failed), %.0f tokens/s; this ÷ that, per turn: median %.3f (%.3f–%.3f over %d turns)\n",
			v.URL, v.OK, v.Failed, v.TokensPerS, v.Median, slices.Min(v.Ratios), slices.Max(v.Ratios), len(v.Ratios))
		if len(v.PerURL) > 0 {
			fmt.Fprintf(w, "          per url %s\n", formatPerURL(v.PerURL))
		}
	}
	if v := r.VsSign; v != nil && len(v.Ratios) > 0 {
		lo, hi := slices.Min(v.Ratios), slices.Max(v.Ratios)
		fmt.Fprintf(w, "vs sign   bare %s on %d goroutines: %.0f signatures/s; tokens/s ÷ that, per turn: median %.3f (%.3f–%.3f over %d turns)\n",
			v.Alg, v.Procs, v.SignaturesPerS, v.Median, lo, hi, len(v.Ratios))
	}
}

func formatPerURL(counts []URLCount) string {
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%s: %d", c.URL, c.OK)
	}
	return strings.Join(parts, ", ")
}
