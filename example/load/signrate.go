package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// SignRate is what sign-rate measured: the bare signature of one algorithm on every core,
// nothing else running in the process. It is the denominator of the HTTP RS256 goal.
type SignRate struct {
	Alg        string  `json:"alg"`
	Procs      int     `json:"procs"`
	Elapsed    float64 `json:"elapsed_seconds"`
	Signatures int64   `json:"signatures"`
	PerSecond  float64 `json:"signatures_per_second"`
}

// signRate signs a token-sized message with a fresh key of -alg on -procs goroutines (default:
// GOMAXPROCS) for -d, and reports signatures per second.
func signRate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign-rate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "RS256", "signing algorithm: ES256, EdDSA or RS256")
	d := fs.Duration("d", 5*time.Second, fmt.Sprintf("duration (up to %s)", maxDuration))
	procs := fs.Int("procs", runtime.GOMAXPROCS(0), "signing goroutines (1–1024)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sign-rate: unexpected arguments %q", fs.Args())
	}
	if *d <= 0 || *d > maxDuration || *procs < 1 || *procs > 1024 {
		return fmt.Errorf("sign-rate: -d must be in (0, %s] and -procs in [1, 1024]", maxDuration)
	}
	sign, err := newSignFunc(*alg)
	if err != nil {
		return err
	}
	n, elapsed, err := measureSign(ctx, sign, *procs, *d)
	if err != nil {
		return fmt.Errorf("sign-rate: %w", err)
	}
	el := elapsed.Seconds()
	r := SignRate{Alg: *alg, Procs: *procs, Elapsed: el, Signatures: n, PerSecond: float64(n) / el}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	_, err = fmt.Fprintf(stdout, "sign-rate %s on %d goroutines: %d signatures in %.1fs, %.0f/s\n", r.Alg, r.Procs, r.Signatures, r.Elapsed, r.PerSecond)
	return err
}

// newSignFunc returns a function that signs a token-sized message with a fresh key of alg.
func newSignFunc(alg string) (func() error, error) {
	key, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	// A signing input the size of a token's header and claims.
	msg := make([]byte, 420)
	_, _ = rand.Read(msg)
	return func() error {
		switch k := key.(type) {
		case ed25519.PrivateKey:
			_ = ed25519.Sign(k, msg)
			return nil
		case *ecdsa.PrivateKey:
			h := sha256.Sum256(msg)
			_, err := ecdsa.SignASN1(rand.Reader, k, h[:])
			return err
		default:
			h := sha256.Sum256(msg)
			_, err := key.Sign(rand.Reader, h[:], crypto.SHA256)
			return err
		}
	}, nil
}

// measureSign runs sign on procs goroutines for d (GOMAXPROCS raised to procs meanwhile) and
// returns how many signatures were made in how long.
func measureSign(ctx context.Context, sign func() error, procs int, d time.Duration) (int64, time.Duration, error) {
	if runtime.GOMAXPROCS(0) < procs {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	}
	var n atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if err := sign(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	return n.Load(), time.Since(start), nil
}
