//go:build linux

package main

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// threadPolicies maps each thread of this process to its scheduling policy.
func threadPolicies(t *testing.T) map[int]int {
	t.Helper()
	names, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range names {
		tid, _ := strconv.Atoi(e.Name())
		if p, err := schedPolicyOf(tid); err == nil {
			out[tid] = p
		}
	}
	return out
}

// lockedThreads starts n goroutines that each hold an OS thread of their own until release
// is called, so the runtime has to create threads.
func lockedThreads(n int) (release func()) {
	var started, done sync.WaitGroup
	stop := make(chan struct{})
	for range n {
		started.Add(1)
		done.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started.Done()
			<-stop
		})
	}
	started.Wait()
	return func() { close(stop); done.Wait() }
}

func TestSetSchedPolicy(t *testing.T) {
	own, err := schedPolicyOf(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setSchedPolicy(own) })
	if err := setSchedPolicy(schedBatch); err != nil {
		t.Fatal(err)
	}
	// Threads started after the change inherit it.
	release := lockedThreads(4)
	before := len(threadPolicies(t))
	for tid, p := range threadPolicies(t) {
		if p != schedBatch {
			t.Errorf("thread %d has policy %d after setSchedPolicy(SCHED_BATCH)", tid, p)
		}
	}
	release()
	if before < 5 {
		t.Fatalf("only %d threads: the test did not make the runtime start any", before)
	}
	if err := setSchedPolicy(schedOther); err != nil {
		t.Fatal(err)
	}
	for tid, p := range threadPolicies(t) {
		if p != schedOther {
			t.Errorf("thread %d has policy %d after setSchedPolicy(SCHED_OTHER)", tid, p)
		}
	}
}

// TestRunSchedPolicy checks that a run under SCHED_BATCH says so and leaves the process's
// threads as it found them.
func TestRunSchedPolicy(t *testing.T) {
	issuer := startBaseline(t, "ES256", "right-secret-0123456789")
	for _, tc := range []struct{ flag, want string }{{"batch", "SCHED_BATCH"}, {"normal", "SCHED_OTHER"}} {
		r := runJSON(t, "-url", issuer+"/token", "-client", "c1", "-secret", "right-secret-0123456789",
			"-c", "2", "-n", "20", "-sched", tc.flag)
		if r.OK != 20 || r.Sched != tc.want {
			t.Fatalf("-sched %s: ok %d, sched %q, want %q", tc.flag, r.OK, r.Sched, tc.want)
		}
		for tid, p := range threadPolicies(t) {
			if p != schedOther {
				t.Errorf("-sched %s: thread %d left with policy %d", tc.flag, tid, p)
			}
		}
	}
}
