//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Scheduling policies of sched(7).
const (
	schedOther = 0 // SCHED_OTHER, the default
	schedBatch = 3 // SCHED_BATCH: a fair share of the CPU, but a wakeup does not preempt
)

// setSchedPolicy puts every thread of this process under policy. Linux keeps the policy per
// thread and a new thread inherits its creator's, so once all threads have it, threads the Go
// runtime starts later have it too; the walk repeats while it still finds threads to change
// (one may be created meanwhile).
func setSchedPolicy(policy int) error {
	for range 5 {
		changed, err := setThreadsPolicy(policy)
		if err != nil || changed == 0 {
			return err
		}
	}
	return nil
}

func setThreadsPolicy(policy int) (changed int, err error) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("listing threads: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("listing threads: %w", err)
	}
	for _, name := range names {
		tid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		cur, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
		if errors.Is(errno, syscall.ESRCH) {
			continue // the thread has exited
		}
		if errno != 0 {
			return changed, fmt.Errorf("sched_getscheduler(%d): %w", tid, errno)
		}
		if int(cur) == policy {
			continue
		}
		var param struct{ priority int32 } // struct sched_param; 0 for both policies
		_, _, errno = syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&param)))
		if errors.Is(errno, syscall.ESRCH) {
			continue
		}
		if errno != 0 {
			return changed, fmt.Errorf("sched_setscheduler(%d): %w", tid, errno)
		}
		changed++
	}
	return changed, nil
}

// schedPolicyOf reports the policy of thread tid (0: the calling thread).
func schedPolicyOf(tid int) (int, error) {
	cur, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(cur), nil
}
