//go:build !linux

package main

import "errors"

const (
	schedOther = 0
	schedBatch = 3
)

// setSchedPolicy is Linux only: elsewhere the load generator keeps the default policy.
func setSchedPolicy(policy int) error {
	if policy == schedOther {
		return nil
	}
	return errors.New("-sched batch needs Linux")
}

func schedPolicyOf(int) (int, error) { return schedOther, nil }
