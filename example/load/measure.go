package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// RSSReport is the target's resident memory over the run.
type RSSReport struct {
	PID       int       `json:"pid"`
	StartMB   float64   `json:"start_mb"`
	EndMB     float64   `json:"end_mb"`
	MinMB     float64   `json:"min_mb"`
	MaxMB     float64   `json:"max_mb"`
	SamplesMB []float64 `json:"samples_mb"` // one a second, the first at the start
	// CPUSeconds is the user and system CPU time the target spent during the run (from
	// /proc/PID/stat, at the usual 100 ticks a second): tokens per CPU-second compare servers
	// independently of what the load generator itself takes from a shared machine.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// rssSampler reads /proc/PID/status every second.
type rssSampler struct {
	pid     int
	done    chan struct{}
	wg      sync.WaitGroup
	samples []float64
	cpu0    float64
}

func startRSS(pid int) (*rssSampler, error) {
	first, err := readRSS(pid)
	if err != nil {
		return nil, fmt.Errorf("-pid: %w", err)
	}
	cpu0, err := readCPU(pid)
	if err != nil {
		return nil, fmt.Errorf("-pid: %w", err)
	}
	s := &rssSampler{pid: pid, done: make(chan struct{}), samples: []float64{first}, cpu0: cpu0}
	s.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				if mb, err := readRSS(pid); err == nil {
					s.samples = append(s.samples, mb)
				}
			}
		}
	})
	return s, nil
}

func (s *rssSampler) stop() *RSSReport {
	close(s.done)
	s.wg.Wait()
	if mb, err := readRSS(s.pid); err == nil {
		s.samples = append(s.samples, mb)
	}
	r := &RSSReport{
		PID: s.pid, StartMB: s.samples[0], EndMB: s.samples[len(s.samples)-1],
		MinMB: slices.Min(s.samples), MaxMB: slices.Max(s.samples), SamplesMB: s.samples,
	}
	if cpu, err := readCPU(s.pid); err == nil {
		r.CPUSeconds = cpu - s.cpu0
	}
	return r
}

// readCPU returns utime+stime of a process in seconds (Linux, 100 clock ticks a second).
func readCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; the fields after its ')' are fixed.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return (utime + stime) / 100, nil
}

// readRSS returns VmRSS of a process in MB (Linux).
func readRSS(pid int) (float64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// VerifyReport is the outcome of checking a sample of tokens.
type VerifyReport struct {
	Checked  int      `json:"checked"`
	Valid    int      `json:"valid"`
	KeysFrom string   `json:"keys_from"`
	Types    []string `json:"typ"`
	Failures []string `json:"failures,omitempty"` // the first few
}

// signingAlgs are the JWS algorithms a token may use; anything else is refused.
var signingAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}

// verifySample checks every token's signature against the issuer's published keys, and its
// iss (when the keys came from the issuer's metadata), aud (when -resource was given) and exp.
// It uses go-jose alone, so it judges mandate and the baseline alike.
func verifySample(ctx context.Context, c *http.Client, tokens []string, jwksURL, resource string) *VerifyReport {
	rep := &VerifyReport{Checked: len(tokens)}
	failAll := func(err error) *VerifyReport {
		rep.Failures = []string{err.Error()}
		return rep
	}
	iss, err := unverifiedIssuer(tokens[0])
	if err != nil && jwksURL == "" {
		return failAll(err)
	}
	wantIss := ""
	if jwksURL == "" {
		if jwksURL, err = discoverJWKS(ctx, c, iss); err != nil {
			return failAll(err)
		}
		wantIss = iss
	}
	rep.KeysFrom = jwksURL
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, c, jwksURL, &set); err != nil {
		return failAll(fmt.Errorf("JWKS: %w", err))
	}
	now := time.Now()
	for _, tok := range tokens {
		typ, err := verifyToken(tok, &set, wantIss, resource, now)
		if !slices.Contains(rep.Types, typ) {
			rep.Types = append(rep.Types, typ)
		}
		if err != nil {
			if len(rep.Failures) < 5 {
				rep.Failures = append(rep.Failures, err.Error())
			}
			continue
		}
		rep.Valid++
	}
	return rep
}

func verifyToken(tok string, set *jose.JSONWebKeySet, iss, aud string, now time.Time) (typ string, _ error) {
	jws, err := jose.ParseSignedCompact(tok, signingAlgs)
	if err != nil {
		return "", fmt.Errorf("parse: %w", err)
	}
	h := jws.Signatures[0].Header
	typ, _ = h.ExtraHeaders["typ"].(string)
	keys := set.Key(h.KeyID)
	if h.KeyID == "" && len(set.Keys) == 1 {
		keys = set.Keys
	}
	if len(keys) != 1 {
		return typ, fmt.Errorf("kid %q: %d published keys", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return typ, fmt.Errorf("signature: %w", err)
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp int64           `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return typ, fmt.Errorf("claims: %w", err)
	}
	switch {
	case iss != "" && c.Iss != iss:
		return typ, fmt.Errorf("iss %q, want %q", c.Iss, iss)
	case c.Exp <= now.Unix():
		return typ, fmt.Errorf("expired (exp %d)", c.Exp)
	case aud != "" && !audienceIs(c.Aud, aud):
		return typ, fmt.Errorf("aud %s, want %q", c.Aud, aud)
	}
	return typ, nil
}

// audienceIs reports whether aud (a string or an array) is exactly want.
func audienceIs(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var list []string
	return json.Unmarshal(raw, &list) == nil && len(list) == 1 && list[0] == want
}

// unverifiedIssuer reads iss from a token's payload without verifying it, to find the keys.
func unverifiedIssuer(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("token payload: %w", err)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss == "" {
		return "", errors.New("token has no iss claim; give -jwks")
	}
	return c.Iss, nil
}

// discoverJWKS fetches the issuer's RFC 8414 metadata (§3: the well-known path inserted before
// the issuer's path) and returns its jwks_uri.
func discoverJWKS(ctx context.Context, c *http.Client, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	if err := checkLoopbackURL(issuer); err != nil {
		return "", fmt.Errorf("issuer: %w", err)
	}
	wk := *u
	wk.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	wk.RawPath = ""
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, c, wk.String(), &md); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if md.Issuer != issuer {
		return "", fmt.Errorf("metadata issuer %q differs from the tokens' %q", md.Issuer, issuer)
	}
	if err := checkLoopbackURL(md.JWKSURI); err != nil {
		return "", fmt.Errorf("jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}

func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(bytes.NewReader(body)).Decode(v)
}
